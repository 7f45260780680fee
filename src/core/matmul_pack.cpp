// The packed weight layouts (ops.h matmul_pack): packing at load, unpacking for the prompt path of the one-token
// packed kernels, and dequantizing a packed row for get_rows. The kernels that read these layouts are in
// matmul_simd_impl.h (pack8_* loaders, tile_pack8_q4_K, tile_pack8_q6_K).
#include <cstring>
#include <vector>

#include "core/matmul_kernels.h"
#include "core/ops.h"
#include "core/quants.h"

namespace spider {

namespace {

// Level (0..15) of element e of a Q4_K block: bytes 32j..32j+31 of qs hold elements 64j.. in their low nibbles and
// 64j+32.. in their high nibbles.
inline int q4_K_level(const block_q4_K & b, int e) {
    const uint8_t v = b.qs[32 * (e / 64) + e % 32];
    return e % 64 < 32 ? (v & 0x0F) : (v >> 4);
}

void pack_q4_K_block(const block_q4_K * const * rows, block_q4_K_x8 * g) {
    constexpr int R = MATMUL_PACK_ROWS;
    for (int r = 0; r < R; ++r) {
        g->d[r] = rows[r]->d;
        g->dmin[r] = rows[r]->dmin;
        for (int k = 0; k < 3; ++k) std::memcpy(g->scales + 32 * k + 4 * r, rows[r]->scales + 4 * k, 4);
        for (int s = 0; s < 8; ++s) {
            for (int v = 0; v < 4; ++v) {
                for (int i = 0; i < 4; ++i) {
                    const int lo = q4_K_level(*rows[r], 32 * s + 4 * v + i);
                    const int hi = q4_K_level(*rows[r], 32 * s + 16 + 4 * v + i);
                    g->qs[128 * s + 32 * v + 4 * r + i] = static_cast<uint8_t>(lo | hi << 4);
                }
            }
        }
    }
}

// Row `lane` of a packed group block, back in the plain layout (4-byte words; the unpacking sits in the prompt
// path, once per chunk).
inline uint32_t load_u32(const uint8_t * p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

inline void store_u32(uint8_t * p, uint32_t v) {
    std::memcpy(p, &v, 4);
}

void unpack_q4_K_block(const block_q4_K_x8 & g, int lane, block_q4_K * out) {
    out->d = g.d[lane];
    out->dmin = g.dmin[lane];
    for (int k = 0; k < 3; ++k) std::memcpy(out->scales + 4 * k, g.scales + 32 * k + 4 * lane, 4);
    // Sub-blocks 2j (low nibbles of plain bytes 32j..32j+31) and 2j+1 (high nibbles); packed word v of sub-block s
    // holds elements 4v..4v+3 (low nibbles) and 16+4v..16+4v+3 (high nibbles).
    for (int j = 0; j < 4; ++j) {
        for (int v = 0; v < 4; ++v) {
            const uint32_t e = load_u32(g.qs + 128 * (2 * j) + 32 * v + 4 * lane);
            const uint32_t o = load_u32(g.qs + 128 * (2 * j + 1) + 32 * v + 4 * lane);
            store_u32(out->qs + 32 * j + 4 * v, (e & 0x0F0F0F0Fu) | (o & 0x0F0F0F0Fu) << 4);
            store_u32(out->qs + 32 * j + 16 + 4 * v, (e >> 4 & 0x0F0F0F0Fu) | (o & 0xF0F0F0F0u));
        }
    }
}

// Level (0..63) of element e of a Q6_K block (dequantize_q6_K's layout).
inline int q6_K_level(const block_q6_K & b, int e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t lo = b.ql[64 * h + 32 * (k % 2) + l];
    const int nib = k < 2 ? (lo & 0x0F) : (lo >> 4);
    return nib | ((b.qh[32 * h + l] >> (2 * k)) & 3) << 4;
}

void pack_q6_K_block(const block_q6_K * const * rows, block_q6_K_x8 * g) {
    constexpr int R = MATMUL_PACK_ROWS;
    std::memset(g->qh, 0, sizeof(g->qh));
    for (int r = 0; r < R; ++r) {
        g->d[r] = rows[r]->d;
        for (int p = 0; p < 8; ++p) {
            for (int t = 0; t < 2; ++t) g->scales[16 * p + 2 * r + t] = rows[r]->scales[2 * p + t];
        }
        for (int c = 0; c < 8; ++c) {
            for (int v = 0; v < 4; ++v) {
                for (int i = 0; i < 4; ++i) {
                    const int lo = q6_K_level(*rows[r], 32 * c + 4 * v + i);
                    const int hi = q6_K_level(*rows[r], 32 * c + 16 + 4 * v + i);
                    g->ql[128 * c + 32 * v + 4 * r + i] = static_cast<uint8_t>((lo & 0x0F) | (hi & 0x0F) << 4);
                    g->qh[64 * c + 4 * r + i] |= static_cast<uint8_t>((lo >> 4) << (2 * v));
                    g->qh[64 * c + 32 + 4 * r + i] |= static_cast<uint8_t>((hi >> 4) << (2 * v));
                }
            }
        }
    }
}

void unpack_q6_K_block(const block_q6_K_x8 & g, int lane, block_q6_K * out) {
    out->d = g.d[lane];
    for (int p = 0; p < 8; ++p) {
        for (int t = 0; t < 2; ++t) out->scales[2 * p + t] = g.scales[16 * p + 2 * lane + t];
    }
    std::memset(out->ql, 0, sizeof(out->ql));
    std::memset(out->qh, 0, sizeof(out->qh));
    // Chunk c = 4h + k holds elements 128h + 32k + y: plain low 4 bits in ql[64h + 32(k % 2) + y] (shifted by
    // 4 (k / 2)), high 2 bits in qh[32h + y] (shifted by 2k). Four elements (one word) at a time.
    for (int c = 0; c < 8; ++c) {
        const int h = c / 4, k = c % 4;
        const uint32_t ha = load_u32(g.qh + 64 * c + 4 * lane), hb = load_u32(g.qh + 64 * c + 32 + 4 * lane);
        for (int v = 0; v < 4; ++v) {
            const uint32_t q = load_u32(g.ql + 128 * c + 32 * v + 4 * lane);
            const uint32_t nib[2] = {q & 0x0F0F0F0Fu, q >> 4 & 0x0F0F0F0Fu};  // elements 4v.., 16+4v..
            const uint32_t hi[2] = {ha >> (2 * v) & 0x03030303u, hb >> (2 * v) & 0x03030303u};
            for (int half = 0; half < 2; ++half) {
                const int y = 16 * half + 4 * v;
                uint8_t * l = out->ql + 64 * h + 32 * (k % 2) + y;
                uint8_t * u = out->qh + 32 * h + y;
                store_u32(l, load_u32(l) | nib[half] << (4 * (k / 2)));
                store_u32(u, load_u32(u) | hi[half] << (2 * k));
            }
        }
    }
}

}  // namespace

void matmul_unpack_rows(dtype type, const uint8_t * packed, int64_t n_in, int64_t n_rows, uint8_t * dst) {
    // The types with a one-token packed kernel (matmul_kernel::packed_one_token).
    constexpr int R = MATMUL_PACK_ROWS;
    const int64_t nb = n_in / QK_K;
    const size_t row_bytes = dtype_row_bytes(type, n_in);
    for (int64_t g0 = 0; g0 < n_rows; g0 += R) {
        for (int r = 0; r < R; ++r) {
            uint8_t * out = dst + (g0 + r) * row_bytes;
            if (type == DTYPE_Q4_K) {
                const auto * g = reinterpret_cast<const block_q4_K_x8 *>(packed + g0 * row_bytes);
                for (int64_t b = 0; b < nb; ++b) unpack_q4_K_block(g[b], r, reinterpret_cast<block_q4_K *>(out) + b);
            } else if (type == DTYPE_Q6_K) {
                const auto * g = reinterpret_cast<const block_q6_K_x8 *>(packed + g0 * row_bytes);
                for (int64_t b = 0; b < nb; ++b) unpack_q6_K_block(g[b], r, reinterpret_cast<block_q6_K *>(out) + b);
            }
        }
    }
}

// Layouts: see the pack8_* loaders in matmul_simd_impl.h. Per block group: the 8 rows' fp16 scales, then
//   Q4_0: for g = 0..3, bytes 4g..4g+3 of each row's nibbles (row after row);
//   Q5_0: the same, then 32 bytes whose byte 4r+i holds in bit g the fifth bit of row r's element 4g+i;
//   Q8_0: for g = 0..7, levels 4g..4g+3 of each row, + 128 (unsigned).
// Q4_K, Q6_K: block_q4_K_x8 / block_q6_K_x8 (quants.h) per block.
void matmul_pack(const tensor & W, uint8_t * dst) {
    constexpr int R = MATMUL_PACK_ROWS;
    if (W.type == DTYPE_Q4_K || W.type == DTYPE_Q6_K) {
        const int64_t nb = W.ne[0] / QK_K;
        for (int64_t g0 = 0; g0 < W.ne[1]; g0 += R) {
            for (int64_t b = 0; b < nb; ++b) {
                if (W.type == DTYPE_Q4_K) {
                    const block_q4_K * rows[R];
                    for (int r = 0; r < R; ++r) rows[r] = static_cast<const block_q4_K *>(W.row(g0 + r)) + b;
                    pack_q4_K_block(rows, reinterpret_cast<block_q4_K_x8 *>(dst));
                    dst += sizeof(block_q4_K_x8);
                } else {
                    const block_q6_K * rows[R];
                    for (int r = 0; r < R; ++r) rows[r] = static_cast<const block_q6_K *>(W.row(g0 + r)) + b;
                    pack_q6_K_block(rows, reinterpret_cast<block_q6_K_x8 *>(dst));
                    dst += sizeof(block_q6_K_x8);
                }
            }
        }
        return;
    }
    const int64_t nb = W.ne[0] / 32;
    for (int64_t g0 = 0; g0 < W.ne[1]; g0 += R) {
        const uint8_t * rows[R];
        for (int r = 0; r < R; ++r) rows[r] = static_cast<const uint8_t *>(W.row(g0 + r));
        for (int64_t b = 0; b < nb; ++b) {
            if (W.type == DTYPE_Q8_0) {
                for (int r = 0; r < R; ++r)
                    std::memcpy(dst + 2 * r, &reinterpret_cast<const block_q8_0 *>(rows[r])[b].d, 2);
                dst += 2 * R;
                for (int g = 0; g < 8; ++g) {
                    for (int r = 0; r < R; ++r) {
                        const int8_t * q = reinterpret_cast<const block_q8_0 *>(rows[r])[b].qs + 4 * g;
                        for (int i = 0; i < 4; ++i) dst[4 * r + i] = static_cast<uint8_t>(q[i] + 128);
                    }
                    dst += 4 * R;
                }
                continue;
            }
            const bool q5 = W.type == DTYPE_Q5_0;
            auto d_of = [&](int r) -> const uint16_t & {
                return q5 ? reinterpret_cast<const block_q5_0 *>(rows[r])[b].d
                          : reinterpret_cast<const block_q4_0 *>(rows[r])[b].d;
            };
            auto qs_of = [&](int r) -> const uint8_t * {
                return q5 ? reinterpret_cast<const block_q5_0 *>(rows[r])[b].qs
                          : reinterpret_cast<const block_q4_0 *>(rows[r])[b].qs;
            };
            for (int r = 0; r < R; ++r) std::memcpy(dst + 2 * r, &d_of(r), 2);
            dst += 2 * R;
            for (int g = 0; g < 4; ++g) {
                for (int r = 0; r < R; ++r) std::memcpy(dst + 4 * r, qs_of(r) + 4 * g, 4);
                dst += 4 * R;
            }
            if (q5) {
                for (int r = 0; r < R; ++r) {
                    const uint8_t * qh = reinterpret_cast<const block_q5_0 *>(rows[r])[b].qh;
                    const uint32_t h =
                        uint32_t(qh[0]) | uint32_t(qh[1]) << 8 | uint32_t(qh[2]) << 16 | uint32_t(qh[3]) << 24;
                    for (int i = 0; i < 4; ++i) {
                        uint8_t v = 0;
                        for (int g = 0; g < 8; ++g) v |= static_cast<uint8_t>(((h >> (4 * g + i)) & 1u) << g);
                        dst[4 * r + i] = v;
                    }
                }
                dst += 4 * R;
            }
        }
    }
}

void matmul_dequantize_packed_row(const tensor & table, int64_t r, float * y) {
    constexpr int R = MATMUL_PACK_ROWS;
    if (table.type == DTYPE_Q4_K || table.type == DTYPE_Q6_K) {
        // The row's lane of each group block, back to one plain block at a time.
        const int64_t nb = table.ne[0] / QK_K;
        const int lane = static_cast<int>(r % R);
        const uint8_t * group = table.packed + (r / R) * R * table.nb[1];
        for (int64_t b = 0; b < nb; ++b) {
            if (table.type == DTYPE_Q4_K) {
                block_q4_K plain;
                unpack_q4_K_block(reinterpret_cast<const block_q4_K_x8 *>(group)[b], lane, &plain);
                dequantize_row(DTYPE_Q4_K, &plain, y + b * QK_K, QK_K);
            } else {
                block_q6_K plain;
                unpack_q6_K_block(reinterpret_cast<const block_q6_K_x8 *>(group)[b], lane, &plain);
                dequantize_row(DTYPE_Q6_K, &plain, y + b * QK_K, QK_K);
            }
        }
        return;
    }
    const int64_t nb = table.ne[0] / 32;
    const size_t group_block = R * dtype_get_traits(table.type)->block_bytes;
    const int lane = static_cast<int>(r % R);
    const uint8_t * blk = table.packed + (r / R) * R * table.nb[1];
    for (int64_t b = 0; b < nb; ++b, blk += group_block, y += 32) {
        uint16_t dh;
        std::memcpy(&dh, blk + 2 * lane, 2);
        const float d = fp16_to_fp32(dh);
        const uint8_t * q = blk + 2 * R + 4 * lane;
        if (table.type == DTYPE_Q8_0) {
            for (int g = 0; g < 8; ++g) {
                for (int i = 0; i < 4; ++i) y[4 * g + i] = static_cast<float>(int(q[32 * g + i]) - 128) * d;
            }
            continue;
        }
        const bool q5 = table.type == DTYPE_Q5_0;
        for (int g = 0; g < 4; ++g) {
            for (int i = 0; i < 4; ++i) {
                const uint8_t v = q[32 * g + i];
                int lo = v & 0x0F, hi = v >> 4;
                if (q5) {
                    const uint8_t h = q[128 + i];
                    lo |= ((h >> g) & 1) << 4;
                    hi |= ((h >> (g + 4)) & 1) << 4;
                }
                const int offset = q5 ? 16 : 8;
                y[4 * g + i] = static_cast<float>(lo - offset) * d;
                y[16 + 4 * g + i] = static_cast<float>(hi - offset) * d;
            }
        }
    }
}

}  // namespace spider
