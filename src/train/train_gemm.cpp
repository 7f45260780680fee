// Driver of train_gemm.h: the plain C++ block kernel, run-time kernel choice and the split over threads.
#include "train/train_gemm.h"

#include <algorithm>
#include <atomic>

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
    // Chunks of whole column tiles (or row tiles when there are too few columns), about three per thread, taken from
    // a shared counter: a thread the machine has not scheduled yet does not hold the others up, and an element's
    // arithmetic (one fma per k in k order) does not depend on which chunk or thread computes it.
    const int64_t n_col = (N + GEMM_NR - 1) / GEMM_NR, n_row = (M + GEMM_MR - 1) / GEMM_MR;
    const bool by_col = n_col >= 2 * nth || n_col >= n_row;
    const int64_t units = by_col ? n_col : n_row;
    const int64_t n_chunks = std::min<int64_t>(units, 3 * nth);
    std::atomic<int64_t> next{0};
    pool->run_any([&](int, int) {
        for (;;) {
            const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
            if (c >= n_chunks) break;
            long long b, e;
            split_range(units, static_cast<int>(c), static_cast<int>(n_chunks), b, e);
            if (by_col) {
                const int64_t j0 = b * GEMM_NR, j1 = std::min(N, static_cast<int64_t>(e) * GEMM_NR);
                if (j0 < j1) fn(0, M, j0, j1, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc);
            } else {
                const int64_t i0 = b * GEMM_MR, i1 = std::min(M, static_cast<int64_t>(e) * GEMM_MR);
                if (i0 < i1) fn(i0, i1, 0, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc);
            }
        }
    });
}

}  // namespace spider::train
