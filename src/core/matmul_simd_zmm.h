// The 512-bit one-token kernels for the packed layouts (SPIDER_SIMD_ZMM, matmul_avx512.cpp only; chosen at run time
// where cpu_wide_vectors_fast()). Not a header of its own: matmul_simd_impl.h includes it inside its namespace, after
// the 256-bit kernels whose helpers (q8x_row, the pack8 loaders, mm_pack8, mm_pack8_lanes, the block layouts) these
// reuse, and before the kernel table that selects them. Layouts and the bit-identity argument: ARCHITECTURE.md
// (packed layouts) and the comments below.
// ---- The packed 8-row layouts in 512-bit vectors: one token, CPUs with full-width 512-bit units ----
// The packed layout and the single sequential weight stream are unchanged; a 512-bit vector holds two of the 8-row
// kernel's 256-bit vectors, and every row still gets exactly that kernel's integers and sequence of float
// operations, so the results are bit-identical to it (test: packed_512_bit_kernels_are_bit_identical_to_256_bit).
// - Q4_0 and Q8_0 (tile_pack8_wide): block b in the low half, block b + 1 in the high half. The level decoding, the
//   dot products, the int->float conversion and the scale products run on both blocks at once; the accumulation
//   then takes block b's half and block b + 1's half in that order.
// - Q5_0 (tile_q5_0_lanes_wide): one block, level groups 2k and 2k + 1 side by side, so the float lanes of
//   tile_pack8_lanes sit in pairs and accumulate without crossing halves.
// Measured on the 2-core EPYC (Zen 5) with SPIDER_BENCH=1 SPIDER_BENCH_L3=1 SPIDER_BENCH_SHAPE=640,2048 and
// 2048,5632 test_matmul, 1 thread, 2 alternating rounds (2026-12-05), decode GB/s 256-bit -> 512-bit: Q4_0 54-59 ->
// 79-83, Q5_0 46-48 -> 58-62, Q8_0 88-108 -> 97-114. Two row groups side by side (two weight streams per thread)
// were faster still from L3 but slower from memory with 2 threads. On the Xeon of earlier sessions 512-bit integer
// kernels lost every comparison (BENCHMARKS_HISTORY.md 4.0000000, item 5), so Intel CPUs keep the 256-bit kernels.
// GCC 12's own _mm512_cvtph_ps / _mm512_inserti64x4 start from an "undefined" vector that -Wmaybe-uninitialized
// reports once inlined: a false positive, silenced for these kernels only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
inline __m512i load_pair(const uint8_t * a, const uint8_t * b) {
    return _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(a))),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b)), 1);
}

// The fp16 scales at a (8) and at b (8) as 16 floats.
inline __m512 scales_pair(const uint8_t * a, const uint8_t * b) {
    const __m256i h =
        _mm256_inserti128_si256(_mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(a))),
                                _mm_loadu_si128(reinterpret_cast<const __m128i *>(b)), 1);
    return _mm512_cvtph_ps(h);
}

struct pair_q4_0 {
    static void decode(const uint8_t * a, const uint8_t * b, __m512i * u) {
        const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
            const __m512i v = load_pair(a + 32 * g, b + 32 * g);
            u[g] = _mm512_and_si512(v, m4);
            u[g + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
    }
};

struct pair_q8_0 {
    static void decode(const uint8_t * a, const uint8_t * b, __m512i * u) {
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) u[g] = load_pair(a + 32 * g, b + 32 * g);
    }
};

// Lane j of the result: lane g of v in the low half (j < 8), lane 8 + g in the high half: from 16 int32 that hold
// block b's 8 values then block b + 1's, value g of each block broadcast over its half.
inline __m512i spread_pair(__m512i v, int g) {
    return _mm512_permutexvar_epi32(
        _mm512_add_epi32(_mm512_set_epi32(8, 8, 8, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0), _mm512_set1_epi32(g)), v);
}

