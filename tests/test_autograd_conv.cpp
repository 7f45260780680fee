// Gradient checks of the convolution, normalisation, resampling, pooling, shape and cross-attention ops
// (train/autograd_conv.h) against central finite differences, plus forward checks against direct formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "train/autograd_conv.h"

#include "grad_check.h"

using namespace spider;
using namespace spider::train;

namespace {
value rand_param(std::vector<int64_t> shape, std::mt19937 & rng) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return parameter(std::move(shape), randv(static_cast<size_t>(n), rng));
}
}  // namespace

TEST(autograd_conv, conv1d) {
    std::mt19937 rng(11);
    value x = rand_param({2, 4, 7}, rng), W = rand_param({6, 2, 3}, rng), b = rand_param({6}, rng);
    conv_opts o;
    o.stride = 2;
    o.padding = 1;
    o.groups = 2;
    grad_check("conv1d", {x, W, b}, [&] { return conv1d(x, W, b, o); });
    EXPECT_EQ(conv1d(x, W, b, o)->shape, (std::vector<int64_t>{2, 6, 4}));
    conv_opts d;
    d.dilation = 2;
    value Wd = rand_param({3, 4, 3}, rng);
    grad_check("conv1d dilated", {x, Wd}, [&] { return conv1d(x, Wd, nullptr, d); });
}

TEST(autograd_conv, conv1d_forward_matches_direct_sum) {
    // One output by hand: y[0, 0, 1] with stride 1, padding 1 reads x[:, 0..2].
    value x = constant({1, 1, 3}, {1, 2, 3});
    value W = constant({1, 1, 3}, {0.5f, -1, 2});
    value y = conv1d(x, W, constant({1}, {0.25f}), conv_opts{1, 1, 1, 1, 0});
    ASSERT_EQ(y->shape, (std::vector<int64_t>{1, 1, 3}));
    EXPECT_FLOAT_EQ(y->data[0], 0.25f + (-1) * 1 + 2 * 2);
    EXPECT_FLOAT_EQ(y->data[1], 0.25f + 0.5f * 1 - 2 + 2 * 3);
    EXPECT_FLOAT_EQ(y->data[2], 0.25f + 0.5f * 2 - 3);
}

TEST(autograd_conv, conv2d_and_transposed) {
    std::mt19937 rng(12);
    value x = rand_param({1, 3, 5, 4}, rng), W = rand_param({4, 3, 3, 3}, rng), b = rand_param({4}, rng);
    conv_opts o;
    o.padding = 1;
    grad_check("conv2d", {x, W, b}, [&] { return conv2d(x, W, b, o); });
    conv_opts s2;
    s2.stride = 2;
    grad_check("conv2d stride 2", {x, W}, [&] { return conv2d(x, W, nullptr, s2); });
    value Wt = rand_param({3, 2, 3, 3}, rng), bt = rand_param({2}, rng);
    conv_opts t;
    t.stride = 2;
    t.padding = 1;
    t.output_padding = 1;
    grad_check("conv_transpose2d", {x, Wt, bt}, [&] { return conv_transpose2d(x, Wt, bt, t); });
    EXPECT_EQ(conv_transpose2d(x, Wt, bt, t)->shape, (std::vector<int64_t>{1, 2, 10, 8}));
}

TEST(autograd_conv, transposed_conv_is_the_adjoint_of_conv) {
    // <conv(x), y> == <x, conv_transpose(y)> for the same weight and no bias: checks the forward of the transposed
    // convolution independently of its backward.
    std::mt19937 rng(13);
    value x = rand_param({1, 3, 6, 6}, rng), W = rand_param({2, 3, 3, 3}, rng);
    conv_opts o;
    o.stride = 2;
    o.padding = 1;
    value cx = conv2d(x, W, nullptr, o);
    value y = rand_param(cx->shape, rng);
    conv_opts t = o;
    t.output_padding = 1;  // recovers the 6x6 input size from 3x3
    value ty = conv_transpose2d(y, W, nullptr, t);
    ASSERT_EQ(ty->shape, x->shape);
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < cx->data.size(); ++i) lhs += cx->data[i] * y->data[i];
    for (size_t i = 0; i < x->data.size(); ++i) rhs += x->data[i] * ty->data[i];
    EXPECT_NEAR(lhs, rhs, 1e-4 * std::fabs(lhs) + 1e-5);
}

