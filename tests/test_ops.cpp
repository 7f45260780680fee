// The op harness: (1) every reference op (spider::ref) against PyTorch goldens in tests/data/ops/ (written by
// tests/reference/make_ops_goldens.py); (2) every optimised op (spider::) against its reference on random shapes,
// odd sizes included, with both kernel sets (SIMD and generic) and with 1 and 3 threads; (3) matmul / get_rows
// for every weight dtype at every CPU level, against ref:: and against F32 math on the dequantized weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/ops.h"
#include "core/quants.h"
#include "core/threadpool.h"

using nlohmann::json;
using namespace spider;

namespace {

std::vector<float> floats(const json & j) {
    return j.get<std::vector<float>>();
}

// Max error relative to the output's scale: |a - b| / max(1, max |b|). Outputs of these ops are O(1).
double max_err(const std::vector<float> & a, const std::vector<float> & b) {
    if (a.size() != b.size()) return INFINITY;
    double mb = 1.0, e = 0.0;
    for (float v : b) mb = std::max(mb, static_cast<double>(std::fabs(v)));
    for (size_t i = 0; i < a.size(); ++i) {
        const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
        if (!(d <= e)) e = std::isnan(d) ? INFINITY : d;
    }
    return e / mb;
}

// Runs one golden case with the reference (use_ref) or the optimised op; returns the output.
std::vector<float> run_case(const json & c, bool use_ref, thread_pool * pool) {
    const json & p = c["params"];
    const json & in = c["inputs"];
    const std::string kind = p["kind"];
    auto get = [&](const char * k) { return floats(in[k]); };
    std::vector<float> y(c["output"].size());
#define CALL(fn, ...)                     \
    do {                                  \
        if (use_ref)                      \
            spider::ref::fn(__VA_ARGS__); \
        else                              \
            spider::fn(__VA_ARGS__);      \
    } while (0)
    if (kind == "add" || kind == "mul") {
        auto a = get("a"), b = get("b");
        if (kind == "add")
            CALL(add, a.data(), b.data(), y.data(), p["n"].get<int64_t>());
        else
            CALL(mul, a.data(), b.data(), y.data(), p["n"].get<int64_t>());
    } else if (kind == "scale") {
        auto a = get("a");
        CALL(scale, a.data(), p["s"].get<float>(), y.data(), p["n"].get<int64_t>());
    } else if (kind == "mul_row" || kind == "add_row") {
        auto a = get("a"), b = get("b");
        if (kind == "mul_row")
            CALL(mul_row, a.data(), b.data(), y.data(), p["rows"].get<int64_t>(), p["n"].get<int64_t>());
        else
            CALL(add_row, a.data(), b.data(), y.data(), p["rows"].get<int64_t>(), p["n"].get<int64_t>());
    } else if (kind == "activation") {
        auto x = get("x");
        CALL(activation, static_cast<act_type>(p["act"].get<int>()), x.data(), y.data(), p["n"].get<int64_t>());
    } else if (kind == "glu") {
        auto g = get("gate"), u = get("up");
        CALL(glu, static_cast<act_type>(p["act"].get<int>()), g.data(), u.data(), y.data(), p["n"].get<int64_t>());
    } else if (kind == "softmax") {
        auto x = get("x");
        CALL(softmax_rows, x.data(), y.data(), p["rows"].get<int64_t>(), p["n"].get<int64_t>());
    } else if (kind == "rms_norm") {
        auto x = get("x");
        std::vector<float> w = p["affine"].get<int>() ? get("w") : std::vector<float>();
        CALL(rms_norm, x.data(), w.empty() ? nullptr : w.data(), y.data(), p["rows"].get<int64_t>(),
             p["n"].get<int64_t>(), p["eps"].get<float>());
    } else if (kind == "layer_norm") {
        auto x = get("x");
        const bool aff = p["affine"].get<int>();
        std::vector<float> w = aff ? get("w") : std::vector<float>(), b = aff ? get("b") : std::vector<float>();
        CALL(layer_norm, x.data(), aff ? w.data() : nullptr, aff ? b.data() : nullptr, y.data(),
             p["rows"].get<int64_t>(), p["n"].get<int64_t>(), p["eps"].get<float>());
    } else if (kind == "group_norm") {
        auto x = get("x"), w = get("w"), b = get("b");
        CALL(group_norm, x.data(), w.data(), b.data(), y.data(), p["C"].get<int64_t>(), p["HW"].get<int64_t>(),
             p["groups"].get<int64_t>(), p["eps"].get<float>());
    } else if (kind == "rope") {
        y = get("x");
        std::vector<int32_t> pos = p["pos"].get<std::vector<int32_t>>();
        CALL(rope, y.data(), pos.data(), p["n_tok"].get<int64_t>(), p["n_head"].get<int64_t>(),
             p["head_dim"].get<int64_t>(), p["n_rot"].get<int64_t>(), p["base"].get<float>(),
             p["freq_scale"].get<float>(), static_cast<rope_mode>(p["mode"].get<int>()));
    } else if (kind == "attention") {
        auto q = get("q"), k = get("k"), v = get("v");
        CALL(attention, q.data(), k.data(), v.data(), y.data(), p["n_q"].get<int64_t>(), p["n_kv"].get<int64_t>(),
             p["n_head"].get<int64_t>(), p["n_head_kv"].get<int64_t>(), p["head_dim"].get<int64_t>(),
             p["scale"].get<float>(), p["causal"].get<int>() != 0, p["q_pos0"].get<int64_t>(),
             p["window"].get<int64_t>(), pool);
    } else if (kind == "conv1d") {
        auto x = get("x"), w = get("w"), b = get("b");
        CALL(conv1d, x.data(), w.data(), b.data(), y.data(), p["C_in"].get<int64_t>(), p["L"].get<int64_t>(),
             p["C_out"].get<int64_t>(), p["K"].get<int64_t>(), p["stride"].get<int64_t>(), p["pad"].get<int64_t>(),
             pool);
    } else if (kind == "conv2d" || kind == "conv_transpose2d") {
        auto x = get("x"), w = get("w"), b = get("b");
        if (kind == "conv2d")
            CALL(conv2d, x.data(), w.data(), b.data(), y.data(), p["C_in"].get<int64_t>(), p["H"].get<int64_t>(),
                 p["W"].get<int64_t>(), p["C_out"].get<int64_t>(), p["KH"].get<int64_t>(), p["KW"].get<int64_t>(),
                 p["stride"].get<int64_t>(), p["pad"].get<int64_t>(), pool);
        else
            CALL(conv_transpose2d, x.data(), w.data(), b.data(), y.data(), p["C_in"].get<int64_t>(),
                 p["H"].get<int64_t>(), p["W"].get<int64_t>(), p["C_out"].get<int64_t>(), p["KH"].get<int64_t>(),
                 p["KW"].get<int64_t>(), p["stride"].get<int64_t>(), p["pad"].get<int64_t>(), pool);
    } else if (kind == "conv_temporal") {
        auto x = get("x"), w = get("w"), b = get("b");
        CALL(conv_temporal, x.data(), w.data(), b.data(), y.data(), p["C_in"].get<int64_t>(), p["T"].get<int64_t>(),
             p["HW"].get<int64_t>(), p["C_out"].get<int64_t>(), p["KT"].get<int64_t>(), pool);
    } else if (kind == "upsample_nearest2d") {
        auto x = get("x");
        CALL(upsample_nearest2d, x.data(), y.data(), p["C"].get<int64_t>(), p["H"].get<int64_t>(),
             p["W"].get<int64_t>(), p["f"].get<int64_t>());
    } else if (kind == "avg_pool2d" || kind == "max_pool2d") {
        auto x = get("x");
        const int64_t C = p["C"], H = p["H"], W = p["W"], k = p["k"];
        if (kind == "avg_pool2d")
            CALL(avg_pool2d, x.data(), y.data(), C, H, W, k);
        else
            CALL(max_pool2d, x.data(), y.data(), C, H, W, k);
    } else if (kind == "permute") {
        auto x = get("x");
        std::vector<int64_t> ne = p["ne"].get<std::vector<int64_t>>();
        std::vector<int> perm = p["perm"].get<std::vector<int>>();
        CALL(permute, x.data(), y.data(), ne.data(), perm.data());
    } else if (kind == "concat") {
        auto a = get("a"), b = get("b");
        std::vector<int64_t> na = p["ne_a"].get<std::vector<int64_t>>(), nb = p["ne_b"].get<std::vector<int64_t>>();
        CALL(concat, a.data(), na.data(), b.data(), nb.data(), p["dim"].get<int>(), y.data());
    } else {
        ADD_FAILURE() << "unknown golden kind " << kind;
    }
#undef CALL
    return y;
}

json load_golden(const std::string & op) {
    const std::string path = std::string(SPIDER_SOURCE_DIR) + "/tests/data/ops/" + op + ".json";
    std::ifstream f(path);
    if (!f) return json();
    return json::parse(f, nullptr, false);
}

// Every kernel set this CPU can run: generic, AVX2, AVX-512 (ops pick theirs from the active CPU level).
std::vector<cpu_level> kernel_levels() {
    std::vector<cpu_level> levels = {CPU_LEVEL_PORTABLE};
    if (cpu_level_detected() >= CPU_LEVEL_AVX2) levels.push_back(CPU_LEVEL_AVX2);
    if (cpu_level_detected() >= CPU_LEVEL_AVX512) levels.push_back(CPU_LEVEL_AVX512);
    return levels;
}

class golden : public ::testing::TestWithParam<std::string> {};

TEST_P(golden, ref_and_optimised_match_pytorch) {
    const json g = load_golden(GetParam());
    ASSERT_TRUE(g.is_object()) << "missing or unreadable tests/data/ops/" << GetParam() << ".json";
    ASSERT_FALSE(g["cases"].empty());
    thread_pool pool(3);
    for (const json & c : g["cases"]) {
        const std::vector<float> want = floats(c["output"]);
        const std::string name = c["name"];
        EXPECT_LE(max_err(run_case(c, true, nullptr), want), 2e-5) << name << " (ref)";
        for (cpu_level lv : kernel_levels()) {
            ASSERT_TRUE(cpu_features_force(lv));
            EXPECT_LE(max_err(run_case(c, false, nullptr), want), 2e-5) << name << " (" << ops_kernel_name() << ")";
            EXPECT_LE(max_err(run_case(c, false, &pool), want), 2e-5)
                << name << " (" << ops_kernel_name() << ", 3 threads)";
        }
        cpu_features_reset();
    }
}

INSTANTIATE_TEST_SUITE_P(ops, golden,
                         ::testing::Values("elementwise", "activation", "norm", "rope", "attention", "conv", "resample",
                                           "layout"));

// ---- optimised vs reference on random shapes

struct rng {
    std::mt19937 g{42};
    std::vector<float> vec(size_t n, float lo = -2.0f, float hi = 2.0f) {
        std::uniform_real_distribution<float> d(lo, hi);
        std::vector<float> v(n);
        for (auto & x : v) x = d(g);
        return v;
    }
};

// Runs check() once per kernel set and thread count; check gets the pool (nullptr = 1 thread).
void for_each_config(const std::function<void(thread_pool *, const std::string &)> & check) {
    thread_pool pool(3);
    for (cpu_level lv : kernel_levels()) {
        ASSERT_TRUE(cpu_features_force(lv));
        const std::string k = ops_kernel_name();
        check(nullptr, k + "/1t");
        check(&pool, k + "/3t");
    }
    cpu_features_reset();
}

TEST(ops_random, elementwise_and_activations) {
    rng r;
    for (int64_t n : {1, 7, 8, 9, 31, 64, 1000, 4099}) {
        auto a = r.vec(n, -8, 8), b = r.vec(n);
        std::vector<float> y0(n), y1(n);
        for_each_config([&](thread_pool *, const std::string & cfg) {
            std::fill(y1.begin(), y1.end(), NAN);  // no output may survive from another config
            ref::add(a.data(), b.data(), y0.data(), n);
            add(a.data(), b.data(), y1.data(), n);
            EXPECT_LE(max_err(y1, y0), 0.0) << "add " << n << " " << cfg;
            ref::mul(a.data(), b.data(), y0.data(), n);
            mul(a.data(), b.data(), y1.data(), n);
            EXPECT_LE(max_err(y1, y0), 0.0) << "mul " << n << " " << cfg;
            ref::scale(a.data(), -1.5f, y0.data(), n);
            scale(a.data(), -1.5f, y1.data(), n);
            EXPECT_LE(max_err(y1, y0), 0.0) << "scale " << n << " " << cfg;
            for (act_type t : {ACT_GELU_TANH, ACT_GELU_ERF, ACT_SILU, ACT_RELU}) {
                ref::activation(t, a.data(), y0.data(), n);
                activation(t, a.data(), y1.data(), n);
                EXPECT_LE(max_err(y1, y0), 2e-6) << "act " << t << " n " << n << " " << cfg;
                ref::glu(t, a.data(), b.data(), y0.data(), n);
                glu(t, a.data(), b.data(), y1.data(), n);
                EXPECT_LE(max_err(y1, y0), 4e-6) << "glu " << t << " n " << n << " " << cfg;
            }
        });
    }
    for (auto [rows, n] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 13}, {5, 64}, {2, 1027}}) {
        auto x = r.vec(rows * n), w = r.vec(n);
        std::vector<float> y0(rows * n), y1(rows * n);
        for_each_config([&](thread_pool *, const std::string & cfg) {
            std::fill(y1.begin(), y1.end(), NAN);  // no output may survive from another config
            ref::mul_row(x.data(), w.data(), y0.data(), rows, n);
            mul_row(x.data(), w.data(), y1.data(), rows, n);
            EXPECT_LE(max_err(y1, y0), 0.0) << cfg;
            ref::add_row(x.data(), w.data(), y0.data(), rows, n);
            add_row(x.data(), w.data(), y1.data(), rows, n);
            EXPECT_LE(max_err(y1, y0), 0.0) << cfg;
        });
    }
}