// Walks the nb blocks of one packed group two at a time: prefetch ahead, both blocks' scale products (weight scale
// times activation scale, 16 lanes) and levels as unsigned bytes, then f(b, d, u) for blocks b and b + 1. Returns
// the number of blocks done (nb rounded down to even); the caller finishes an odd last block with the 8-row step.
template <typename P, typename Q, typename F>
inline int64_t for_each_pack8_block_pair(int64_t nb, const uint8_t * w, const q8x_row & x, F && f) {
    const uint8_t * p = w;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, p += 2 * P::BYTES) {
        prefetch_stream(reinterpret_cast<const char *>(p), 2 * P::BYTES);
        const __m512 dx = _mm512_insertf32x8(_mm512_set1_ps(x.d[b]), _mm256_set1_ps(x.d[b + 1]), 1);
        const __m512 d = _mm512_mul_ps(scales_pair(p, p + P::BYTES), dx);
        __m512i u[8];
        Q::decode(p + 16, p + P::BYTES + 16, u);
        f(b, d, u);
    }
    return b;
}

// acc + lo(f) * lo(d), then + hi(f) * hi(d): block b's fma, then block b + 1's.
inline __m256 fma_pair(__m512 f, __m256 d_lo, __m256 d_hi, __m256 acc) {
    acc = _mm256_fmadd_ps(_mm512_castps512_ps256(f), d_lo, acc);
    return _mm256_fmadd_ps(_mm512_extractf32x8_ps(f, 1), d_hi, acc);
}

// tile_pack8 with one token, two blocks at a time.
template <typename P, typename Q>
void tile_pack8_wide(int64_t n, const uint8_t * w, const uint8_t * xq, float * y) {
    const int64_t nb = n / 32;
    const q8x_row x(xq, nb);
    __m256 acc = _mm256_setzero_ps();
    const int64_t done = for_each_pack8_block_pair<P, Q>(nb, w, x, [&](int64_t b, __m512 d, const __m512i * u) {
        const __m512i xp = _mm512_loadu_si512(x.qs + 32 * b);
        const __m512i seed = _mm512_inserti32x8(_mm512_set1_epi32(-P::OFFSET * x.xsum[b]),
                                                _mm256_set1_epi32(-P::OFFSET * x.xsum[b + 1]), 1);
        __m512i s0 = seed, s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int g = 0; g < 8; g += 2) {
            s0 = _mm512_dpbusd_epi32(s0, u[g], spread_pair(xp, g));
            s1 = _mm512_dpbusd_epi32(s1, u[g + 1], spread_pair(xp, g + 1));
        }
        acc = fma_pair(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_castps512_ps256(d),
                       _mm512_extractf32x8_ps(d, 1), acc);
    });
    // the odd last block: tile_pack8's step
    for_each_pack8_block<P>(nb - done, w + done * P::BYTES, [&](int64_t b, __m256 dw, const __m256i * u) {
        acc = pack8_step<P>(x, done + b, dw, u, acc);
    });
    _mm256_storeu_ps(y, acc);
}