TEST(autograd_conv, conv3d_and_2plus1d) {
    std::mt19937 rng(14);
    value x = rand_param({1, 2, 3, 4, 4}, rng), W = rand_param({2, 2, 3, 3, 3}, rng), b = rand_param({2}, rng);
    conv_opts o;
    o.padding = 1;
    grad_check("conv3d", {x, W, b}, [&] { return conv3d(x, W, b, o); });
    value Ws = rand_param({3, 2, 3, 3}, rng), bs = rand_param({3}, rng);
    value Wt = rand_param({2, 3, 3}, rng), bt = rand_param({2}, rng);
    grad_check("conv2plus1d", {x, Ws, bs, Wt, bt}, [&] { return conv2plus1d(x, Ws, bs, Wt, bt); });
    EXPECT_EQ(conv2plus1d(x, Ws, bs, Wt, bt)->shape, (std::vector<int64_t>{1, 2, 3, 4, 4}));
}

TEST(autograd_conv, group_norm) {
    std::mt19937 rng(15);
    value x = rand_param({2, 4, 3, 2}, rng), w = rand_param({4}, rng), b = rand_param({4}, rng);
    grad_check("group_norm", {x, w, b}, [&] { return group_norm(x, 2, w, b, 1e-5f); });
    // Each (sample, group) is normalised: mean 0, variance 1 without the affine part.
    value y = group_norm(x, 2, nullptr, nullptr, 1e-5f);
    for (int g = 0; g < 4; ++g) {
        double m = 0, v = 0;
        for (int i = 0; i < 12; ++i) m += y->data[g * 12 + i];
        m /= 12;
        for (int i = 0; i < 12; ++i) v += (y->data[g * 12 + i] - m) * (y->data[g * 12 + i] - m);
        EXPECT_NEAR(m, 0.0, 1e-5);
        EXPECT_NEAR(v / 12, 1.0, 1e-3);
    }
}

TEST(autograd_conv, resampling_and_pooling) {
    std::mt19937 rng(16);
    value x = rand_param({1, 2, 4, 6}, rng);
    grad_check("upsample_nearest2d", {x}, [&] { return upsample_nearest2d(x, 2); });
    grad_check("avg_pool2d", {x}, [&] { return avg_pool2d(x, 2, 2); });
    grad_check("max_pool2d", {x}, [&] { return max_pool2d(x, 2, 2); });
    grad_check("avg_pool2d overlapping", {x}, [&] { return avg_pool2d(x, 3, 1); });
    value m = max_pool2d(constant({1, 1, 2, 2}, {1, 4, 3, 2}), 2, 2);
    EXPECT_FLOAT_EQ(m->data[0], 4);
}

TEST(autograd_conv, shape_ops) {
    std::mt19937 rng(17);
    value a = rand_param({2, 3, 4}, rng), b = rand_param({2, 1, 4}, rng);
    grad_check("reshape", {a}, [&] { return reshape(a, {6, 4}); });
    grad_check("permute", {a}, [&] { return permute(a, {2, 0, 1}); });
    grad_check("concat", {a, b}, [&] { return concat({a, b}, 1); });
    grad_check("slice", {a}, [&] { return slice(a, 2, 1, 2); });
    grad_check("mean_rows", {a}, [&] { return mean_rows(reshape(a, {6, 4})); });
    value p = permute(a, {2, 0, 1});
    EXPECT_EQ(p->shape, (std::vector<int64_t>{4, 2, 3}));
    EXPECT_FLOAT_EQ(p->data[(3 * 2 + 1) * 3 + 2], a->data[(1 * 3 + 2) * 4 + 3]);  // p[3,1,2] = a[1,2,3]
    value c = concat({a, b}, 1);
    EXPECT_FLOAT_EQ(c->data[(1 * 4 + 3) * 4 + 2], b->data[1 * 4 + 2]);  // c[1,3,2] = b[1,0,2]
}