TEST(ops_random, activation_extremes_are_finite_and_exact_at_limits) {
    std::vector<float> x = {-1000.0f, -100.0f, -88.0f, -30.0f, 0.0f, 30.0f, 88.0f, 100.0f, 1000.0f};
    std::vector<float> y0(x.size()), y1(x.size());
    for_each_config([&](thread_pool *, const std::string & cfg) {
        std::fill(y1.begin(), y1.end(), NAN);  // no output may survive from another config
        for (act_type t : {ACT_GELU_TANH, ACT_GELU_ERF, ACT_SILU, ACT_RELU}) {
            ref::activation(t, x.data(), y0.data(), x.size());
            activation(t, x.data(), y1.data(), x.size());
            for (size_t i = 0; i < x.size(); ++i) {
                EXPECT_TRUE(std::isfinite(y1[i])) << "act " << t << " x " << x[i] << " " << cfg;
                EXPECT_NEAR(y1[i], y0[i], 1e-5 * std::max(1.0f, std::fabs(y0[i]))) << "act " << t << " x " << x[i];
            }
        }
    });
}

TEST(ops_random, softmax_and_norms) {
    rng r;
    for (auto [rows, n] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 3}, {4, 17}, {3, 256}, {2, 4097}}) {
        auto x = r.vec(rows * n, -6, 6), w = r.vec(n), b = r.vec(n);
        std::vector<float> y0(rows * n), y1(rows * n);
        for_each_config([&](thread_pool *, const std::string & cfg) {
            std::fill(y1.begin(), y1.end(), NAN);  // no output may survive from another config
            ref::softmax_rows(x.data(), y0.data(), rows, n);
            softmax_rows(x.data(), y1.data(), rows, n);
            EXPECT_LE(max_err(y1, y0), 1e-6) << "softmax " << rows << "x" << n << " " << cfg;
            ref::rms_norm(x.data(), w.data(), y0.data(), rows, n, 1e-6f);
            rms_norm(x.data(), w.data(), y1.data(), rows, n, 1e-6f);
            EXPECT_LE(max_err(y1, y0), 1e-5) << "rms " << rows << "x" << n << " " << cfg;
            ref::layer_norm(x.data(), w.data(), b.data(), y0.data(), rows, n, 1e-5f);
            layer_norm(x.data(), w.data(), b.data(), y1.data(), rows, n, 1e-5f);
            EXPECT_LE(max_err(y1, y0), 1e-5) << "ln " << rows << "x" << n << " " << cfg;
            ref::layer_norm(x.data(), nullptr, nullptr, y0.data(), rows, n, 1e-5f);
            layer_norm(x.data(), nullptr, nullptr, y1.data(), rows, n, 1e-5f);
            EXPECT_LE(max_err(y1, y0), 1e-5) << "ln no affine " << rows << "x" << n << " " << cfg;
        });
    }
    for (auto [C, HW, G] : std::vector<std::array<int64_t, 3>>{{4, 1, 2}, {32, 63, 32}, {64, 100, 32}, {6, 9, 3}}) {
        auto x = r.vec(C * HW, -3, 5), w = r.vec(C), b = r.vec(C);
        std::vector<float> y0(C * HW), y1(C * HW);
        for_each_config([&](thread_pool *, const std::string & cfg) {
            std::fill(y1.begin(), y1.end(), NAN);  // no output may survive from another config
            ref::group_norm(x.data(), w.data(), b.data(), y0.data(), C, HW, G, 1e-6f);
            group_norm(x.data(), w.data(), b.data(), y1.data(), C, HW, G, 1e-6f);
            EXPECT_LE(max_err(y1, y0), 1e-5) << "gn " << C << "x" << HW << "/" << G << " " << cfg;
        });
    }
}

