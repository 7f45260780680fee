// The training kernels behind autograd's fast paths: the backward GEMM (train/train_gemm.h) against a double
// reference on shapes with every tail (rows not a multiple of 6, columns not of 16 or 8, k longer than one block,
// transposed A); results bit-identical whatever the thread count (GEMM, and a whole tiny-Llama training step with
// clipping and AdamW); the SIMD AdamW update against the plain loop; clipping over blocks against double; rope's
// reused table against the reference; batched attention (n_seq > 1) against per-sequence attention, and its
// gradient against finite differences.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>

#include "core/cpu_features.h"
#include "core/ops.h"
#include "core/quants.h"
#include "grad_check.h"
#include "train/optim.h"
#include "train/tiny_lm.h"
#include "train/train_gemm.h"

using namespace spider;
using namespace spider::train;

namespace {

// C += A B with A read as A[i * a_rs + k * a_cs] and B as B[k * b_rs + j * b_cs], in double.
std::vector<float> gemm_ref(int64_t M, int64_t N, int64_t K, const std::vector<float> & A, int64_t a_rs, int64_t a_cs,
                            const std::vector<float> & B, int64_t b_rs, int64_t b_cs, const std::vector<float> & C0) {
    std::vector<float> C = C0;
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            double s = C0[i * N + j];
            for (int64_t k = 0; k < K; ++k) s += static_cast<double>(A[i * a_rs + k * a_cs]) * B[k * b_rs + j * b_cs];
            C[i * N + j] = static_cast<float>(s);
        }
    return C;
}

}  // namespace

TEST(train_kernels, gemm_matches_reference_on_every_tail) {
    // Shapes with every tail (rows not a multiple of 6, columns not of 16), k over one chunk (256), rows over one
    // block (96) and columns over one block (256); A row-major, transposed, or with no unit stride (packed); B
    // row-major or transposed.
    std::mt19937 rng(11);
    const int64_t shapes[][3] = {{1, 1, 1},     {13, 37, 300}, {6, 16, 256},   {7, 25, 5},
                                 {64, 48, 513}, {5, 8, 9},     {200, 300, 70}, {97, 257, 257}};
    for (cpu_level lvl : {CPU_LEVEL_PORTABLE, cpu_level_detected()}) {
        ASSERT_TRUE(cpu_features_force(lvl));
        for (const auto & s : shapes) {
            const int64_t M = s[0], N = s[1], K = s[2];
            const auto C0 = randv(static_cast<size_t>(M * N), rng);
            for (int a_layout = 0; a_layout < 3; ++a_layout)
                for (bool trans_b : {false, true}) {
                    // A stored [M, K], [K, M], or [M, 2K] read at every other column.
                    const auto A = randv(static_cast<size_t>(M * K * (a_layout == 2 ? 2 : 1)), rng);
                    const int64_t a_rs = a_layout == 0 ? K : a_layout == 1 ? 1 : 2 * K;
                    const int64_t a_cs = a_layout == 0 ? 1 : a_layout == 1 ? M : 2;
                    const auto B = randv(static_cast<size_t>(K * N), rng);  // [K, N], or [N, K] when transposed
                    const int64_t b_rs = trans_b ? 1 : N, b_cs = trans_b ? K : 1;
                    const auto want = gemm_ref(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C0);
                    std::vector<float> C = C0;
                    gemm_acc_strided(M, N, K, A.data(), a_rs, a_cs, B.data(), b_rs, b_cs, C.data(), N, nullptr);
                    for (size_t i = 0; i < C.size(); ++i)
                        ASSERT_NEAR(C[i], want[i], 1e-4 * (1 + std::fabs(want[i])))
                            << cpu_level_name(lvl) << " " << M << "x" << N << "x" << K << " A layout " << a_layout
                            << (trans_b ? " B^T" : "") << " at " << i;
                }
        }
    }
    cpu_features_reset();
}

