// SIMD matmul tile kernels shared by matmul_avx2.cpp and matmul_avx512.cpp: both include this file after defining
//   SPIDER_SIMD_VNNI    1 to form int8 dot products with vpdpbusd (AVX512-VNNI on 256-bit vectors), 0 for the
//                       AVX2 maddubs + madd pair,
//   SPIDER_SIMD_MAX_NC  activation rows per tile (limited by the 16 / 32 vector registers),
//   SPIDER_SIMD_MAX_NC_K  the same for the K-quant kernels, whose block decoding needs more registers,
//   SPIDER_SIMD_ZMM     1 to add the 512-bit one-token kernels for the packed layouts (matmul_simd_zmm.h; taken at
//                       run time where cpu_wide_vectors_fast(), i.e. on AMD), 0 without them,
//   SPIDER_SIMD_NAME    the function name to define (matmul_kernel_avx2 / matmul_kernel_avx512).
// 256-bit vectors fit one 32-element block exactly, so most kernels use them at every level.
//
// Every kernel computes, per block, an exact integer dot product of weight levels and Q8 activation levels and
// then scales it by the two block scales in float: the same arithmetic as matmul_portable.cpp, with a different
// float summation order.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/cpu_features.h"
#include "core/matmul_kernels.h"
#include "core/quants.h"

namespace spider {

namespace {

// acc + sum over groups of 4 of u[i] * s[i] (u unsigned, s signed bytes), as 8 int32 lanes.
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if SPIDER_SIMD_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    // maddubs cannot saturate here: callers keep u <= 128 and |s| <= 127, so a pair sum is at most 32512.
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Prefetch every cache line of a block of `bytes` bytes (the same block of the next row tile, see tile32).
inline void prefetch_block(const char * p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

// Software prefetch distance when a call reads one weight stream (decode: one row at a time, ROWWISE below, or a
// packed group of rows): 8 KB ahead (prefetch_stream: into L2), whatever the row length, so rows continue into the
// next. The hardware prefetcher alone leaves a core's decode well below its read bandwidth while the kernel's
// arithmetic fills the out-of-order window. Measured on the 2-core Xeon (AVX-512, weights on huge pages): on 2026-12-05
// at 1.5 KB, SPIDER_BENCH=1 test_matmul, 2048 x 5632 from memory, 2 threads: Q6_K 19.2 -> 27.1 GB/s, Q4_K 20.6 -> 23.8;
// spider bench tg: TinyLlama-shape Q4_0 (packed) 29.5 -> 36.0 t/s. Later the same day (a new VM of the same
// kind), spider bench tg -n 64, 2 threads, 2 alternating rounds at 1.5 / 3 / 4 / 6 / 8 KB: gemma-3-270m 108-115 /
// 125-133 / 135-167 / 143-167 / 154-169, TinyLlama-shape Q8_0 25.5-26.1 / 27.3 / 27.2-27.9 / 27.6-28.2 / 28.4,
// Q4_0 38.8-39.7 / 44.4-44.7 / 43.5-48.5 / 45.8-48.6 / 43.8-47.3; `spider bench --membw`'s read loop peaks at 4 KB
// too. On the 2-core EPYC of earlier sessions, rows over 2 KB did better without the old, farther prefetch (8 KB+
// ahead): re-measure there. On 2026-12-06 (2-core Xeon, prefetches into L2, prefetch_stream), 4 -> 8 KB: gemma-3-270m
// tg64 143.0-144.0 -> 148.8-151.5 t/s (7 alternating pairs, its output matrix 40.8 -> 43.1 GB/s); TinyLlama-shape tg32
// Q8_0 29.4 / 29.1 -> 28.6 / 28.4, Q4_0 50.0 / 50.1 -> 49.2 / 49.5; 16 KB no better than 8.
constexpr size_t DECODE_PREFETCH = 8192;
// The near prefetch, into L1 from L2 (2026-12-06, 2-core Xeon): the far one alone left the layers' Q5_0 / Q4_K / Q6_K
// kernels waiting on L2 (the output matrix's Q8_0 less so). gemma-3-270m tg64, `spider bench --profile`, 7 alternating
// pairs: 137.0 -> 141.2 t/s, the layers' matmuls at 0.671 -> 0.697 of the output matrix's rate (higher in 7 of 7);
// 512 / 1024 / 2048 ahead, 3 more pairs: 149.3 / 146.9 / 144.4 against 143.3 without; TinyLlama-shape tg32 Q4_0
// 49.1 -> 51.1 t/s (2 pairs), Q8_0 28.5 -> 28.2.
constexpr size_t DECODE_PREFETCH_L1 = 1024;

// Prefetches for one weight stream read once (decode), for the block of `bytes` bytes at p, the block being read: into
// L2 DECODE_PREFETCH ahead, and into L1 DECODE_PREFETCH_L1 ahead, from L2 by then. L2 rather than L1 for the far
// prefetch: on the 2-core Xeon of 2026-12-06, SPIDER_BENCH=1 SPIDER_BENCH_MIB=1024 test_matmul (weights past its 480 MB
// L3), 2 threads, 3 alternating rounds, T0 -> T1 at 4 KB ahead: 640 x 2048 Q5_0 24.7 -> 28.7 GB/s, Q8_0 31.9 -> 37.5;
// 2048 x 640 Q4_K 23.4 -> 22.7, Q5_0 25.0 -> 25.5, Q6_K 25.0 -> 26.5, Q8_0 30.9 -> 32.9. gemma-3-270m tg64, 4
// alternating pairs: 125.4 -> 140.8 t/s, its output matrix read at 34.8 -> 40.5 GB/s (spider bench --profile);
// TinyLlama-shape tg32, 2 pairs: Q8_0 26.8 / 27.9 -> 30.0 / 29.3, Q4_0 45.4 / 44.0 -> 49.6 / 50.0; pp unchanged. Likely
// why: a T0 prefetch also brings the line into L1, which it holds up (and a fill buffer) 4 KB before the line is read;
// the L2 is where the stream has room.
inline void prefetch_stream(const char * p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(p + DECODE_PREFETCH + o, _MM_HINT_T1);
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(p + DECODE_PREFETCH_L1 + o, _MM_HINT_T0);
}

// Software prefetch distance for a tile of several rows (prompts) with stride ws: the same block of the next row
// tile, or, for
// tiles shorter than 4 KB, of the first tile at least 8 KB ahead (the rows of consecutive tiles are contiguous, so
// this is a fixed distance ahead in one stream). Measured on the 2-core EPYC (process CPU time, 1 thread, 3
// alternating pairs): gemma's 640-wide Q8_0 output matrix (2.7 KB tiles) -3.5% with 3 tiles ahead; a 2048-wide
// Q4_0 matrix (4.6 KB tiles) +5% with 2 tiles ahead, so long tiles keep one.
inline size_t prefetch_offset(size_t ws) {
    const size_t tile = MATMUL_MAX_NR * ws;
    return tile >= 4096 ? tile : (8192 + tile - 1) / tile * tile;
}

inline float h2f(uint16_t h) {
    return _cvtsh_ss(h);
}

// 32 bits -> 32 bytes, 0xFF where the bit is set (bit i -> byte i).
inline __m256i bits_to_bytes(uint32_t bits) {
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

// 16 bytes of nibbles -> 32 bytes: low nibbles first (elements 0..15), then high nibbles (16..31).
inline __m256i nibbles_to_bytes(const uint8_t * p) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
#if SPIDER_SIMD_VNNI
    // AVX512BW+VL: broadcast the 16 bytes to both halves and shift only the upper half (one op fewer).
    const __m256i v = _mm256_srlv_epi16(_mm256_broadcastsi128_si256(t),
                                        _mm256_set_epi64x(0x0004000400040004LL, 0x0004000400040004LL, 0, 0));
#else
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
#endif
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

// ---- Q8_0x activations (matmul_kernels.h), 8 floats per instruction ----
// Byte for byte matmul_prep_q8_0x (the portable definition) for finite inputs: the same amax (max is exact and
// associative without NaN), the same scale (computed by the same scalar code), the same product x * id per element,
// and round-half-away-from-zero done exactly (trunc(|v|), plus one when the exact remainder is >= 0.5). The level
// sums are exact integers. tests/test_matmul.cpp compares the two byte for byte.
void prep_q8_0x(const float * x, int64_t n, uint8_t * dst) {
    const int64_t nb = n / 32;
    int8_t * qs = reinterpret_cast<int8_t *>(dst);
    float * dq = reinterpret_cast<float *>(dst + nb * 32);
    int32_t * nsum = reinterpret_cast<int32_t *>(dst + nb * (32 + sizeof(float)));
    int32_t * xsum = nsum + nb * 8;
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    for (int64_t b = 0; b < nb; ++b) {
        const float * xb = x + 32 * b;
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 4; ++k) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        dq[b] = fp16_to_fp32(fp32_to_fp16(d));
        const __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; ++k) {
            const __m256 s = _mm256_mul_ps(v[k], idv);
            const __m256 a = _mm256_andnot_ps(sign, s);
            __m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(a, t), half, _CMP_GE_OQ), one));
            q[k] = _mm256_cvttps_epi32(_mm256_or_ps(t, _mm256_and_ps(s, sign)));
        }
        // 32 int32 -> 32 int8 in order: the packs interleave 128-bit lanes, the permute undoes it.
        const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
        const __m256i p8 =
            _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(qs + 32 * b), p8);
        // Sums of each group of 4 levels: two rounds of pairwise adds leave groups (0 2 4 6 | 1 3 5 7).
        const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(q[0], q[1]), _mm256_hadd_epi32(q[2], q[3]));
        const __m256i g = _mm256_permutevar8x32_epi32(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(nsum + 8 * b),
                            _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), g), 4));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(g), _mm256_extracti128_si256(g, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        xsum[b] = _mm_cvtsi128_si32(s4);
    }
}