TEST(ops_random, rope_both_modes) {
    rng r;
    for (auto [n_tok, n_head, hd, n_rot] :
         std::vector<std::array<int64_t, 4>>{{1, 1, 2, 2}, {3, 5, 64, 64}, {7, 2, 128, 64}, {2, 3, 80, 32}}) {
        auto x = r.vec(n_tok * n_head * hd);
        std::vector<int32_t> pos(n_tok);
        for (int64_t t = 0; t < n_tok; ++t) pos[t] = static_cast<int32_t>(t * 37 + 1000);
        for (rope_mode m : {ROPE_MODE_NORMAL, ROPE_MODE_NEOX}) {
            for_each_config([&](thread_pool *, const std::string & cfg) {
                std::vector<float> y0 = x, y1 = x;
                ref::rope(y0.data(), pos.data(), n_tok, n_head, hd, n_rot, 10000.0f, 0.25f, m);
                rope(y1.data(), pos.data(), n_tok, n_head, hd, n_rot, 10000.0f, 0.25f, m);
                EXPECT_LE(max_err(y1, y0), 2e-6) << "rope mode " << m << " hd " << hd << " " << cfg;
            });
        }
    }
}

// rope() caches the cos / sin tables of its last two kinds of call (gemma 3 alternates two bases). A sequence that
// alternates bases and positions the way a decode does, with a third base now and then to force an eviction, must
// match the reference at every call: a table returned for the wrong key would rotate by the wrong angles.
TEST(ops_random, rope_alternating_bases_use_the_right_table) {
    rng r;
    const int64_t n_head = 3, hd = 64, n_rot = 64;
    const float bases[] = {10000.0f, 1000000.0f, 500000.0f};
    const int kinds[] = {0, 0, 1, 1, 0, 1, 0, 2, 0, 1, 2, 2, 1, 0};
    for (int32_t step = 0; step < 3; ++step) {
        const int64_t n_tok = step == 1 ? 4 : 1;
        std::vector<int32_t> pos(n_tok);
        for (int64_t t = 0; t < n_tok; ++t) pos[t] = static_cast<int32_t>(100 * step + t);
        for (int k : kinds) {
            auto x = r.vec(n_tok * n_head * hd);
            std::vector<float> y0 = x, y1 = x;
            ref::rope(y0.data(), pos.data(), n_tok, n_head, hd, n_rot, bases[k], 1.0f, ROPE_MODE_NEOX);
            rope(y1.data(), pos.data(), n_tok, n_head, hd, n_rot, bases[k], 1.0f, ROPE_MODE_NEOX);
            ASSERT_LE(max_err(y1, y0), 2e-6) << "step " << step << " base " << bases[k];
        }
    }
}

