// A tensor view: type, shape and strides over memory owned elsewhere (an mmapped GGUF, an arena, a vector).
// Shapes follow GGUF/ggml order: ne[0] is the innermost, contiguous dimension. A weight matrix W of a Linear
// layer with n_in inputs and n_out outputs has ne = {n_in, n_out}: row r (one output) is contiguous.
#pragma once
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace spider {

constexpr int MAX_DIMS = 4;

struct tensor {
    dtype type = DTYPE_F32;
    int64_t ne[MAX_DIMS] = {1, 1, 1, 1};  // elements per dimension, innermost first
    size_t nb[MAX_DIMS] = {0, 0, 0, 0};   // bytes between consecutive elements/rows per dimension
    void * data = nullptr;
    // Optional second copy of the same weights in the matmul kernels' row-interleaved layout (matmul_pack, ops.h),
    // owned by whoever set it. Only the optimised matmul reads it; everything else reads data.
    const uint8_t * packed = nullptr;
    std::string name;

    int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t nrows() const { return ne[1] * ne[2] * ne[3]; }
    size_t row_bytes() const { return dtype_row_bytes(type, ne[0]); }
    size_t nbytes() const { return row_bytes() * static_cast<size_t>(nrows()); }
    const void * row(int64_t i1, int64_t i2 = 0, int64_t i3 = 0) const {
        return static_cast<const char *>(data) + i1 * nb[1] + i2 * nb[2] + i3 * nb[3];
    }
};

// A contiguous tensor view over data with the given shape (ne[0] innermost).
tensor make_tensor(dtype type, void * data, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1, int64_t ne3 = 1);

}  // namespace spider
