// AVX2 + FMA block kernel of train_gemm.h (compiled with those flags only; chosen at run time by train_gemm.cpp).
// Tiles of up to 6 rows x 16 columns of C live in 12 ymm accumulators; per k, two loads of B and one broadcast of A
// per row feed 12 fused multiply-adds. GotoBLAS order: k in chunks of KC; per chunk, B in blocks of NC columns
// packed as KC x 16 panels (one panel stays in L1 while every row tile uses it), A in blocks of MC rows (a block
// stays in L2 while every panel uses it): read in place when row-major, else packed as KC x 6 tiles. Before the
// blocking, A (MBs for a 1024-token batch) came from L3 once per column tile. Column tails run the same kernel on a
// zero-padded copy of the C tile, so every C element still gets one fma per k in increasing k order.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "train/train_gemm.h"

namespace spider::train {

namespace {

constexpr int64_t KC = 256;  // k per chunk
constexpr int64_t MC = 96;   // rows of A per packed block (16 tiles)
constexpr int64_t NC = 256;  // columns of B per packed block (16 panels)
constexpr int64_t MR = 6, NR = 16;

// C[0..R) x [0..16) += A (R x kc) Bpack (kc x 16). ROW_MAJOR: row r of A at ap + r * step, contiguous in k;
// otherwise rows are adjacent (ap[r]) and k advances by step (a packed tile: step 6).
template <int R, bool ROW_MAJOR>
inline void kernel(int64_t kc, const float * ap, int64_t step, const float * bp, float * C, int64_t ldc) {
    __m256 c0[R], c1[R];
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
        c0[r] = _mm256_loadu_ps(C + r * ldc);
        c1[r] = _mm256_loadu_ps(C + r * ldc + 8);
    }
    // Row-major: two row pointers (rows 0-2 and 3-5) that each advance one float per k; the other rows are at
    // step and 2 * step from them (base + index * 4 addressing).
    const float * a0 = ap;
    const float * a3 = ROW_MAJOR && R > 3 ? ap + 3 * step : ap;
    const int64_t step2 = 2 * step;
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_load_ps(bp);
        const __m256 b1 = _mm256_load_ps(bp + 8);
        bp += NR;
#pragma GCC unroll 6
        for (int r = 0; r < R; ++r) {
            const float * src;
            if (ROW_MAJOR)
                src = r == 0   ? a0
                      : r == 1 ? a0 + step
                      : r == 2 ? a0 + step2
                      : r == 3 ? a3
                      : r == 4 ? a3 + step
                               : a3 + step2;
            else
                src = a0 + r;
            const __m256 a = _mm256_broadcast_ss(src);
            c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
        }
        if (ROW_MAJOR) {
            ++a0;
            ++a3;
        } else {
            a0 += step;
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
        _mm256_storeu_ps(C + r * ldc, c0[r]);
        _mm256_storeu_ps(C + r * ldc + 8, c1[r]);
    }
}

template <bool ROW_MAJOR>
void run_kernel(int rows, int64_t kc, const float * ap, int64_t step, const float * bp, float * C, int64_t ldc) {
    switch (rows) {
        case 6:
            return kernel<6, ROW_MAJOR>(kc, ap, step, bp, C, ldc);
        case 5:
            return kernel<5, ROW_MAJOR>(kc, ap, step, bp, C, ldc);
        case 4:
            return kernel<4, ROW_MAJOR>(kc, ap, step, bp, C, ldc);
        case 3:
            return kernel<3, ROW_MAJOR>(kc, ap, step, bp, C, ldc);
        case 2:
            return kernel<2, ROW_MAJOR>(kc, ap, step, bp, C, ldc);
        default:
            return kernel<1, ROW_MAJOR>(kc, ap, step, bp, C, ldc);
    }
}

// 32-byte aligned scratch that lives as long as the thread (packing buffers are reused by every call).
float * scratch(std::vector<float> & v, size_t n) {
    if (v.size() < n + 8) v.resize(n + 8);
    const uintptr_t p = reinterpret_cast<uintptr_t>(v.data());
    return reinterpret_cast<float *>((p + 31) & ~uintptr_t{31});
}

}  // namespace

