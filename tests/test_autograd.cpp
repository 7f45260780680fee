// Gradient checks: every autograd op's backward against central finite differences of its forward, on random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "core/quants.h"
#include "train/autograd.h"

#include "grad_check.h"

using namespace spider;
using namespace spider::train;

TEST(autograd, elementwise_and_reductions) {
    std::mt19937 rng(1);
    value a = parameter({3, 5}, randv(15, rng));
    value b = parameter({3, 5}, randv(15, rng));
    value w = parameter({5}, randv(5, rng));
    grad_check("add", {a, b}, [&] { return add(a, b); });
    grad_check("sub", {a, b}, [&] { return sub(a, b); });
    grad_check("mul", {a, b}, [&] { return mul(a, b); });
    grad_check("scale", {a}, [&] { return scale(a, -1.7f); });
    grad_check("add_row", {a, w}, [&] { return add_row(a, w); });
    grad_check("mul_row", {a, w}, [&] { return mul_row(a, w); });
    grad_check("mean", {a}, [&] { return mean(square(a)); });
    grad_check("transpose", {a}, [&] { return transpose(a); });
}

TEST(autograd, linear_and_matmul) {
    std::mt19937 rng(2);
    value x = parameter({4, 6}, randv(24, rng));
    value W = parameter({3, 6}, randv(18, rng));
    value b = parameter({3}, randv(3, rng));
    grad_check("linear", {x, W, b}, [&] { return linear(x, W, b); });
    value B = parameter({6, 2}, randv(12, rng));
    grad_check("matmul", {x, B}, [&] { return matmul(x, B); });
}

TEST(autograd, linear_frozen_quantized_weight) {
    std::mt19937 rng(3);
    const int64_t in = 64, out = 5;
    auto wf = randv(static_cast<size_t>(in * out), rng);
    std::vector<uint8_t> q(dtype_row_bytes(DTYPE_Q8_0, in) * out);
    for (int64_t o = 0; o < out; ++o)
        ASSERT_TRUE(quantize_row(DTYPE_Q8_0, wf.data() + o * in, q.data() + o * dtype_row_bytes(DTYPE_Q8_0, in), in));
    tensor W = make_tensor(DTYPE_Q8_0, q.data(), in, out);
    value x = parameter({2, in}, randv(static_cast<size_t>(2 * in), rng));
    // The optimised forward quantizes x to 8 bits, which drowns a finite difference; instead compare with linear()
    // over the dequantized weight, whose gradient is finite-difference checked above.
    std::vector<float> deq(static_cast<size_t>(in * out));
    for (int64_t o = 0; o < out; ++o)
        ASSERT_TRUE(
            dequantize_row(DTYPE_Q8_0, q.data() + o * dtype_row_bytes(DTYPE_Q8_0, in), deq.data() + o * in, in));
    value Wd = constant({out, in}, deq);
    value r = constant({2, out}, randv(static_cast<size_t>(2 * out), rng));
    backward(sum(mul(linear_frozen(x, W), r)));
    const std::vector<float> g_frozen = x->grad;
    x->zero_grad();
    backward(sum(mul(linear(x, Wd, nullptr), r)));
    for (size_t i = 0; i < g_frozen.size(); ++i) ASSERT_NEAR(g_frozen[i], x->grad[i], 1e-5) << i;
    EXPECT_TRUE(Wd->grad.empty());  // constants never get gradients
}

TEST(autograd, activations_and_norms) {
    std::mt19937 rng(4);
    value x = parameter({3, 8}, randv(24, rng, -2, 2));
    value g = parameter({3, 8}, randv(24, rng, -2, 2));
    value w = parameter({8}, randv(8, rng));
    value b = parameter({8}, randv(8, rng));
    for (act_type a : {ACT_GELU_TANH, ACT_GELU_ERF, ACT_SILU})
        grad_check("activation " + std::to_string(a), {x}, [&] { return activation(x, a); });
    grad_check("glu", {x, g}, [&] { return glu(g, x, ACT_SILU); });
    grad_check("softmax", {x}, [&] { return softmax(x); });
    grad_check("log_softmax", {x}, [&] { return log_softmax(x); });
    grad_check("rms_norm", {x, w}, [&] { return rms_norm(x, w, 1e-6f); });
    grad_check("layer_norm", {x, w, b}, [&] { return layer_norm(x, w, b, 1e-5f); });
}

TEST(autograd, embedding_rope_attention) {
    std::mt19937 rng(5);
    value table = parameter({7, 4}, randv(28, rng));
    grad_check("embedding", {table}, [&] { return embedding(table, {3, 0, 3, 6}); });

    const int64_t n = 5, n_head = 4, n_head_kv = 2, hd = 4;
    value x = parameter({n, n_head * hd}, randv(static_cast<size_t>(n * n_head * hd), rng));
    std::vector<int32_t> pos = {0, 1, 2, 3, 4};
    for (rope_mode m : {ROPE_MODE_NORMAL, ROPE_MODE_NEOX})
        grad_check("rope", {x}, [&] { return rope(x, pos, n_head, hd, 10000.0f, m); });

    value q = parameter({n, n_head * hd}, randv(static_cast<size_t>(n * n_head * hd), rng));
    value k = parameter({n, n_head_kv * hd}, randv(static_cast<size_t>(n * n_head_kv * hd), rng));
    value v = parameter({n, n_head_kv * hd}, randv(static_cast<size_t>(n * n_head_kv * hd), rng));
    for (bool causal : {true, false})
        grad_check("attention", {q, k, v}, [&] { return attention(q, k, v, n_head, n_head_kv, 0.5f, causal); });
}

TEST(autograd, losses) {
    std::mt19937 rng(6);
    value logits = parameter({4, 6}, randv(24, rng, -2, 2));
    grad_check("cross_entropy", {logits}, [&] { return cross_entropy(logits, {2, -1, 5, 0}); });
    value a = parameter({2, 3}, randv(6, rng));
    value t = constant({2, 3}, randv(6, rng));
    grad_check("mse", {a}, [&] { return mse(a, t); });
    value tb = constant({2, 3}, {1, 0, 1, 0, 0, 1});
    grad_check("bce", {a}, [&] { return bce_with_logits(a, tb); });
    grad_check("dice", {a}, [&] { return dice_loss(a, tb); });
}

TEST(autograd, cross_entropy_value_and_ignored_rows) {
    // Uniform logits over 4 classes: loss = log 4 for each counted row; ignored rows get no gradient.
    value logits = parameter({2, 4}, std::vector<float>(8, 0.5f));
    value L = cross_entropy(logits, {1, -1});
    EXPECT_NEAR(L->data[0], std::log(4.0f), 1e-6);
    backward(L);
    for (int i = 4; i < 8; ++i) EXPECT_EQ(logits->grad[i], 0.0f);
    EXPECT_NEAR(logits->grad[1], 0.25f - 1.0f, 1e-6);
}

TEST(autograd, shape_errors_name_the_op) {
    value a = parameter({2, 3}, std::vector<float>(6, 1));
    value b = parameter({3, 2}, std::vector<float>(6, 1));
    try {
        add(a, b);
        FAIL() << "expected a shape error";
    } catch (const std::invalid_argument & e) {
        EXPECT_NE(std::string(e.what()).find("[add]"), std::string::npos);
    }
    EXPECT_THROW(embedding(a, {5}), std::invalid_argument);
}
