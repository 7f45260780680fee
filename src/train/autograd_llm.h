// Tape ops for training a frozen GGUF LLM with LoRA (train/llm_tape.h): views and row selection, RoPE with a
// frequency scale and partial rotation, causal attention with a sliding window, a frozen linear whose backward
// runs through a cached transposed copy of the weight, column concatenation. Every op's gradient is checked
// against finite differences in tests/test_llm_tape.cpp.
#pragma once
#include <cstdint>
#include <vector>

#include "train/autograd.h"

namespace spider::train {

// Same data, new shape (element count must match).
value view_shape(const value & x, std::vector<int64_t> shape);

// Rows of x [n, d] at idx -> [m, d].
value gather_rows(const value & x, const std::vector<int32_t> & idx);

// x [n, d] with the rows at pos replaced by rows [m, d] (m == pos.size()): Spider's media embeddings at placeholder
// positions. The replaced rows of x get no gradient.
value replace_rows(const value & x, const std::vector<int32_t> & pos, const value & rows);

// RMSNorm over the last dimension (w [n], or null) and the gated FFN act(gate) * up, forward through the same
// optimised kernels as inference (so a quantized model's activations round exactly as in the runtime).
value rms_norm_k(const value & x, const value & w, float eps);
value glu_k(const value & gate, const value & up, act_type a);

// Mean cross-entropy of logits [n, V] against targets (< 0 = ignored), for wide vocabularies: one pass of float
// exponentials per row (split over the pool's threads), probabilities kept for the backward.
value cross_entropy_k(const value & logits, const std::vector<int32_t> & targets, thread_pool * pool = nullptr);

// [n, a] | [n, b] -> [n, a + b].
value concat_cols(const value & a, const value & b);

// RoPE on x [n_tok, n_head * head_dim] rotating the first n_rot dims with freq_scale (linear position scaling).
// freq_factors: nullptr or n_rot / 2 divisors of the pair frequencies (Llama 3.1 rope_freqs), as in core/ops.h.
value rope_ext(const value & x, const std::vector<int32_t> & pos, int64_t n_head, int64_t head_dim, int64_t n_rot,
               float freq_base, float freq_scale, rope_mode mode, const float * freq_factors = nullptr);

// Causal self-attention with GQA and, if window > 0, a sliding window (key j visible to query i iff
// j <= i and i - j < window). q [n, n_head*hd], k/v [n, n_head_kv*hd] -> [n, n_head*hd]. The output comes from the
// inference attention kernel; the probabilities for the backward are computed alongside. Threads over heads.
value attention_window(const value & q, const value & k, const value & v, int64_t n_head, int64_t n_head_kv,
                       float scale, int64_t window, thread_pool * pool = nullptr);

// Frozen weight W (any dtype, ne {in, out}) with its transpose Wt (F16 or F32, ne {out, in}) used for the
// backward: gx = gy Wt^T through the optimised matmul. Gradient to x only.
value linear_frozen_t(const value & x, const tensor & W, const tensor & Wt, thread_pool * pool = nullptr);

// Builds the F16 transpose of W (ne {in, out}) into *buf (out * in halves, ne {out, in} row-major) and returns the
// tensor view over it.
tensor transpose_to_f16(const tensor & W, std::vector<uint16_t> * buf, thread_pool * pool = nullptr);

}  // namespace spider::train