void gemm_block_avx2(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const float * A, int64_t a_rs,
                     int64_t a_cs, const float * B, int64_t b_rs, int64_t b_cs, float * C, int64_t ldc) {
    static thread_local std::vector<float> a_buf, b_buf;
    float * apack = scratch(a_buf, static_cast<size_t>(MC * KC));
    float * bpack = scratch(b_buf, static_cast<size_t>(NC * KC));
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        for (int64_t j0 = n0; j0 < n1; j0 += NC) {
            const int64_t nc = std::min(NC, n1 - j0), n_panels = (nc + NR - 1) / NR;
            // B block: panel p holds columns j0 + 16p .. +16 as kc rows of 16 (zeros past the last column).
            for (int64_t p = 0; p < n_panels; ++p) {
                float * pp = bpack + p * KC * NR;
                const int64_t w = std::min(NR, nc - p * NR);
                const float * bsrc = B + k0 * b_rs + (j0 + p * NR) * b_cs;
                if (b_cs == 1 && w == NR) {
                    for (int64_t k = 0; k < kc; ++k) {
                        _mm256_store_ps(pp + k * NR, _mm256_loadu_ps(bsrc + k * b_rs));
                        _mm256_store_ps(pp + k * NR + 8, _mm256_loadu_ps(bsrc + k * b_rs + 8));
                    }
                } else {
                    if (w < NR) std::fill(pp, pp + kc * NR, 0.0f);
                    for (int64_t jj = 0; jj < w; ++jj)  // column jj of the panel (contiguous in k when b_rs == 1)
                        for (int64_t k = 0; k < kc; ++k) pp[k * NR + jj] = bsrc[k * b_rs + jj * b_cs];
                }
            }
            for (int64_t i0 = m0; i0 < m1; i0 += MC) {
                const int64_t mc = std::min(MC, m1 - i0), n_tiles = (mc + MR - 1) / MR;
                // A row-major is read in place (the block's rows stay in L2 while every panel uses them). Any
                // other layout is packed into tiles of kc x 6: read in place, a transposed view (gW = gy^T x) puts
                // each k a row of gy apart, often a multiple of 1 KB, so a tile's k fall into few L1 sets.
                const bool row_major = a_cs == 1;
                if (!row_major)
                    for (int64_t t = 0; t < n_tiles; ++t) {
                        float * ap = apack + t * KC * MR;
                        const int64_t rows = std::min(MR, mc - t * MR);
                        const float * asrc = A + (i0 + t * MR) * a_rs + k0 * a_cs;
                        if (a_rs == 1 && rows == MR) {  // 6 adjacent floats per k (not a memmove call each)
                            for (int64_t k = 0; k < kc; ++k) {
                                const float * src = asrc + k * a_cs;
                                float * dst = ap + k * MR;
                                _mm_storeu_ps(dst, _mm_loadu_ps(src));
                                _mm_storel_pi(
                                    reinterpret_cast<__m64 *>(dst + 4),
                                    _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(src + 4))));
                            }
                        } else {
                            for (int64_t k = 0; k < kc; ++k)
                                for (int64_t r = 0; r < rows; ++r) ap[k * MR + r] = asrc[r * a_rs + k * a_cs];
                        }
                    }
                for (int64_t p = 0; p < n_panels; ++p) {
                    const int64_t j = j0 + p * NR, w = std::min(NR, nc - p * NR);
                    const float * bp = bpack + p * KC * NR;
                    for (int64_t t = 0; t < n_tiles; ++t) {
                        const int rows = static_cast<int>(std::min(MR, mc - t * MR));
                        float * c = C + (i0 + t * MR) * ldc + j;
                        alignas(32) float ct[MR * NR];
                        float * cdst = c;
                        int64_t cld = ldc;
                        if (w < NR) {  // column tail: through a 16-wide copy of the tile
                            std::fill(ct, ct + MR * NR, 0.0f);
                            for (int r = 0; r < rows; ++r) std::copy_n(c + r * ldc, w, ct + r * NR);
                            cdst = ct;
                            cld = NR;
                        }
                        const int64_t i = i0 + t * MR;
                        if (row_major)
                            run_kernel<true>(rows, kc, A + i * a_rs + k0, a_rs, bp, cdst, cld);
                        else
                            run_kernel<false>(rows, kc, apack + t * KC * MR, MR, bp, cdst, cld);
                        if (w < NR)
                            for (int r = 0; r < rows; ++r) std::copy_n(ct + r * NR, w, c + r * ldc);
                    }
                }
            }
        }
    }
}

}  // namespace spider::train
