// Loading a Spider LoRA adapter (written by `spider train` stage `instruct`, train/llm_tape.h) into a base model:
// each adapted projection is merged at load, W' = W + (alpha / r) B A, dequantizing only the targeted tensors (the
// merged weight is stored as F16); the adapter's new-token rows become the model's added tokens
// (token_embd_extra, also used as the tied output rows).
#pragma once
#include <string>

#include "llm/model.h"

namespace spider {

// Applies the adapter at path to m (before any context is created). Fails with a message naming the file and the
// tensor when the adapter does not fit the model (unknown target, shape mismatch, added tokens on a model that
// already has some).
bool llm_model_apply_lora(llm_model * m, const std::string & path, std::string * err);

}  // namespace spider