// tile_pack8_lanes for Q5_0 with one token, one block at a time, two level groups per vector: the low half of
// vector k holds group 2k of the 8 rows, the high half group 2k + 1, so acc[k] holds tile_pack8_lanes's float lanes
// 2k and 2k + 1 side by side and every lane keeps its own sequence of fmas (no cross-half moves in the loop). The
// nibble vectors load as they lie (the layout puts groups 2k and 2k + 1 in adjacent 32-byte vectors), the fifth bits
// take one variable shift per pair of groups.
inline void tile_q5_0_lanes_wide(int64_t n, const uint8_t * w, const uint8_t * xq, float * y) {
    using P = pack8_q5_0;
    const int64_t nb = n / 32;
    const q8x_row x(xq, nb);
    __m512 acc[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) acc[k] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
    // 16-bit shift counts per half: the fifth bit of group g sits at bit g of each byte and goes to bit 4
    const __m512i up01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(3), 1);
    const __m512i up23 = _mm512_inserti64x4(_mm512_set1_epi16(2), _mm256_set1_epi16(1), 1);
    const __m512i dn45 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(1), 1);
    const __m512i dn67 = _mm512_inserti64x4(_mm512_set1_epi16(2), _mm256_set1_epi16(3), 1);
    __m512i idx[4];  // lanes 0..7 take value 2k, lanes 8..15 value 2k + 1
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) idx[k] = _mm512_inserti64x4(_mm512_set1_epi32(2 * k), _mm256_set1_epi32(2 * k + 1), 1);
    const uint8_t * p = w;
    for (int64_t b = 0; b < nb; ++b, p += P::BYTES) {
        prefetch_stream(reinterpret_cast<const char *>(p), P::BYTES);
        const __m512 dw =
            _mm512_cvtph_ps(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))));
        const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(x.d[b]));
        const __m512i v0 = _mm512_loadu_si512(p + 16), v1 = _mm512_loadu_si512(p + 80);
        const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + 144)));
        __m512i u[4];
        u[0] = _mm512_ternarylogic_epi32(_mm512_and_si512(v0, m4), _mm512_sllv_epi16(h, up01), b4, 0xF8);
        u[1] = _mm512_ternarylogic_epi32(_mm512_and_si512(v1, m4), _mm512_sllv_epi16(h, up23), b4, 0xF8);
        u[2] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(v0, 4), m4), _mm512_srlv_epi16(h, dn45), b4,
                                         0xF8);
        u[3] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(v1, 4), m4), _mm512_srlv_epi16(h, dn67), b4,
                                         0xF8);
        const __m512i xv = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qs + 32 * b)));
        __m512i ns = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.nsum + 8 * b)));
        if constexpr (P::OFFSET_SHIFT > 4) {
            ns = _mm512_slli_epi32(ns, P::OFFSET_SHIFT - 4);
        } else if constexpr (P::OFFSET_SHIFT < 4) {
            ns = _mm512_srai_epi32(ns, 4 - P::OFFSET_SHIFT);
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
            const __m512i s =
                _mm512_dpbusd_epi32(_mm512_permutexvar_epi32(idx[k], ns), u[k], _mm512_permutexvar_epi32(idx[k], xv));
            acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[k]);
        }
    }
    // hsum_lanes8's tree: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), lane pairs side by side
    const __m512 t = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
    _mm256_storeu_ps(y, _mm256_add_ps(_mm512_castps512_ps256(t), _mm512_extractf32x8_ps(t, 1)));
}

void mm_q5_0_wide(int64_t n, const uint8_t * w, size_t ws, int nr, const uint8_t * xq, size_t xs, int nc, float * y,
                  size_t ys) {
    if (nc == 1) {
        tile_q5_0_lanes_wide(n, w, xq, y);
    } else {
        mm_pack8_lanes<pack8_q5_0>(n, w, ws, nr, xq, xs, nc, y, ys);
    }
}

// tile_packed for the 512-bit path (Q4_0, Q8_0): one token takes the two-block kernel, prompts the 8-row one.
template <typename P, typename Q>
void mm_pack8_wide(int64_t n, const uint8_t * w, size_t ws, int nr, const uint8_t * xq, size_t xs, int nc, float * y,
                   size_t ys) {
    if (nc == 1) {
        tile_pack8_wide<P, Q>(n, w, xq, y);
    } else {
        mm_pack8<P>(n, w, ws, nr, xq, xs, nc, y, ys);
    }
}
#pragma GCC diagnostic pop

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// 512-bit versions of tile_pack8_q4_K and tile_pack8_q6_K (matmul_simd_impl.h): tile_q5_0_lanes_wide's idea,
// lanes 2j and 2j + 1 of the 8-row kernel side by side in one vector (the layouts put the level vectors of v = 2j
// and 2j + 1 next to each other), so every lane keeps its own operations and the results are bit-identical.
// SPIDER_BENCH=1 SPIDER_BENCH_L3=1 test_matmul on the 2-core EPYC (Zen 5), 1 thread, 3 alternating rounds
// (2026-12-05), decode GB/s 256-bit -> 512-bit: Q4_K 1024 x 640 51-52 -> 49-66, 2048 x 2048 40-48 -> 63-68; Q6_K
// 2048 x 640 42-49 -> 64-70, 2048 x 2048 48-50 -> 52-68.

// Lanes 0..7: 32-bit value a of v (a broadcast); lanes 8..15: value b.
inline __m512i idx_pair(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi32(a), _mm256_set1_epi32(b), 1);
}

// The end of both kernels: acc[j] = lanes 2j, 2j + 1; hsum_lanes8's tree ((l0 + l4) + (l2 + l6)) + ((l1 + l5) +
// (l3 + l7)) with the lane pairs side by side.
inline void store_lane_pairs(const __m512 * acc, float * y) {
    const __m512 t = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
    _mm256_storeu_ps(y, _mm256_add_ps(_mm512_castps512_ps256(t), _mm512_extractf32x8_ps(t, 1)));
}

