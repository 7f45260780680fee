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

namespace spider {

constexpr int MATMUL_MAX_NR = 4;
constexpr int MATMUL_MAX_NC = 4;

using matmul_tile_fn = void (*)(int64_t n, const uint8_t* w, size_t w_stride, int nr, const uint8_t* xq,
                                size_t x_stride, int nc, float* y, size_t y_stride);

struct matmul_kernel {
    dtype vec_dot_type = DTYPE_F32;
    int max_nc = 1;
    matmul_tile_fn tile = nullptr;
};

// The activation format each weight type is paired with (the same pairing as ggml's vec_dot_type).
dtype matmul_vec_dot_type(dtype weight_type);

// Each returns false when that ISA has no kernel for the type (the driver then falls back a level).
bool matmul_kernel_portable(dtype weight_type, matmul_kernel* k);
bool matmul_kernel_avx2(dtype weight_type, matmul_kernel* k);
bool matmul_kernel_avx512(dtype weight_type, matmul_kernel* k);

}  // namespace spider