// Llama 3.1-style frequency divisors: optimised vs reference, and a divisor of 1 everywhere equals no divisors.
TEST(ops_random, rope_freq_factors) {
    rng r;
    const int64_t n_tok = 5, n_head = 3, hd = 64, n_rot = 64;
    auto x = r.vec(n_tok * n_head * hd);
    std::vector<int32_t> pos(n_tok);
    for (int64_t t = 0; t < n_tok; ++t) pos[t] = static_cast<int32_t>(t * 911 + 7);
    std::vector<float> ff(n_rot / 2), ones(n_rot / 2, 1.0f);
    for (int64_t i = 0; i < n_rot / 2; ++i) ff[i] = 1.0f + 7.0f * static_cast<float>(i) / (n_rot / 2);
    for (rope_mode m : {ROPE_MODE_NORMAL, ROPE_MODE_NEOX}) {
        std::vector<float> y0 = x, y1 = x, y2 = x, y3 = x;
        ref::rope(y0.data(), pos.data(), n_tok, n_head, hd, n_rot, 500000.0f, 1.0f, m, ff.data());
        rope(y1.data(), pos.data(), n_tok, n_head, hd, n_rot, 500000.0f, 1.0f, m, ff.data());
        EXPECT_LE(max_err(y1, y0), 2e-6) << "rope mode " << m;
        ref::rope(y2.data(), pos.data(), n_tok, n_head, hd, n_rot, 500000.0f, 1.0f, m, ones.data());
        ref::rope(y3.data(), pos.data(), n_tok, n_head, hd, n_rot, 500000.0f, 1.0f, m);
        EXPECT_EQ(y2, y3);
        EXPECT_GT(max_err(y0, y3), 1e-2) << "the divisors must change the rotation";
    }
}

