// The training kernels behind autograd's fast paths: the backward GEMM (train/train_gemm.h) against a double
// reference on shapes with every tail (rows not a multiple of 6, columns not of 16 or 8, k longer than one block,
// transposed A); results bit-identical whatever the thread count (GEMM, and a whole tiny-Llama training step);
// batched attention (n_seq > 1) against per-sequence attention, and its gradient against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/cpu_features.h"
#include "core/quants.h"
#include "grad_check.h"
#include "train/optim.h"
#include "train/tiny_lm.h"
#include "train/train_gemm.h"

using namespace spider;
using namespace spider::train;

namespace {

// C += A B with A read as A[i * a_rs + k * a_cs], in double.
std::vector<float> gemm_ref(int64_t M, int64_t N, int64_t K, const std::vector<float> & A, int64_t a_rs, int64_t a_cs,
                            const std::vector<float> & B, const std::vector<float> & C0) {
    std::vector<float> C = C0;
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            double s = C0[i * N + j];
            for (int64_t k = 0; k < K; ++k) s += static_cast<double>(A[i * a_rs + k * a_cs]) * B[k * N + j];
            C[i * N + j] = static_cast<float>(s);
        }
    return C;
}

}  // namespace

TEST(train_kernels, gemm_matches_reference_on_every_tail) {
    std::mt19937 rng(11);
    const int64_t shapes[][3] = {{1, 1, 1}, {13, 37, 300}, {6, 16, 256}, {7, 25, 5}, {64, 48, 513}, {5, 8, 9}};
    for (cpu_level lvl : {CPU_LEVEL_PORTABLE, cpu_level_detected()}) {
        ASSERT_TRUE(cpu_features_force(lvl));
        for (const auto & s : shapes) {
            const int64_t M = s[0], N = s[1], K = s[2];
            const auto B = randv(static_cast<size_t>(K * N), rng);
            const auto C0 = randv(static_cast<size_t>(M * N), rng);
            for (bool trans : {false, true}) {
                const auto A = randv(static_cast<size_t>(M * K), rng);
                const int64_t a_rs = trans ? 1 : K, a_cs = trans ? M : 1;  // A stored [M, K] or [K, M]
                const auto want = gemm_ref(M, N, K, A, a_rs, a_cs, B, C0);
                std::vector<float> C = C0;
                gemm_acc(M, N, K, A.data(), a_rs, a_cs, B.data(), N, C.data(), N, nullptr);
                for (size_t i = 0; i < C.size(); ++i)
                    ASSERT_NEAR(C[i], want[i], 1e-4 * (1 + std::fabs(want[i])))
                        << cpu_level_name(lvl) << " " << M << "x" << N << "x" << K << (trans ? " A^T" : "") << " at "
                        << i;
            }
        }
    }
    cpu_features_reset();
}

TEST(train_kernels, gemm_result_does_not_depend_on_threads) {
    std::mt19937 rng(12);
    const int64_t M = 61, N = 203, K = 300;
    const auto A = randv(static_cast<size_t>(M * K), rng);
    const auto B = randv(static_cast<size_t>(K * N), rng);
    std::vector<float> one(static_cast<size_t>(M * N), 0.5f);
    gemm_acc(M, N, K, A.data(), K, 1, B.data(), N, one.data(), N, nullptr);
    for (int nth : {2, 3}) {
        thread_pool pool(nth);
        std::vector<float> many(static_cast<size_t>(M * N), 0.5f);
        gemm_acc(M, N, K, A.data(), K, 1, B.data(), N, many.data(), N, &pool);
        ASSERT_EQ(one, many) << nth << " threads";
    }
}

TEST(train_kernels, training_step_is_bit_identical_across_thread_counts) {
    tiny_lm_config c;
    c.vocab = 64;
    c.n_embd = 96;
    c.n_ff = 160;
    c.n_layer = 2;
    c.n_head = 6;
    c.n_head_kv = 2;
    std::vector<std::vector<float>> ref;
    for (int nth : {1, 3}) {
        set_threads(nth);
        tiny_lm m(c);
        m.init_random(7, 0.1f);
        adamw opt(m.params(), adamw_params{});
        for (int s = 0; s < 2; ++s) {
            opt.zero_grad();
            std::vector<int32_t> ids(70);
            for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 5 + s * 3) % 64);
            backward(m.forward_loss(ids));
            opt.step(1e-2f);
        }
        std::vector<std::vector<float>> got;
        for (const auto & p : m.params()) got.push_back(p->data);
        if (ref.empty())
            ref = got;
        else
            for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(ref[i], got[i]) << "parameter " << i;
    }
    set_threads(1);
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
