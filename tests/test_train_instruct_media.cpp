// Stage `instruct` on TMM records with media inputs (train/stage_instruct.cpp): the input projector's rows at the
// placeholder positions give the tape exactly the LLM input the pipeline builds (generator_llm.cpp: scaled text
// embeddings, unscaled projected rows), the projector's gradient through the frozen LLM + LoRA equals finite
// differences, and the stage trains the projector, exports a proj.gguf + manifest that the pipeline loads, and
// names the record and field of bad media inputs. The UDP term: the tape's M-Prompt equals the runtime's (hidden
// state after the final norm + input embedding), its gradient reaches LoRA and the projector, and the stage trains
// and exports the UDP on single-modality answers.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "controller/template.h"
#include "encoders/encoder.h"
#include "grad_check.h"
#include "io/gguf.h"
#include "io/hf_convert.h"
#include "io/media.h"
#include "llm/model.h"
#include "pipeline/pipeline.h"
#include "spider.h"
#include "train/llm_tape.h"
#include "train/stage.h"

namespace spider::train {
namespace {

const std::string k_src = SPIDER_SOURCE_DIR;

std::string tmp_dir() {
    const std::string d = std::string(SPIDER_BINARY_DIR) + "/test_train_instruct_media_tmp";
    std::filesystem::create_directories(d);
    return d;
}

// The tiny gemma3 of tests/data/llm converted by our converter (cached per build directory).
std::string tiny_gemma3() {
    const std::string f32 = tmp_dir() + "/tiny_gemma3_f32.gguf";
    if (!std::filesystem::exists(f32)) {
        hf_convert_params p;
        p.out_type = DTYPE_F32;
        std::string err;
        EXPECT_TRUE(hf_convert(k_src + "/tests/data/llm/tiny_gemma3_hf", f32, p, &err)) << err;
    }
    return f32;
}

image_u8 test_image(uint8_t r, uint8_t g, uint8_t b) {
    image_u8 img;
    img.width = img.height = 32;
    img.channels = 3;
    img.pixels.resize(32 * 32 * 3);
    for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) {
            const bool in = (x - 16) * (x - 16) + (y - 16) * (y - 16) < 80;  // a disc on grey
            uint8_t * p = img.pixels.data() + (y * 32 + x) * 3;
            p[0] = in ? r : 128;
            p[1] = in ? g : 128;
            p[2] = in ? b : 128;
        }
    return img;
}

std::vector<int32_t> tokenize(spider_model * m, const std::string & s, bool bos) {
    std::vector<int32_t> t(s.size() + 8);
    const int32_t n = spider_tokenize(m, s.data(), static_cast<int32_t>(s.size()), t.data(),
                                      static_cast<int32_t>(t.size()), bos, true);
    EXPECT_GE(n, 0) << spider_last_error();
    t.resize(static_cast<size_t>(std::max(n, 0)));
    return t;
}

double nmse(const std::vector<float> & a, const std::vector<float> & ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += (static_cast<double>(a[i]) - ref[i]) * (static_cast<double>(a[i]) - ref[i]);
        den += static_cast<double>(ref[i]) * ref[i];
    }
    return num / den;
}