// ---- Q8_K activations (the K-quant kernels' format), 8 floats per instruction ----
// Byte for byte quantize_row(DTYPE_Q8_K) (quants.cpp) for finite inputs: the block's scale comes from the first
// element of largest magnitude, as the scalar search finds it; levels are nearest_int(iscale * x) (round half to
// even), capped at 127; the 16-element sums are exact. tests/test_matmul.cpp compares the two.
size_t q8_K_bytes(int64_t n) {
    return static_cast<size_t>(n / QK_K) * sizeof(block_q8_K);
}

void prep_q8_K(const float * x, int64_t n, uint8_t * dst) {
    const int64_t nb = n / QK_K;
    block_q8_K * y = reinterpret_cast<block_q8_K *>(dst);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i cap = _mm256_set1_epi32(127);
    for (int64_t b = 0; b < nb; ++b, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (!amax) {
            std::memset(&y[b], 0, sizeof(block_q8_K));
            continue;
        }
        // the first element of largest magnitude, 8 at a time (a scalar search cost ~1 us per 2048-wide decode row)
        int first = 0;
        const __m256 am = _mm256_set1_ps(amax);
        for (int k = 0; k < QK_K; k += 8) {
            const int hit =
                _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), am, _CMP_EQ_OQ));
            if (hit) {
                first = k + __builtin_ctz(static_cast<unsigned>(hit));
                break;
            }
        }
        const float iscale = -127.f / x[first];
        const __m256 is = _mm256_set1_ps(iscale);
        for (int k = 0; k < QK_K; k += 32) {
            __m256i l[4];
            for (int u = 0; u < 4; ++u) {
                // nearest_int's magic-number addition rounds half to even, as the conversion does (|v| <= 127.x);
                // converting directly also leaves the compiler no add to fuse with the multiply.
                l[u] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(x + k + 8 * u))), cap);
            }
            const __m256i p8 = _mm256_permutevar8x32_epi32(
                _mm256_packs_epi16(_mm256_packs_epi32(l[0], l[1]), _mm256_packs_epi32(l[2], l[3])),
                _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(y[b].qs + k), p8);
            // The two 16-element sums of these 32 levels.
            const __m256i s = _mm256_add_epi32(l[0], l[1]);
            const __m256i t = _mm256_add_epi32(l[2], l[3]);
            __m128i a = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            __m128i c = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
            a = _mm_hadd_epi32(a, c);  // a0+a1, a2+a3, c0+c1, c2+c3
            a = _mm_hadd_epi32(a, a);  // sum a, sum c, ...
            y[b].bsums[k / 16] = static_cast<int16_t>(_mm_cvtsi128_si32(a));
            y[b].bsums[k / 16 + 1] = static_cast<int16_t>(_mm_extract_epi32(a, 1));
        }
        y[b].d = 1 / iscale;
    }
}

// ---- 32-element blocks against Q8_0x activations (matmul_kernels.h) ----
// levels(): signed weight levels; ulevels(): the same plus 2^SHIFT, as unsigned bytes.

struct load_q8_0 {
    using block = block_q8_0;
    static constexpr int SHIFT = 7;
    // AVX2's maddubs would saturate on unsigned levels up to 255, so there Q8_0 uses the sign trick instead.
    static constexpr bool SIGNED_ONLY = !SPIDER_SIMD_VNNI;
    static __m256i levels(const block & b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b.qs)); }
    static __m256i ulevels(const block & b) { return _mm256_xor_si256(levels(b), _mm256_set1_epi8(-128)); }
};

struct load_q4_0 {
    using block = block_q4_0;
    static constexpr int SHIFT = 3;
    static constexpr bool SIGNED_ONLY = false;
    static __m256i ulevels(const block & b) { return nibbles_to_bytes(b.qs); }
    static __m256i levels(const block & b) { return _mm256_sub_epi8(ulevels(b), _mm256_set1_epi8(8)); }
};

struct load_q5_0 {
    using block = block_q5_0;
    static constexpr int SHIFT = 4;
    static constexpr bool SIGNED_ONLY = false;
    static __m256i ulevels(const block & b) {
        uint32_t qh;
        std::memcpy(&qh, b.qh, 4);
#if SPIDER_SIMD_VNNI
        // AVX512BW+VL: qh is directly a byte mask
        const __m256i low = nibbles_to_bytes(b.qs);
        return _mm256_or_si256(low, _mm256_maskz_mov_epi8(qh, _mm256_set1_epi8(16)));
#else
        return _mm256_or_si256(nibbles_to_bytes(b.qs), _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(16)));
#endif
    }
    static __m256i levels(const block & b) {
        return _mm256_sub_epi8(ulevels(b), _mm256_set1_epi8(16));
    }
};

// nsum (minus 16 times a group's level sum, matmul_kernels.h) times 2^SHIFT / 16: the offset correction for weights
// stored with offset 2^SHIFT. Exact: nsum is a multiple of 16, so the arithmetic right shift drops only zero bits.
template <int SHIFT>
inline __m256i nsum_times_offset(__m256i nsum) {
    if constexpr (SHIFT > 4) {
        return _mm256_slli_epi32(nsum, SHIFT - 4);
    } else if constexpr (SHIFT < 4) {
        return _mm256_srai_epi32(nsum, 4 - SHIFT);
    } else {
        return nsum;
    }
}

// Pointers into one Q8_0x activation row (layout: matmul_kernels.h) of nb blocks.
struct q8x_row {
    const int8_t * qs;     // levels, 32 per block
    const float * d;       // scales
    const int32_t * nsum;  // minus 16 times the sum of each group of 4 levels, 8 per block
    const int32_t * xsum;  // the sums of each block's 32 levels
    q8x_row() = default;
    q8x_row(const uint8_t * row, int64_t nb)
        : qs(reinterpret_cast<const int8_t *>(row)),
          d(reinterpret_cast<const float *>(row + nb * 32)),
          nsum(reinterpret_cast<const int32_t *>(row + nb * (32 + sizeof(float)))),
          xsum(reinterpret_cast<const int32_t *>(row + nb * (32 + sizeof(float) + 8 * sizeof(int32_t)))) {}
};

