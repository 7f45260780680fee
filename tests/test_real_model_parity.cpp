// Parity with llama.cpp on the real default model (gemma-3-270m Q4_K_M GGUF, installed by scripts/setup.sh).
// Goldens: tests/data/llm/goldens/gemma3_270m_llamacpp.json from tests/reference/make_llamacpp_goldens.py
// (llama.cpp 0c1e57098 via llama-perplexity and llama-cpp-python 0.3.36). Checked:
//   - tokenization of every prompt and of the whole perplexity text equals llama.cpp's;
//   - greedy continuations (32 tokens, teacher-forced with llama.cpp's tokens so later steps stay comparable):
//     our argmax equals llama.cpp's at every step, except that a step where llama.cpp's own top-2 margin is a
//     near-tie may differ - both engines round differently inside the quantized dot products (the bound is
//     measured from Spider's own two kernel sets, see the test);
//   - perplexity at n_ctx 512 with llama-perplexity's method, within 0.5% (the bound), on
//     tests/data/llm/ppl_long.txt (51 KB, 30 chunks; golden from tests/reference/make_llamacpp_ppl_long.py;
//     measured 2026-12-05 with packed Q8_0: ours 51.3947 vs llama.cpp 51.3674, +0.053%) and on
//     tests/data/llm/ppl_text.txt (12.1k characters, 5 chunks: 25.4442 vs 25.3527, +0.361%). Before packed Q8_0
//     (llama.cpp's summation order) +0.123% and +0.497%. The gap is mostly llama.cpp's F16 shortcuts (GELU table,
//     flash-attention F16 Q and accumulation): emulating them in Spider gave 25.3538 (+0.004%) on the short text;
//     see docs/BENCHMARKS.md section 2.
// Fails when the default model is not installed (tests/default_model_required.h), as does cli_default_model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/cpu_features.h"
#include "default_model_required.h"
#include "llm/default_model.h"
#include "spider.h"

namespace {

const std::string k_golden = std::string(SPIDER_SOURCE_DIR) + "/tests/data/llm/goldens/gemma3_270m_llamacpp.json";
const std::string k_text = std::string(SPIDER_SOURCE_DIR) + "/tests/data/llm/ppl_text.txt";
const std::string k_golden_long =
    std::string(SPIDER_SOURCE_DIR) + "/tests/data/llm/goldens/gemma3_270m_llamacpp_ppl_long.json";
const std::string k_text_long = std::string(SPIDER_SOURCE_DIR) + "/tests/data/llm/ppl_long.txt";
// llama.cpp's margin below which the two engines may legitimately pick different tokens, at least (the floor of the
// measured bound in greedy_continuations_match_llama_cpp; with llama.cpp's summation order every divergence on this
// model was below it). MAX_SPREAD: the largest top-2 margin change two correct Spider kernel sets may show.
constexpr double NEAR_TIE = 0.25;
constexpr double MAX_SPREAD = 1.0;

using model_ptr = std::unique_ptr<spider_model, void (*)(spider_model *)>;
using context_ptr = std::unique_ptr<spider_context, void (*)(spider_context *)>;

class real_model : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        std::string path, err;
        if (!spider::find_default_model(&path, &err)) {
            skip_reason_ = "default model not installed (" + err + ")";
            return;
        }
        std::ifstream f(k_golden);
        ASSERT_TRUE(f) << "cannot open " << k_golden;
        golden_ = nlohmann::json::parse(f, nullptr, false);
        ASSERT_FALSE(golden_.is_discarded()) << k_golden << " is not valid JSON";
        spider_model_params mp = spider_model_default_params();
        mp.n_threads = 2;
        spider_model * m = nullptr;
        ASSERT_EQ(spider_model_load(path.c_str(), mp, &m), SPIDER_STATUS_OK) << spider_last_error();
        model_ = m;
    }
    static void TearDownTestSuite() {
        if (model_) spider_model_free(model_);
        model_ = nullptr;
    }
    void SetUp() override {
        if (!skip_reason_.empty()) SPIDER_DEFAULT_MODEL_MISSING(skip_reason_);
        ASSERT_NE(model_, nullptr);
    }
    static std::vector<spider_token> tokenize(const std::string & text) {
        int32_t n = spider_tokenize(model_, text.data(), static_cast<int32_t>(text.size()), nullptr, 0, true, false);
        std::vector<spider_token> t(n < 0 ? -n : n);
        n = spider_tokenize(model_, text.data(), static_cast<int32_t>(text.size()), t.data(),
                            static_cast<int32_t>(t.size()), true, false);
        t.resize(n < 0 ? 0 : n);
        return t;
    }
    static context_ptr make_context(uint32_t n_ctx) {
        spider_context_params cp = spider_context_default_params();
        cp.n_ctx = n_ctx;
        cp.n_batch = n_ctx;
        cp.n_threads = 2;
        // KV cache F32 (our default). llama.cpp's goldens used its F16 default, but F16 here moves our PPL further
        // away (+0.70% vs +0.50% with F32, measured 2026-12-04): the gap is not the KV cache type.
        spider_context * c = nullptr;
        if (spider_context_create(model_, cp, &c) != SPIDER_STATUS_OK) c = nullptr;
        return context_ptr(c, spider_context_free);
    }
    static spider_model * model_;
    static nlohmann::json golden_;
    static std::string skip_reason_;
};
spider_model * real_model::model_ = nullptr;
nlohmann::json real_model::golden_;
std::string real_model::skip_reason_;