inline void tile_pack8_q4_K_wide(int64_t n, const uint8_t * w, const uint8_t * xq, float * y) {
    const int64_t nb = n / QK_K;
    const block_q8_K * xb = reinterpret_cast<const block_q8_K *>(xq);
    const __m512i m4 = _mm512_set1_epi8(0x0F), ff = _mm512_set1_epi32(0xFF);
    const __m512i c3f = _mm512_set1_epi8(0x3f), c0f = _mm512_set1_epi8(0x0f), c30 = _mm512_set1_epi8(0x30);
    const __m512i idx_lo[2] = {idx_pair(0, 1), idx_pair(2, 3)}, idx_hi[2] = {idx_pair(4, 5), idx_pair(6, 7)};
    const __m512i sh01 = idx_pair(0, 8), sh23 = idx_pair(16, 24);  // bytes k, k + 1 of every lane
    __m512 acc[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[j] = _mm512_setzero_ps();
    const uint8_t * p = w;
    for (int64_t b = 0; b < nb; ++b, p += sizeof(block_q4_K_x8)) {
        const block_q4_K_x8 * g = reinterpret_cast<const block_q4_K_x8 *>(p);
        prefetch_stream(reinterpret_cast<const char *>(p), sizeof(block_q4_K_x8));
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(g->d)));
        const __m256 dmw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(g->dmin)));
        // tile_pack8_q4_K's scale unpacking, both halves alike
        const __m512i a = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->scales)));
        const __m512i bm =
            _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->scales + 32)));
        const __m512i c = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->scales + 64)));
        const __m512i sc_lo = _mm512_and_si512(a, c3f);
        const __m512i sc_hi = _mm512_ternarylogic_epi32(_mm512_and_si512(c, c0f), _mm512_srli_epi32(a, 2), c30, 0xF8);
        const __m512i m_lo = _mm512_and_si512(bm, c3f);
        const __m512i m_hi = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi32(c, 4), c0f),
                                                       _mm512_srli_epi32(bm, 2), c30, 0xF8);
        __m512i isum[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) isum[j] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) {
            const __m512i scv = s < 4 ? sc_lo : sc_hi;
            const int k = s % 4;
            const __m512i scs =
                k == 3 ? _mm512_srli_epi32(scv, 24) : _mm512_and_si512(_mm512_srli_epi32(scv, 8 * k), ff);
            const __m512i xs =
                _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(xb[b].qs + 32 * s)));
#pragma GCC unroll 2
            for (int j = 0; j < 2; ++j) {  // v = 2j, 2j + 1
                const __m512i q = _mm512_loadu_si512(g->qs + 128 * s + 64 * j);
                const __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
                const __m512i dlo =
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_permutexvar_epi32(idx_lo[j], xs));
                const __m512i dhi =
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, _mm512_permutexvar_epi32(idx_hi[j], xs));
                isum[j] = _mm512_dpwssd_epi32(isum[j], dlo, scs);
                isum[j + 2] = _mm512_dpwssd_epi32(isum[j + 2], dhi, scs);
            }
        }
        const __m256 dx = _mm256_set1_ps(xb[b].d);
        const __m512 dd = _mm512_broadcast_f32x8(_mm256_mul_ps(dw, dx));
        const __m512 dm = _mm512_broadcast_f32x8(_mm256_xor_ps(_mm256_mul_ps(dmw, dx), _mm256_set1_ps(-0.0f)));
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {  // lanes i = 2j, 2j + 1
            const __m512i mv = j < 2 ? m_lo : m_hi;
            const __m512i mi = _mm512_and_si512(_mm512_srlv_epi32(mv, j % 2 == 0 ? sh01 : sh23), ff);
            const int32_t xs0 = int32_t(xb[b].bsums[4 * j]) + xb[b].bsums[4 * j + 1];
            const int32_t xs1 = int32_t(xb[b].bsums[4 * j + 2]) + xb[b].bsums[4 * j + 3];
            const __m512i mterm = _mm512_mullo_epi32(mi, idx_pair(xs0, xs1));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), dd, acc[j]);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mterm), dm, acc[j]);
        }
    }
    store_lane_pairs(acc, y);
}