TEST(ops_random, attention_shapes) {
    rng r;
    struct shape {
        int64_t n_q, n_kv, n_head, n_head_kv, hd;
        bool causal;
        int64_t q_pos0, window;
    };
    const std::vector<shape> shapes = {
        {1, 1, 1, 1, 1, true, 0, 0},       {1, 700, 8, 2, 64, true, 699, 0},  // decode, GQA, > one key block
        {33, 33, 4, 4, 17, true, 0, 0},    {5, 300, 6, 3, 32, true, 295, 0},  // prompt chunk with offset
        {40, 40, 2, 1, 64, true, 0, 7},    {9, 513, 4, 2, 16, false, 0, 0},   // sliding window; bidirectional
        {4, 130, 12, 1, 20, true, 126, 0}, {1, 65, 16, 1, 8, true, 64, 0},    // groups of 12 and 16 (> 8 rows)
        {2, 200, 9, 3, 24, false, 0, 0},   {3, 10, 2, 2, 8, true, -5, 0},     // queries before every key: zero output
    };
    for (const shape & s : shapes) {
        auto q = r.vec(s.n_q * s.n_head * s.hd), k = r.vec(s.n_kv * s.n_head_kv * s.hd),
             v = r.vec(s.n_kv * s.n_head_kv * s.hd);
        std::vector<float> y0(q.size()), y1(q.size());
        const float sc = 1.0f / std::sqrt(static_cast<float>(s.hd));
        ref::attention(q.data(), k.data(), v.data(), y0.data(), s.n_q, s.n_kv, s.n_head, s.n_head_kv, s.hd, sc,
                       s.causal, s.q_pos0, s.window, nullptr);
        for_each_config([&](thread_pool * pool, const std::string & cfg) {
            std::fill(y1.begin(), y1.end(), NAN);  // no output may survive from another config
            attention(q.data(), k.data(), v.data(), y1.data(), s.n_q, s.n_kv, s.n_head, s.n_head_kv, s.hd, sc, s.causal,
                      s.q_pos0, s.window, pool);
            EXPECT_LE(max_err(y1, y0), 2e-5) << "attention nq " << s.n_q << " nkv " << s.n_kv << " " << cfg;
        });
        // An F16 KV cache: attention_f16kv must equal attention() on the widened arrays bit for bit.
        std::vector<uint16_t> k16(k.size()), v16(v.size());
        std::vector<float> kw(k.size()), vw(v.size()), y2(q.size());
        for (size_t i = 0; i < k.size(); ++i) {
            k16[i] = fp32_to_fp16(k[i]);
            v16[i] = fp32_to_fp16(v[i]);
            kw[i] = fp16_to_fp32(k16[i]);
            vw[i] = fp16_to_fp32(v16[i]);
        }
        for_each_config([&](thread_pool * pool, const std::string & cfg) {
            std::fill(y1.begin(), y1.end(), NAN);
            std::fill(y2.begin(), y2.end(), NAN);
            attention(q.data(), kw.data(), vw.data(), y1.data(), s.n_q, s.n_kv, s.n_head, s.n_head_kv, s.hd, sc,
                      s.causal, s.q_pos0, s.window, pool);
            attention_f16kv(q.data(), k16.data(), v16.data(), y2.data(), s.n_q, s.n_kv, s.n_head, s.n_head_kv, s.hd, sc,
                            s.causal, s.q_pos0, s.window, pool);
            for (size_t i = 0; i < y1.size(); ++i) {
                ASSERT_EQ(std::memcmp(&y1[i], &y2[i], sizeof(float)), 0)
                    << "attention_f16kv nq " << s.n_q << " nkv " << s.n_kv << " " << cfg << " at " << i << ": " << y2[i]
                    << " vs " << y1[i];
            }
        });
    }
}

