// Training checkpoints in GGUF: parameters (F32, by name), AdamW moments, SGD momentum, step, data RNG state and the
// config text. Written atomically (temp file + rename by gguf_writer), so a killed run always leaves its last complete
// checkpoint.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "train/optim.h"

namespace spider::train {

struct checkpoint_meta {
    int64_t step = 0;         // number of optimiser steps done
    std::string config_json;  // the config the run was started with
};

// sgd_opt (optional): also saves SGD's momentum buffer (`sgd.momentum`, `spider.train.sgd_started`).
bool checkpoint_save(const std::string & path, const std::vector<std::pair<std::string, value>> & params,
                     const adamw & opt, const checkpoint_meta & meta, std::string * err, const sgd * sgd_opt = nullptr);
// Loads into existing parameters (names and shapes must match: a mismatch is an error naming the tensor) and
// restores the optimiser state (SGD's momentum buffer too when sgd_opt is given: a checkpoint without one, or
// with one of another size, is an error).
bool checkpoint_load(const std::string & path, const std::vector<std::pair<std::string, value>> & params, adamw * opt,
                     checkpoint_meta * meta, std::string * err, sgd * sgd_opt = nullptr);

}  // namespace spider::train
