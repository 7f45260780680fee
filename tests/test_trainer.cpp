// The training driver: config validation, checkpoint round trips and mismatches, resume equivalence, NaN handling.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>

#include "train/checkpoint.h"
#include "train/trainer.h"

using namespace spider::train;
namespace fs = std::filesystem;

namespace {

std::string corpus() {
    return std::string(SPIDER_SOURCE_DIR) + "/tests/data/train/corpus.txt";
}

std::string base_config(const std::string & dir, int steps, int every, float lr = 3e-3f) {
    return R"({"stage": "lm_scratch", "steps": )" + std::to_string(steps) +
           R"(, "batch": 4, "grad_accum": 2, "clip": 1.0, "seed": 7, "log_every": 5,
      "model": {"vocab": 256, "n_embd": 32, "n_ff": 64, "n_layer": 2, "n_head": 4, "n_head_kv": 2},
      "data": {"path": ")" +
           corpus() + R"(", "seq_len": 24},
      "optimizer": {"kind": "adamw", "lr": )" +
           std::to_string(lr) + R"(, "betas": [0.9, 0.95]},
      "schedule": {"kind": "cosine", "warmup": 3},
      "checkpoint": {"dir": ")" +
           dir + R"(", "every": )" + std::to_string(every) + "}}";
}

std::string tmpdir(const std::string & name) {
    fs::path p = fs::temp_directory_path() / ("spider_test_trainer_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    return p.string();
}

std::vector<float> final_params(const std::string & dir, const train_config & cfg) {
    tiny_lm m(cfg.model);
    m.init_random(0);
    std::string err;
    checkpoint_meta meta;
    EXPECT_TRUE(checkpoint_load(dir + "/checkpoint.gguf", m.named_params(), nullptr, &meta, &err)) << err;
    std::vector<float> all;
    for (auto & p : m.params()) all.insert(all.end(), p->data.begin(), p->data.end());
    return all;
}

}  // namespace

TEST(trainer, config_errors_name_the_field) {
    train_config c;
    std::string err;
    EXPECT_FALSE(train_config_parse("{not json", &c, &err));
    EXPECT_NE(err.find("not valid JSON"), std::string::npos) << err;
    EXPECT_FALSE(train_config_parse(R"({"steps": 3, "stepz": 4, "data": {"path": "x"}})", &c, &err));
    EXPECT_NE(err.find("unknown field 'stepz'"), std::string::npos) << err;
    EXPECT_FALSE(train_config_parse(R"({"data": {"path": "x", "seqlen": 4}})", &c, &err));
    EXPECT_NE(err.find("unknown field 'data.seqlen'"), std::string::npos) << err;
    EXPECT_FALSE(train_config_parse(R"({"steps": "many", "data": {"path": "x"}})", &c, &err));
    EXPECT_NE(err.find("'steps' has the wrong type"), std::string::npos) << err;
    EXPECT_FALSE(train_config_parse(R"({"steps": 0, "data": {"path": "x"}})", &c, &err));
    EXPECT_NE(err.find("'steps' must be > 0"), std::string::npos) << err;
    EXPECT_FALSE(train_config_parse(R"({"stage": "warp", "data": {"path": "x"}})", &c, &err));
    EXPECT_NE(err.find("stage 'warp'"), std::string::npos) << err;
    EXPECT_TRUE(train_config_parse(base_config("/tmp/x", 5, 5), &c, &err)) << err;
}

