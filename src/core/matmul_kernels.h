// Internal interface between the matmul driver (matmul.cpp) and its per-ISA kernels (matmul_portable.cpp,
// matmul_avx2.cpp, matmul_avx512.cpp). Not for use outside src/core.
//
// A kernel computes one tile of y: nr (<= MATMUL_MAX_NR) weight rows times nc (<= its max_nc) activation rows,
//   y[c * y_stride + r] = dot(W row r, x row c),   W row r at w + r * w_stride bytes,
// where the activation rows have already been converted to the kernel's vec_dot_type (Q8_0 or Q8_K blocks for
// quantized weights, F32 for float weights) and lie at xq + c * x_stride bytes. n is the row length in elements.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/tensor.h"

namespace spider {

constexpr int MATMUL_MAX_NR = 4;
constexpr int MATMUL_MAX_NC = 4;
constexpr int MATMUL_PACK_ROWS = 8;

using matmul_tile_fn = void (*)(int64_t n, const uint8_t * w, size_t w_stride, int nr, const uint8_t * xq,
                                size_t x_stride, int nc, float * y, size_t y_stride);

// Optional kernel-specific activation layout: prep converts one row of n floats into x_bytes(n) bytes. Without it
// the driver converts rows with quantize_row(vec_dot_type) (or passes F32 rows through).
using matmul_prep_fn = void (*)(const float * x, int64_t n, uint8_t * dst);
using matmul_xbytes_fn = size_t (*)(int64_t n);

struct matmul_kernel {
    dtype vec_dot_type = DTYPE_F32;
    int max_nc = 1;
    matmul_tile_fn tile = nullptr;
    // For weights in the packed layout (matmul_pack, ops.h): MATMUL_PACK_ROWS rows per call (nr is always that),
    // w at the start of a group of rows, w_stride the unpacked row stride. nullptr: no packed kernel for the type.
    matmul_tile_fn tile_packed = nullptr;
    // tile_packed is a one-token kernel (Q4_K, Q6_K): for prompts the driver (matmul.cpp) unpacks each chunk's row
    // groups into the plain layout and runs `tile` on them.
    bool packed_one_token = false;
    matmul_prep_fn prep = nullptr;
    matmul_xbytes_fn x_bytes = nullptr;
};

// "Q8_0x": Q8_0 activations laid out for the SIMD kernels. A row of nb = n/32 blocks is
//   int8  qs[nb][32]      the Q8_0 levels (identical to quantize_row(DTYPE_Q8_0)),
//   float d[nb]           the Q8_0 scales, already converted from fp16,
//   int32 nsum[nb][8]     minus 16 times the sum of each group of 4 levels (the 8 int32 lanes of a 256-bit dot
//                         product),
//   int32 xsum[nb]        the sum of the block's 32 levels (the one-row kernels correct whole blocks at once).
// With weights stored as unsigned levels u = w + offset (offset 8 for Q4_0, 16 for Q5_0, 128 for Q8_0),
// sum w x = sum u x - offset * sum x, and nsum * offset / 16 is that correction lane by lane: it seeds the int32
// accumulator of the dot product, so the correction costs nothing per weight row. The factor 16 is Q5_0's offset:
// its packed kernel (tile_pack8_lanes) seeds 8 dot products per block and token, and the shift it saves there is
// an eighth of its vector work (gemma-3-270m's Q5_0 prompt matmul +25%, 2026-12-05).
size_t matmul_q8_0x_bytes(int64_t n);
void matmul_prep_q8_0x(const float * x, int64_t n, uint8_t * dst);

// Row r of a packed table (matmul_pack's layouts, ops.h), dequantized exactly as dequantize_row does (get_rows: a
// tied output matrix is also the embedding table, and reading its packed copy keeps the released original pages
// released). matmul_pack.cpp.
void matmul_dequantize_packed_row(const tensor & table, int64_t r, float * y);

// The activation format each weight type is paired with (the same pairing as ggml's vec_dot_type).
dtype matmul_vec_dot_type(dtype weight_type);

// Each returns false when that ISA has no kernel for the type (the driver then falls back a level).
bool matmul_kernel_portable(dtype weight_type, matmul_kernel * k);
bool matmul_kernel_avx2(dtype weight_type, matmul_kernel * k);
bool matmul_kernel_avx512(dtype weight_type, matmul_kernel * k);

}  // namespace spider
