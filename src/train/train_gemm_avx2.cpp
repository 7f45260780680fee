// AVX2 + FMA block kernel of train_gemm.h (compiled with those flags only; chosen at run time by train_gemm.cpp).
// Tiles of up to 6 rows x 16 columns of C live in 12 ymm accumulators; per k, two loads of B and one broadcast of A
// per row feed 12 fused multiply-adds. k runs in chunks of KC so the B panel (KC x 16 floats) stays in L1 while
// every row tile of the block uses it. Column tails: one 8-wide vector, then scalar fma (same rounding as a lane).
#include <immintrin.h>

#include <cmath>
#include <vector>

#include "train/train_gemm.h"

namespace spider::train {

namespace {

constexpr int64_t KC = 256;

template <int MR>
inline void tile16(int64_t k0, int64_t k1, const float * A, int64_t a_rs, int64_t a_cs, const float * B, int64_t ldb,
                   float * C, int64_t ldc) {
    __m256 c0[MR], c1[MR];
    const float * ap[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
        c0[r] = _mm256_loadu_ps(C + r * ldc);
        c1[r] = _mm256_loadu_ps(C + r * ldc + 8);
        ap[r] = A + r * a_rs + k0 * a_cs;
    }
    const float * bp = B + k0 * ldb;
    for (int64_t k = k0; k < k1; ++k) {
        const __m256 b0 = _mm256_loadu_ps(bp);
        const __m256 b1 = _mm256_loadu_ps(bp + 8);
        bp += ldb;
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            const __m256 a = _mm256_broadcast_ss(ap[r]);
            ap[r] += a_cs;
            c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
        _mm256_storeu_ps(C + r * ldc, c0[r]);
        _mm256_storeu_ps(C + r * ldc + 8, c1[r]);
    }
}

template <int MR>
inline void tile8(int64_t k0, int64_t k1, const float * A, int64_t a_rs, int64_t a_cs, const float * B, int64_t ldb,
                  float * C, int64_t ldc) {
    __m256 c0[MR];
    const float * ap[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
        c0[r] = _mm256_loadu_ps(C + r * ldc);
        ap[r] = A + r * a_rs + k0 * a_cs;
    }
    const float * bp = B + k0 * ldb;
    for (int64_t k = k0; k < k1; ++k) {
        const __m256 b0 = _mm256_loadu_ps(bp);
        bp += ldb;
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            c0[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(ap[r]), b0, c0[r]);
            ap[r] += a_cs;
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) _mm256_storeu_ps(C + r * ldc, c0[r]);
}

// One column tile (W = 16 or 8 columns, or a scalar tail of fewer) over the row range, all MR cases.
template <int W, int MR>
inline void tile(int64_t i, int64_t j, int64_t k0, int64_t k1, const float * A, int64_t a_rs, int64_t a_cs,
                 const float * B, int64_t ldb, float * C, int64_t ldc) {
    if (W == 16)
        tile16<MR>(k0, k1, A + i * a_rs, a_rs, a_cs, B + j, ldb, C + i * ldc + j, ldc);
    else
        tile8<MR>(k0, k1, A + i * a_rs, a_rs, a_cs, B + j, ldb, C + i * ldc + j, ldc);
}

template <int W>
void column(int64_t m0, int64_t m1, int64_t j, int64_t k0, int64_t k1, const float * A, int64_t a_rs, int64_t a_cs,
            const float * B, int64_t ldb, float * C, int64_t ldc) {
    int64_t i = m0;
    for (; i + 6 <= m1; i += 6) tile<W, 6>(i, j, k0, k1, A, a_rs, a_cs, B, ldb, C, ldc);
    switch (m1 - i) {
        case 5:
            return tile<W, 5>(i, j, k0, k1, A, a_rs, a_cs, B, ldb, C, ldc);
        case 4:
            return tile<W, 4>(i, j, k0, k1, A, a_rs, a_cs, B, ldb, C, ldc);
        case 3:
            return tile<W, 3>(i, j, k0, k1, A, a_rs, a_cs, B, ldb, C, ldc);
        case 2:
            return tile<W, 2>(i, j, k0, k1, A, a_rs, a_cs, B, ldb, C, ldc);
        case 1:
            return tile<W, 1>(i, j, k0, k1, A, a_rs, a_cs, B, ldb, C, ldc);
        default:
            return;
    }
}

}  // namespace

void gemm_block_avx2(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const float * A, int64_t a_rs,
                     int64_t a_cs, const float * B, int64_t ldb, float * C, int64_t ldc) {
    // B panels are packed to KC x 16 contiguous floats: rows of B a power-of-two stride apart (1 KB for 256
    // columns) fall into a few L1 sets and would evict each other before the next row tile reuses them.
    static thread_local std::vector<float> panel;
    if (panel.size() < static_cast<size_t>(KC * 16)) panel.resize(static_cast<size_t>(KC * 16));
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t k1 = k0 + KC < K ? k0 + KC : K;
        int64_t j = n0;
        for (; j + 16 <= n1; j += 16) {
            float * pp = panel.data();  // row k - k0 of the panel
            for (int64_t k = k0; k < k1; ++k) {
                _mm256_storeu_ps(pp + (k - k0) * 16, _mm256_loadu_ps(B + k * ldb + j));
                _mm256_storeu_ps(pp + (k - k0) * 16 + 8, _mm256_loadu_ps(B + k * ldb + j + 8));
            }
            column<16>(m0, m1, 0, 0, k1 - k0, A + k0 * a_cs, a_rs, a_cs, pp, 16, C + j, ldc);
        }
        if (j + 8 <= n1) {
            column<8>(m0, m1, j, k0, k1, A, a_rs, a_cs, B, ldb, C, ldc);
            j += 8;
        }
        for (; j < n1; ++j)
            for (int64_t i = m0; i < m1; ++i) {
                float c = C[i * ldc + j];
                for (int64_t k = k0; k < k1; ++k) c = std::fma(A[i * a_rs + k * a_cs], B[k * ldb + j], c);
                C[i * ldc + j] = c;
            }
    }
}

}  // namespace spider::train
