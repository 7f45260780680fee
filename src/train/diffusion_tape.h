// The denoiser of stage `diffusion_scratch` on the autograd tape, public so that tests can check the runtime
// forward (decoders/diffusion_tiny.h) against exactly what training computes.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "train/autograd.h"

namespace spider::train {

// x [1, 3, S, S] at timestep t -> the prediction [1, 3, S, S]; p holds the stage's parameters by their GGUF names
// (diffusion_tiny::expected_tensors).
value diffusion_tiny_tape_forward(const std::map<std::string, value> & p, int64_t channels, int64_t t_embed,
                                  int64_t groups, const value & x, int64_t t);

}  // namespace spider::train