// What `spider run` feeds the LLM for an image and a question (the pipeline's encoder and projector, text pieces
// tokenized apart with the projected row between them, as generator_llm.cpp does) gives the same logits as the tape
// with the projector's row at the placeholder position.
TEST(InstructMedia, TapeWithProjectedRowMatchesThePipelinesInput) {
    const std::string path = tiny_gemma3();
    spider_model_params mp = spider_model_default_params();
    mp.n_threads = 2;
    spider_model * model = nullptr;
    ASSERT_EQ(spider_model_load(path.c_str(), mp, &model), SPIDER_STATUS_OK) << spider_last_error();
    const int E = spider_model_n_embd(model);
    pipeline_components c;
    model_bundle bundle;
    bundle.llm_path = path;
    std::string err;
    ASSERT_TRUE(load_components(bundle, E, &c, &err)) << err;
    std::vector<float> emb, tok;
    ASSERT_TRUE(c.enc->encode_image(test_image(220, 30, 30), &emb, &err)) << err;
    ASSERT_TRUE(c.proj->project(emb, &tok, &err)) << err;

    const std::vector<int32_t> a = tokenize(model, "[INPUT]<IMAGE>", true);
    const std::vector<int32_t> b = tokenize(model, "</IMAGE> What is this?[TEXT]", false);
    std::vector<float> rows(static_cast<size_t>(a.size() + 1 + b.size()) * E);
    ASSERT_EQ(spider_token_embeddings(model, a.data(), static_cast<int32_t>(a.size()), rows.data()), SPIDER_STATUS_OK);
    std::copy(tok.begin(), tok.end(), rows.begin() + static_cast<std::ptrdiff_t>(a.size()) * E);
    ASSERT_EQ(spider_token_embeddings(model, b.data(), static_cast<int32_t>(b.size()),
                                      rows.data() + (a.size() + 1) * static_cast<size_t>(E)),
              SPIDER_STATUS_OK);
    const int32_t n = static_cast<int32_t>(a.size() + 1 + b.size());
    spider_context_params cp = spider_context_default_params();
    cp.n_ctx = 128;
    cp.n_threads = 2;
    cp.kv_type = SPIDER_KV_TYPE_F32;
    spider_context * ctx = nullptr;
    ASSERT_EQ(spider_context_create(model, cp, &ctx), SPIDER_STATUS_OK) << spider_last_error();
    spider_batch batch = spider_batch_embd(rows.data(), n);
    batch.output = SPIDER_OUTPUT_ALL;
    ASSERT_EQ(spider_decode(ctx, batch), SPIDER_STATUS_OK) << spider_last_error();
    const int64_t nv = spider_model_n_vocab(model);
    const float * l = spider_get_logits(ctx);
    const std::vector<float> ref(l, l + static_cast<size_t>(n) * nv);

    llm_tape_config tc;
    tc.lora_targets.clear();
    tc.build_backward_cache = false;
    auto t = llm_tape::create(*llm_model_of(model), tc, &err);
    ASSERT_TRUE(t) << err;
    std::vector<float> w, bias;
    ASSERT_TRUE(c.proj->weights_f32(&w, &bias, &err)) << err;
    const int64_t D = c.proj->emb_dim();
    value W = parameter({E, D}, w), B = parameter({E}, bias);
    std::vector<int32_t> ids = a;
    const int32_t pos = static_cast<int32_t>(ids.size());
    ids.push_back(0);  // any id: the row is replaced
    ids.insert(ids.end(), b.begin(), b.end());
    std::vector<int32_t> out_rows(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) out_rows[i] = i;
    value lg = t->logits(ids, out_rows, {pos}, linear(constant({1, D}, emb), W, B));
    ASSERT_EQ(lg->data.size(), ref.size());
    const double e = nmse(lg->data, ref);
    std::printf("tape with projected row vs pipeline input: NMSE %.3g over %d positions\n", e, n);
    EXPECT_LT(e, 1e-10);
    // The same row scaled like a text embedding (x sqrt(n_embd)) is a different input: the check can fail.
    value lg2 = t->logits(ids, out_rows, {pos}, scale(linear(constant({1, D}, emb), W, B), std::sqrt(float(E))));
    EXPECT_GT(nmse(lg2->data, ref), 1e-6);
    spider_context_free(ctx);
    spider_model_free(model);
}