// The NC activation rows of a tile, x_stride bytes apart.
template <int NC>
inline void q8x_rows(const uint8_t * xq, size_t xs, int64_t nb, q8x_row * x) {
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) x[c] = q8x_row(xq + c * xs, nb);
}

template <typename L, int NR, int NC>
void tile32(int64_t n, const uint8_t * w, size_t ws, const uint8_t * xq, size_t xs, float * y, size_t ys) {
    using B = typename L::block;
    const int64_t nb = n / 32;
    q8x_row x[NC];
    q8x_rows<NC>(xq, xs, nb, x);
    __m256 acc[NR][NC];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) acc[r][c] = _mm256_setzero_ps();
    }
    const size_t pf = prefetch_offset(ws);
    for (int64_t b = 0; b < nb; ++b) {
        __m256i xv[NC], bias[NC];
        __m256 dxv[NC];
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) {
            xv[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x[c].qs + 32 * b));
            dxv[c] = _mm256_broadcast_ss(x[c].d + b);
            if (!L::SIGNED_ONLY) {
                bias[c] = nsum_times_offset<L::SHIFT>(
                    _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x[c].nsum + 8 * b)));
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
            const B * wb = reinterpret_cast<const B *>(w + r * ws) + b;
            // One row (decode): DECODE_PREFETCH ahead in its stream. A tile of rows: the same block of a later row
            // tile (prefetch_offset); rows are short (about 1 KB for n_in 2048), too short for the hardware
            // prefetcher to ramp up on each.
            if (NR == 1) {
                prefetch_stream(reinterpret_cast<const char *>(wb), sizeof(B));
            } else {
                _mm_prefetch(reinterpret_cast<const char *>(wb) + pf, _MM_HINT_T0);
            }
            const __m256 dwv = _mm256_set1_ps(h2f(wb->d));
            if (L::SIGNED_ONLY) {
                const __m256i wv = L::levels(*wb);
                const __m256i aw = _mm256_sign_epi8(wv, wv);  // |w| as unsigned bytes (-128 -> 128)
#pragma GCC unroll 4
                for (int c = 0; c < NC; ++c) {
                    const __m256i p = dot_u8s8(_mm256_setzero_si256(), aw, _mm256_sign_epi8(xv[c], wv));
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dwv, dxv[c]), acc[r][c]);
                }
            } else {
                const __m256i u = L::ulevels(*wb);
#pragma GCC unroll 4
                for (int c = 0; c < NC; ++c) {
                    const __m256i p = dot_u8s8(bias[c], u, xv[c]);  // sum u x - offset sum x, exactly
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dwv, dxv[c]), acc[r][c]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) y[c * ys + r] = hsum(acc[r][c]);
    }
}

#if SPIDER_SIMD_VNNI
// ---- 32-element blocks against Q8_0x activations, VNNI: block sums reduced 8 at a time ----
// tile32 pays, per weight row, activation row and block, an int->float conversion, a multiply and an fma, which
// makes one-token decode bound by instruction throughput rather than by memory. tile32r keeps 8 blocks' integer
// dot products as separate vectors and folds them with reduce8 into one vector whose lane k is block k's exact
// integer sum, so that float work (and the conversion of the 8 fp16 weight scales) is paid once per 8 blocks. The
// block offset correction uses the activations' per-block level sums (xsum, matmul_kernels.h). Each output is the
// same sequence of operations for any tile shape (nr, nc): a token gives bit-identical results alone or in a batch.
// The weight rows of a tile are read one after the other (a single sequential stream). Measured on the 2-core EPYC
// (TinyLlama-shape Q4_0, spider bench tg, 1 thread, loaded machine): about 1.3x tile32's decode speed.

// Lane k of the result = the sum of the 8 int32 lanes of v[k]. Two ways to the same exact integers: a vphaddd
// tree (fewer instructions, faster at one activation row) or transpose-and-add with single-uop unpacks (faster when
// several activation rows keep the vector units busy). Measured on the 2-core EPYC with SPIDER_BENCH=1 test_matmul,
// 1 thread, weights in L3: decode 21.5 vs 20.1 GB/s, pp512 109 vs 99 ms.
template <bool UNPACK>
inline __m256i reduce8(const __m256i * v) {
    __m256i b0, b1;  // per 128-bit half: the sums of v[0..3]'s half, then of v[4..7]'s
    if (UNPACK) {
        __m256i t[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
            t[i] = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                    _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
        }
        b0 = _mm256_add_epi32(_mm256_unpacklo_epi64(t[0], t[1]), _mm256_unpackhi_epi64(t[0], t[1]));
        b1 = _mm256_add_epi32(_mm256_unpacklo_epi64(t[2], t[3]), _mm256_unpackhi_epi64(t[2], t[3]));
    } else {
        b0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
        b1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    }
    return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x20), _mm256_permute2x128_si256(b0, b1, 0x31));
}

// acc + the group of m <= 8 blocks starting at block b (blocks k >= m count as zero: FULL means m == 8).
template <typename L, bool FULL, bool UNPACK>
inline __m256 dot_group8(const typename L::block * wb, int64_t b, int m, const q8x_row & x, __m256 dw, __m256 acc) {
    __m256i p[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
        if (FULL || k < m) {
            const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qs + 32 * (b + k)));
            p[k] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), L::ulevels(wb[b + k]), xv);
        } else {
            p[k] = _mm256_setzero_si256();
        }
    }
    const __mmask8 mask = FULL ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << m) - 1);
    // sum w x = sum u x - 2^SHIFT sum x, per block, exactly
    const __m256i xs = _mm256_maskz_loadu_epi32(mask, x.xsum + b);
    const __m256i s = _mm256_sub_epi32(reduce8<UNPACK>(p), _mm256_slli_epi32(xs, L::SHIFT));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_maskz_loadu_ps(mask, x.d + b)), acc);
}

// The fp16 scales of blocks b .. b+m-1 (zero past m) as 8 floats.
template <typename L>
inline __m256 scales8(const typename L::block * wb, int64_t b, int m) {
    uint16_t d[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) d[k] = k < m ? wb[b + k].d : 0;
    return _mm256_cvtph_ps(_mm_setr_epi16(static_cast<short>(d[0]), static_cast<short>(d[1]), static_cast<short>(d[2]),
                                          static_cast<short>(d[3]), static_cast<short>(d[4]), static_cast<short>(d[5]),
                                          static_cast<short>(d[6]), static_cast<short>(d[7])));
}