// Decode attention cuts long contexts into key segments whose results are merged (ops.cpp): the segments depend
// only on the number of visible keys, so the output must be the same bits with 1, 2 or 3 threads, F32 and F16 K / V,
// and close to the reference (one segment up to 64 keys, two at 65 and 128, up to 16 for the longest).
TEST(ops_random, decode_attention_is_thread_count_invariant) {
    rng r;
    struct shape {
        int64_t n_kv, n_head, n_head_kv, hd, window;
    };
    for (const shape & s : std::vector<shape>{{64, 4, 1, 32, 0},
                                              {65, 4, 1, 32, 0},
                                              {128, 4, 1, 256, 0},
                                              {700, 8, 2, 64, 0},
                                              {1500, 4, 1, 16, 0},
                                              {5000, 2, 1, 8, 0},
                                              {900, 4, 1, 32, 512},
                                              {300, 6, 3, 24, 100}}) {
        auto q = r.vec(s.n_head * s.hd), k = r.vec(s.n_kv * s.n_head_kv * s.hd, -3, 3),
             v = r.vec(s.n_kv * s.n_head_kv * s.hd);
        std::vector<uint16_t> k16(k.size()), v16(v.size());
        for (size_t i = 0; i < k.size(); ++i) {
            k16[i] = fp32_to_fp16(k[i]);
            v16[i] = fp32_to_fp16(v[i]);
        }
        const float sc = 1.0f / std::sqrt(static_cast<float>(s.hd));
        const int64_t pos = s.n_kv - 1;
        std::vector<float> y0(q.size());
        ref::attention(q.data(), k.data(), v.data(), y0.data(), 1, s.n_kv, s.n_head, s.n_head_kv, s.hd, sc, true, pos,
                       s.window, nullptr);
        thread_pool p2(2), p3(3);
        for (cpu_level lv : kernel_levels()) {
            ASSERT_TRUE(cpu_features_force(lv));
            const std::string cfg = std::string(ops_kernel_name()) + " nkv " + std::to_string(s.n_kv);
            std::vector<float> y1(q.size()), y2(q.size()), h1(q.size()), h2(q.size());
            attention(q.data(), k.data(), v.data(), y1.data(), 1, s.n_kv, s.n_head, s.n_head_kv, s.hd, sc, true, pos,
                      s.window, nullptr);
            attention_f16kv(q.data(), k16.data(), v16.data(), h1.data(), 1, s.n_kv, s.n_head, s.n_head_kv, s.hd, sc,
                            true, pos, s.window, nullptr);
            EXPECT_LE(max_err(y1, y0), 2e-5) << cfg;
            for (thread_pool * p : {&p2, &p3}) {
                std::fill(y2.begin(), y2.end(), NAN);
                std::fill(h2.begin(), h2.end(), NAN);
                attention(q.data(), k.data(), v.data(), y2.data(), 1, s.n_kv, s.n_head, s.n_head_kv, s.hd, sc, true,
                          pos, s.window, p);
                attention_f16kv(q.data(), k16.data(), v16.data(), h2.data(), 1, s.n_kv, s.n_head, s.n_head_kv, s.hd, sc,
                                true, pos, s.window, p);
                ASSERT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)), 0)
                    << cfg << " with " << p->size() << " threads";
                ASSERT_EQ(std::memcmp(h1.data(), h2.data(), h1.size() * sizeof(float)), 0)
                    << cfg << " F16 K / V with " << p->size() << " threads";
            }
        }
        cpu_features_reset();
    }
}

