// The frozen GGUF LLM on the autograd tape (train/llm_tape.h): its forward equals the inference runtime's logits
// (tiny gemma3 with a sliding window shorter than the prompt, tiny llama, in F32 and Q8_0, and the real default
// model gemma-3-270m Q4_K_M) — bit for bit as measured (NMSE 0: the tape calls the same kernels, so even the
// quantized activations round alike), asserted below 1e-12; the new tape ops (train/autograd_llm.h) and the LoRA /
// new-row gradients through a whole model are checked against finite differences; the adapter file round-trips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "core/threadpool.h"
#include "grad_check.h"
#include "io/gguf.h"
#include "io/hf_convert.h"
#include "llm/default_model.h"
#include "llm/model.h"
#include "spider.h"
#include "train/autograd_llm.h"
#include "train/llm_tape.h"
#include "train/stage.h"

namespace spider::train {
namespace {

const std::string k_src = SPIDER_SOURCE_DIR;

std::string tmp_dir() {
    const std::string d = std::string(SPIDER_BINARY_DIR) + "/test_llm_tape_tmp";
    std::filesystem::create_directories(d);
    return d;
}

// tiny_<arch> converted by our converter, quantized when type != f32 (cached per process).
std::string tiny_model(const std::string & name, const std::string & type) {
    const std::string f32 = tmp_dir() + "/" + name + "_f32.gguf";
    if (!std::filesystem::exists(f32)) {
        hf_convert_params p;
        p.out_type = DTYPE_F32;
        std::string err;
        EXPECT_TRUE(hf_convert(k_src + "/tests/data/llm/" + name + "_hf", f32, p, &err)) << err;
    }
    if (type == "f32") return f32;
    const std::string q = tmp_dir() + "/" + name + "_" + type + ".gguf";
    if (!std::filesystem::exists(q)) {
        gguf_quantize_params qp;
        qp.mix = type;
        qp.n_threads = 2;
        std::string err;
        EXPECT_TRUE(gguf_quantize_file(f32, q, qp, &err)) << err;
    }
    return q;
}

// Runtime logits at every position of ids (one decode with SPIDER_OUTPUT_ALL).
std::vector<float> runtime_logits(const std::string & path, const std::vector<int32_t> & ids, int64_t * n_vocab) {
    spider_model_params mp = spider_model_default_params();
    mp.n_threads = 2;
    spider_model * model = nullptr;
    EXPECT_EQ(spider_model_load(path.c_str(), mp, &model), SPIDER_STATUS_OK) << spider_last_error();
    if (!model) return {};
    spider_context_params cp = spider_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 2;
    cp.kv_type = SPIDER_KV_TYPE_F32;
    spider_context * ctx = nullptr;
    EXPECT_EQ(spider_context_create(model, cp, &ctx), SPIDER_STATUS_OK) << spider_last_error();
    spider_batch b = spider_batch_tokens(ids.data(), static_cast<int32_t>(ids.size()));
    b.output = SPIDER_OUTPUT_ALL;
    EXPECT_EQ(spider_decode(ctx, b), SPIDER_STATUS_OK) << spider_last_error();
    *n_vocab = spider_model_n_vocab(model);
    const float * l = spider_get_logits(ctx);
    std::vector<float> out(l, l + ids.size() * static_cast<size_t>(*n_vocab));
    spider_context_free(ctx);
    spider_model_free(model);
    return out;
}

double nmse(const std::vector<float> & a, const std::vector<float> & ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += (static_cast<double>(a[i]) - ref[i]) * (static_cast<double>(a[i]) - ref[i]);
        den += static_cast<double>(ref[i]) * ref[i];
    }
    return num / den;
}

// Tape logits at every position vs the runtime; returns the NMSE and the argmax agreement.
void check_parity(const std::string & path, const std::vector<int32_t> & ids, double max_nmse) {
    int64_t nv = 0;
    const std::vector<float> ref = runtime_logits(path, ids, &nv);
    ASSERT_EQ(ref.size(), ids.size() * static_cast<size_t>(nv));
    std::string err;
    auto m = llm_model::load(path, llm_model_params{}, &err);
    ASSERT_TRUE(m) << err;
    llm_tape_config c;
    c.build_backward_cache = false;
    auto t = llm_tape::create(*m, c, &err);
    ASSERT_TRUE(t) << err;
    std::vector<int32_t> rows(ids.size());
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int32_t>(i);
    value lg = t->logits(ids, rows);
    ASSERT_EQ(lg->data.size(), ref.size());
    const double e = nmse(lg->data, ref);
    int agree = 0;
    for (size_t r = 0; r < ids.size(); ++r) {
        const float * a = lg->data.data() + r * nv;
        const float * b = ref.data() + r * nv;
        agree += std::max_element(a, a + nv) - a == std::max_element(b, b + nv) - b;
    }
    std::printf("%s: %zu positions, NMSE %.3g, argmax agree %d/%zu\n", path.c_str(), ids.size(), e, agree, ids.size());
    EXPECT_LT(e, max_nmse) << path;
    EXPECT_EQ(agree, static_cast<int>(ids.size())) << path;
}

std::vector<int32_t> some_ids(int n, int vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> ids(n);
    ids[0] = 2;
    for (int i = 1; i < n; ++i) ids[i] = 3 + static_cast<int32_t>(rng() % (vocab - 3));
    return ids;
}

TEST(LlmTape, TinyGemma3MatchesRuntimeBeyondTheSlidingWindow) {
    // 20 tokens > sliding window 8: the window mask matters on layers 0 and 2.
    check_parity(tiny_model("tiny_gemma3", "f32"), some_ids(20, 200, 1), 1e-12);
    check_parity(tiny_model("tiny_gemma3", "q8_0"), some_ids(20, 200, 2), 1e-12);
}

TEST(LlmTape, TinyLlamaMatchesRuntime) {
    check_parity(tiny_model("tiny_llama", "f32"), some_ids(16, 200, 3), 1e-12);
    check_parity(tiny_model("tiny_llama", "q8_0"), some_ids(16, 200, 4), 1e-12);
    // Llama 3.1 RoPE scaling (rope_freqs.weight divisors).
    check_parity(tiny_model("tiny_llama31", "f32"), some_ids(16, 200, 5), 1e-12);
}

TEST(LlmTape, DefaultModelMatchesRuntime) {
    std::string path, err;
    ASSERT_TRUE(find_default_model(&path, &err)) << err;
    // "<bos>The quick brown fox jumps over the lazy dog" in gemma3's vocabulary, via the model's own tokenizer.
    spider_model_params mp = spider_model_default_params();
    spider_model * model = nullptr;
    ASSERT_EQ(spider_model_load(path.c_str(), mp, &model), SPIDER_STATUS_OK) << spider_last_error();
    const std::string text = "The quick brown fox jumps over the lazy dog. [OUTPUT]";
    std::vector<int32_t> ids(64);
    const int32_t n =
        spider_tokenize(model, text.c_str(), static_cast<int32_t>(text.size()), ids.data(), 64, true, true);
    spider_model_free(model);
    ASSERT_GT(n, 8);
    ids.resize(n);
    check_parity(path, ids, 1e-12);
}

TEST(LlmTape, OpGradients) {
    std::mt19937 rng(7);
    value x = parameter({5, 6}, randv(30, rng));
    grad_check("view_shape", {x}, [&] { return view_shape(x, {3, 10}); });
    grad_check("gather_rows", {x}, [&] { return gather_rows(x, {4, 0, 4}); });
    value r = parameter({2, 6}, randv(12, rng));
    grad_check("replace_rows", {x, r}, [&] { return replace_rows(x, {3, 1}, r); });
    value b = parameter({5, 2}, randv(10, rng));
    grad_check("concat_cols", {x, b}, [&] { return concat_cols(x, b); });
    // 2 heads of 6, rotating the first 4 dims, linear scaling.
    value qx = parameter({4, 12}, randv(48, rng));
    grad_check("rope_ext", {qx}, [&] { return rope_ext(qx, {0, 1, 5, 9}, 2, 6, 4, 10000.0f, 0.5f, ROPE_MODE_NEOX); });
    const float ff[2] = {1.0f, 8.0f};
    grad_check("rope_ext freq_factors", {qx}, [&] {
        return rope_ext(qx, {0, 1, 5, 9}, 2, 6, 4, 10000.0f, 1.0f, ROPE_MODE_NORMAL, ff);
    });
    // GQA 4 heads over 2 KV heads of 3, window 3 over 7 tokens, with and without threads.
    value q = parameter({7, 12}, randv(84, rng)), k = parameter({7, 6}, randv(42, rng)),
          v = parameter({7, 6}, randv(42, rng));
    thread_pool pool(2);
    grad_check("attention_window", {q, k, v}, [&] { return attention_window(q, k, v, 4, 2, 0.5f, 3, &pool); });
    grad_check("attention_causal", {q, k, v}, [&] { return attention_window(q, k, v, 4, 2, 0.5f, 0, nullptr); });
    // Frozen weight [out 5, in 6] with its F16 transpose.
    std::vector<float> w = randv(30, rng);
    tensor W = make_tensor(DTYPE_F32, w.data(), 6, 5);
    std::vector<uint16_t> buf;
    tensor Wt = transpose_to_f16(W, &buf, &pool);
    value w6 = parameter({6}, randv(6, rng));
    grad_check("rms_norm_k", {x, w6}, [&] { return rms_norm_k(x, w6, 1e-6f); });
    value up = parameter({5, 6}, randv(30, rng));
    grad_check("glu_k gelu_tanh", {x, up}, [&] { return glu_k(x, up, ACT_GELU_TANH); });
    grad_check("glu_k silu", {x, up}, [&] { return glu_k(x, up, ACT_SILU); });
    grad_check(
        "linear_frozen_t", {x}, [&] { return linear_frozen_t(x, W, Wt, &pool); }, 1e-2f, 2e-2f, 5e-3f);
}

TEST(LlmTape, AttentionWindowEqualsCausalWhenWide) {
    std::mt19937 rng(9);
    value q = constant({6, 8}, randv(48, rng)), k = constant({6, 4}, randv(24, rng)),
          v = constant({6, 4}, randv(24, rng));
    value a = attention_window(q, k, v, 2, 1, 0.3f, 0);
    value b = attention(q, k, v, 2, 1, 0.3f, true);
    value c = attention_window(q, k, v, 2, 1, 0.3f, 2);
    for (size_t i = 0; i < a->data.size(); ++i) EXPECT_NEAR(a->data[i], b->data[i], 1e-6f);
    // A window of 2 changes the rows from the third token on.
    double diff = 0;
    for (size_t i = 2 * 8; i < c->data.size(); ++i) diff += std::fabs(c->data[i] - b->data[i]);
    EXPECT_GT(diff, 1e-3);
}

TEST(LlmTape, LoraAndNewRowGradientsThroughTinyGemma3) {
    std::string err;
    auto m = llm_model::load(tiny_model("tiny_gemma3", "f32"), llm_model_params{}, &err);
    ASSERT_TRUE(m) << err;
    llm_tape_config c;
    c.lora_rank = 2;
    c.lora_alpha = 4.0f;
    c.lora_targets = {"q", "v", "down"};
    c.added_tokens = {"[OUTPUT]", "[END]"};
    c.embed_init_ids = {{5, 6}, {7}};
    auto t = llm_tape::create(*m, c, &err);
    ASSERT_TRUE(t) << err;
    ASSERT_EQ(t->adapters().size(), 3u * 4u);
    const int32_t V = static_cast<int32_t>(t->n_vocab());
    // B starts at zero (the adapter starts as the base model): give it values so A gets gradients too.
    std::mt19937 rng(11);
    for (auto & [name, a] : t->adapters()) a.B->data = randv(a.B->data.size(), rng, -0.3f, 0.3f);
    const std::vector<int32_t> ids = {2, V, 17, 40, 9, 33, 12, 60, 5, 21, 70, V + 1};
    std::vector<int32_t> tg(ids.size(), -1);
    for (size_t i = 6; i + 1 < ids.size(); ++i) tg[i] = ids[i + 1];
    const lora_adapter & a1 = t->adapters().at("blk.1.attn_q.weight");
    const lora_adapter & a2 = t->adapters().at("blk.2.ffn_down.weight");
    grad_check(
        "llm_tape lora", {a1.A, a1.B, a2.B}, [&] { return t->loss(ids, tg); }, 1e-2f, 3e-2f, 2e-3f);
    // The new rows enter the embedding scaled by sqrt(n_embd) = 8: a smaller step keeps the difference linear.
    grad_check(
        "llm_tape new rows", {t->extra_rows()}, [&] { return t->loss(ids, tg); }, 1e-3f, 3e-2f, 2e-3f);
}

// The adapter merged at load (spider_model_apply_lora: F16 merged projections, new rows as added tokens) gives the
// runtime the logits of the adapted tape, added-token ids included.
TEST(LlmTape, MergedAdapterMatchesTape) {
    for (const char * name : {"tiny_gemma3", "tiny_llama"}) {
        const std::string path = tiny_model(name, "f32");
        std::string err;
        auto m = llm_model::load(path, llm_model_params{}, &err);
        ASSERT_TRUE(m) << err;
        llm_tape_config c;
        c.lora_rank = 4;
        c.lora_targets = {"q", "k", "v", "o", "gate", "up", "down"};
        c.added_tokens = {"[OUTPUT]", "[END]", "<IMAGE>"};
        c.embed_init_ids = {{5}, {6, 7}, {8}};
        c.build_backward_cache = false;
        auto t = llm_tape::create(*m, c, &err);
        ASSERT_TRUE(t) << err;
        std::mt19937 rng(5);
        for (auto & [n, a] : t->adapters()) a.B->data = randv(a.B->data.size(), rng, -0.05f, 0.05f);
        for (auto & v : t->extra_rows()->data) v += 0.01f * randv(1, rng)[0];
        const std::string ad = tmp_dir() + "/" + name + "_merge_adapter.gguf";
        ASSERT_TRUE(t->save_adapter(ad, &err)) << err;
        const int32_t V = static_cast<int32_t>(t->n_vocab());
        std::vector<int32_t> ids = some_ids(12, 200, 6);
        ids[3] = V;
        ids[7] = V + 2;
        ids[11] = V + 1;
        std::vector<int32_t> rows(ids.size());
        for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int32_t>(i);
        value lg = t->logits(ids, rows);

        spider_model_params mp = spider_model_default_params();
        spider_model * model = nullptr;
        ASSERT_EQ(spider_model_load(path.c_str(), mp, &model), SPIDER_STATUS_OK) << spider_last_error();
        ASSERT_EQ(spider_model_apply_lora(model, ad.c_str()), SPIDER_STATUS_OK) << spider_last_error();
        ASSERT_EQ(spider_model_n_vocab(model), V + 3);
        EXPECT_EQ(spider_token_find(model, "[END]"), V + 1);
        spider_context_params cp = spider_context_default_params();
        cp.n_ctx = 64;
        cp.kv_type = SPIDER_KV_TYPE_F32;
        spider_context * ctx = nullptr;
        ASSERT_EQ(spider_context_create(model, cp, &ctx), SPIDER_STATUS_OK);
        spider_batch b = spider_batch_tokens(ids.data(), static_cast<int32_t>(ids.size()));
        b.output = SPIDER_OUTPUT_ALL;
        ASSERT_EQ(spider_decode(ctx, b), SPIDER_STATUS_OK) << spider_last_error();
        const float * l = spider_get_logits(ctx);
        const std::vector<float> ref(l, l + lg->data.size());
        const double e = nmse(lg->data, ref);
        std::printf("%s merged adapter vs tape: NMSE %.3g\n", name, e);
        EXPECT_LT(e, 1e-5) << name;  // the merged projections are stored as F16
        // The same adapter twice: the model already has added tokens.
        EXPECT_NE(spider_model_apply_lora(model, ad.c_str()), SPIDER_STATUS_OK);
        spider_context_free(ctx);
        spider_model_free(model);
    }
}

TEST(LlmTape, AdapterFileHoldsLoraAndNewRows) {
    std::string err;
    auto m = llm_model::load(tiny_model("tiny_llama", "f32"), llm_model_params{}, &err);
    ASSERT_TRUE(m) << err;
    llm_tape_config c;
    c.lora_rank = 3;
    c.lora_targets = {"o", "up"};
    c.added_tokens = {"<IMAGE>", "</IMAGE>", "[IMAGE0]"};
    auto t = llm_tape::create(*m, c, &err);
    ASSERT_TRUE(t) << err;
    const std::string path = tmp_dir() + "/adapter.gguf";
    ASSERT_TRUE(t->save_adapter(path, &err)) << err;
    std::map<std::string, lora_adapter> back;
    ASSERT_TRUE(lora_load(path, &back, &err)) << err;  // readable by train/lora.h
    EXPECT_EQ(back.size(), t->adapters().size());
    auto f = gguf_file::open(path, &err);
    ASSERT_TRUE(f) << err;
    const gguf_tensor_info * e = f->find_tensor("token_embd_extra.weight");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->ne[0], m->hparams.n_embd);
    EXPECT_EQ(e->ne[1], 3);
    // Bad configurations are refused with the reason.
    c.lora_targets = {"qq"};
    EXPECT_FALSE(llm_tape::create(*m, c, &err));
    EXPECT_NE(err.find("qq"), std::string::npos);
}