// d loss / d projector through the frozen tiny gemma3 with LoRA (B non-zero) and two media rows, against central
// finite differences.
TEST(InstructMedia, ProjectorGradientThroughTheTape) {
    std::string err;
    auto m = llm_model::load(tiny_gemma3(), llm_model_params{}, &err);
    ASSERT_TRUE(m) << err;
    llm_tape_config tc;
    tc.lora_rank = 2;
    tc.lora_targets = {"q", "v", "down"};
    tc.added_tokens = {"<IMAGE-Placeholder>", "<AUDIO-Placeholder>", "[END]"};
    auto t = llm_tape::create(*m, tc, &err);
    ASSERT_TRUE(t) << err;
    std::mt19937 rng(3);
    for (auto & [name, a] : t->adapters()) a.B->data = randv(a.B->data.size(), rng, -0.3f, 0.3f);
    const int64_t E = m->hparams.n_embd, D = 5;
    value W = parameter({E, D}, randv(static_cast<size_t>(E * D), rng, -0.5f, 0.5f));
    value B = parameter({E}, randv(static_cast<size_t>(E), rng, -0.1f, 0.1f));
    value emb = constant({2, D}, randv(static_cast<size_t>(2 * D), rng));
    const int32_t V = static_cast<int32_t>(t->n_vocab());
    const std::vector<int32_t> ids = {2, 17, V, 40, 9, V + 1, 12, 60, 5, 21, 70, V + 2};
    const std::vector<int32_t> pos = {2, 5};
    std::vector<int32_t> tg(ids.size(), -1);
    for (size_t i = 6; i + 1 < ids.size(); ++i) tg[i] = ids[i + 1];
    grad_check(
        "projector through llm_tape", {W, B}, [&] { return t->loss(ids, tg, pos, linear(emb, W, B)); }, 1e-2f, 3e-2f,
        2e-3f);
}

// The M-Prompt rows of llm_tape::loss_with_mprompt equal what the runtime gives the pipeline's UDP
// (generator_llm.cpp: spider_get_hidden of the last layer after the final norm + spider_token_embeddings) at the
// same positions, and its gradient reaches LoRA and the projector (finite differences).
TEST(InstructMedia, MPromptMatchesTheRuntimeAndCarriesGradients) {
    const std::string path = tiny_gemma3();
    spider_model_params mp = spider_model_default_params();
    mp.n_threads = 2;
    spider_model * model = nullptr;
    ASSERT_EQ(spider_model_load(path.c_str(), mp, &model), SPIDER_STATUS_OK) << spider_last_error();
    const int64_t E = spider_model_n_embd(model);
    const std::vector<int32_t> ids = {2, 17, 40, 9, 33, 12, 60, 5, 21, 70, 8, 99};
    const std::vector<int32_t> at = {4, 9, 11};
    spider_context_params cp = spider_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    cp.kv_type = SPIDER_KV_TYPE_F32;
    spider_context * ctx = nullptr;
    ASSERT_EQ(spider_context_create(model, cp, &ctx), SPIDER_STATUS_OK) << spider_last_error();
    const int32_t last = -1;
    ASSERT_EQ(spider_set_capture_layers(ctx, &last, 1), SPIDER_STATUS_OK);
    ASSERT_EQ(spider_decode(ctx, spider_batch_tokens(ids.data(), static_cast<int32_t>(ids.size()))), SPIDER_STATUS_OK);
    int32_t n_rows = 0;
    const float * h = spider_get_hidden(ctx, -1, &n_rows);
    ASSERT_TRUE(h);
    ASSERT_EQ(n_rows, static_cast<int32_t>(ids.size()));
    std::vector<float> ref;
    for (int32_t p : at) {
        std::vector<float> e(static_cast<size_t>(E));
        ASSERT_EQ(spider_token_embeddings(model, &ids[p], 1, e.data()), SPIDER_STATUS_OK);
        for (int64_t i = 0; i < E; ++i) ref.push_back(h[p * E + i] + e[i]);
    }
    std::string err;
    llm_tape_config tc;
    tc.lora_targets.clear();
    tc.build_backward_cache = false;
    auto t = llm_tape::create(*llm_model_of(model), tc, &err);
    ASSERT_TRUE(t) << err;
    std::vector<int32_t> tg(ids.size(), -1);
    tg[5] = ids[6];
    value mprompt;
    value l = t->loss_with_mprompt(ids, tg, {}, nullptr, at, &mprompt);
    ASSERT_EQ(mprompt->shape, (std::vector<int64_t>{3, E}));
    const double e = nmse(mprompt->data, ref);
    std::printf("tape M-Prompt vs runtime hidden + embedding: NMSE %.3g\n", e);
    EXPECT_LT(e, 1e-10);
    // The loss of the same call is loss()'s.
    EXPECT_EQ(l->data[0], t->loss(ids, tg)->data[0]);
    spider_context_free(ctx);
    spider_model_free(model);

    auto m = llm_model::load(path, llm_model_params{}, &err);
    ASSERT_TRUE(m) << err;
    llm_tape_config gc;
    gc.lora_rank = 2;
    gc.lora_targets = {"v", "up"};
    gc.added_tokens = {"<IMAGE-Placeholder>", "[IMAGE0]"};
    auto g = llm_tape::create(*m, gc, &err);
    ASSERT_TRUE(g) << err;
    std::mt19937 rng(9);
    for (auto & [name, a] : g->adapters()) a.B->data = randv(a.B->data.size(), rng, -0.3f, 0.3f);
    const int64_t D = 3;
    value W = parameter({E, D}, randv(static_cast<size_t>(E * D), rng, -0.5f, 0.5f));
    value B = parameter({E}, randv(static_cast<size_t>(E), rng, -0.1f, 0.1f));
    value emb = constant({1, D}, randv(static_cast<size_t>(D), rng));
    const int32_t V = static_cast<int32_t>(g->n_vocab());
    const std::vector<int32_t> gids = {2, 17, V, 40, 9, 33, 12, V + 1, 5};
    std::vector<int32_t> gtg(gids.size(), -1);
    gtg[6] = V + 1;
    const lora_adapter & up = g->adapters().at("blk.1.ffn_up.weight");
    grad_check(
        "M-Prompt through llm_tape", {W, B, up.B},
        [&] {
            value mpr;
            g->loss_with_mprompt(gids, gtg, {2}, linear(emb, W, B), {7}, &mpr);
            return mpr;
        },
        1e-2f, 3e-2f, 2e-3f);
}