TEST(train_kernels, gemm_result_does_not_depend_on_threads) {
    std::mt19937 rng(12);
    for (const auto & [M, N, K] : {std::array<int64_t, 3>{61, 203, 300}, std::array<int64_t, 3>{250, 40, 300}})
        for (bool trans_b : {false, true}) {
            const auto A = randv(static_cast<size_t>(M * K), rng);
            const auto B = randv(static_cast<size_t>(K * N), rng);
            const int64_t b_rs = trans_b ? 1 : N, b_cs = trans_b ? K : 1;
            std::vector<float> one(static_cast<size_t>(M * N), 0.5f);
            gemm_acc_strided(M, N, K, A.data(), K, 1, B.data(), b_rs, b_cs, one.data(), N, nullptr);
            for (int nth : {2, 3}) {
                thread_pool pool(nth);
                std::vector<float> many(static_cast<size_t>(M * N), 0.5f);
                gemm_acc_strided(M, N, K, A.data(), K, 1, B.data(), b_rs, b_cs, many.data(), N, &pool);
                ASSERT_EQ(one, many) << M << "x" << N << "x" << K << ", " << nth << " threads";
            }
        }
}

TEST(train_kernels, training_step_is_bit_identical_across_thread_counts) {
    // A batch large enough that every threaded path runs split (elementwise ops, norms, rope, embedding, attention,
    // GEMMs, clipping, AdamW), against the same steps on one thread.
    tiny_lm_config c;
    c.vocab = 64;
    c.n_embd = 96;
    c.n_ff = 160;
    c.n_layer = 2;
    c.n_head = 6;
    c.n_head_kv = 2;
    std::vector<std::vector<float>> ref;
    std::vector<float> ref_norms;
    for (int nth : {1, 2, 3}) {
        set_threads(nth);
        tiny_lm m(c);
        m.init_random(7, 0.1f);
        adamw opt(m.params(), adamw_params{});
        std::vector<float> norms;
        for (int s = 0; s < 2; ++s) {
            opt.zero_grad();
            std::vector<std::vector<int32_t>> batch(6, std::vector<int32_t>(70));
            for (size_t b = 0; b < batch.size(); ++b)
                for (size_t i = 0; i < batch[b].size(); ++i)
                    batch[b][i] = static_cast<int32_t>((i * 5 + s * 3 + b * 11) % 64);
            backward(m.forward_loss_batch(batch));
            norms.push_back(clip_grad_norm(m.params(), 0.5f));
            opt.step(1e-2f);
        }
        std::vector<std::vector<float>> got;
        for (const auto & p : m.params()) got.push_back(p->data);
        if (ref.empty()) {
            ref = got;
            ref_norms = norms;
        } else {
            ASSERT_EQ(ref_norms, norms) << nth << " threads";
            for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(ref[i], got[i]) << nth << " threads, parameter " << i;
        }
    }
    set_threads(1);
}

TEST(train_kernels, adamw_simd_update_equals_plain_loop) {
    if (cpu_level_detected() < CPU_LEVEL_AVX2) GTEST_SKIP() << "no AVX2 on this CPU";
    std::mt19937 rng(16);
    const int64_t n = 1003;  // a tail after the 8-wide body
    const auto g = randv(static_cast<size_t>(n), rng, -3, 3);
    std::vector<float> p0 = randv(static_cast<size_t>(n), rng), m0 = randv(static_cast<size_t>(n), rng, -0.1f, 0.1f);
    std::vector<float> v0 = randv(static_cast<size_t>(n), rng, 0, 0.01f);
    v0[5] = 0.0f;  // denominator eps alone
    const detail::adamw_scalars sc{0.9f, 0.95f, 1e-8f, 3e-3f / 0.19f, std::sqrt(0.0975f)};
    std::vector<float> p1 = p0, m1 = m0, v1 = v0, p2 = p0, m2 = m0, v2 = v0;
    detail::adamw_update_plain(p1.data(), g.data(), m1.data(), v1.data(), n, sc);
    detail::adamw_update_avx2(p2.data(), g.data(), m2.data(), v2.data(), n, sc);
    EXPECT_EQ(p1, p2);
    EXPECT_EQ(m1, m2);
    EXPECT_EQ(v1, v2);
    for (int64_t i = 0; i < n; ++i) {  // and the plain loop is AdamW (in double)
        const double m = 0.9 * m0[i] + 0.1 * g[i], v = 0.95 * v0[i] + 0.05 * static_cast<double>(g[i]) * g[i];
        const double want = p0[i] - sc.step_size * m / (std::sqrt(v) / sc.sqrt_bc2 + 1e-8);
        ASSERT_NEAR(p1[i], want, 1e-5 * (1 + std::fabs(want))) << i;
    }
}