TEST(autograd_conv, elementwise_extras_and_cross_attention) {
    std::mt19937 rng(18);
    value x = rand_param({3, 4}, rng), s = rand_param({1}, rng);
    value pos = parameter({3, 4}, randv(12, rng, 0.5f, 2.0f));
    grad_check("sigmoid", {x}, [&] { return sigmoid(x); });
    grad_check("exponential", {x}, [&] { return exponential(x); });
    grad_check(
        "reciprocal", {pos}, [&] { return reciprocal(pos); }, 1e-3f);
    grad_check("scale_by", {x, s}, [&] { return scale_by(x, s); });
    value q = rand_param({3, 8}, rng), k = rand_param({5, 8}, rng), v = rand_param({5, 8}, rng);
    grad_check("cross_attention", {q, k, v}, [&] { return cross_attention(q, k, v, 2, 0.5f); });
    // With nq == nk it equals the self-attention op (non-causal, no GQA).
    value q5 = rand_param({5, 8}, rng);
    value a = cross_attention(q5, k, v, 2, 0.5f), b = attention(q5, k, v, 2, 2, 0.5f, false);
    for (size_t i = 0; i < a->data.size(); ++i) EXPECT_NEAR(a->data[i], b->data[i], 1e-6);
}

TEST(autograd_conv, bad_shapes_throw_naming_the_op) {
    std::mt19937 rng(19);
    value x = rand_param({1, 3, 5}, rng), W = rand_param({2, 2, 3}, rng);
    try {
        conv1d(x, W, nullptr);
        FAIL() << "no throw";
    } catch (const std::invalid_argument & e) {
        EXPECT_NE(std::string(e.what()).find("[conv1d]"), std::string::npos) << e.what();
    }
    EXPECT_THROW(reshape(x, {4, 4}), std::invalid_argument);
    EXPECT_THROW(group_norm(x, 2, nullptr, nullptr, 1e-5f), std::invalid_argument);
}

TEST(autograd_conv, forward_and_gradients_match_pytorch) {
    // Goldens from tests/reference/make_conv_goldens.py (torch 2.15.0, float64): PyTorch's own ops on the same
    // inputs, so the layouts and the stride / padding / dilation / groups / output_padding conventions are PyTorch's.
    std::ifstream f(std::string(SPIDER_SOURCE_DIR) + "/tests/data/train/conv_goldens.json");
    ASSERT_TRUE(f.good()) << "missing tests/data/train/conv_goldens.json";
    const auto cases = nlohmann::json::parse(f);
    ASSERT_EQ(cases.size(), 9u);
    for (const auto & c : cases) {
        const std::string name = c["name"];
        std::vector<value> in;
        for (const auto & t : c["inputs"])
            in.push_back(parameter(t["shape"].get<std::vector<int64_t>>(), t["data"].get<std::vector<float>>()));
        const auto & o = c["opts"];
        conv_opts co;
        if (o.contains("stride")) co.stride = o["stride"];
        if (o.contains("padding")) co.padding = o["padding"];
        if (o.contains("dilation")) co.dilation = o["dilation"];
        if (o.contains("groups")) co.groups = o["groups"];
        if (o.contains("output_padding")) co.output_padding = o["output_padding"];
        value y;
        if (name.rfind("conv1d", 0) == 0)
            y = conv1d(in[0], in[1], in[2], co);
        else if (name == "conv2d")
            y = conv2d(in[0], in[1], in[2], co);
        else if (name == "conv3d")
            y = conv3d(in[0], in[1], in[2], co);
        else if (name == "conv_transpose2d")
            y = conv_transpose2d(in[0], in[1], in[2], co);
        else if (name == "group_norm")
            y = group_norm(in[0], o["num_groups"], in[1], in[2], o["eps"].get<float>());
        else if (name == "avg_pool2d")
            y = avg_pool2d(in[0], o["kernel_size"], o["stride"]);
        else if (name == "max_pool2d")
            y = max_pool2d(in[0], o["kernel_size"], o["stride"]);
        else if (name == "upsample_nearest2d")
            y = upsample_nearest2d(in[0], o["scale_factor"]);
        else
            FAIL() << "unknown case " << name;
        ASSERT_EQ(y->shape, c["out_shape"].get<std::vector<int64_t>>()) << name;
        const auto want = c["out"].get<std::vector<double>>();
        for (size_t i = 0; i < want.size(); ++i)
            ASSERT_NEAR(y->data[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << name << " out " << i;
        backward(sum(mul(y, constant(y->shape, c["r"].get<std::vector<float>>()))));
        for (size_t k = 0; k < in.size(); ++k) {
            const auto gw = c["inputs"][k]["grad"].get<std::vector<double>>();
            for (size_t i = 0; i < gw.size(); ++i)
                ASSERT_NEAR(in[k]->grad[i], gw[i], 1e-4 * (1 + std::fabs(gw[i]))) << name << " grad " << k << " " << i;
        }
    }
}