template <typename L, int NR, int NC>
void tile32r(int64_t n, const uint8_t * w, size_t ws, const uint8_t * xq, size_t xs, float * y, size_t ys) {
    using B = typename L::block;
    const int64_t nb = n / 32;
    q8x_row x[NC];
    q8x_rows<NC>(xq, xs, nb, x);
    const int64_t n_full = nb / 8 * 8;
    const int m_tail = static_cast<int>(nb - n_full);
    for (int r = 0; r < NR; ++r) {
        const B * wb = reinterpret_cast<const B *>(w + r * ws);
        __m256 acc[NC];
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
        for (int64_t b = 0; b < n_full; b += 8) {
            const __m256 dw = scales8<L>(wb, b, 8);
#pragma GCC unroll 4
            for (int c = 0; c < NC; ++c) acc[c] = dot_group8<L, true, (NC > 1)>(wb, b, 8, x[c], dw, acc[c]);
        }
        if (m_tail > 0) {
            const __m256 dw = scales8<L>(wb, n_full, m_tail);
#pragma GCC unroll 4
            for (int c = 0; c < NC; ++c) {
                acc[c] = dot_group8<L, false, (NC > 1)>(wb, n_full, m_tail, x[c], dw, acc[c]);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) y[c * ys + r] = hsum(acc[c]);
    }
}
#endif

// ---- 32-element blocks packed 8 rows at a time (matmul_pack, ops.h) against Q8_0x activations ----
// A packed block group holds the 8 rows' fp16 scales (16 bytes), then their levels in 4-byte groups: one 32-byte
// vector holds elements 4g..4g+3 of each of the 8 rows, row r in 32-bit lane r. So one int8 dot product with 4
// activation bytes broadcast to every lane advances all 8 rows: no horizontal sums, and the float work (one
// conversion, one multiply, one fma) is paid once per block for 8 rows. Lane r of acc[c] is output (row r, token c):
// a plain sequence of one fma per block, the same for any tile shape, so a token gives bit-identical results alone
// or in a batch. Each loader's decode() fills u[g], g = 0..7, with unsigned levels (weight level + OFFSET).

// Q4_0: 4 vectors of nibble bytes; low nibbles are groups 0..3, high nibbles groups 4..7.
struct pack8_q4_0 {
    static constexpr int OFFSET = 8;
    static constexpr size_t BYTES = 8 * sizeof(block_q4_0);
    static void decode(const uint8_t * q, __m256i * u) {
        const __m256i m4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(q + 32 * g));
            u[g] = _mm256_and_si256(v, m4);
            u[g + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
    }
};

// Q5_0: Q4_0's nibbles, then 32 bytes of high bits: bit g of byte 4r+i is the fifth bit of row r's element 4g+i,
// so group g's high bits are one shift and one mask away (16-bit shifts by < 8 never carry a bit across bytes into
// bit 4).
struct pack8_q5_0 {
    static constexpr int OFFSET = 16, OFFSET_SHIFT = 4;
    static constexpr size_t BYTES = 8 * sizeof(block_q5_0);
    static void decode(const uint8_t * q, __m256i * u) {
        pack8_q4_0::decode(q, u);
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(q + 128));
        const __m256i b4 = _mm256_set1_epi8(0x10);
        u[0] = _mm256_or_si256(u[0], _mm256_and_si256(_mm256_slli_epi16(h, 4), b4));
        u[1] = _mm256_or_si256(u[1], _mm256_and_si256(_mm256_slli_epi16(h, 3), b4));
        u[2] = _mm256_or_si256(u[2], _mm256_and_si256(_mm256_slli_epi16(h, 2), b4));
        u[3] = _mm256_or_si256(u[3], _mm256_and_si256(_mm256_slli_epi16(h, 1), b4));
        u[4] = _mm256_or_si256(u[4], _mm256_and_si256(h, b4));
        u[5] = _mm256_or_si256(u[5], _mm256_and_si256(_mm256_srli_epi16(h, 1), b4));
        u[6] = _mm256_or_si256(u[6], _mm256_and_si256(_mm256_srli_epi16(h, 2), b4));
        u[7] = _mm256_or_si256(u[7], _mm256_and_si256(_mm256_srli_epi16(h, 3), b4));
    }
};

// Q8_0: 8 vectors of levels stored + 128 as unsigned bytes. VNNI only: AVX2's maddubs would saturate on them.
struct pack8_q8_0 {
    static constexpr int OFFSET = 128;
    static constexpr size_t BYTES = 8 * sizeof(block_q8_0);
    static void decode(const uint8_t * q, __m256i * u) {
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) u[g] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(q + 32 * g));
    }
};

// Walks the nb block groups of one packed group of 8 rows: prefetch ahead, the 8 rows' scales as floats, their
// levels decoded to unsigned bytes, then f(b, dw, u) does a kernel's arithmetic on block b.
template <typename P, typename F>
inline void for_each_pack8_block(int64_t nb, const uint8_t * w, F && f) {
    const uint8_t * p = w;
    for (int64_t b = 0; b < nb; ++b, p += P::BYTES) {
        prefetch_stream(reinterpret_cast<const char *>(p), P::BYTES);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
        __m256i u[8];
        P::decode(p + 16, u);
        f(b, dw, u);
    }
}

// One token's step of tile_pack8 on block b (scales dw, levels u): acc + the block's exact integer dot product times
// its two scales. Also the odd last block of tile_pack8_wide (matmul_simd_zmm.h).
template <typename P>
inline __m256 pack8_step(const q8x_row & x, int64_t b, __m256 dw, const __m256i * u, __m256 acc) {
    const int32_t * x4 = reinterpret_cast<const int32_t *>(x.qs + 32 * b);
    // sum (u - OFFSET) x = sum u x - OFFSET sum x, exactly. Two integer chains (exact, so the order does not matter)
    // halve the dependent vpdpbusd latency that bounds one token's decode.
    __m256i s0 = _mm256_set1_epi32(-P::OFFSET * x.xsum[b]), s1 = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int g = 0; g < 8; g += 2) {
        s0 = dot_u8s8(s0, u[g], _mm256_set1_epi32(x4[g]));
        s1 = dot_u8s8(s1, u[g + 1], _mm256_set1_epi32(x4[g + 1]));
    }
    const __m256i s = _mm256_add_epi32(s0, s1);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(x.d[b])), acc);
}

template <typename P, int NC>
void tile_pack8(int64_t n, const uint8_t * w, const uint8_t * xq, size_t xs, float * y, size_t ys) {
    const int64_t nb = n / 32;
    q8x_row x[NC];
    q8x_rows<NC>(xq, xs, nb, x);
    __m256 acc[NC];
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
    for_each_pack8_block<P>(nb, w, [&](int64_t b, __m256 dw, const __m256i * u) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) acc[c] = pack8_step<P>(x[c], b, dw, u, acc[c]);
    });
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) _mm256_storeu_ps(y + c * ys, acc[c]);
}

template <typename P>
void mm_pack8(int64_t n, const uint8_t * w, size_t, int, const uint8_t * xq, size_t xs, int nc, float * y, size_t ys) {
    constexpr int NC2 = SPIDER_SIMD_MAX_NC >= 2 ? 2 : 1, NC3 = SPIDER_SIMD_MAX_NC >= 3 ? 3 : 1;
    if (nc == 1) return tile_pack8<P, 1>(n, w, xq, xs, y, ys);
    if (nc == 2) return tile_pack8<P, NC2>(n, w, xq, xs, y, ys);
    if (nc == 3) return tile_pack8<P, NC3>(n, w, xq, xs, y, ys);
    tile_pack8<P, SPIDER_SIMD_MAX_NC>(n, w, xq, xs, y, ys);
}

// What hsum (one row's 8 float lanes) computes, for 8 rows at once: acc[g] holds lane g of each row (row r in lane r),
// and the tree ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) is replayed across the vectors.
inline __m256 hsum_lanes8(const __m256 * acc) {
    const __m256 a0 = _mm256_add_ps(acc[0], acc[4]), a1 = _mm256_add_ps(acc[1], acc[5]);
    const __m256 a2 = _mm256_add_ps(acc[2], acc[6]), a3 = _mm256_add_ps(acc[3], acc[7]);
    return _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
}

