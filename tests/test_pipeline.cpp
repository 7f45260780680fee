// End-to-end pipeline with tiny random components: scripted LLM output with N mixed groups -> exactly N items in
// order and a well-formed bundle; malformed output -> per-group errors; a failing / throwing / out-of-memory /
// hanging decoder fails only its item; groups are dispatched while the text is still being written; decoders
// load once.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "pipeline/pipeline.h"

using namespace spider;

static std::string tmp_dir(const std::string & name) {
    std::string d = std::string(SPIDER_BINARY_DIR) + "/test_pipeline_out/" + name;
    std::string cmd = "rm -rf '" + d + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    return d;
}
static bool exists(const std::string & p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 && st.st_size > 0;
}
static std::string slurp(const std::string & p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

struct fixture {
    pipeline_components c;
    pipeline_config cfg;
    fixture() {
        make_tiny_components(&c, 32, 7);
        cfg.image_size = 32;
        cfg.audio_seconds = 0.25f;
        cfg.video_seconds = 0.5f;
        cfg.item_timeout_s = 30;
    }
    bool run(const std::string & script, run_request req, response * r, std::string * err, int delay_ms = 0) {
        auto gen = make_scripted_generator(script, 32, delay_ms, c.tmpl);
        return run_pipeline(c, cfg, *gen, req, nullptr, r, err);
    }
};

static const char * k_mixed =
    "[OUTPUT]A trip in pictures and sounds.\n - <IMAGE>a red circle on grass[IMAGE0]</IMAGE>: the start.\n"
    " - <AUDIO>high whistle[AUDIO0]</AUDIO>\n - <VIDEO>a blue ball rolling[VIDEO0]</VIDEO>"
    "<BOX>tiger[BOX0]</BOX><MASK>the tiger[MASK0]</MASK><IMAGE>a green square[IMAGE0]</IMAGE> The end.[END]";

TEST(pipeline, scripted_groups_give_exactly_n_items_in_order) {
    fixture f;
    run_request req;
    req.prompt = "Plan a trip";
    req.seed = 11;
    req.out_dir = tmp_dir("mixed");
    response r;
    std::string err;
    ASSERT_TRUE(f.run(k_mixed, req, &r, &err)) << err;
    const modality want[6] = {MODALITY_IMAGE, MODALITY_AUDIO, MODALITY_VIDEO,
                              MODALITY_BOX,   MODALITY_MASK,  MODALITY_IMAGE};
    ASSERT_EQ(r.items.size(), 6u);
    for (int i = 0; i < 6; ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(r.items[i].m, want[i]);
        EXPECT_EQ(r.items[i].status, "ok") << r.items[i].error;
        EXPECT_EQ(r.items[i].group_index, i);
        ASSERT_FALSE(r.items[i].files.empty());
        for (const auto & file : r.items[i].files) EXPECT_TRUE(exists(req.out_dir + "/" + file.path)) << file.path;
        if (r.items[i].m != MODALITY_BOX) {
            EXPECT_EQ(r.items[i].router_weights.size(), 3u);
        }
    }
    EXPECT_EQ(r.items[0].t_prompt, "a red circle on grass");
    // without an input image the box overlay is the box decoder's canvas (the configured image size)
    image_u8 ov;
    ASSERT_EQ(r.items[3].files.size(), 2u);
    ASSERT_TRUE(image_read(req.out_dir + "/" + r.items[3].files[1].path, &ov, &err)) << err;
    EXPECT_EQ(ov.width, 32);
    EXPECT_EQ(ov.height, 32);
    // the answer keeps text and items in order
    EXPECT_EQ(r.text(),
              "A trip in pictures and sounds.\n - [image #0]: the start.\n - [audio #1]\n - [video #2][box #3][mask "
              "#4][image #5] The end.");
    EXPECT_TRUE(r.warnings.empty());
    // the bundle on disk: manifest parses back to the same items, HTML embeds the media
    response back;
    ASSERT_TRUE(manifest_parse(slurp(req.out_dir + "/manifest.json"), &back, &err)) << err;
    ASSERT_EQ(back.items.size(), 6u);
    EXPECT_EQ(back.items[2].files[0].mime, "video/mp4");
    EXPECT_EQ(back.text(), r.text());
    const std::string html = slurp(req.out_dir + "/index.html");
    EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
    EXPECT_NE(html.find("data:audio/wav;base64,"), std::string::npos);
    EXPECT_NE(html.find("data:video/mp4;base64,"), std::string::npos);
    EXPECT_EQ(html.find("src=\"items/"), std::string::npos);  // self-contained
}

TEST(pipeline, same_seed_same_media_other_seed_differs) {
    fixture f;
    run_request req;
    req.prompt = "p";
    req.seed = 5;
    req.out_dir = tmp_dir("seed_a");
    response a, b, c;
    std::string err;
    const char * s = "[OUTPUT]<IMAGE>a yellow circle[IMAGE0]</IMAGE>[END]";
    ASSERT_TRUE(f.run(s, req, &a, &err));
    req.out_dir = tmp_dir("seed_b");
    ASSERT_TRUE(f.run(s, req, &b, &err));
    req.out_dir = tmp_dir("seed_c");
    req.seed = 6;
    ASSERT_TRUE(f.run(s, req, &c, &err));
    const std::string base = std::string(SPIDER_BINARY_DIR) + "/test_pipeline_out/";
    image_u8 ia, ib, ic;
    ASSERT_TRUE(image_read(base + "seed_a/" + a.items[0].files[0].path, &ia, &err)) << err;
    ASSERT_TRUE(image_read(base + "seed_b/" + b.items[0].files[0].path, &ib, &err)) << err;
    ASSERT_TRUE(image_read(base + "seed_c/" + c.items[0].files[0].path, &ic, &err)) << err;
    EXPECT_EQ(ia.pixels, ib.pixels);
    EXPECT_NE(ia.pixels, ic.pixels);
}

TEST(pipeline, malformed_output_gives_per_group_errors) {
    fixture f;
    run_request req;
    req.prompt = "p";
    req.out_dir = tmp_dir("malformed");
    response r;
    std::string err;
    ASSERT_TRUE(
        f.run("[OUTPUT]x<IMAGE>no signal</IMAGE><AUDIO>rain[AUDIO0]</AUDIO><VIDEO>cut[VIDEO0]</AUDIO>"
              "<IMAGE>open[IMAGE0]",
              req, &r, &err))
        << err;
    ASSERT_EQ(r.items.size(), 4u);
    EXPECT_EQ(r.items[0].status, "malformed");
    EXPECT_EQ(r.items[1].status, "ok");
    EXPECT_EQ(r.items[2].status, "malformed");
    EXPECT_EQ(r.items[3].status, "malformed");
    EXPECT_EQ(r.items[0].decisions.at(0).rule, "grammar");
    EXPECT_FALSE(r.warnings.empty());  // no [END]
    response back;
    ASSERT_TRUE(manifest_parse(slurp(req.out_dir + "/manifest.json"), &back, &err)) << err;
    EXPECT_EQ(back.items[3].status, "malformed");
}

// Test decoders that misbehave in every way the pipeline must survive.
class bad_decoder : public decoder {
public:
    enum mode_t { ERROR, THROW, OOM, HANG } mode;
    explicit bad_decoder(mode_t m) : mode(m) {}
    modality kind() const override { return MODALITY_IMAGE; }
    std::string name() const override { return "bad"; }
    bool encode_text(const std::string & t, std::vector<float> * out, int * n, int * d, std::string *) override {
        *out = builtin_text_encode(t, 7, 24);
        *n = 7;
        *d = 24;
        return true;
    }
    bool decode(const decode_request & rq, decode_result *, std::string * err) override {
        switch (mode) {
            case ERROR:
                *err = "weights corrupted";
                return false;
            case THROW:
                throw std::runtime_error("boom");
            case OOM:
                throw std::bad_alloc();
            case HANG:
                while (!(rq.cancel && rq.cancel->load())) std::this_thread::sleep_for(std::chrono::milliseconds(5));
                *err = "cancelled";
                return false;
        }
        return false;
    }
};

TEST(pipeline, failing_decoder_fails_only_its_item) {
    for (auto mode : {bad_decoder::ERROR, bad_decoder::THROW, bad_decoder::OOM, bad_decoder::HANG}) {
        SCOPED_TRACE(static_cast<int>(mode));
        fixture f;
        f.cfg.item_timeout_s = 2.0;  // generous: the healthy items must finish well inside it
        f.c.decoders.add(MODALITY_IMAGE, "bad",
                         [mode](std::string *) { return std::unique_ptr<decoder>(new bad_decoder(mode)); });
        run_request req;
        req.prompt = "p";
        req.out_dir = tmp_dir("bad");
        response r;
        std::string err;
        ASSERT_TRUE(
            f.run("[OUTPUT]Before.<AUDIO>a low hum[AUDIO0]</AUDIO><IMAGE>a cat[IMAGE0]</IMAGE>"
                  "<VIDEO>a purple dot[VIDEO0]</VIDEO>After.[END]",
                  req, &r, &err))
            << err;
        ASSERT_EQ(r.items.size(), 3u);
        EXPECT_EQ(r.items[0].status, "ok");
        EXPECT_EQ(r.items[2].status, "ok");
        EXPECT_EQ(r.items[1].status, mode == bad_decoder::HANG ? "timeout" : "failed");
        EXPECT_FALSE(r.items[1].error.empty());
        if (mode == bad_decoder::OOM) {
            EXPECT_NE(r.items[1].error.find("out of memory"), std::string::npos);
        }
        if (mode == bad_decoder::THROW) {
            EXPECT_NE(r.items[1].error.find("boom"), std::string::npos);
        }
        EXPECT_EQ(r.text(), "Before.[audio #0][image #1][video #2]After.");
        EXPECT_TRUE(exists(req.out_dir + "/manifest.json"));
    }
}

TEST(pipeline, first_group_dispatched_before_text_ends_and_decoders_load_once) {
    fixture f;
    std::string script = "[OUTPUT]<IMAGE>a white circle[IMAGE0]</IMAGE>";
    for (int i = 0; i < 40; ++i) script += " more text";
    script += "[END]";
    run_request req;
    req.prompt = "p";
    response r;
    std::string err;
    ASSERT_TRUE(f.run(script, req, &r, &err, 5)) << err;
    ASSERT_EQ(r.items.size(), 1u);
    EXPECT_EQ(r.items[0].status, "ok");
    ASSERT_TRUE(r.timings_ms.count("first_dispatch"));
    EXPECT_LT(r.timings_ms["first_dispatch"], r.timings_ms["llm_end"]);
    EXPECT_LT(r.items[0].timings_ms["started"], r.timings_ms["llm_end"]);
    // a second request reuses the loaded decoder
    ASSERT_TRUE(f.run("[OUTPUT]<IMAGE>again[IMAGE0]</IMAGE>[END]", req, &r, &err)) << err;
    EXPECT_EQ(f.c.decoders.load_count(MODALITY_IMAGE), 1);
    EXPECT_EQ(f.c.decoders.load_count(MODALITY_VIDEO), 0);
}

TEST(pipeline, input_image_boxes_and_mask_overlays) {
    fixture f;
    // an input image with a red square on grey
    image_u8 im;
    im.width = 48;
    im.height = 40;
    im.channels = 3;
    im.pixels.assign(48 * 40 * 3, 128);
    for (int y = 10; y < 20; ++y)
        for (int x = 20; x < 34; ++x) {
            im.pixels[(y * 48 + x) * 3 + 0] = 220;
            im.pixels[(y * 48 + x) * 3 + 1] = 30;
            im.pixels[(y * 48 + x) * 3 + 2] = 30;
        }
    std::string in = tmp_dir("input_img") + ".png", err;
    ASSERT_TRUE(bundle_make_dirs(std::string(SPIDER_BINARY_DIR) + "/test_pipeline_out", &err));
    ASSERT_TRUE(image_write_png(in, im, {}, &err)) << err;
    run_request req;
    req.prompt = "Where is the red thing? <image>";
    req.images = {in};
    req.out_dir = tmp_dir("boxmask");
    response r;
    ASSERT_TRUE(f.run("[OUTPUT]Here:<BOX>red square[BOX0]</BOX><MASK>red square[MASK0]</MASK>[END]", req, &r, &err))
        << err;
    ASSERT_EQ(r.items.size(), 2u);
    ASSERT_EQ(r.items[0].status, "ok") << r.items[0].error;
    ASSERT_EQ(r.items[0].boxes.size(), 1u);
    EXPECT_FLOAT_EQ(r.items[0].boxes[0].x0, 20);
    EXPECT_FLOAT_EQ(r.items[0].boxes[0].y0, 10);
    EXPECT_FLOAT_EQ(r.items[0].boxes[0].x1, 34);
    EXPECT_FLOAT_EQ(r.items[0].boxes[0].y1, 20);
    ASSERT_EQ(r.items[1].status, "ok") << r.items[1].error;
    bool has_overlay = false, has_mask = false;
    for (const auto & file : r.items[1].files) {
        has_overlay |= file.role == "overlay";
        if (file.role == "mask") {
            has_mask = true;
            image_u8 mk;
            ASSERT_TRUE(image_read(req.out_dir + "/" + file.path, &mk, &err)) << err;
            EXPECT_EQ(mk.width, 48);
            EXPECT_EQ(mk.height, 40);
            // the mask covers the red square's pixels inside the box ellipse and nothing outside the box
            EXPECT_GT(mk.pixels[(15 * 48 + 27) * mk.channels], 0);
            EXPECT_EQ(mk.pixels[(2 * 48 + 2) * mk.channels], 0);
        }
    }
    EXPECT_TRUE(has_overlay && has_mask);
    EXPECT_EQ(r.inputs.size(), 1u);
    bool box_prompt = false;
    for (const auto & d : r.items[1].decisions) box_prompt |= d.rule == "mask_box" && d.action == "accept";
    EXPECT_TRUE(box_prompt);
}

TEST(pipeline, bad_requests_are_errors_not_crashes) {
    fixture f;
    run_request req;
    req.prompt = "p";
    req.images = {"/nonexistent/x.png"};
    response r;
    std::string err;
    EXPECT_FALSE(f.run("[OUTPUT]x[END]", req, &r, &err));
    EXPECT_NE(err.find("/nonexistent/x.png"), std::string::npos);
    req.images.clear();
    req.prompt = "two <image> <image>";
    EXPECT_FALSE(f.run("[OUTPUT]x[END]", req, &r, &err));
    EXPECT_NE(err.find("<image>"), std::string::npos);
}

TEST(pipeline, model_bundle_manifest_roundtrip) {
    // export the tiny components as a spider.model manifest + GGUFs, load them back: same UDP, same projector
    fixture f;
    const std::string dir = tmp_dir("model_bundle");
    std::string err;
    ASSERT_TRUE(export_components(f.c, dir, "", &err)) << err;
    model_bundle b;
    ASSERT_TRUE(model_bundle_resolve(dir + "/spider.model.json", &b, &err)) << err;
    EXPECT_EQ(b.udp_path, dir + "/udp.gguf");
    pipeline_components c2;
    ASSERT_TRUE(load_components(b, 32, &c2, &err)) << err;
    ASSERT_EQ(b.notes.size(), 2u);
    EXPECT_EQ(b.notes[0], "udp: " + dir + "/udp.gguf");
    std::vector<float> x(32, 0.25f), y1, y2, t1, t2;
    ASSERT_TRUE(f.c.udp->forward(MODALITY_IMAGE, x.data(), 1, &y1, nullptr, &err));
    ASSERT_TRUE(c2.udp->forward(MODALITY_IMAGE, x.data(), 1, &y2, nullptr, &err));
    EXPECT_EQ(y1, y2);
    std::vector<float> emb(64, 0.5f);
    ASSERT_TRUE(f.c.proj->project(emb, &t1, &err));
    ASSERT_TRUE(c2.proj->project(emb, &t2, &err));
    EXPECT_EQ(t1, t2);
    // a bundle for another LLM width is refused with a message
    pipeline_components c3;
    EXPECT_FALSE(load_components(b, 48, &c3, &err));
    EXPECT_NE(err.find("48"), std::string::npos);
    // broken manifests
    ASSERT_TRUE(bundle_write_file_atomic(dir + "/bad.json", "{\"format\": \"other\"}", &err));
    EXPECT_FALSE(model_bundle_resolve(dir + "/bad.json", &b, &err));
    EXPECT_NE(err.find("spider.model"), std::string::npos);
    EXPECT_FALSE(model_bundle_resolve(dir + "/missing.json", &b, &err));
    ASSERT_TRUE(model_bundle_resolve("llm.gguf", &b, &err));
    EXPECT_EQ(b.llm_path, "llm.gguf");
}
