// Checkpoints carry the whole optimiser state: a run saved and resumed (fresh model and optimiser objects loaded
// from the file) ends with exactly the weights of an uninterrupted run, for AdamW and for SGD with momentum (whose
// buffer was once missing from checkpoints: resuming restarted it from zero and the runs diverged).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <string>

#include "train/checkpoint.h"
#include "train/tiny_lm.h"

using namespace spider::train;

namespace {

tiny_lm_config small_config() {
    tiny_lm_config c;
    c.vocab = 32;
    c.n_embd = 16;
    c.n_ff = 24;
    c.n_layer = 1;
    c.n_head = 2;
    c.n_head_kv = 1;
    return c;
}

std::vector<int32_t> batch_ids(int64_t step) {
    std::vector<int32_t> ids(12);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((step * 7 + i * 3) % 32);
    return ids;
}

template <typename Opt>
void train_steps(tiny_lm & m, Opt & opt, int64_t from, int64_t to) {
    for (int64_t s = from; s < to; ++s) {
        opt.zero_grad();
        backward(m.forward_loss(batch_ids(s)));
        opt.step(0.05f);
    }
}

std::string tmp_path(const char * name) {
    return ::testing::TempDir() + "/" + name + std::to_string(::getpid()) + ".gguf";
}

}  // namespace

TEST(train_checkpoint, sgd_momentum_resume_is_bit_identical) {
    sgd_params sp;
    sp.momentum = 0.9f;
    tiny_lm full(small_config());
    full.init_random(3);
    sgd opt_full(full.params(), sp);
    train_steps(full, opt_full, 0, 8);

    tiny_lm first(small_config());
    first.init_random(3);
    sgd opt_first(first.params(), sp);
    train_steps(first, opt_first, 0, 4);
    adamw unused(first.params(), adamw_params{});
    const std::string path = tmp_path("sgd_ckpt");
    std::string err;
    ASSERT_TRUE(checkpoint_save(path, first.named_params(), unused, {4, "{}"}, &err, &opt_first)) << err;

    tiny_lm resumed(small_config());
    resumed.init_random(99);  // different weights: the checkpoint must overwrite all of them
    sgd opt_resumed(resumed.params(), sp);
    adamw unused2(resumed.params(), adamw_params{});
    checkpoint_meta meta;
    ASSERT_TRUE(checkpoint_load(path, resumed.named_params(), &unused2, &meta, &err, &opt_resumed)) << err;
    EXPECT_EQ(meta.step, 4);
    EXPECT_TRUE(opt_resumed.started());
    train_steps(resumed, opt_resumed, 4, 8);

    const auto a = full.named_params(), b = resumed.named_params();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i].second->data, b[i].second->data) << a[i].first;

    // A checkpoint written without the SGD state cannot silently resume an SGD run.
    const std::string path2 = tmp_path("adam_ckpt");
    ASSERT_TRUE(checkpoint_save(path2, first.named_params(), unused, {4, "{}"}, &err));
    EXPECT_FALSE(checkpoint_load(path2, resumed.named_params(), &unused2, &meta, &err, &opt_resumed));
    EXPECT_NE(err.find("SGD momentum"), std::string::npos) << err;
    std::remove(path.c_str());
    std::remove(path2.c_str());
}

TEST(train_checkpoint, adamw_resume_is_bit_identical) {
    adamw_params ap;
    ap.lr = 0.01f;
    tiny_lm full(small_config());
    full.init_random(5);
    adamw opt_full(full.params(), ap);
    train_steps(full, opt_full, 0, 6);

    tiny_lm first(small_config());
    first.init_random(5);
    adamw opt_first(first.params(), ap);
    train_steps(first, opt_first, 0, 3);
    const std::string path = tmp_path("adamw_ckpt");
    std::string err;
    ASSERT_TRUE(checkpoint_save(path, first.named_params(), opt_first, {3, "{}"}, &err)) << err;
    tiny_lm resumed(small_config());
    resumed.init_random(77);
    adamw opt_resumed(resumed.params(), ap);
    ASSERT_TRUE(checkpoint_load(path, resumed.named_params(), &opt_resumed, nullptr, &err)) << err;
    train_steps(resumed, opt_resumed, 3, 6);
    const auto a = full.named_params(), b = resumed.named_params();
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i].second->data, b[i].second->data) << a[i].first;
    std::remove(path.c_str());
}