TEST(train_kernels, clip_grad_norm_over_blocks) {
    // Several parameters whose flat range crosses the 16 384-element blocks: the norm against double, the scaled
    // gradients, the same on 1 and 3 threads; a parameter without gradient counts as zeros.
    std::mt19937 rng(17);
    std::vector<value> ps = {parameter({3, 10000}, randv(30000, rng)), parameter({7}, randv(7, rng)),
                             parameter({5000}, randv(5000, rng))};
    ps.push_back(constant({4}, {1, 2, 3, 4}));  // no gradient buffer
    ps.back()->requires_grad = true;
    std::vector<std::vector<float>> grads;
    double ss = 0;
    for (size_t i = 0; i + 1 < ps.size(); ++i) {
        ps[i]->grad = randv(ps[i]->data.size(), rng, -2, 2);
        for (float g : ps[i]->grad) ss += static_cast<double>(g) * g;
        grads.push_back(ps[i]->grad);
    }
    const double want = std::sqrt(ss);
    std::vector<std::vector<float>> first;
    for (int nth : {1, 3}) {
        set_threads(nth);
        for (size_t i = 0; i + 1 < ps.size(); ++i) ps[i]->grad = grads[i];
        const float norm = clip_grad_norm(ps, 10.0f);
        EXPECT_NEAR(norm, want, 1e-5 * want);
        const float f = 10.0f / (norm + 1e-6f);
        for (size_t i = 0; i + 1 < ps.size(); ++i)
            for (size_t j = 0; j < grads[i].size(); ++j) ASSERT_EQ(ps[i]->grad[j], grads[i][j] * f) << i << " " << j;
        EXPECT_TRUE(ps.back()->grad.empty());
        std::vector<std::vector<float>> got;
        for (const auto & p : ps) got.push_back(p->grad);
        if (first.empty())
            first = got;
        else
            ASSERT_EQ(first, got);
    }
    set_threads(1);
}

TEST(train_kernels, rope_table_follows_the_positions) {
    // rope() reuses its cos/sin table while positions stay the same: a call with other positions (and then the first
    // ones again) must match the core reference each time.
    std::mt19937 rng(18);
    const int64_t n = 6, n_head = 2, hd = 8;
    const auto xd = randv(static_cast<size_t>(n * n_head * hd), rng);
    value x = constant({n, n_head * hd}, xd);
    for (const std::vector<int32_t> & pos :
         {std::vector<int32_t>{0, 1, 2, 3, 4, 5}, std::vector<int32_t>{3, 9, 4, 0, 7, 1},
          std::vector<int32_t>{0, 1, 2, 3, 4, 5}}) {
        for (float base : {10000.0f, 500.0f}) {
            value y = rope(x, pos, n_head, hd, base, ROPE_MODE_NEOX);
            std::vector<float> want = xd;
            ref::rope(want.data(), pos.data(), n, n_head, hd, hd, base, 1.0f, ROPE_MODE_NEOX);
            for (size_t i = 0; i < want.size(); ++i)
                ASSERT_NEAR(y->data[i], want[i], 1e-6) << "base " << base << " at " << i;
        }
    }
}