int argmax(const float * v, int n) {
    int best = 0;
    for (int i = 1; i < n; ++i)
        if (v[i] > v[best]) best = i;
    return best;
}

TEST_F(real_model, tokenization_matches_llama_cpp) {
    for (const auto & p : golden_["prompts"]) {
        const std::string text = p["text"];
        EXPECT_EQ(tokenize(text), p["tokens"].get<std::vector<spider_token>>()) << "prompt: " << text;
    }
    std::ifstream f(k_text, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    EXPECT_EQ(static_cast<int64_t>(tokenize(ss.str()).size()), golden_["ppl"]["n_tokens"].get<int64_t>());
}

// Teacher-forced greedy steps. A step where we pick another token than llama.cpp is accepted only at a near-tie:
// llama.cpp's top-2 margin below max(NEAR_TIE, spread), where spread is the largest change of our top-2 margin
// between Spider's own two kernel sets over the same steps (the detected one, and AVX2: other summation orders, e.g.
// no packed Q8_0). Two correct implementations move a margin that much, so a flip inside it is rounding, not error.
// The spread itself must stay under MAX_SPREAD: a broken kernel set would exceed it. Measured 2026-12-05 with
// packed Q8_0 (AVX-512) against unpacked (AVX2): spread 0.54, and both sets differ from the portable kernels by up
// to ~1.3 in single logits (0.0 between AVX2 and AVX-512 before packed Q8_0, identical summation orders).
TEST_F(real_model, greedy_continuations_match_llama_cpp) {
    const int V = spider_model_n_vocab(model_);
    const bool two_sets = spider::cpu_level_detected() >= spider::CPU_LEVEL_AVX512;
    struct miss {
        std::string prompt;
        size_t step;
        int ours, ref;
        double margin;
    };
    std::vector<miss> misses;
    double spread = 0;
    int n_steps = 0, n_same = 0;
    for (const auto & p : golden_["prompts"]) {
        const auto prompt = p["tokens"].get<std::vector<spider_token>>();
        const auto greedy = p["greedy"].get<std::vector<spider_token>>();
        const auto margins = p["margins"].get<std::vector<double>>();
        context_ptr ctx = make_context(512), ctx2 = make_context(512);
        ASSERT_NE(ctx, nullptr) << spider_last_error();
        ASSERT_NE(ctx2, nullptr) << spider_last_error();
        // One step of both contexts: ctx at the detected level, ctx2 at AVX2.
        auto decode_both = [&](const spider_token * t, int32_t n) {
            ASSERT_EQ(spider_decode(ctx.get(), spider_batch_tokens(t, n)), SPIDER_STATUS_OK) << spider_last_error();
            if (!two_sets) return;
            ASSERT_TRUE(spider::cpu_features_force(spider::CPU_LEVEL_AVX2));
            const spider_status st = spider_decode(ctx2.get(), spider_batch_tokens(t, n));
            spider::cpu_features_reset();
            ASSERT_EQ(st, SPIDER_STATUS_OK) << spider_last_error();
        };
        decode_both(prompt.data(), static_cast<int32_t>(prompt.size()));
        int prefix = -1;
        for (size_t i = 0; i < greedy.size(); ++i) {
            if (i > 0) decode_both(&greedy[i - 1], 1);
            const float * row = spider_get_logits_ith(ctx.get(), -1);
            ASSERT_NE(row, nullptr);
            if (two_sets) {
                const float * row2 = spider_get_logits_ith(ctx2.get(), -1);
                ASSERT_NE(row2, nullptr);
                int a = 0, b = -1;  // our top two
                for (int v = 1; v < V; ++v) {
                    if (row[v] > row[a]) {
                        b = a;
                        a = v;
                    } else if (b < 0 || row[v] > row[b]) {
                        b = v;
                    }
                }
                spread = std::max(spread, std::fabs(static_cast<double>(row[a] - row[b]) - (row2[a] - row2[b])));
            }
            const int ours = argmax(row, V);
            ++n_steps;
            if (ours == greedy[i]) {
                ++n_same;
                continue;
            }
            if (prefix < 0) prefix = static_cast<int>(i);
            misses.push_back({p["text"].get<std::string>(), i, ours, greedy[i], margins[i]});
        }
        std::printf("[real] '%s': common greedy prefix %d/%zu\n", p["text"].get<std::string>().c_str(),
                    prefix < 0 ? static_cast<int>(greedy.size()) : prefix, greedy.size());
    }
    EXPECT_LT(spread, MAX_SPREAD) << "Spider's AVX2 and AVX-512 kernel sets disagree beyond rounding";
    const double near_tie = std::max(NEAR_TIE, spread);
    std::printf(
        "[real] greedy steps equal to llama.cpp: %d/%d; Spider's own kernel-set spread %.4f logits, near-tie "
        "bound %.4f\n",
        n_same, n_steps, spread, near_tie);
    for (const miss & m : misses) {
        std::printf("[real]   differs at '%s' step %zu: llama.cpp margin %.4f\n", m.prompt.c_str(), m.step, m.margin);
        EXPECT_LT(m.margin, near_tie) << "prompt '" << m.prompt << "' step " << m.step << ": ours " << m.ours
                                      << ", llama.cpp " << m.ref << " with a clear margin " << m.margin;
    }
}

// llama-perplexity's method (see tools/spider/cmd_perplexity.cpp) on the text at `path`, at the golden's n_ctx;
// prints each chunk's running value next to llama.cpp's and returns ours relative to ref["final"] (0.01 = +1%).
double perplexity_vs_llama_cpp(spider_model * model, const std::string & path, const nlohmann::json & ref,
                               std::vector<spider_token> (*tokenize)(const std::string &),
                               context_ptr (*make_context)(uint32_t)) {
    const int n_ctx = ref["n_ctx"];
    std::ifstream f(path, std::ios::binary);
    EXPECT_TRUE(f) << "cannot open " << path;
    std::stringstream ss;
    ss << f.rdbuf();
    const std::vector<spider_token> toks = tokenize(ss.str());
    EXPECT_GE(static_cast<int>(toks.size()), 2 * n_ctx);
    const int V = spider_model_n_vocab(model);
    context_ptr ctx = make_context(static_cast<uint32_t>(n_ctx));
    EXPECT_NE(ctx, nullptr) << spider_last_error();
    if (!ctx) return NAN;
    const int n_chunk = static_cast<int>(toks.size()) / n_ctx, first = n_ctx / 2;
    double nll = 0;
    long count = 0;
    const auto ref_chunks = ref["chunks"].get<std::vector<double>>();
    for (int c = 0; c < n_chunk; ++c) {
        std::vector<spider_token> chunk(toks.begin() + c * n_ctx, toks.begin() + (c + 1) * n_ctx);
        chunk[0] = spider_token_bos(model);
        spider_kv_clear(ctx.get());
        spider_batch b = spider_batch_tokens(chunk.data(), n_ctx);
        b.output = SPIDER_OUTPUT_ALL;
        EXPECT_EQ(spider_decode(ctx.get(), b), SPIDER_STATUS_OK) << spider_last_error();
        const float * logits = spider_get_logits(ctx.get());
        EXPECT_EQ(spider_n_outputs(ctx.get()), n_ctx);
        if (!logits || spider_n_outputs(ctx.get()) != n_ctx) return NAN;
        // Each scored position's log-softmax (262144 exponentials in double) on two threads, then summed in
        // position order: the same value as one thread, in half the time of this, the suite's longest test.
        std::vector<double> term(static_cast<size_t>(n_ctx));
        auto score = [&](int j_begin, int j_end) {
            for (int j = j_begin; j < j_end; ++j) {
                const float * row = logits + static_cast<size_t>(j) * V;
                float mx = row[0];
                for (int v = 1; v < V; ++v) mx = std::max(mx, row[v]);
                double se = 0;
                for (int v = 0; v < V; ++v) se += std::exp(static_cast<double>(row[v] - mx));
                term[j] = static_cast<double>(row[toks[c * n_ctx + j + 1]] - mx) - std::log(se);
            }
        };
        const int mid = first + (n_ctx - 1 - first) / 2;
        std::thread half(score, first, mid);
        score(mid, n_ctx - 1);
        half.join();
        for (int j = first; j < n_ctx - 1; ++j) {
            nll -= term[j];
            ++count;
        }
        const double running = std::exp(nll / count);
        std::printf("[real] %s chunk %d: ppl %.4f (llama.cpp %.4f)\n", ref["file"].get<std::string>().c_str(), c + 1,
                    running, c < static_cast<int>(ref_chunks.size()) ? ref_chunks[c] : NAN);
    }
    const double ppl = std::exp(nll / count), want = ref["final"];
    std::printf("[real] %s: PPL %.4f, llama.cpp %.4f, difference %+.3f%%\n", ref["file"].get<std::string>().c_str(),
                ppl, want, 100.0 * (ppl - want) / want);
    EXPECT_EQ(n_chunk, static_cast<int>(ref_chunks.size()));
    return (ppl - want) / want;
}

// The bound (0.5%) on the long text (30 chunks), where the measurement is steady: llama.cpp's own
// flash-attention switch moves it by less than the 0.25% it moves the short text.
TEST_F(real_model, perplexity_within_half_percent_of_llama_cpp) {
    std::ifstream f(k_golden_long);
    ASSERT_TRUE(f) << "cannot open " << k_golden_long;
    const nlohmann::json g = nlohmann::json::parse(f, nullptr, false);
    ASSERT_FALSE(g.is_discarded()) << k_golden_long << " is not valid JSON";
    const double rel = perplexity_vs_llama_cpp(model_, k_text_long, g["ppl"], tokenize, make_context);
    EXPECT_LT(std::fabs(rel), 0.005);
}

// The short text (5 chunks, 1275 scored tokens) as well: the same bound. It sits at +0.497% (the F16 shortcuts of
// llama.cpp described above), so a change to the kernels' rounding can cross it without being wrong; read the
// long-text result before concluding.
TEST_F(real_model, perplexity_short_text_within_half_percent_of_llama_cpp) {
    const double rel = perplexity_vs_llama_cpp(model_, k_text, golden_["ppl"], tokenize, make_context);
    EXPECT_LT(std::fabs(rel), 0.005);
}

}  // namespace