TEST(ops_random, convolutions) {
    rng r;
    // C_in, H, W, C_out, KH, KW, stride, pad
    for (auto g : std::vector<std::array<int64_t, 8>>{{1, 1, 1, 1, 1, 1, 1, 0},
                                                      {3, 17, 13, 5, 3, 3, 1, 1},
                                                      {8, 16, 16, 19, 3, 3, 2, 1},
                                                      {4, 9, 31, 6, 1, 1, 1, 0},
                                                      {2, 12, 11, 3, 4, 4, 2, 1},
                                                      // rows of 255 columns: im2col chunks (256) end 1 column
                                                      // into a row, before the first valid tap (pad 2 and 4;
                                                      // under ASan the last one catches a write past the panel)
                                                      {1, 3, 253, 2, 3, 3, 1, 2},
                                                      {1, 4, 507, 2, 3, 3, 2, 2},
                                                      {2, 3, 5, 2, 3, 3, 1, 4},
                                                      {1, 1, 249, 2, 3, 3, 1, 4}}) {
        const int64_t C_in = g[0], H = g[1], W = g[2], C_out = g[3], KH = g[4], KW = g[5], st = g[6], pd = g[7];
        auto x = r.vec(C_in * H * W), w = r.vec(C_out * C_in * KH * KW), b = r.vec(C_out);
        const int64_t Ho = (H + 2 * pd - KH) / st + 1, Wo = (W + 2 * pd - KW) / st + 1;
        std::vector<float> y0(C_out * Ho * Wo), y1(y0.size());
        ref::conv2d(x.data(), w.data(), b.data(), y0.data(), C_in, H, W, C_out, KH, KW, st, pd, nullptr);
        for_each_config([&](thread_pool * pool, const std::string & cfg) {
            std::fill(y1.begin(), y1.end(), NAN);  // no output may survive from another config
            conv2d(x.data(), w.data(), b.data(), y1.data(), C_in, H, W, C_out, KH, KW, st, pd, pool);
            EXPECT_LE(max_err(y1, y0), 1e-5) << "conv2d " << C_in << "x" << H << "x" << W << " " << cfg;
        });
        // transposed: w [C_in, C_out, KH, KW]
        const int64_t Hto = (H - 1) * st - 2 * pd + KH, Wto = (W - 1) * st - 2 * pd + KW;
        if (Hto > 0 && Wto > 0) {
            std::vector<float> t0(C_out * Hto * Wto), t1(t0.size());
            ref::conv_transpose2d(x.data(), w.data(), b.data(), t0.data(), C_in, H, W, C_out, KH, KW, st, pd, nullptr);
            for_each_config([&](thread_pool * pool, const std::string & cfg) {
                std::fill(t1.begin(), t1.end(), NAN);  // no output may survive from another config
                conv_transpose2d(x.data(), w.data(), b.data(), t1.data(), C_in, H, W, C_out, KH, KW, st, pd, pool);
                EXPECT_LE(max_err(t1, t0), 1e-5) << "conv_transpose2d " << C_in << "x" << H << "x" << W << " " << cfg;
            });
        }
    }
    for (auto g : std::vector<std::array<int64_t, 6>>{{2, 50, 3, 7, 1, 3}, {16, 257, 8, 3, 2, 1}, {1, 5, 1, 5, 1, 2}}) {
        const int64_t C_in = g[0], L = g[1], C_out = g[2], Kk = g[3], st = g[4], pd = g[5];
        auto x = r.vec(C_in * L), w = r.vec(C_out * C_in * Kk), b = r.vec(C_out);
        const int64_t Lo = (L + 2 * pd - Kk) / st + 1;
        std::vector<float> y0(C_out * Lo), y1(y0.size());
        ref::conv1d(x.data(), w.data(), nullptr, y0.data(), C_in, L, C_out, Kk, st, pd, nullptr);
        for_each_config([&](thread_pool * pool, const std::string & cfg) {
            std::fill(y1.begin(), y1.end(), NAN);  // no output may survive from another config
            conv1d(x.data(), w.data(), nullptr, y1.data(), C_in, L, C_out, Kk, st, pd, pool);
            EXPECT_LE(max_err(y1, y0), 1e-5) << "conv1d " << C_in << "x" << L << " " << cfg;
        });
    }
    for (auto g :
         std::vector<std::array<int64_t, 5>>{{3, 7, 19, 4, 3},
                                             {8, 16, 64, 8, 3},
                                             {2, 2, 5, 3, 5},
                                             {3, 6, 7, 2, 2},
                                             {2, 5, 9, 3, 4}}) {  // even KT: pad (KT-1)/2 before, the rest after
        const int64_t C_in = g[0], T = g[1], HW = g[2], C_out = g[3], KT = g[4];
        auto x = r.vec(C_in * T * HW), w = r.vec(C_out * C_in * KT), b = r.vec(C_out);
        std::vector<float> y0(C_out * T * HW), y1(y0.size());
        ref::conv_temporal(x.data(), w.data(), b.data(), y0.data(), C_in, T, HW, C_out, KT, nullptr);
        for_each_config([&](thread_pool * pool, const std::string & cfg) {
            std::fill(y1.begin(), y1.end(), NAN);  // no output may survive from another config
            conv_temporal(x.data(), w.data(), b.data(), y1.data(), C_in, T, HW, C_out, KT, pool);
            EXPECT_LE(max_err(y1, y0), 1e-5) << "conv_temporal " << C_in << "x" << T << "x" << HW << " " << cfg;
        });
    }
}

TEST(ops_random, resample_and_layout) {
    rng r;
    for (auto [C, H, W, f] : std::vector<std::array<int64_t, 4>>{{1, 1, 1, 1}, {3, 5, 7, 2}, {2, 9, 10, 3}}) {
        auto x = r.vec(C * H * W);
        std::vector<float> y0(C * H * W * f * f), y1(y0.size());
        ref::upsample_nearest2d(x.data(), y0.data(), C, H, W, f);
        upsample_nearest2d(x.data(), y1.data(), C, H, W, f);
        EXPECT_EQ(y1, y0);
        std::vector<float> p0(C * (H / f) * (W / f)), p1(p0.size());
        ref::avg_pool2d(x.data(), p0.data(), C, H, W, f);
        avg_pool2d(x.data(), p1.data(), C, H, W, f);
        EXPECT_LE(max_err(p1, p0), 1e-6);
        ref::max_pool2d(x.data(), p0.data(), C, H, W, f);
        max_pool2d(x.data(), p1.data(), C, H, W, f);
        EXPECT_EQ(p1, p0);
    }
    const int64_t ne[4] = {5, 3, 4, 2};
    auto x = r.vec(5 * 3 * 4 * 2);
    int perm[4] = {0, 1, 2, 3};
    do {  // all 24 permutations
        std::vector<float> y0(x.size()), y1(x.size());
        ref::permute(x.data(), y0.data(), ne, perm);
        permute(x.data(), y1.data(), ne, perm);
        EXPECT_EQ(y1, y0) << perm[0] << perm[1] << perm[2] << perm[3];
    } while (std::next_permutation(perm, perm + 4));
    for (int dim = 0; dim < 4; ++dim) {
        int64_t nb[4] = {5, 3, 4, 2};
        nb[dim] = 3;
        auto b = r.vec(nb[0] * nb[1] * nb[2] * nb[3]);
        std::vector<float> y0(x.size() + b.size()), y1(y0.size());
        ref::concat(x.data(), ne, b.data(), nb, dim, y0.data());
        concat(x.data(), ne, b.data(), nb, dim, y1.data());
        EXPECT_EQ(y1, y0) << "concat dim " << dim;
    }
}

}  // namespace