inline void tile_pack8_q6_K_wide(int64_t n, const uint8_t * w, const uint8_t * xq, float * y) {
    const int64_t nb = n / QK_K;
    const block_q8_K * xb = reinterpret_cast<const block_q8_K *>(xq);
    const __m512i m4 = _mm512_set1_epi8(0x0F), c30 = _mm512_set1_epi8(0x30), lo16 = _mm512_set1_epi32(0xFFFF);
    const __m512i idx_lo[2] = {idx_pair(0, 1), idx_pair(2, 3)}, idx_hi[2] = {idx_pair(4, 5), idx_pair(6, 7)};
    // tile_pack8_q6_K's shifts of the high-bit bytes for v = 0, 1 (left 4, 2) and v = 2, 3 (right 0, 2)
    const __m512i up01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i dn23 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    __m512 acc[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[j] = _mm512_setzero_ps();
    const uint8_t * p = w;
    for (int64_t b = 0; b < nb; ++b, p += sizeof(block_q6_K_x8)) {
        const block_q6_K_x8 * g = reinterpret_cast<const block_q6_K_x8 *>(p);
        prefetch_stream(reinterpret_cast<const char *>(p), sizeof(block_q6_K_x8));
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(g->d)));
        const int32_t * bs2 = reinterpret_cast<const int32_t *>(xb[b].bsums);  // bsums 2i, 2i+1 as one dword
        __m512i isum[4];  // isum[j]: lanes 2j and 2j + 1 side by side
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            // the offset term of lanes 2j and 2j + 1: scale pairs 4j.., from 32 bytes of scales
            const __m512i pair =
                _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->scales + 32 * j)));
            isum[j] = _mm512_sub_epi32(
                _mm512_setzero_si512(),
                _mm512_slli_epi32(
                    _mm512_dpwssd_epi32(_mm512_setzero_si512(), pair, idx_pair(bs2[2 * j], bs2[2 * j + 1])), 5));
        }
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
            const __m512i pair = _mm512_cvtepi8_epi16(
                _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(g->scales + 16 * c))));
            const __m512i sc_lo = _mm512_and_si512(pair, lo16), sc_hi = _mm512_srli_epi32(pair, 16);
            const __m512i ha =
                _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->qh + 64 * c)));
            const __m512i hb =
                _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(g->qh + 64 * c + 32)));
            const __m512i xs =
                _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(xb[b].qs + 32 * c)));
#pragma GCC unroll 2
            for (int j = 0; j < 2; ++j) {  // v = 2j, 2j + 1
                const __m512i q = _mm512_loadu_si512(g->ql + 128 * c + 64 * j);
                const __m512i sa = j == 0 ? _mm512_sllv_epi16(ha, up01) : _mm512_srlv_epi16(ha, dn23);
                const __m512i sb = j == 0 ? _mm512_sllv_epi16(hb, up01) : _mm512_srlv_epi16(hb, dn23);
                const __m512i ulo = _mm512_ternarylogic_epi32(_mm512_and_si512(q, m4), sa, c30, 0xF8);
                const __m512i uhi =
                    _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(q, 4), m4), sb, c30, 0xF8);
                const __m512i dlo =
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), ulo, _mm512_permutexvar_epi32(idx_lo[j], xs));
                const __m512i dhi =
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), uhi, _mm512_permutexvar_epi32(idx_hi[j], xs));
                isum[j] = _mm512_dpwssd_epi32(isum[j], dlo, sc_lo);
                isum[j + 2] = _mm512_dpwssd_epi32(isum[j + 2], dhi, sc_hi);
            }
        }
        const __m512 dd = _mm512_broadcast_f32x8(_mm256_mul_ps(dw, _mm256_set1_ps(xb[b].d)));
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), dd, acc[j]);
    }
    store_lane_pairs(acc, y);
}

void mm_pack8_q6_K_wide(int64_t n, const uint8_t * w, size_t, int, const uint8_t * xq, size_t xs, int nc, float * y,
                        size_t ys) {
    for (int c = 0; c < nc; ++c) tile_pack8_q6_K_wide(n, w, xq + c * xs, y + c * ys);
}

void mm_pack8_q4_K_wide(int64_t n, const uint8_t * w, size_t, int, const uint8_t * xq, size_t xs, int nc, float * y,
                        size_t ys) {
    for (int c = 0; c < nc; ++c) tile_pack8_q4_K_wide(n, w, xq + c * xs, y + c * ys);
}
#pragma GCC diagnostic pop