struct stage_run {
    std::unique_ptr<stage> st;
    train_config cfg;
    std::string err;
    bool ok = false;
};

stage_run make_instruct(const std::string & config) {
    stage_run r;
    r.st = make_stage("instruct");
    r.ok = r.st && r.st->parse(nlohmann::json::parse(config), &r.cfg, &r.err) && r.st->setup(r.cfg, &r.err);
    return r;
}

std::string write_file(const std::string & name, const std::string & text) {
    const std::string p = tmp_dir() + "/" + name;
    std::ofstream(p) << text;
    return p;
}

value find_param(stage & st, const std::string & name) {
    for (auto & [n, v] : st.trainable())
        if (n == name) return v;
    return nullptr;
}

TEST(InstructMedia, StageTrainsAndExportsTheProjector) {
    std::string err;
    ASSERT_TRUE(image_write_png(tmp_dir() + "/red.png", test_image(230, 20, 20), {}, &err)) << err;
    ASSERT_TRUE(image_write_png(tmp_dir() + "/blue.png", test_image(20, 20, 230), {}, &err)) << err;
    const std::string q = R"("Question":"<IMAGE><IMAGE-Placeholder></IMAGE> What is this?","TaskPrompt":"[TEXT]")";
    const std::string data = write_file(
        "tmm_media.jsonl",
        "{" + q + R"(,"Answer":"[OUTPUT]a red disc[END]","Inputs":[{"modality":"IMAGE","file":"red.png"}]})" + "\n{" +
            q + R"(,"Answer":"[OUTPUT]a blue disc[END]","Inputs":[{"modality":"IMAGE","file":"blue.png"}]})" + "\n");
    const std::string model = tiny_gemma3();
    const std::string dump = tmp_dir() + "/tokens.jsonl";
    const std::string head = R"({"model": {"path": ")" + model + R"("}, "lora": {"rank": 2}, "data": {"paths": [")" +
                             data + R"("], "max_tokens": 400)";
    stage_run r = make_instruct(head + R"(, "dump_tokens": ")" + dump + "\"}}");
    ASSERT_TRUE(r.ok) << r.err;
    value W = find_param(*r.st, "spider.proj.weight"), B = find_param(*r.st, "spider.proj.bias");
    ASSERT_TRUE(W && B);
    spider_model_params mp = spider_model_default_params();
    spider_model * sm = nullptr;
    ASSERT_EQ(spider_model_load(model.c_str(), mp, &sm), SPIDER_STATUS_OK);
    const int64_t E = spider_model_n_embd(sm), V = spider_model_n_vocab(sm);
    spider_model_free(sm);
    EXPECT_EQ(W->shape, (std::vector<int64_t>{E, 64}));

    // The placeholder is one position between the <IMAGE> and </IMAGE> tokens.
    const std::vector<std::string> added = template_added_tokens(template_config());
    auto added_id = [&](const std::string & s) {
        return static_cast<int32_t>(V + (std::find(added.begin(), added.end(), s) - added.begin()));
    };
    std::ifstream df(dump);
    std::string line;
    int n_lines = 0;
    while (std::getline(df, line)) {
        const nlohmann::json j = nlohmann::json::parse(line);
        ASSERT_TRUE(j.contains("media_pos")) << line;
        ASSERT_EQ(j["media_pos"].size(), 1u);
        const int p = j["media_pos"][0];
        const std::vector<int32_t> ids = j["ids"];
        EXPECT_EQ(ids[p], added_id("<IMAGE-Placeholder>"));
        EXPECT_EQ(ids[p - 1], added_id("<IMAGE>"));
        EXPECT_EQ(ids[p + 1], added_id("</IMAGE>"));
        ++n_lines;
    }
    EXPECT_EQ(n_lines, 2);

    // Plain gradient descent on every trainable value with a fixed batch: the projector gets a gradient and the
    // loss falls.
    micro_batch mb;
    mb.examples = {0, 1, 2, 3};
    std::vector<float> w0 = W->data;
    double first = 0, last = 0;
    for (int it = 0; it < 40; ++it) {
        for (auto & [n, v] : r.st->trainable()) v->zero_grad();
        value l = r.st->loss(mb);
        backward(l);
        if (it == 0) {
            double g = 0;
            for (float x : W->grad) g += std::fabs(x);
            EXPECT_GT(g, 0.0);
            first = l->data[0];
        }
        last = l->data[0];
        for (auto & [n, v] : r.st->trainable())
            for (size_t i = 0; i < v->data.size(); ++i) v->data[i] -= 0.05f * v->grad[i];
    }
    std::printf("instruct with media: loss %.4f -> %.4f after 40 steps\n", first, last);
    EXPECT_LT(last, 0.8 * first);
    EXPECT_NE(W->data, w0);
    // The answers differ only in the colour, which only the image row carries: with the images swapped between the
    // records, the trained weights give a higher loss than with the right ones.
    const std::string swapped = write_file(
        "tmm_media_swapped.jsonl",
        "{" + q + R"(,"Answer":"[OUTPUT]a red disc[END]","Inputs":[{"modality":"IMAGE","file":"blue.png"}]})" + "\n{" +
            q + R"(,"Answer":"[OUTPUT]a blue disc[END]","Inputs":[{"modality":"IMAGE","file":"red.png"}]})" + "\n");
    stage_run rs =
        make_instruct(R"({"model": {"path": ")" + model + R"("}, "lora": {"rank": 2}, "data": {"paths": [")" + swapped +
                      R"("], "max_tokens": 400}})");
    ASSERT_TRUE(rs.ok) << rs.err;
    auto trained = r.st->trainable(), other = rs.st->trainable();
    ASSERT_EQ(trained.size(), other.size());
    for (size_t i = 0; i < trained.size(); ++i) other[i].second->data = trained[i].second->data;
    const double right = r.st->loss(mb)->data[0], wrong = rs.st->loss(mb)->data[0];
    std::printf("after training: loss %.4f with the right images, %.4f with them swapped\n", right, wrong);
    EXPECT_LT(right, 0.97 * wrong);

    // Exported: proj.gguf equals the trained values; the manifest makes the pipeline load it and the adapter.
    const std::string out = tmp_dir() + "/export";
    std::filesystem::create_directories(out);
    ASSERT_TRUE(r.st->export_artifacts(out, 12, &err)) << err;
    model_bundle bundle;
    ASSERT_TRUE(model_bundle_resolve(out + "/spider.model.json", &bundle, &err)) << err;
    EXPECT_EQ(bundle.lora_path, out + "/adapter.gguf");
    pipeline_components c;
    ASSERT_TRUE(load_components(bundle, static_cast<int>(E), &c, &err)) << err;
    EXPECT_NE(std::find(bundle.notes.begin(), bundle.notes.end(), "projector: loaded"), bundle.notes.end());
    std::vector<float> w, b;
    ASSERT_TRUE(c.proj->weights_f32(&w, &b, &err)) << err;
    EXPECT_EQ(w, W->data);
    EXPECT_EQ(b, B->data);

    // projector.init starts from a given file; a projector of the wrong shape is refused with both shapes.
    stage_run r2 = make_instruct(head + R"(}, "projector": {"init": ")" + out + "/proj.gguf\"}}");
    ASSERT_TRUE(r2.ok) << r2.err;
    EXPECT_EQ(find_param(*r2.st, "spider.proj.weight")->data, W->data);
    ASSERT_TRUE(input_projector::random(32, static_cast<int>(E), 1)->save(tmp_dir() + "/proj32.gguf", &err)) << err;
    stage_run r3 = make_instruct(head + R"(}, "projector": {"init": ")" + tmp_dir() + "/proj32.gguf\"}}");
    EXPECT_FALSE(r3.ok);
    EXPECT_NE(r3.err.find("32 -> " + std::to_string(E)), std::string::npos) << r3.err;

    // data.media "skip" leaves these records out (and there is nothing else to train on).
    stage_run r4 = make_instruct(head + R"(, "media": "skip"}})");
    EXPECT_FALSE(r4.ok);
    EXPECT_NE(r4.err.find("2 with media inputs"), std::string::npos) << r4.err;
    stage_run r5 = make_instruct(head + R"(, "media": "skip"}, "projector": {"init": "x.gguf"}})");
    EXPECT_FALSE(r5.ok);
    EXPECT_NE(r5.err.find("projector.init"), std::string::npos) << r5.err;
}