TEST(train_kernels, batched_attention_equals_per_sequence) {
    std::mt19937 rng(13);
    const int64_t n = 9, n_head = 4, n_head_kv = 2, hd = 8;
    value q = parameter({2 * n, n_head * hd}, randv(static_cast<size_t>(2 * n * n_head * hd), rng));
    value k = parameter({2 * n, n_head_kv * hd}, randv(static_cast<size_t>(2 * n * n_head_kv * hd), rng));
    value v = parameter({2 * n, n_head_kv * hd}, randv(static_cast<size_t>(2 * n * n_head_kv * hd), rng));
    value both = attention(q, k, v, n_head, n_head_kv, 0.4f, true, 2);
    for (int sq = 0; sq < 2; ++sq) {
        auto rows = [&](const value & x) {
            const int64_t w = x->shape[1];
            return constant({n, w},
                            std::vector<float>(x->data.begin() + sq * n * w, x->data.begin() + (sq + 1) * n * w));
        };
        value one = attention(rows(q), rows(k), rows(v), n_head, n_head_kv, 0.4f, true);
        for (int64_t i = 0; i < one->numel(); ++i)
            ASSERT_NEAR(both->data[sq * one->numel() + i], one->data[i], 1e-6) << "sequence " << sq << " at " << i;
    }
    for (bool causal : {true, false})
        grad_check("attention n_seq 2", {q, k, v},
                   [&] { return attention(q, k, v, n_head, n_head_kv, 0.4f, causal, 2); });
}

TEST(train_kernels, linear_frozen_backward_over_several_blocks) {
    // 600 output rows = 3 blocks of dequantized rows (3 chunks): the same input gradient as linear() over the
    // dequantized weight, and bit-identical with 1 and 3 threads.
    std::mt19937 rng(14);
    const int64_t in = 64, out = 600, n = 7;
    const size_t rb = dtype_row_bytes(DTYPE_Q8_0, in);
    std::vector<uint8_t> q(rb * out);
    std::vector<float> deq(static_cast<size_t>(in * out));
    for (int64_t o = 0; o < out; ++o) {
        const auto row = randv(static_cast<size_t>(in), rng);
        ASSERT_TRUE(quantize_row(DTYPE_Q8_0, row.data(), q.data() + o * rb, in));
        ASSERT_TRUE(dequantize_row(DTYPE_Q8_0, q.data() + o * rb, deq.data() + o * in, in));
    }
    tensor W = make_tensor(DTYPE_Q8_0, q.data(), in, out);
    value x = parameter({n, in}, randv(static_cast<size_t>(n * in), rng));
    value r = constant({n, out}, randv(static_cast<size_t>(n * out), rng));
    backward(sum(mul(linear(x, constant({out, in}, deq), nullptr), r)));
    const std::vector<float> want = x->grad;
    std::vector<float> first;
    for (int nth : {1, 3}) {
        set_threads(nth);
        x->zero_grad();
        backward(sum(mul(linear_frozen(x, W), r)));
        for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(x->grad[i], want[i], 1e-4) << nth << " threads, " << i;
        if (first.empty())
            first = x->grad;
        else
            ASSERT_EQ(first, x->grad);
    }
    set_threads(1);
}

TEST(train_kernels, cross_entropy_large_vocab_and_underflowing_target) {
    // A 70 000-class row (no stored probability matrix) against the double log-sum-exp, and a row whose target
    // probability underflows float (logit 150 below the max): the loss stays finite and exact, the gradient is
    // softmax - onehot.
    const int64_t V = 70000;
    std::mt19937 rng(15);
    std::vector<float> lg = randv(static_cast<size_t>(2 * V), rng, -3, 3);
    lg[V + 10] = -150.0f;  // row 1 targets class 10
    value logits = parameter({2, V}, lg);
    value L = cross_entropy(logits, {123, 10});
    double want = 0;
    for (int r = 0; r < 2; ++r) {
        const float * x = lg.data() + r * V;
        double mx = -1e30, se = 0;
        for (int64_t i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(x[i]));
        for (int64_t i = 0; i < V; ++i) se += std::exp(x[i] - mx);
        want += mx + std::log(se) - x[r == 0 ? 123 : 10];
    }
    want /= 2;
    ASSERT_TRUE(std::isfinite(L->data[0]));
    EXPECT_NEAR(L->data[0], want, 1e-4 * want);
    EXPECT_GT(want, 75.0);  // row 1 alone adds more than 150 / 2
    backward(L);
    double row_sum = 0;
    for (int64_t i = 0; i < V; ++i) row_sum += logits->grad[i];
    EXPECT_NEAR(row_sum, 0.0, 1e-5);                // softmax sums to 1, minus the one-hot
    EXPECT_NEAR(logits->grad[V + 10], -0.5, 1e-6);  // p ~ 0 at the target: (0 - 1) / 2 rows
}