// The packed layout with tile32's arithmetic: for types whose models must keep llama.cpp's summation order (Q5_0,
// see SPIDER_TILE_FN below), each row's result is the same sequence of operations as tile32 with one row, bit for
// bit. tile32 keeps, per row, 8 float lanes (lane j: the int32 dot product of elements 4j..4j+3 of every block,
// seeded with the offset correction, converted and multiplied by the block's scale product) and sums them at the end
// with hsum. In the packed layout, vector g of a block holds elements 4g..4g+3 of the 8 rows, so one vpdpbusd with
// those 4 activation bytes broadcast gives lane g's integer for all 8 rows at once: acc[g] (rows in lanes) is that
// lane's float accumulator, and the final hsum tree is replayed across the 8 vectors. The weight decode and the scale
// work are shared by 8 rows: one token, weights in L3, 1 thread (SPIDER_BENCH=1 SPIDER_BENCH_L3=1 test_matmul, 2048 x
// 5632, 2-core Xeon): 27.4 GB/s against tile32's 14.0.
template <typename P, int NC>
void tile_pack8_lanes(int64_t n, const uint8_t * w, const uint8_t * xq, size_t xs, float * y, size_t ys) {
    const int64_t nb = n / 32;
    q8x_row x[NC];
    q8x_rows<NC>(xq, xs, nb, x);
    __m256 acc[NC][8];
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) {
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) acc[c][g] = _mm256_setzero_ps();
    }
    for_each_pack8_block<P>(nb, w, [&](int64_t b, __m256 dw, const __m256i * u) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) {
            const int32_t * x4 = reinterpret_cast<const int32_t *>(x[c].qs + 32 * b);
            const int32_t * ns = x[c].nsum + 8 * b;
            const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(x[c].d[b]));
#pragma GCC unroll 8
            for (int g = 0; g < 8; ++g) {
                // sum u x - OFFSET * sum x over the group, exactly (tile32's seeded dot product, lane g)
                // (a broadcast from memory and a vector shift: no scalar work, nothing on the shuffle port)
                const __m256i seed = nsum_times_offset<P::OFFSET_SHIFT>(_mm256_set1_epi32(ns[g]));
                const __m256i s = dot_u8s8(seed, u[g], _mm256_set1_epi32(x4[g]));
                acc[c][g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[c][g]);
            }
        }
    });
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) {
        _mm256_storeu_ps(y + c * ys, hsum_lanes8(acc[c]));
    }
}

template <typename P>
void mm_pack8_lanes(int64_t n, const uint8_t * w, size_t, int, const uint8_t * xq, size_t xs, int nc, float * y,
                    size_t ys) {
    // At most 2 activation rows per pass: 8 accumulators per row already fill most of the vector registers.
    for (int c = 0; c < nc; c += 2) {
        if (nc - c >= 2) {
            tile_pack8_lanes<P, 2>(n, w, xq + c * xs, xs, y + c * ys, ys);
        } else {
            tile_pack8_lanes<P, 1>(n, w, xq + c * xs, xs, y + c * ys, ys);
        }
    }
}

// ---- K-quants against Q8_K ----

// The 8 six-bit scales and 8 mins of a Q4_K / Q5_K block (layout: quants.h get_scale_min_k4) as 16-bit lanes:
// *sc = {sc0..sc7} in both 128-bit halves, *mins = {m0, m0, m1, m1, ..., m7, m7} (one per pair of bsums).
inline void unpack_scales_k4(const uint8_t * q, __m256i * sc, __m256i * mins) {
    uint32_t a, b, c;
    std::memcpy(&a, q, 4);
    std::memcpy(&b, q + 4, 4);
    std::memcpy(&c, q + 8, 4);
    const uint32_t sc_lo = a & 0x3f3f3f3fu;
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);  // top 2 bits of q[j-4] -> bits 4..5
    const uint32_t m_lo = b & 0x3f3f3f3fu;
    const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    const __m128i sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc_lo | uint64_t(sc_hi) << 32)));
    const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(m_lo | uint64_t(m_hi) << 32)));
    *sc = _mm256_broadcastsi128_si256(sc16);
    *mins = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
}

// acc + madd(a, b) (each 32-bit lane plus the sum of its two 16-bit products): one vpdpwssd with VNNI. Exact either
// way for the K-quant kernels' operands (a pair sum from maddubs times a 6- or 8-bit scale), so the lanes hold the
// same integers with or without it. Tiles of several tokens only: SPIDER_BENCH=1 SPIDER_BENCH_L3=1 test_matmul,
// 1024 x 640, 1 thread, 2 alternating pairs (2026-12-05): pp512 Q4_K 48-51 -> 64 GFLOP/s, Q6_K 50-55 -> 58-67.
inline __m256i madd_acc(__m256i acc, __m256i a, __m256i b) {
#if SPIDER_SIMD_VNNI
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

// Broadcast 16-bit lane k of v (k < 8, v equal in both halves) to all lanes (k is a constant after unrolling).
inline __m256i bcast16(__m256i v, int k) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16(static_cast<int16_t>((2 * k) | ((2 * k + 1) << 8))));
}

// Q4_K (HIGH5 = false) and Q5_K (HIGH5 = true): unsigned levels, per-32 scale and min.
template <bool HIGH5, int NR, int NC>
void tile_q45_K(int64_t n, const uint8_t * w, size_t ws, const uint8_t * xq, size_t xs, float * y, size_t ys) {
    const int64_t nb = n / QK_K;
    __m256 acc[NR][NC];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) acc[r][c] = _mm256_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i b4 = _mm256_set1_epi8(0x10);
    for (int64_t b = 0; b < nb; ++b) {
        const block_q8_K * xb[NC];
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) xb[c] = reinterpret_cast<const block_q8_K *>(xq + c * xs) + b;
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
            const uint8_t * wrow = w + r * ws;
            const uint8_t * qs;
            const uint8_t * scales;
            const uint8_t * qh = nullptr;
            uint16_t d16, dmin16;
            {
                constexpr size_t BB = HIGH5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
                const char * here = reinterpret_cast<const char *>(wrow) + b * BB;
                if (NR == 1) {
                    prefetch_stream(here, BB);
                } else {
                    prefetch_block(here + MATMUL_MAX_NR * ws, BB);
                }
            }
            if (HIGH5) {
                const block_q5_K * wb = reinterpret_cast<const block_q5_K *>(wrow) + b;
                qs = wb->qs, scales = wb->scales, qh = wb->qh, d16 = wb->d, dmin16 = wb->dmin;
            } else {
                const block_q4_K * wb = reinterpret_cast<const block_q4_K *>(wrow) + b;
                qs = wb->qs, scales = wb->scales, d16 = wb->d, dmin16 = wb->dmin;
            }
            __m256i sc, mins;
            unpack_scales_k4(scales, &sc, &mins);
            __m256i hv = _mm256_setzero_si256();
            if (HIGH5) hv = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(qh));
            __m256i isum[NC];
#pragma GCC unroll 4
            for (int c = 0; c < NC; ++c) isum[c] = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(qs + 32 * j));
                __m256i lo = _mm256_and_si256(q, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                const __m256i sc_lo = bcast16(sc, 2 * j);
                const __m256i sc_hi = bcast16(sc, 2 * j + 1);
                if (HIGH5) {
                    // bit 2j of each qh byte -> bit 4 of the low level, bit 2j+1 -> bit 4 of the high level
                    // (16-bit shifts by at most 4 / 3 never carry a neighbour byte's bit into bit 4)
                    const int s0 = 2 * j, s1 = 2 * j + 1;
                    const __m256i h0 = s0 <= 4 ? _mm256_slli_epi16(hv, 4 - s0) : _mm256_srli_epi16(hv, s0 - 4);
                    const __m256i h1 = s1 <= 4 ? _mm256_slli_epi16(hv, 4 - s1) : _mm256_srli_epi16(hv, s1 - 4);
                    lo = _mm256_or_si256(lo, _mm256_and_si256(h0, b4));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(h1, b4));
                }
#pragma GCC unroll 4
                for (int c = 0; c < NC; ++c) {
                    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(xb[c]->qs + 64 * j));
                    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(xb[c]->qs + 64 * j + 32));
                    // levels <= 31 and |x| <= 127: pair sums fit int16; times a 6-bit scale they fit int32
                    if constexpr (NC > 1) {
                        isum[c] = madd_acc(isum[c], _mm256_maddubs_epi16(lo, x0), sc_lo);
                        isum[c] = madd_acc(isum[c], _mm256_maddubs_epi16(hi, x1), sc_hi);
                    } else {
                        // One token: independent madds and a short add chain (a chain of dependent vpdpwssd, 5
                        // cycles each, left the row-wise decode slower in 6 of 7 alternating pairs).
                        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), sc_lo);
                        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), sc_hi);
                        isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(p0, p1));
                    }
                }
            }
            const float dw = h2f(d16), dmw = h2f(dmin16);
