// Optimised matmul / get_rows entry points (ops.h). First slice: forwards to the reference so callers link and get
// correct results; the SIMD kernels with runtime dispatch replace this.
#include "core/ops.h"

namespace spider {

void matmul(const tensor& W, const float* x, float* y, int64_t n_tok, thread_pool* pool) {
    ref::matmul(W, x, y, n_tok, pool);
}

void get_rows(const tensor& table, const int32_t* ids, int64_t n_ids, float* y) {
    ref::get_rows(table, ids, n_ids, y);
}

}  // namespace spider
