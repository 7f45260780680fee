// LoRA adapters on frozen (possibly quantized) linear layers, and trainable new-token rows next to a frozen
// embedding table / LM head — the pieces of Spider's instruction tuning (SPIDER.md §5: LoRA r 32, alpha 21 on
// q/k/v/o; the new template tokens' rows trainable while the original rows stay fixed).
//
//   y = W x + (alpha / r) * B (A x)      W frozen [out, in] of any dtype, A [r, in], B [out, r] (B starts at 0)
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "train/autograd.h"

namespace spider::train {

struct lora_adapter {
    value A;  // [r, in]
    value B;  // [out, r]
    float alpha = 21.0f;
    int64_t rank() const { return A->shape[0]; }
    float scaling() const { return alpha / static_cast<float>(rank()); }
};

// A: small random (uniform +-1/sqrt(in), deterministic from seed), B: zeros, so the adapted layer starts equal to
// the base layer.
lora_adapter lora_create(int64_t in, int64_t out, int64_t r, float alpha, uint64_t seed);

// x [n, in] -> [n, out]; gradient flows to x, A and B, never to the frozen W.
value lora_linear(const value & x, const tensor & W, const lora_adapter & a, thread_pool * pool = nullptr);

// Adapters by target name (e.g. "blk.3.attn_q.weight"), saved in GGUF: tensors `lora.<name>.a` / `lora.<name>.b`
// (F32) and KVs `spider.lora.alpha`, `spider.lora.rank`, `general.architecture = spider-lora`.
bool lora_save(const std::string & path, const std::map<std::string, lora_adapter> & adapters, std::string * err);
bool lora_load(const std::string & path, std::map<std::string, lora_adapter> * adapters, std::string * err);

// Merges an adapter into a copy of the base weight: returns W + scaling * B A as F32 rows [out][in].
// (Requantizing to the base dtype is left to `spider quantize`.)
bool lora_merge(const tensor & W, const lora_adapter & a, std::vector<float> * merged, std::string * err);

// Embedding rows for ids from a frozen table [V, d] (any dtype) or, for ids >= V, from trainable extra rows
// [n_new, d]: only the extra rows get gradients.
value embedding_extended(const tensor & table, const value & extra, const std::vector<int32_t> & ids);
// LM head over the frozen output matrix [V, d] plus trainable extra rows [n_new, d]: x [n, d] -> logits [n, V + n_new].
value lm_head_extended(const value & x, const tensor & output, const value & extra, thread_pool * pool = nullptr);

}  // namespace spider::train