#pragma GCC unroll 4
            for (int c = 0; c < NC; ++c) {
                // min term: dmin * sum_j m_j * (sum of x over sub-block j), from the 16 bsums
                const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(xb[c]->bsums));
                const __m256i mterm = _mm256_madd_epi16(bs, mins);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(dw * xb[c]->d), acc[r][c]);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mterm), _mm256_set1_ps(-dmw * xb[c]->d), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) y[c * ys + r] = hsum(acc[r][c]);
    }
}

// Q6_K: unsigned 6-bit levels (value = level - 32), signed 8-bit scale per 16 elements.
template <int NR, int NC>
void tile_q6_K(int64_t n, const uint8_t * w, size_t ws, const uint8_t * xq, size_t xs, float * y, size_t ys) {
    const int64_t nb = n / QK_K;
    __m256 acc[NR][NC];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) acc[r][c] = _mm256_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    for (int64_t b = 0; b < nb; ++b) {
        const block_q8_K * xb[NC];
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) xb[c] = reinterpret_cast<const block_q8_K *>(xq + c * xs) + b;
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
            const block_q6_K * wb = reinterpret_cast<const block_q6_K *>(w + r * ws) + b;
            if (NR == 1) {
                prefetch_stream(reinterpret_cast<const char *>(wb), sizeof(block_q6_K));
            } else {
                prefetch_block(reinterpret_cast<const char *>(wb) + MATMUL_MAX_NR * ws, sizeof(block_q6_K));
            }
            // all 16 scales as int16 (for the offset term) and per-group broadcasts
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(wb->scales)));
            __m256i isum[NC];
#pragma GCC unroll 4
            for (int c = 0; c < NC; ++c) {
                // offset term: level - 32, so subtract 32 * sum_g scale_g * bsum_g (exact in int32)
                const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(xb[c]->bsums));
                isum[c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5));
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
                const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(wb->ql + 64 * h));
                const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(wb->ql + 64 * h + 32));
                const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(wb->qh + 32 * h));
                __m256i u[4];
                u[0] = _mm256_or_si256(_mm256_and_si256(q0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
                u[1] = _mm256_or_si256(_mm256_and_si256(q1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
                u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q0, 4), m4), _mm256_and_si256(qh, m30));
                u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q1, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
                // this half's 8 scales (int16) in both 128-bit lanes
                const __m256i sch =
                    h == 0 ? _mm256_permute4x64_epi64(sc16, 0x44) : _mm256_permute4x64_epi64(sc16, 0xEE);
#pragma GCC unroll 4
                for (int k = 0; k < 4; ++k) {
                    // 16-bit lanes 0..7 hold elements 0..15 of the group (scale 2k), lanes 8..15 elements 16..31:
                    // one byte shuffle picks word 2k in the low lane and word 2k+1 in the high lane
                    const int16_t lo_sel = static_cast<int16_t>((4 * k) | ((4 * k + 1) << 8));
                    const int16_t hi_sel = static_cast<int16_t>((4 * k + 2) | ((4 * k + 3) << 8));
                    const __m256i scv =
                        _mm256_shuffle_epi8(sch, _mm256_set_m128i(_mm_set1_epi16(hi_sel), _mm_set1_epi16(lo_sel)));
#pragma GCC unroll 4
                    for (int c = 0; c < NC; ++c) {
                        const __m256i xv =
                            _mm256_loadu_si256(reinterpret_cast<const __m256i *>(xb[c]->qs + 128 * h + 32 * k));
                        if constexpr (NC > 1) {
                            isum[c] = madd_acc(isum[c], _mm256_maddubs_epi16(u[k], xv), scv);
                        } else {  // one token: see tile_q45_K
                            isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(_mm256_maddubs_epi16(u[k], xv), scv));
                        }
                    }
                }
            }
            const float dw = h2f(wb->d);
#pragma GCC unroll 4
            for (int c = 0; c < NC; ++c) {
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(dw * xb[c]->d), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) y[c * ys + r] = hsum(acc[r][c]);
    }
}

#if SPIDER_SIMD_VNNI
// Byte k (0..3, a constant after unrolling) of every 32-bit lane, zero-extended.
inline __m256i byte_of_lanes(__m256i v, int k) {
    return k == 3 ? _mm256_srli_epi32(v, 24) : _mm256_and_si256(_mm256_srli_epi32(v, 8 * k), _mm256_set1_epi32(0xFF));
}

// ---- Q4_K packed 8 rows at a time (matmul_pack: quants.h block_q4_K_x8), one token ----
// The lanes idea of tile_pack8_lanes for Q4_K: lane r of every vector is row r, so nibble decoding, scale unpacking
// and the float work are shared by 8 rows and nothing needs a horizontal sum until the end. tile_q45_K (one row)
// keeps 8 int32 lanes per block, lane i = sum over sub-blocks s of scale_s times the dot product of elements
// 4i..4i+3 of s; here vector i holds lane i of the 8 rows: per sub-block, one vpdpbusd gives the 4-element dot
// products of the 8 rows (|dot| <= 4 * 15 * 127, so it fits the low 16 bits of its int32 lane and the high 16 bits
// are its sign), and one vpdpwssd adds dot * scale_s (the scale's high 16 bits are zero). The min term and the two
// fmas per block are tile_q45_K's, lane by lane, and the end replays hsum's tree across the 8 vectors: each row's
// result is the same sequence of operations as tile_q45_K's, bit for bit. Prompts run the plain kernel on unpacked
// groups (matmul.cpp). SPIDER_BENCH=1 SPIDER_BENCH_L3=1 test_matmul, 1024 x 640 (gemma-3-270m's attn_output).
inline void tile_pack8_q4_K(int64_t n, const uint8_t * w, const uint8_t * xq, float * y) {
    const int64_t nb = n / QK_K;
    const block_q8_K * xb = reinterpret_cast<const block_q8_K *>(xq);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i c3f = _mm256_set1_epi8(0x3f), c0f = _mm256_set1_epi8(0x0f), c30 = _mm256_set1_epi8(0x30);
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    const uint8_t * p = w;
    for (int64_t b = 0; b < nb; ++b, p += sizeof(block_q4_K_x8)) {
        const block_q4_K_x8 * g = reinterpret_cast<const block_q4_K_x8 *>(p);
        prefetch_stream(reinterpret_cast<const char *>(p), sizeof(block_q4_K_x8));
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(g->d)));
        const __m256 dmw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(g->dmin)));
        // get_scale_min_k4 on 8 rows at once: scale / min of sub-block s in byte s % 4 of the lo / hi vectors
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->scales));
        const __m256i bm = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->scales + 32));
        const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->scales + 64));
        const __m256i sc_lo = _mm256_and_si256(a, c3f);
        const __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(c, c0f), _mm256_and_si256(_mm256_srli_epi32(a, 2), c30));
        const __m256i m_lo = _mm256_and_si256(bm, c3f);
        const __m256i m_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(c, 4), c0f),
                                             _mm256_and_si256(_mm256_srli_epi32(bm, 2), c30));
        const int32_t * x4 = reinterpret_cast<const int32_t *>(xb[b].qs);
        __m256i isum[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) isum[i] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) {
            const __m256i scs = byte_of_lanes(s < 4 ? sc_lo : sc_hi, s % 4);
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v) {
                const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->qs + 128 * s + 32 * v));
                const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                const __m256i dlo = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, _mm256_set1_epi32(x4[8 * s + v]));
                const __m256i dhi =
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), hi, _mm256_set1_epi32(x4[8 * s + v + 4]));
                isum[v] = _mm256_dpwssd_epi32(isum[v], dlo, scs);
                isum[v + 4] = _mm256_dpwssd_epi32(isum[v + 4], dhi, scs);
            }
        }
        const __m256 dx = _mm256_set1_ps(xb[b].d);
        const __m256 dd = _mm256_mul_ps(dw, dx);
        const __m256 dm = _mm256_xor_ps(_mm256_mul_ps(dmw, dx), _mm256_set1_ps(-0.0f));  // -(dmin * d), exactly
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            // min term, lane i: min_i times the sum of sub-block i's activation levels (tile_q45_K's madd)
            const __m256i mi = byte_of_lanes(i < 4 ? m_lo : m_hi, i % 4);
            const int32_t xs = int32_t(xb[b].bsums[2 * i]) + xb[b].bsums[2 * i + 1];
            const __m256i mterm = _mm256_mullo_epi32(mi, _mm256_set1_epi32(xs));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), dd, acc[i]);
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mterm), dm, acc[i]);
        }
    }
    _mm256_storeu_ps(y, hsum_lanes8(acc));
}