// Stage `instruct`: config errors name the field; a malformed record names file:line; a tiny run on the tiny
// gemma3 lowers the answer loss and exports an adapter the runtime loads.
TEST(LlmTape, InstructStageConfigAndData) {
    auto st = make_stage("instruct");
    ASSERT_TRUE(st);
    train_config cfg;
    std::string err;
    EXPECT_FALSE(st->parse(nlohmann::json::parse(R"({"lora": {"rnk": 4}, "data": {"paths": ["x"]}})"), &cfg, &err));
    EXPECT_NE(err.find("lora.rnk"), std::string::npos) << err;
    st = make_stage("instruct");
    EXPECT_FALSE(st->parse(nlohmann::json::parse(R"({"data": {"paths": ["x"], "media": "keep"}})"), &cfg, &err));
    EXPECT_NE(err.find("data.media"), std::string::npos) << err;
    st = make_stage("instruct");
    EXPECT_FALSE(st->parse(nlohmann::json::parse(R"({"lora": {"rank": 4}})"), &cfg, &err));
    EXPECT_NE(err.find("data.paths"), std::string::npos) << err;

    const std::string data = tmp_dir() + "/tmm_bad.jsonl";
    {
        std::ofstream f(data);
        f << R"({"Question":"Draw a red ring.","TaskPrompt":"[IMAGE]","Answer":"[OUTPUT]<IMAGE>a red ring[IMAGE0]</IMAGE>[END]"})"
          << "\n"
          << R"({"Question":"no answer"})"
          << "\n";
    }
    const std::string model = tiny_model("tiny_gemma3", "q8_0");
    st = make_stage("instruct");
    ASSERT_TRUE(st->parse(
        nlohmann::json::parse("{\"model\": {\"path\": \"" + model + "\"}, \"data\": {\"paths\": [\"" + data + "\"]}}"),
        &cfg, &err))
        << err;
    EXPECT_FALSE(st->setup(cfg, &err));
    EXPECT_NE(err.find("tmm_bad.jsonl:2"), std::string::npos) << err;
}

}  // namespace
}  // namespace spider::train