TEST(InstructMedia, BadMediaInputsNameTheRecord) {
    std::string err;
    ASSERT_TRUE(image_write_png(tmp_dir() + "/red.png", test_image(230, 20, 20), {}, &err)) << err;
    const std::string model = tiny_gemma3();
    const std::string ok_rec =
        R"({"Question":"Draw it.","TaskPrompt":"[IMAGE]","Answer":"[OUTPUT]<IMAGE>a red disc[IMAGE0]</IMAGE>[END]"})";
    const std::string q = R"("Question":"<IMAGE><IMAGE-Placeholder></IMAGE> What is this?","TaskPrompt":"[TEXT]",)"
                          R"("Answer":"[OUTPUT]a red disc[END]")";
    struct bad_case {
        std::string inputs, expect;
    };
    const bad_case cases[] = {
        {R"(,"Inputs":[])", "0 Inputs for 1 media placeholders"},
        {R"(,"Inputs":[{"modality":"AUDIO","file":"red.png"}])", "Inputs[0] is AUDIO but placeholder 1"},
        {R"(,"Inputs":[{"modality":"IMAGE","file":"missing.png"}])", "missing.png"},
        {R"(,"Inputs":[{"modality":"IMAGE"}])", "Inputs[0]: needs string 'modality'"},
    };
    for (const auto & c : cases) {
        const std::string data = write_file("tmm_bad_media.jsonl", ok_rec + "\n{" + q + c.inputs + "}\n");
        stage_run r = make_instruct(R"({"model": {"path": ")" + model + R"("}, "data": {"paths": [")" + data +
                                    R"("], "max_tokens": 400}})");
        EXPECT_FALSE(r.ok) << c.inputs;
        EXPECT_NE(r.err.find("tmm_bad_media.jsonl:2"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    }
}