// ---- Q6_K packed 8 rows at a time (quants.h block_q6_K_x8), one token ----
// tile_pack8_q4_K's scheme for tile_q6_K's lanes: lane i of tile_q6_K (one row) gets, per 32-element chunk c, scale
// 2c (i < 4) or 2c + 1 (i >= 4) times the dot product of the chunk's elements 4i..4i+3 (|dot| <= 4 * 63 * 127 fits
// 16 bits), and minus 32 times (scale 2i * bsum 2i + scale 2i+1 * bsum 2i+1) for the levels' offset of 32. Here the
// scales are zero-extended 16-bit values in their int32 lanes, so vpdpwssd multiplies exactly; the offset pair is one
// vpdpwssd of the two scales (int16 halves of a lane) with the two bsums (one broadcast dword). Bit for bit
// tile_q6_K's results.
inline void tile_pack8_q6_K(int64_t n, const uint8_t * w, const uint8_t * xq, float * y) {
    const int64_t nb = n / QK_K;
    const block_q8_K * xb = reinterpret_cast<const block_q8_K *>(xq);
    const __m256i m4 = _mm256_set1_epi8(0x0F), c30 = _mm256_set1_epi8(0x30), lo16 = _mm256_set1_epi32(0xFFFF);
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    const uint8_t * p = w;
    for (int64_t b = 0; b < nb; ++b, p += sizeof(block_q6_K_x8)) {
        const block_q6_K_x8 * g = reinterpret_cast<const block_q6_K_x8 *>(p);
        prefetch_stream(reinterpret_cast<const char *>(p), sizeof(block_q6_K_x8));
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(g->d)));
        const int32_t * x4 = reinterpret_cast<const int32_t *>(xb[b].qs);
        const int32_t * bs2 = reinterpret_cast<const int32_t *>(xb[b].bsums);  // bsums 2i, 2i+1 as one dword
        __m256i isum[8];
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
            // scales 2c, 2c+1 of the 8 rows as int16 pairs
            const __m256i pair =
                _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(g->scales + 16 * c)));
            isum[c] = _mm256_sub_epi32(
                _mm256_setzero_si256(),
                _mm256_slli_epi32(_mm256_dpwssd_epi32(_mm256_setzero_si256(), pair, _mm256_set1_epi32(bs2[c])), 5));
        }
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
            const __m256i pair =
                _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(g->scales + 16 * c)));
            const __m256i sc_lo = _mm256_and_si256(pair, lo16), sc_hi = _mm256_srli_epi32(pair, 16);
            const __m256i ha = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->qh + 64 * c));
            const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->qh + 64 * c + 32));
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v) {
                const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->ql + 128 * c + 32 * v));
                // bits 2v..2v+1 of the high-bit bytes to bits 4..5 (16-bit shifts: bits from the neighbour byte land
                // outside 0x30)
                const __m256i sa = v == 0   ? _mm256_slli_epi16(ha, 4)
                                   : v == 1 ? _mm256_slli_epi16(ha, 2)
                                   : v == 2 ? ha
                                            : _mm256_srli_epi16(ha, 2);
                const __m256i sb = v == 0   ? _mm256_slli_epi16(hb, 4)
                                   : v == 1 ? _mm256_slli_epi16(hb, 2)
                                   : v == 2 ? hb
                                            : _mm256_srli_epi16(hb, 2);
                // (nibble) | (high bits & 0x30): vpternlogd truth table a | (b & c) = 0xF8
                const __m256i ulo = _mm256_ternarylogic_epi32(_mm256_and_si256(q, m4), sa, c30, 0xF8);
                const __m256i uhi =
                    _mm256_ternarylogic_epi32(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), sb, c30, 0xF8);
                const __m256i dlo = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ulo, _mm256_set1_epi32(x4[8 * c + v]));
                const __m256i dhi =
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), uhi, _mm256_set1_epi32(x4[8 * c + v + 4]));
                isum[v] = _mm256_dpwssd_epi32(isum[v], dlo, sc_lo);
                isum[v + 4] = _mm256_dpwssd_epi32(isum[v + 4], dhi, sc_hi);
            }
        }
        const __m256 dd = _mm256_mul_ps(dw, _mm256_set1_ps(xb[b].d));
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), dd, acc[i]);
    }
    _mm256_storeu_ps(y, hsum_lanes8(acc));
}

void mm_pack8_q6_K(int64_t n, const uint8_t * w, size_t, int, const uint8_t * xq, size_t xs, int nc, float * y,
                   size_t ys) {
    for (int c = 0; c < nc; ++c) tile_pack8_q6_K(n, w, xq + c * xs, y + c * ys);
}

// Packed Q4_K serves single tokens (matmul.cpp unpacks groups for prompts); more tokens go one at a time.
void mm_pack8_q4_K(int64_t n, const uint8_t * w, size_t, int, const uint8_t * xq, size_t xs, int nc, float * y,
                   size_t ys) {
    for (int c = 0; c < nc; ++c) tile_pack8_q4_K(n, w, xq + c * xs, y + c * ys);
}
#endif
#if SPIDER_SIMD_ZMM
#include "core/matmul_simd_zmm.h"
#endif

// ---- float weights against F32 activations ----

enum float_kind { FK_F32, FK_F16, FK_BF16 };

template <int FK>
inline __m256 load8(const uint8_t * row, int64_t i) {
    if (FK == FK_F32) return _mm256_loadu_ps(reinterpret_cast<const float *>(row) + i);
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(reinterpret_cast<const uint16_t *>(row) + i));
    if (FK == FK_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

template <int FK>
inline float load1(const uint8_t * row, int64_t i) {
    if (FK == FK_F32) return reinterpret_cast<const float *>(row)[i];
    const uint16_t h = reinterpret_cast<const uint16_t *>(row)[i];
    if (FK == FK_F16) return h2f(h);
    return bf16_to_fp32(h);
}

template <int FK, int NR, int NC>
void tile_float(int64_t n, const uint8_t * w, size_t ws, const uint8_t * xq, size_t xs, float * y, size_t ys) {
    __m256 acc[NR][NC];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) acc[r][c] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv[NC];
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) xv[c] = _mm256_loadu_ps(reinterpret_cast<const float *>(xq + c * xs) + i);
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
            const __m256 wv = load8<FK>(w + r * ws, i);
#pragma GCC unroll 4
            for (int c = 0; c < NC; ++c) acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) {
            float s = hsum(acc[r][c]);
            const float * xr = reinterpret_cast<const float *>(xq + c * xs);
            for (int64_t k = i; k < n; ++k) s += load1<FK>(w + r * ws, k) * xr[k];
            y[c * ys + r] = s;
        }
    }
}

