// LoRA adapters on frozen (quantized) weights and trainable new-token rows.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>

#include "core/quants.h"
#include "grad_check.h"
#include "train/lora.h"
#include "train/optim.h"

using namespace spider;
using namespace spider::train;

namespace {

// A frozen weight [out, in] stored as `type` (rows quantized one by one).
struct frozen_weight {
    std::vector<uint8_t> bytes;
    tensor t;
    frozen_weight(dtype type, const std::vector<float> & w, int64_t in, int64_t out) {
        const size_t rb = dtype_row_bytes(type, in);
        bytes.resize(rb * out);
        for (int64_t o = 0; o < out; ++o) EXPECT_TRUE(quantize_row(type, w.data() + o * in, bytes.data() + o * rb, in));
        t = make_tensor(type, bytes.data(), in, out);
    }
};

}  // namespace

TEST(lora, starts_equal_to_base_and_gradients_reach_only_the_adapter) {
    std::mt19937 rng(1);
    const int64_t in = 32, out = 6, r = 4;
    frozen_weight W(DTYPE_F32, randv(in * out, rng), in, out);
    lora_adapter a = lora_create(in, out, r, 21.0f, 5);
    value x = parameter({3, in}, randv(3 * in, rng));
    value y = lora_linear(x, W.t, a);
    value base = linear_frozen(x, W.t);
    for (size_t i = 0; i < y->data.size(); ++i) EXPECT_EQ(y->data[i], base->data[i]);  // B = 0 at start

    // Make B non-zero so every path carries gradient, then check A, B and x against finite differences.
    for (auto & v : a.B->data) v = 0.1f;
    grad_check("lora_linear", {x, a.A, a.B}, [&] { return lora_linear(x, W.t, a); });
}

TEST(lora, fits_a_target_on_a_quantized_base_and_merges) {
    std::mt19937 rng(2);
    const int64_t in = 64, out = 8, r = 4;
    const auto wf = randv(in * out, rng);
    frozen_weight Wq(DTYPE_Q8_0, wf, in, out);
    // Target: the base layer plus a rank-1 change that the adapter must learn.
    std::vector<float> delta(in * out);
    const auto u = randv(out, rng), v = randv(in, rng);
    for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) delta[o * in + i] = 0.5f * u[o] * v[i];
    value X = constant({16, in}, randv(16 * in, rng));
    value target = add(linear_frozen(X, Wq.t), linear(X, constant({out, in}, delta), nullptr));

    lora_adapter a = lora_create(in, out, r, 8.0f, 3);
    adamw_params ap;
    ap.beta2 = 0.999f;
    adamw opt({a.A, a.B}, ap);
    float first = 0, last = 0;
    for (int step = 0; step < 300; ++step) {
        opt.zero_grad();
        value loss = mse(lora_linear(X, Wq.t, a), target);
        backward(loss);
        opt.step(1e-2f);
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
    }
    EXPECT_LT(last, first * 0.01f) << first << " -> " << last;

    // Merging gives one weight that reproduces the adapted layer.
    std::vector<float> merged;
    std::string err;
    ASSERT_TRUE(lora_merge(Wq.t, a, &merged, &err)) << err;
    value via_merge = linear(X, constant({out, in}, merged), nullptr);
    // The same layer in float: dequantized base + scaled low-rank path (the frozen kernel would add 8-bit
    // activation rounding, which is not what the merge is about).
    std::vector<float> deq(in * out);
    for (int64_t o = 0; o < out; ++o) {
        const int32_t id = static_cast<int32_t>(o);
        get_rows(Wq.t, &id, 1, deq.data() + o * in);
    }
    value via_adapter = add(linear(X, constant({out, in}, deq), nullptr),
                            scale(linear(linear(X, a.A, nullptr), a.B, nullptr), a.scaling()));
    for (size_t i = 0; i < via_merge->data.size(); ++i)
        ASSERT_NEAR(via_merge->data[i], via_adapter->data[i], 1e-4) << i;
}

TEST(lora, save_load_round_trip_and_bad_files) {
    std::map<std::string, lora_adapter> ads;
    ads["blk.0.attn_q.weight"] = lora_create(16, 8, 2, 21.0f, 1);
    ads["blk.0.attn_v.weight"] = lora_create(16, 4, 2, 21.0f, 2);
    for (auto & v : ads["blk.0.attn_v.weight"].B->data) v = 0.25f;
    const std::string path =
        (std::filesystem::temp_directory_path() / ("spider_lora_" + std::to_string(getpid()) + ".gguf")).string();
    std::string err;
    ASSERT_TRUE(lora_save(path, ads, &err)) << err;
    std::map<std::string, lora_adapter> back;
    ASSERT_TRUE(lora_load(path, &back, &err)) << err;
    ASSERT_EQ(back.size(), 2u);
    EXPECT_EQ(back["blk.0.attn_q.weight"].A->data, ads["blk.0.attn_q.weight"].A->data);
    EXPECT_EQ(back["blk.0.attn_v.weight"].B->data, ads["blk.0.attn_v.weight"].B->data);
    EXPECT_EQ(back["blk.0.attn_v.weight"].B->shape, (std::vector<int64_t>{4, 2}));
    EXPECT_FLOAT_EQ(back["blk.0.attn_q.weight"].alpha, 21.0f);

    // A file that is not an adapter.
    {
        FILE * f = std::fopen(path.c_str(), "wb");
        std::fputs("not a gguf file at all", f);
        std::fclose(f);
    }
    EXPECT_FALSE(lora_load(path, &back, &err));
    EXPECT_FALSE(err.empty());
    std::filesystem::remove(path);
}

TEST(lora, new_token_rows_train_while_old_rows_stay_fixed) {
    std::mt19937 rng(4);
    const int64_t V = 10, d = 8, n_new = 3;
    frozen_weight table(DTYPE_F32, randv(V * d, rng), d, V);
    value extra = parameter({n_new, d}, randv(n_new * d, rng));
    const std::vector<int32_t> ids = {1, 11, 4, 12, 10};
    value e = embedding_extended(table.t, extra, ids);
    std::vector<float> row(d);
    int32_t one = 1;
    get_rows(table.t, &one, 1, row.data());
    for (int64_t i = 0; i < d; ++i) EXPECT_EQ(e->data[i], row[i]);
    for (int64_t i = 0; i < d; ++i) EXPECT_EQ(e->data[d + i], extra->data[1 * d + i]);
    grad_check("embedding_extended", {extra}, [&] { return embedding_extended(table.t, extra, ids); });

    value x = parameter({2, d}, randv(2 * d, rng));
    value y = lm_head_extended(x, table.t, extra);
    EXPECT_EQ(y->shape, (std::vector<int64_t>{2, V + n_new}));
    grad_check("lm_head_extended", {x, extra}, [&] { return lm_head_extended(x, table.t, extra); });
    EXPECT_THROW(embedding_extended(table.t, extra, {V + n_new}), std::invalid_argument);
}