// The `udp` term: single-modality answers get the UDP loss at their signal tokens (positions dumped), the UDP and
// its logit scale train with everything else, the loss falls, and udp.gguf is exported and named in the manifest.
TEST(InstructMedia, StageUdpTermOnSingleModalityAnswers) {
    std::string err;
    ASSERT_TRUE(image_write_png(tmp_dir() + "/red.png", test_image(230, 20, 20), {}, &err)) << err;
    auto rec = [](const std::string & q, const std::string & task, const std::string & answer,
                  const std::string & targets) {
        return R"({"Question":")" + q + R"(","TaskPrompt":")" + task + R"(","Answer":")" + answer + R"(","Targets":)" +
               targets + "}\n";
    };
    const std::string data = write_file(
        "tmm_udp.jsonl",
        rec("Draw a red disc.", "[IMAGE]", "[OUTPUT]<IMAGE>a red disc[IMAGE0]</IMAGE>[END]",
            R"([{"modality":"IMAGE","caption":"a red disc"}])") +
            rec("Play a low hum.", "[AUDIO]", "[OUTPUT]<AUDIO>a low hum[AUDIO0]</AUDIO>[END]",
                R"([{"modality":"AUDIO","caption":"a low hum"}])") +
            rec("Draw a blue box.", "[IMAGE]", "[OUTPUT]<IMAGE>a blue box[IMAGE0]</IMAGE>[END]",
                R"([{"modality":"IMAGE","caption":"a blue box"}])") +
            rec("Both.", "[SPECIFICMULTIMODAL]",
                "[OUTPUT]<IMAGE>a red disc[IMAGE0]</IMAGE> <AUDIO>a low hum[AUDIO0]</AUDIO>[END]",
                R"([{"modality":"IMAGE","caption":"a red disc"},{"modality":"AUDIO","caption":"a low hum"}])") +
            R"({"Question":"<IMAGE><IMAGE-Placeholder></IMAGE> What is this?","TaskPrompt":"[TEXT]",)"
            R"("Answer":"[OUTPUT]a red disc[END]","Inputs":[{"modality":"IMAGE","file":"red.png"}]})"
            "\n");
    spider_model * sm = nullptr;
    ASSERT_EQ(spider_model_load(tiny_gemma3().c_str(), spider_model_default_params(), &sm), SPIDER_STATUS_OK);
    const int E = spider_model_n_embd(sm), V = spider_model_n_vocab(sm);
    spider_model_free(sm);
    const std::vector<std::string> added = template_added_tokens(template_config());
    auto added_id = [&](const std::string & s) {
        return static_cast<int32_t>(V + (std::find(added.begin(), added.end(), s) - added.begin()));
    };
    const std::string dump = tmp_dir() + "/tokens_udp.jsonl";
    stage_run r =
        make_instruct(R"({"model": {"path": ")" + tiny_gemma3() +
                      R"("}, "lora": {"rank": 2}, "udp": {"l2": 1.0, "info_nce": 0.5}, "data": {"paths": [")" + data +
                      R"("], "max_tokens": 400, "dump_tokens": ")" + dump + "\"}}");
    ASSERT_TRUE(r.ok) << r.err;
    value scale_p = find_param(*r.st, "spider.train.logit_scale");
    ASSERT_TRUE(scale_p);
    std::vector<value> udp_params;
    for (auto & [n, v] : r.st->trainable())
        if (n.rfind("spider.udp.", 0) == 0) udp_params.push_back(v);
    ASSERT_FALSE(udp_params.empty());
    // Signal positions only for the three single-modality answers, each at the [M0] token.
    std::ifstream df(dump);
    std::string line;
    int with_signal = 0, n_lines = 0;
    while (std::getline(df, line)) {
        const nlohmann::json j = nlohmann::json::parse(line);
        ++n_lines;
        if (!j.contains("signal_pos")) continue;
        ++with_signal;
        ASSERT_EQ(j["signal_pos"].size(), 1u);
        const std::vector<int32_t> ids = j["ids"];
        const int p = j["signal_pos"][0];
        EXPECT_TRUE(ids[p] == added_id("[IMAGE0]") || ids[p] == added_id("[AUDIO0]")) << line;
    }
    EXPECT_EQ(n_lines, 5);
    EXPECT_EQ(with_signal, 3);

    micro_batch mb;
    mb.examples = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    double first = 0, last = 0, g_udp = 0, g_scale = 0;
    for (int it = 0; it < 10; ++it) {
        for (auto & [n, v] : r.st->trainable()) v->zero_grad();
        value l = r.st->loss(mb);
        backward(l);
        if (it == 0) {
            first = l->data[0];
            for (auto & v : udp_params)
                for (float x : v->grad) g_udp += std::fabs(x);
            g_scale = std::fabs(scale_p->grad[0]);
        }
        last = l->data[0];
        for (auto & [n, v] : r.st->trainable())
            for (size_t i = 0; i < v->data.size(); ++i) v->data[i] -= 0.001f * v->grad[i];
    }
    std::printf("instruct with the UDP term: loss %.4f -> %.4f after 10 steps (udp grad %.3g, scale grad %.3g)\n",
                first, last, g_udp, g_scale);
    EXPECT_GT(g_udp, 0.0);
    EXPECT_GT(g_scale, 0.0);
    EXPECT_LT(last, 0.8 * first);

    const std::string out = tmp_dir() + "/export_udp";
    std::filesystem::create_directories(out);
    ASSERT_TRUE(r.st->export_artifacts(out, 10, &err)) << err;
    model_bundle bundle;
    ASSERT_TRUE(model_bundle_resolve(out + "/spider.model.json", &bundle, &err)) << err;
    EXPECT_EQ(bundle.udp_path, out + "/udp.gguf");
    pipeline_components c;
    ASSERT_TRUE(load_components(bundle, E, &c, &err)) << err;
    EXPECT_NE(std::find(bundle.notes.begin(), bundle.notes.end(), "udp: " + out + "/udp.gguf"), bundle.notes.end());

    // udp.init starts from a given file (here the exported one); a missing file is named.
    const std::string base = R"({"model": {"path": ")" + tiny_gemma3() + R"("}, "data": {"paths": [")" + data +
                             R"("], "max_tokens": 400}, "udp": {"init": ")";
    stage_run r3 = make_instruct(base + out + "/udp.gguf\"}}");
    ASSERT_TRUE(r3.ok) << r3.err;
    std::map<std::string, value> trained, loaded;
    for (auto & [n, v] : r.st->trainable()) trained[n] = v;
    for (auto & [n, v] : r3.st->trainable()) loaded[n] = v;
    int n_udp = 0;
    for (auto & [n, v] : loaded)
        if (n.rfind("spider.udp.", 0) == 0) {
            ++n_udp;
            EXPECT_EQ(v->data, trained.at(n)->data) << n;
        }
    EXPECT_EQ(n_udp, static_cast<int>(udp_params.size()));
    stage_run r4 = make_instruct(base + tmp_dir() + "/no_such_udp.gguf\"}}");
    EXPECT_FALSE(r4.ok);
    EXPECT_NE(r4.err.find("udp.init: " + tmp_dir() + "/no_such_udp.gguf"), std::string::npos) << r4.err;

    // Without new token rows the signal tokens are not single tokens: the udp term is refused.
    stage_run r2 = make_instruct(R"({"lora": {"new_tokens": false}, "udp": {}, "data": {"paths": ["x"]}})");
    EXPECT_FALSE(r2.ok);
    EXPECT_NE(r2.err.find("lora.new_tokens"), std::string::npos) << r2.err;
}

}  // namespace
}  // namespace spider::train