// ---- (nr, nc) dispatch: each kernel is instantiated for every tile shape up to 4 x SPIDER_SIMD_MAX_NC ----
// ROWWISE (the quantized kernels): one activation row (decode) is served row by row, so the weights are read as one
// sequential stream instead of NR interleaved ones. Each output's arithmetic does not depend on the tile shape, so
// the results are bit-identical. Measured on the 2-core EPYC (SPIDER_BENCH=1 test_matmul, decode, 1 thread, machine
// loaded by a compile): Q8_0 14.2 -> 22.7 GB/s, Q4_K 10.6 -> 22.0, Q6_K 9.9 -> 25.7, Q5_0 12.0 -> 17.4; the float
// kernels gain nothing and keep their tiles.

#define SPIDER_TILE_FN(NAME, MAXNC, ROWWISE, ...)                                                                     \
    template <int NR, int NC>                                                                                         \
    void NAME##_fixed(int64_t n, const uint8_t * w, size_t ws, const uint8_t * xq, size_t xs, float * y, size_t ys) { \
        __VA_ARGS__(n, w, ws, xq, xs, y, ys);                                                                         \
    }                                                                                                                 \
    template <int NR>                                                                                                 \
    void NAME##_nc(int64_t n, const uint8_t * w, size_t ws, const uint8_t * xq, size_t xs, int nc, float * y,         \
                   size_t ys) {                                                                                       \
        if (ROWWISE && nc == 1) {                                                                                     \
            for (int r = 0; r < NR; ++r) NAME##_fixed<1, 1>(n, w + r * ws, ws, xq, xs, y + r, ys);                    \
            return;                                                                                                   \
        }                                                                                                             \
        if (nc == 1) return NAME##_fixed<NR, 1>(n, w, ws, xq, xs, y, ys);                                             \
        if (MAXNC >= 2 && nc == 2) return NAME##_fixed<NR, (2 <= MAXNC ? 2 : 1)>(n, w, ws, xq, xs, y, ys);            \
        if (MAXNC >= 3 && nc == 3) return NAME##_fixed<NR, (3 <= MAXNC ? 3 : 1)>(n, w, ws, xq, xs, y, ys);            \
        NAME##_fixed<NR, MAXNC>(n, w, ws, xq, xs, y, ys);                                                             \
    }                                                                                                                 \
    void NAME(int64_t n, const uint8_t * w, size_t ws, int nr, const uint8_t * xq, size_t xs, int nc, float * y,      \
              size_t ys) {                                                                                            \
        switch (nr) {                                                                                                 \
            case 1:                                                                                                   \
                return NAME##_nc<1>(n, w, ws, xq, xs, nc, y, ys);                                                     \
            case 2:                                                                                                   \
                return NAME##_nc<2>(n, w, ws, xq, xs, nc, y, ys);                                                     \
            case 3:                                                                                                   \
                return NAME##_nc<3>(n, w, ws, xq, xs, nc, y, ys);                                                     \
            default:                                                                                                  \
                return NAME##_nc<4>(n, w, ws, xq, xs, nc, y, ys);                                                     \
        }                                                                                                             \
    }

// Q4_0 uses tile32r with VNNI. Q8_0 and Q5_0 keep tile32 everywhere: tile32r is faster for them too, but it sums
// in a different order, and gemma-3-270m (Q8_0 output matrix, Q5_0 layers) amplifies that rounding difference
// through its activation quantization until the llama.cpp parity checks (perplexity within 0.5%, greedy tokens
// off a near tie) fail, so those types stay on the summation order llama.cpp uses.
#if SPIDER_SIMD_VNNI
SPIDER_TILE_FN(mm_q4_0, SPIDER_SIMD_MAX_NC, true, tile32r<load_q4_0, NR, NC>)
#else
SPIDER_TILE_FN(mm_q4_0, SPIDER_SIMD_MAX_NC, true, tile32<load_q4_0, NR, NC>)
#endif
SPIDER_TILE_FN(mm_q8_0, SPIDER_SIMD_MAX_NC, true, tile32<load_q8_0, NR, NC>)
SPIDER_TILE_FN(mm_q5_0, SPIDER_SIMD_MAX_NC, true, tile32<load_q5_0, NR, NC>)
SPIDER_TILE_FN(mm_q4_K, SPIDER_SIMD_MAX_NC_K, true, tile_q45_K<false, NR, NC>)
SPIDER_TILE_FN(mm_q5_K, SPIDER_SIMD_MAX_NC_K, true, tile_q45_K<true, NR, NC>)
SPIDER_TILE_FN(mm_q6_K, SPIDER_SIMD_MAX_NC_K, true, tile_q6_K<NR, NC>)
SPIDER_TILE_FN(mm_f32, SPIDER_SIMD_MAX_NC, false, tile_float<FK_F32, NR, NC>)
SPIDER_TILE_FN(mm_f16, SPIDER_SIMD_MAX_NC, false, tile_float<FK_F16, NR, NC>)
SPIDER_TILE_FN(mm_bf16, SPIDER_SIMD_MAX_NC, false, tile_float<FK_BF16, NR, NC>)

#undef SPIDER_TILE_FN

}  // namespace

bool SPIDER_SIMD_NAME(dtype t, matmul_kernel * k) {
    k->vec_dot_type = matmul_vec_dot_type(t);
    const bool kquant = t == DTYPE_Q4_K || t == DTYPE_Q5_K || t == DTYPE_Q6_K;
    k->max_nc = kquant ? SPIDER_SIMD_MAX_NC_K : SPIDER_SIMD_MAX_NC;
    if (k->vec_dot_type == DTYPE_Q8_0) {
        k->prep = prep_q8_0x;
        k->x_bytes = matmul_q8_0x_bytes;
    } else if (k->vec_dot_type == DTYPE_Q8_K) {
        k->prep = prep_q8_K;
        k->x_bytes = q8_K_bytes;
    }
    switch (t) {
        case DTYPE_F32:
            k->tile = mm_f32;
            return true;
        case DTYPE_F16:
            k->tile = mm_f16;
            return true;
        case DTYPE_BF16:
            k->tile = mm_bf16;
            return true;
        case DTYPE_Q4_0:
            k->tile = mm_q4_0;
            k->tile_packed = mm_pack8<pack8_q4_0>;
#if SPIDER_SIMD_ZMM
            if (cpu_wide_vectors_fast()) {
                k->tile_packed = mm_pack8_wide<pack8_q4_0, pair_q4_0>;
            }
#endif
            return true;
        case DTYPE_Q5_0:
            k->tile = mm_q5_0;
            k->tile_packed = mm_pack8_lanes<pack8_q5_0>;
#if SPIDER_SIMD_ZMM
            if (cpu_wide_vectors_fast()) {
                k->tile_packed = mm_q5_0_wide;
            }
#endif
            return true;
        case DTYPE_Q8_0:
            k->tile = mm_q8_0;
#if SPIDER_SIMD_VNNI
            k->tile_packed = mm_pack8<pack8_q8_0>;
#endif
#if SPIDER_SIMD_ZMM
            if (cpu_wide_vectors_fast()) {
                k->tile_packed = mm_pack8_wide<pack8_q8_0, pair_q8_0>;
            }
#endif
            return true;
        case DTYPE_Q4_K:
            k->tile = mm_q4_K;
#if SPIDER_SIMD_VNNI
            k->tile_packed = mm_pack8_q4_K;
            k->packed_one_token = true;
#if SPIDER_SIMD_ZMM
            if (cpu_wide_vectors_fast()) k->tile_packed = mm_pack8_q4_K_wide;
#endif
#endif
            return true;
        case DTYPE_Q5_K:
            k->tile = mm_q5_K;
            return true;
        case DTYPE_Q6_K:
            k->tile = mm_q6_K;
#if SPIDER_SIMD_VNNI
            k->tile_packed = mm_pack8_q6_K;
            k->packed_one_token = true;
#if SPIDER_SIMD_ZMM
            if (cpu_wide_vectors_fast()) k->tile_packed = mm_pack8_q6_K_wide;
#endif
#endif
            return true;
        default:
            return false;
    }
}

}  // namespace spider