TEST(trainer, loss_falls_and_resume_equals_uninterrupted) {
    auto c = comm_create(nullptr, nullptr);
    std::string err;
    const std::string a = tmpdir("a"), b = tmpdir("b");
    train_config full, part, rest;
    ASSERT_TRUE(train_config_parse(base_config(a, 30, 10), &full, &err)) << err;
    train_result r_full;
    ASSERT_TRUE(train_run(full, *c, false, true, &r_full, &err)) << err;
    EXPECT_EQ(r_full.steps_done, 30);

    // The same run stopped after 12 steps (checkpoint at 10 and at the end, 12), then resumed to 30.
    ASSERT_TRUE(train_config_parse(base_config(b, 30, 10), &rest, &err)) << err;
    part = rest;
    part.steps = 12;  // schedule total stays 30: it is the same run, cut short
    ASSERT_TRUE(train_run(part, *c, false, true, nullptr, &err)) << err;
    train_result r_rest;
    ASSERT_TRUE(train_run(rest, *c, true, true, &r_rest, &err)) << err;
    EXPECT_EQ(r_rest.steps_done, 30);
    EXPECT_EQ(final_params(a, full), final_params(b, rest));  // bit-identical
    EXPECT_EQ(r_full.last_loss, r_rest.last_loss);
    fs::remove_all(a);
    fs::remove_all(b);
}

TEST(trainer, training_reduces_loss) {
    auto c = comm_create(nullptr, nullptr);
    std::string err;
    const std::string d = tmpdir("fall");
    train_config cfg;
    ASSERT_TRUE(train_config_parse(base_config(d, 1, 1), &cfg, &err)) << err;
    train_result first;
    ASSERT_TRUE(train_run(cfg, *c, false, true, &first, &err)) << err;
    cfg.steps = 60;
    cfg.schedule.total = 60;
    train_result last;
    ASSERT_TRUE(train_run(cfg, *c, false, true, &last, &err)) << err;
    EXPECT_LT(last.last_loss, first.last_loss * 0.75f) << first.last_loss << " -> " << last.last_loss;
    fs::remove_all(d);
}

TEST(trainer, checkpoint_shape_mismatch_is_reported) {
    auto c = comm_create(nullptr, nullptr);
    std::string err;
    const std::string d = tmpdir("shape");
    train_config cfg;
    ASSERT_TRUE(train_config_parse(base_config(d, 2, 1), &cfg, &err)) << err;
    ASSERT_TRUE(train_run(cfg, *c, false, true, nullptr, &err)) << err;
    cfg.model.n_ff = 48;  // a different config over the same checkpoint
    EXPECT_FALSE(train_run(cfg, *c, true, true, nullptr, &err));
    EXPECT_NE(err.find("shape mismatch"), std::string::npos) << err;
    EXPECT_NE(err.find("mlp"), std::string::npos) << err;
    fs::remove_all(d);
}

TEST(trainer, non_finite_loss_stops_and_keeps_last_good_checkpoint) {
    auto c = comm_create(nullptr, nullptr);
    std::string err;
    const std::string d = tmpdir("nan");
    train_config cfg;
    ASSERT_TRUE(train_config_parse(base_config(d, 3, 1), &cfg, &err)) << err;
    ASSERT_TRUE(train_run(cfg, *c, false, true, nullptr, &err)) << err;
    const auto good = final_params(d, cfg);
    // An absurd learning rate with clipping off blows the weights up within a few steps.
    cfg.steps = 40;
    cfg.clip = 0;
    cfg.schedule.base_lr = 1e30f;
    cfg.schedule.warmup = 0;
    cfg.schedule.kind = SCHEDULE_CONSTANT;
    EXPECT_FALSE(train_run(cfg, *c, true, true, nullptr, &err));
    EXPECT_NE(err.find("non-finite"), std::string::npos) << err;
    EXPECT_NE(err.find("at step"), std::string::npos) << err;
    // The checkpoint on disk is still a complete, loadable, finite one.
    const auto kept = final_params(d, cfg);
    for (float v : kept) ASSERT_TRUE(std::isfinite(v));
    fs::remove_all(d);
}

TEST(trainer, missing_data_is_reported) {
    auto c = comm_create(nullptr, nullptr);
    std::string err;
    train_config cfg;
    ASSERT_TRUE(train_config_parse(base_config(tmpdir("nodata"), 2, 1), &cfg, &err)) << err;
    cfg.data_path = "/nonexistent/corpus.txt";
    EXPECT_FALSE(train_run(cfg, *c, false, true, nullptr, &err));
    EXPECT_NE(err.find("/nonexistent/corpus.txt"), std::string::npos) << err;
}