namespace {

// ---- matmul / get_rows (kern's kernels) for every weight dtype, at every CPU level this machine supports

const dtype MATMUL_TYPES[] = {DTYPE_F32,  DTYPE_F16,  DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0,
                              DTYPE_Q5_0, DTYPE_Q4_K, DTYPE_Q5_K, DTYPE_Q6_K};

struct qweight {
    std::vector<uint8_t> bytes;
    std::vector<float> deq;  // the weights as the dtype stores them, back in F32
    tensor t;
};

qweight make_qweight(dtype type, int64_t n_in, int64_t n_out, uint32_t seed) {
    qweight w;
    rng r;
    r.g.seed(seed);
    const std::vector<float> src = r.vec(static_cast<size_t>(n_in * n_out), -1.0f, 1.0f);
    const size_t rb = dtype_row_bytes(type, n_in);
    EXPECT_GT(rb, 0u) << dtype_name(type);
    w.bytes.assign(rb * n_out, 0);
    w.deq.resize(src.size());
    for (int64_t o = 0; o < n_out; ++o) {
        EXPECT_TRUE(quantize_row(type, src.data() + o * n_in, w.bytes.data() + o * rb, n_in)) << dtype_name(type);
        EXPECT_TRUE(dequantize_row(type, w.bytes.data() + o * rb, w.deq.data() + o * n_in, n_in));
    }
    w.t = make_tensor(type, w.bytes.data(), n_in, n_out);
    return w;
}

TEST(ops_matmul, every_dtype_matches_reference_and_dequantized_f32) {
    thread_pool pool(3);
    std::vector<cpu_level> levels = {CPU_LEVEL_PORTABLE};
    if (cpu_level_detected() >= CPU_LEVEL_AVX2) levels.push_back(CPU_LEVEL_AVX2);
    if (cpu_level_detected() >= CPU_LEVEL_AVX512) levels.push_back(CPU_LEVEL_AVX512);
    for (dtype t : MATMUL_TYPES) {
        const int64_t n_in = 512, n_out = 37;
        const qweight w = make_qweight(t, n_in, n_out, 7 + t);
        for (int64_t n_tok : {1, 5, 16}) {
            rng r;
            const std::vector<float> x = r.vec(static_cast<size_t>(n_in * n_tok));
            // The plain definition on the dequantized weights, in double.
            std::vector<float> want(n_out * n_tok), y0(want.size()), y1(want.size());
            for (int64_t i = 0; i < n_tok; ++i)
                for (int64_t o = 0; o < n_out; ++o) {
                    double s = 0.0;
                    for (int64_t c = 0; c < n_in; ++c) s += static_cast<double>(w.deq[o * n_in + c]) * x[i * n_in + c];
                    want[i * n_out + o] = static_cast<float>(s);
                }
            ref::matmul(w.t, x.data(), y0.data(), n_tok, nullptr);
            EXPECT_LE(max_err(y0, want), 1e-5) << "ref::matmul " << dtype_name(t);
            // Optimised kernels may quantize activations (Q8) for quantized weights: looser bound there.
            const bool plain = t == DTYPE_F32 || t == DTYPE_F16 || t == DTYPE_BF16;
            for (cpu_level lv : levels) {
                ASSERT_TRUE(cpu_features_force(lv));
                for (thread_pool * p : {static_cast<thread_pool *>(nullptr), &pool}) {
                    std::fill(y1.begin(), y1.end(), NAN);
                    matmul(w.t, x.data(), y1.data(), n_tok, p);
                    EXPECT_LE(max_err(y1, y0), plain ? 1e-4 : 2e-2)
                        << "matmul " << dtype_name(t) << " n_tok " << n_tok << " level " << cpu_level_name(lv)
                        << (p ? " 3 threads" : " 1 thread");
                }
            }
            cpu_features_reset();
        }
        const std::vector<int32_t> ids = {0, n_out - 1, 3, 3, 20};
        std::vector<float> r0(n_in * ids.size()), r1(r0.size());
        ref::get_rows(w.t, ids.data(), ids.size(), r0.data());
        get_rows(w.t, ids.data(), ids.size(), r1.data());
        for (size_t i = 0; i < ids.size(); ++i)
            for (int64_t c = 0; c < n_in; ++c) ASSERT_EQ(r0[i * n_in + c], w.deq[ids[i] * n_in + c]) << dtype_name(t);
        EXPECT_EQ(r1, r0) << "get_rows " << dtype_name(t);
    }
}

}  // namespace
