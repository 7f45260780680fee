// The op set of every Spider architecture (LLM, encoders, UDP, diffusion decoders). Each op has a plain reference
// implementation (namespace spider::ref, ops_ref.cpp) and an optimised one (namespace spider, SIMD with runtime
// CPU dispatch + threads); tests/test_ops.cpp checks every optimised op against its reference on random shapes.
//
// Conventions: activations are contiguous F32, row-major with the innermost dimension last in the argument
// lists below (x[t * n + i] for token t, feature i). Weights are `tensor` views of any supported dtype.
// `pool` may be nullptr (single-threaded). Output buffers never alias inputs unless stated.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/threadpool.h"

namespace spider {

enum rope_mode : int32_t {
    ROPE_MODE_NORMAL = 0,  // rotate pairs (2i, 2i+1): llama GGUF layout
    ROPE_MODE_NEOX = 2,    // rotate pairs (i, i + n_rot/2): gemma / HF layout
};

enum act_type : int32_t { ACT_GELU_TANH = 0, ACT_GELU_ERF = 1, ACT_SILU = 2, ACT_RELU = 3 };

#define SPIDER_OPS_DECLARE                                                                                             \
    /* y[t, o] = sum_i W[o, i] * x[t, i]; W: ne = {n_in, n_out}, any dtype; x: [n_tok, n_in]; y: [n_tok, n_out] */     \
    void matmul(const tensor & W, const float * x, float * y, int64_t n_tok, thread_pool * pool);                      \
    /* y[t, :] = rows of table (any dtype) at ids[t]; table ne = {n_embd, n_vocab} */                                  \
    void get_rows(const tensor & table, const int32_t * ids, int64_t n_ids, float * y);                                \
    void add(const float * a, const float * b, float * y, int64_t n);                                                  \
    void mul(const float * a, const float * b, float * y, int64_t n);                                                  \
    void scale(const float * x, float s, float * y, int64_t n);                                                        \
    /* y = x * w broadcast over rows: x [rows, n], w [n] */                                                            \
    void mul_row(const float * x, const float * w, float * y, int64_t rows, int64_t n);                                \
    void add_row(const float * x, const float * b, float * y, int64_t rows, int64_t n);                                \
    void activation(act_type a, const float * x, float * y, int64_t n);                                                \
    /* gated: y = act(gate) * up, elementwise (SwiGLU with SILU, GeGLU with GELU) */                                   \
    void glu(act_type a, const float * gate, const float * up, float * y, int64_t n);                                  \
    void softmax_rows(const float * x, float * y, int64_t rows, int64_t n);                                            \
    /* y = x / rms(x) * w (w may be nullptr = no affine); per row of n */                                              \
    void rms_norm(const float * x, const float * w, float * y, int64_t rows, int64_t n, float eps);                    \
    void layer_norm(const float * x, const float * w, const float * b, float * y, int64_t rows, int64_t n, float eps); \
    /* x: [C, HW] channel-major (C channels of HW values), groups of C/n_groups channels */                            \
    void group_norm(const float * x, const float * w, const float * b, float * y, int64_t C, int64_t HW,               \
                    int64_t n_groups, float eps);                                                                      \
    /* in place on x [n_tok, n_head, head_dim]; rotates the first n_rot dims; pos[t] per token; freq_factors:          \
       nullptr or n_rot/2 divisors of the pair frequencies (Llama 3.1 "llama3" scaling, GGUF rope_freqs.weight) */     \
    void rope(float * x, const int32_t * pos, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot,          \
              float freq_base, float freq_scale, rope_mode mode, const float * freq_factors = nullptr);                \
    /* q [n_q, n_head, hd]; k, v [n_kv, n_head_kv, hd] (GQA: head h uses kv head h / (n_head / n_head_kv));            \
       out [n_q, n_head, hd]. Query i sits at absolute position q_pos0 + i, key j at j. causal: key j visible iff      \
       j <= q_pos; window > 0: also q_pos - j < window. scale: logits multiplier. */                                   \
    void attention(const float * q, const float * k, const float * v, float * out, int64_t n_q, int64_t n_kv,          \
                   int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, bool causal, int64_t q_pos0,      \
                   int64_t window, thread_pool * pool);                                                                \
    /* x [C_in, L]; w [C_out, C_in, K]; b [C_out] or nullptr; y [C_out, L_out] */                                      \
    void conv1d(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t L, int64_t C_out,  \
                int64_t K, int64_t stride, int64_t pad, thread_pool * pool);                                           \
    /* x [C_in, H, W]; w [C_out, C_in, KH, KW]; y [C_out, H_out, W_out] */                                             \
    void conv2d(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t H, int64_t W,      \
                int64_t C_out, int64_t KH, int64_t KW, int64_t stride, int64_t pad, thread_pool * pool);               \
    /* transposed conv: x [C_in, H, W]; w [C_in, C_out, KH, KW] (PyTorch layout) */                                    \
    void conv_transpose2d(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t H,       \
                          int64_t W, int64_t C_out, int64_t KH, int64_t KW, int64_t stride, int64_t pad,               \
                          thread_pool * pool);                                                                         \
    /* temporal conv of a (2+1)-D block: x [C_in, T, HW]; w [C_out, C_in, KT]; y [C_out, T, HW]: y[t] uses             \
       x[t - (KT-1)/2 + kt] (zero outside [0, T)), so T is kept (symmetric padding for odd KT) */                      \
    void conv_temporal(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t T,          \
                       int64_t HW, int64_t C_out, int64_t KT, thread_pool * pool);                                     \
    /* nearest-neighbour upsampling x [C, H, W] -> [C, H*f, W*f] */                                                    \
    void upsample_nearest2d(const float * x, float * y, int64_t C, int64_t H, int64_t W, int64_t f);                   \
    /* average / max pooling with kernel = stride = k: x [C, H, W] -> [C, H/k, W/k] */                                 \
    void avg_pool2d(const float * x, float * y, int64_t C, int64_t H, int64_t W, int64_t k);                           \
    void max_pool2d(const float * x, float * y, int64_t C, int64_t H, int64_t W, int64_t k);                           \
    /* permute a contiguous 4-D array (ne innermost first) by perm (output dim d = input dim perm[d]) */               \
    void permute(const float * x, float * y, const int64_t ne[4], const int perm[4]);                                  \
    /* concat along dim (ne innermost first) of two contiguous 4-D arrays */                                           \
    void concat(const float * a, const int64_t ne_a[4], const float * b, const int64_t ne_b[4], int dim, float * y);

namespace ref {
SPIDER_OPS_DECLARE
}  // namespace ref

SPIDER_OPS_DECLARE

// attention() over an F16 KV cache (k, v: IEEE half bits, same layout). One query widens each block of keys and
// values inside the tile; several queries widen the whole cache once, into *wide (grown as needed; the caller keeps
// it between calls, an inference context for its lifetime) or, without it, a buffer allocated for the call. Either
// way the result equals attention() on the widened arrays bit for bit (tests/test_ops.cpp).
void attention_f16kv(const float * q, const uint16_t * k, const uint16_t * v, float * out, int64_t n_q, int64_t n_kv,
                     int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, bool causal, int64_t q_pos0,
                     int64_t window, thread_pool * pool, std::vector<float> * wide = nullptr);

// y[i] = matmul(*W[i], x) for n_w (<= 8) weights that read the same input x (Q/K/V, gate/up), all with the same
// n_in: one activation conversion and one pool dispatch for all of them. Bit-identical to n_w matmul() calls (its
// reference is that loop); falls back to it for more weights or a broken invariant.
void matmul_multi(int n_w, const tensor * const * W, const float * x, float * const * y, int64_t n_tok,
                  thread_pool * pool);

// y = x W^T + b for a Linear weight of any supported dtype (ne = {n_in, n_out}); b (F32, n_out) may be nullptr.
// One thread: the optimised matmul, then the bias. Shared by the projector, the encoders and the decoders' heads.
void linear_forward(const tensor & W, const tensor * b, const float * x, float * y, int64_t n_tok);

// Row-interleaved weights for the matmul kernels: groups of 8 rows whose blocks are interleaved so that one int8 dot
// product instruction serves 8 rows (Q4_0: per block, the 8 rows' fp16 scales, then for each group g of 4 bytes of
// the block's nibbles, the 8 rows' bytes 4g..4g+3). matmul_pack_bytes returns the size of that copy, or 0 when W
// has no packed form (type, shape, or no kernel for it at this CPU level); matmul_pack writes it to dst (64-byte
// aligned, matmul_pack_bytes(W) bytes). Set W.packed = dst afterwards: matmul then reads the packed copy, with
// results equal to the unpacked kernels' up to float summation order (tests/test_matmul.cpp).
// Q4_K / Q6_K: block_q4_K_x8 / block_q6_K_x8 (quants.h), 8 rows' blocks rearranged into 32-bit lanes.
size_t matmul_pack_bytes(const tensor & W);
void matmul_pack(const tensor & W, uint8_t * dst);
// n_rows (a multiple of 8) packed rows of a type whose packed kernel takes one token (Q4_K, Q6_K) back to the plain
// layout at dst (n_rows rows of dtype_row_bytes(type, n_in) bytes).
void matmul_unpack_rows(dtype type, const uint8_t * packed, int64_t n_in, int64_t n_rows, uint8_t * dst);

// Kernel selection of the optimised ops (not matmul): by default the set matching cpu_level_active() ("avx2"
// from CPU_LEVEL_AVX2 up, else "generic"). on = true forces the generic set (tests check both); on = false goes
// back to following cpu_level_active() and returns whether that gives the SIMD set.
bool ops_use_generic_kernels(bool on);
const char * ops_kernel_name();

}  // namespace spider
