// Response bundle: provenance metadata in every media file, atomic writes, manifest schema round trip and
// version check, HTML escaping and self-containment.
#include <dirent.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "pipeline/pipeline.h"

using namespace spider;

static std::string out_dir(const std::string & name) {
    std::string d = std::string(SPIDER_BINARY_DIR) + "/test_bundle_out/" + name;
    std::string cmd = "rm -rf '" + d + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    return d;
}
static std::string slurp(const std::string & p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
static std::string meta_value(const media_metadata & m, const std::string & k) {
    for (const auto & kv : m) {
        if (kv.first == k) return kv.second;
    }
    return "";
}

TEST(bundle, media_files_carry_provenance) {
    pipeline_components c;
    make_tiny_components(&c, 16, 1);
    pipeline_config cfg;
    cfg.image_size = 16;
    cfg.audio_seconds = 0.1f;
    cfg.video_seconds = 0.25f;
    run_request req;
    req.prompt = "p";
    req.seed = 77;
    req.out_dir = out_dir("prov");
    auto gen = make_scripted_generator(
        "[OUTPUT]<IMAGE>an orange dot[IMAGE0]</IMAGE><AUDIO>a chime[AUDIO0]</AUDIO><VIDEO>waves[VIDEO0]</VIDEO>"
        "<BOX>a thing[BOX0]</BOX>[END]",
        16, 0, c.tmpl);
    response r;
    std::string err;
    ASSERT_TRUE(run_pipeline(c, cfg, *gen, req, nullptr, &r, &err)) << err;
    ASSERT_EQ(r.items.size(), 4u);
    for (const auto & it : r.items) ASSERT_EQ(it.status, "ok") << it.error;
    // PNG tEXt chunks
    media_metadata meta;
    ASSERT_TRUE(image_read_png_text(req.out_dir + "/" + r.items[0].files[0].path, &meta, &err)) << err;
    EXPECT_EQ(meta_value(meta, "ai_generated"), "true");
    EXPECT_EQ(meta_value(meta, "prompt"), "an orange dot");
    EXPECT_EQ(meta_value(meta, "seed"), std::to_string(r.items[0].seed));
    EXPECT_EQ(meta_value(meta, "model"), "spider-tiny-random");
    // WAV and MP4: the metadata strings are in the files (INFO chunk / container tags)
    const std::string wav = slurp(req.out_dir + "/" + r.items[1].files[0].path);
    EXPECT_NE(wav.find("a chime"), std::string::npos);
    EXPECT_EQ(wav.substr(0, 4), "RIFF");
    const std::string mp4 = slurp(req.out_dir + "/" + r.items[2].files[0].path);
    EXPECT_NE(mp4.find("waves"), std::string::npos);
    video_u8 v;
    ASSERT_TRUE(video_read(req.out_dir + "/" + r.items[2].files[0].path, &v, &err)) << err;
    EXPECT_EQ(v.frames.size(), 2u);
    // WebM (VP9) when asked
    decode_result vres;
    vres.m = MODALITY_VIDEO;
    vres.video = v;
    response_item vit = r.items[2];
    vit.files.clear();
    ASSERT_TRUE(bundle_write_item(req.out_dir, vres, nullptr, "m", &vit, &err, "webm")) << err;
    ASSERT_EQ(vit.files.size(), 1u);
    EXPECT_EQ(vit.files[0].mime, "video/webm");
    video_u8 vw;
    ASSERT_TRUE(video_read(req.out_dir + "/" + vit.files[0].path, &vw, &err)) << err;
    EXPECT_EQ(vw.frames.size(), 2u);
    EXPECT_FALSE(bundle_write_item(req.out_dir, vres, nullptr, "m", &vit, &err, "avi"));
    // boxes JSON
    const std::string bj = slurp(req.out_dir + "/" + r.items[3].files[0].path);
    EXPECT_NE(bj.find("\"ai_generated\": true"), std::string::npos);
    EXPECT_NE(bj.find("\"boxes\""), std::string::npos);
    // no temp files left behind (atomic writes renamed into place)
    for (const std::string sub : {"", "/items"}) {
        DIR * d = opendir((req.out_dir + sub).c_str());
        ASSERT_NE(d, nullptr);
        while (dirent * e = readdir(d)) EXPECT_EQ(std::string(e->d_name).find(".tmp"), std::string::npos) << e->d_name;
        closedir(d);
    }
}

TEST(bundle, manifest_roundtrip_and_version_check) {
    response r;
    r.id = "req-1";
    r.model = "m";
    r.prompt = "say <b>hi</b> & \"bye\"";
    r.task_token = "[IMAGE]";
    r.seed = 3;
    answer_part t;
    t.text = "Look: ";
    r.parts.push_back(t);
    answer_part ip;
    ip.is_item = true;
    ip.item = 0;
    r.parts.push_back(ip);
    response_item it;
    it.m = MODALITY_BOX;
    it.t_prompt = "a <tiger>";
    it.status = "failed";
    it.error = "decoder exploded";
    it.decisions.push_back({"admission", "allow", "box item 1"});
    it.boxes.push_back({1, 2, 3, 4, 0.5f, "tiger"});
    it.timings_ms["closed"] = 1.5;
    r.items.push_back(it);
    r.warnings.push_back("w");
    r.timings_ms["total"] = 9;
    const std::string js = manifest_json(r);
    response back;
    std::string err;
    ASSERT_TRUE(manifest_parse(js, &back, &err)) << err;
    EXPECT_EQ(back.text(), "Look: [box #0]");
    EXPECT_EQ(back.items[0].error, "decoder exploded");
    EXPECT_EQ(back.items[0].boxes.size(), 1u);
    EXPECT_EQ(back.items[0].decisions[0].rule, "admission");
    EXPECT_DOUBLE_EQ(back.items[0].timings_ms["closed"], 1.5);
    EXPECT_EQ(back.prompt, r.prompt);
    std::string bad = js;
    bad.replace(bad.find("\"version\": 1"), 12, "\"version\": 99");
    EXPECT_FALSE(manifest_parse(bad, &back, &err));
    EXPECT_NE(err.find("99"), std::string::npos);
    EXPECT_FALSE(manifest_parse("[1,2]", &back, &err));
    EXPECT_FALSE(manifest_parse("{\"schema\": \"spider.response\", \"version\": 1}", &back, &err));  // fields missing

    // HTML escapes text and shows the failure inline
    const std::string dir = out_dir("html");
    ASSERT_TRUE(bundle_write(dir, r, &err)) << err;
    const std::string html = slurp(dir + "/index.html");
    EXPECT_NE(html.find("say &lt;b&gt;hi&lt;/b&gt; &amp; &quot;bye&quot;"), std::string::npos);
    EXPECT_NE(html.find("decoder exploded"), std::string::npos);
    EXPECT_EQ(html.find("<tiger>"), std::string::npos);
}

TEST(bundle, write_errors_are_reported) {
    std::string err;
    EXPECT_FALSE(bundle_write_file_atomic("/proc/spider_cannot_write_here/x.json", "{}", &err));
    EXPECT_FALSE(err.empty());
    response r;
    EXPECT_FALSE(bundle_write("/proc/spider_nope", r, &err));
}
