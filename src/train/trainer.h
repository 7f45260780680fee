// `spider train CONFIG`: the training driver. Parses and validates a JSON config (docs/TRAINING.md documents every
// field; unknown fields are errors), runs the steps with gradient accumulation, clipping, a schedule, periodic atomic
// checkpoints, resume, NaN/Inf detection, logs and a progress bar, data-parallel over a `comm`. What is trained is a
// `stage` (train/stage.h) chosen by the config's `stage` field from the registry in stage_registry.cpp.
#pragma once
#include <cstdint>
#include <string>

#include "train/comm.h"
#include "train/optim.h"
#include "train/tiny_lm.h"

namespace spider::train {

struct train_config {
    std::string stage = "lm_scratch";   // see docs/TRAINING.md for the stages and which exist today
    std::string stage_sections = "{}";  // JSON object of the stage's own top-level fields (parsed by the stage)
    // lm_scratch's fields (its `model` and `data` sections), kept here for the C++ API.
    tiny_lm_config model;
    float init_std = 0.02f;
    std::string data_path;  // UTF-8 text; bytes are the tokens (vocab 256)
    int64_t seq_len = 64;
    std::string optimizer = "adamw";
    adamw_params adam;
    sgd_params sgd_p;
    lr_schedule schedule;  // base_lr, warmup, min_lr, kind; total = steps
    int64_t steps = 100;
    int64_t batch = 8;       // global batch (sequences per optimiser step, over all ranks and micro-batches)
    int64_t grad_accum = 1;  // micro-batches per step on each rank
    float clip = 1.0f;       // 0 = off
    uint64_t seed = 42;
    std::string out_dir = "train-out";
    int64_t checkpoint_every = 50;
    int64_t log_every = 10;
    std::string raw_json;  // the config text as given
};

// Parses a config; on error returns false with a message naming the field (unknown field, wrong type, bad value).
bool train_config_parse(const std::string & json_text, train_config * out, std::string * err);

struct train_result {
    int64_t steps_done = 0;
    float last_loss = 0;
    double tokens_per_second = 0;  // the stage's work unit per second (tokens for LMs, samples otherwise)
};

// Runs (or resumes, if resume is true and out_dir has a checkpoint) a training run. Returns false with a message
// on bad data, bad checkpoints or a non-finite loss (the last good checkpoint is kept).
bool train_run(const train_config & cfg, comm & c, bool resume, bool quiet, train_result * res, std::string * err);

}  // namespace spider::train
