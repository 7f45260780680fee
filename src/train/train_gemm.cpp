// Driver of train_gemm.h: the plain C++ block kernel, run-time kernel choice and the split over threads.
#include "train/train_gemm.h"

#include "core/cpu_features.h"

namespace spider::train {

void gemm_block_portable(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const float * A, int64_t a_rs,
                         int64_t a_cs, const float * B, int64_t b_rs, int64_t b_cs, float * C, int64_t ldc) {
    for (int64_t i = m0; i < m1; ++i)
        for (int64_t k = 0; k < K; ++k) {
            const float a = A[i * a_rs + k * a_cs];
            const float * b = B + k * b_rs;
            float * c = C + i * ldc;
            if (b_cs == 1)
                for (int64_t j = n0; j < n1; ++j) c[j] += a * b[j];
            else
                for (int64_t j = n0; j < n1; ++j) c[j] += a * b[j * b_cs];
        }
}

void gemm_acc_strided(int64_t M, int64_t N, int64_t K, const float * A, int64_t a_rs, int64_t a_cs, const float * B,
                      int64_t b_rs, int64_t b_cs, float * C, int64_t ldc, thread_pool * pool) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    const gemm_block_fn fn = cpu_level_active() >= CPU_LEVEL_AVX2 ? gemm_block_avx2 : gemm_block_portable;
    const int nth = pool ? pool->size() : 1;
    // Small products are not worth a hand-off to the workers.
    if (nth == 1 || M * N * K < 32 * 1024) {
        fn(0, M, 0, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc);
        return;
    }
    const int64_t n_col = (N + GEMM_NR - 1) / GEMM_NR, n_row = (M + GEMM_MR - 1) / GEMM_MR;
    pool->run([&](int ith, int nth_) {
        long long b, e;
        if (n_col >= 2 * nth_ || n_col >= n_row) {  // split columns (B panels are not shared between threads)
            split_range(n_col, ith, nth_, b, e);
            const int64_t j0 = b * GEMM_NR, j1 = e * GEMM_NR < N ? e * GEMM_NR : N;
            if (j0 < j1) fn(0, M, j0, j1, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc);
        } else {
            split_range(n_row, ith, nth_, b, e);
            const int64_t i0 = b * GEMM_MR, i1 = e * GEMM_MR < M ? e * GEMM_MR : M;
            if (i0 < i1) fn(i0, i1, 0, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc);
        }
    });
}

}  // namespace spider::train
