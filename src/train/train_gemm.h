// GEMM for training (train/autograd.cpp): C[M, N] += A[M, K] B[K, N], where A and B are read through a row stride
// and a column stride (so a transposed view costs nothing: gW = gy^T x reads gy as A with a_rs = 1, a_cs = out, and
// the forward y = x W^T reads W [out, in] as B with b_rs = 1, b_cs = in); C is row-major with leading dimension ldc.
//
// An AVX2 + FMA register-blocked kernel (6 x 16 tiles over packed operands, train_gemm_avx2.cpp) is picked at run
// time, plain C++ otherwise. Every C element is updated with one fused multiply-add per k in increasing k order
// whatever the tile shape or the thread split, so results do not depend on the number of threads (bit for bit), which
// keeps resumed and re-threaded training runs identical.
#pragma once
#include <cstdint>

#include "core/threadpool.h"

namespace spider::train {

void gemm_acc_strided(int64_t M, int64_t N, int64_t K, const float * A, int64_t a_rs, int64_t a_cs, const float * B,
                      int64_t b_rs, int64_t b_cs, float * C, int64_t ldc, thread_pool * pool);
// B row-major with leading dimension ldb.
inline void gemm_acc(int64_t M, int64_t N, int64_t K, const float * A, int64_t a_rs, int64_t a_cs, const float * B,
                     int64_t ldb, float * C, int64_t ldc, thread_pool * pool) {
    gemm_acc_strided(M, N, K, A, a_rs, a_cs, B, ldb, 1, C, ldc, pool);
}

// The per-ISA block function: C rows [m0, m1) x columns [n0, n1) of the product, single-threaded.
using gemm_block_fn = void (*)(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const float * A, int64_t a_rs,
                               int64_t a_cs, const float * B, int64_t b_rs, int64_t b_cs, float * C, int64_t ldc);
void gemm_block_portable(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const float * A, int64_t a_rs,
                         int64_t a_cs, const float * B, int64_t b_rs, int64_t b_cs, float * C, int64_t ldc);
void gemm_block_avx2(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const float * A, int64_t a_rs,
                     int64_t a_cs, const float * B, int64_t b_rs, int64_t b_cs, float * C, int64_t ldc);

// Column blocks are split between threads in units of this many columns (the kernel's tile width), rows in units
// of GEMM_MR, so an element's tile position never depends on the split.
constexpr int64_t GEMM_NR = 16;
constexpr int64_t GEMM_MR = 6;

}  // namespace spider::train
