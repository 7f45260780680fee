// Reference (plain C++) quantize / dequantize of one row for every Spider dtype. The quantizers reproduce the
// rounding of llama.cpp's *_ref functions (ggml-quants.c) step by step, including float evaluation order, so that
// a file we quantize is byte-identical to one llama-quantize writes without an importance matrix. This file is
// compiled for baseline x86-64 (no FMA), so no multiply-add gets fused behind our back.
#include <cmath>
#include <cstring>

#include "core/quants.h"

namespace spider {

namespace {

// Round to nearest with ties to even, valid for |f| <= 2^22: adding 1.5 * 2^23 pushes the fraction out of the
// mantissa (the same trick ggml uses, so halfway cases round identically).
inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    std::memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// roundf (halfway cases away from zero) for |v| < 2^31, inlined: std::round is a libm call on baseline x86-64
// and made activation quantization cost as much as a third of a prompt matmul. a - trunc(a) is exact in float.
inline int round_away(float v) {
    const float a = std::fabs(v);
    int t = static_cast<int>(a);
    if (a - static_cast<float>(t) >= 0.5f) ++t;
    return v < 0 ? -t : t;
}

inline int imin(int a, int b) {
    return a < b ? a : b;
}
inline int imax(int a, int b) {
    return a > b ? a : b;
}

constexpr float GROUP_MAX_EPS = 1e-15f;

// ---- 32-element blocks ----

void quantize_q4_0(const float * x, block_q4_0 * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += QK4_0) {
        float amax = 0.0f, max = 0.0f;  // largest magnitude and its signed value
        for (int j = 0; j < QK4_0; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        // The extreme value maps to -8 exactly so that the full range [-8, 7] is used on one side.
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[QK4_0 / 2 + j] * id;
            const uint8_t q0 = static_cast<uint8_t>(imin(15, static_cast<int8_t>(x0 + 8.5f)));
            const uint8_t q1 = static_cast<uint8_t>(imin(15, static_cast<int8_t>(x1 + 8.5f)));
            y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
    }
}

void dequantize_q4_0(const block_q4_0 * x, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += QK4_0) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            y[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void quantize_q5_0(const float * x, block_q5_0 * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += QK5_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK5_0; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[QK5_0 / 2 + j] * id;
            const uint8_t q0 = static_cast<uint8_t>(imin(31, static_cast<int8_t>(x0 + 16.5f)));
            const uint8_t q1 = static_cast<uint8_t>(imin(31, static_cast<int8_t>(x1 + 16.5f)));
            y[i].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            // bit 4 of element j goes to bit j, of element j+16 to bit j+16
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + QK5_0 / 2);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}

void dequantize_q5_0(const block_q5_0 * x, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += QK5_0) {
        const float d = fp16_to_fp32(x[i].d);
        uint32_t qh;
        std::memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int h0 = ((qh >> j) << 4) & 0x10;
            const int h1 = (qh >> (j + 12)) & 0x10;
            y[j] = (((x[i].qs[j] & 0x0F) | h0) - 16) * d;
            y[j + QK5_0 / 2] = (((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void quantize_q8_0(const float * x, block_q8_0 * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; ++j) amax = amax > std::fabs(x[j]) ? amax : std::fabs(x[j]);  // ggml's MAX
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(round_away(x[j] * id));
    }
}

void dequantize_q8_0(const block_q8_0 * x, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += QK8_0) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK8_0; ++j) y[j] = x[i].qs[j] * d;
    }
}

// ---- K-quants (256-element super-blocks) ----

// Scale and min search for an affine n-element group with levels [0, nmax] (llama.cpp's make_qkx2_quants):
// start from the min/max fit, then try nstep+1 slightly different scales and keep the weighted least-squares fit
// with the smallest weighted error. Returns the scale; *the_min receives -min (>= 0).
float make_qkx2_quants(int n, int nmax, const float * x, const float * weights, uint8_t * L, float * the_min,
                       uint8_t * Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = static_cast<uint8_t>(imax(0, imin(nmax, l)));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = imax(0, imin(nmax, l));
            Laux[i] = static_cast<uint8_t>(l);
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// Symmetric scale search with levels [-nmax, nmax-1] weighted by x^2 (llama.cpp's make_qx_quants with
// rmse_type 1 and no importance weights). L receives levels offset by +nmax.
float make_qx_quants(int n, int nmax, const float * x, int8_t * L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = static_cast<int8_t>(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = imax(-nmax, imin(nmax - 1, l));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                const int l = nearest_int(iscale * x[i]);
                L[i] = static_cast<int8_t>(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// The 8 (scale, min) 6-bit pairs of Q4_K / Q5_K: pairs 0..3 in the low 6 bits of bytes 0..3 / 4..7, pairs 4..7
// as nibbles of bytes 8..11 with their top 2 bits in the high bits of bytes 0..7.
inline void get_scale_min_k4(int j, const uint8_t * q, uint8_t * d, uint8_t * m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

inline void set_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t * scales) {
    if (j < 4) {
        scales[j] = ls;
        scales[j + 4] = lm;
    } else {
        scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
        scales[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32-element group scale/min search, then 6-bit quantized
// scales and mins relative to the super-block's d / dmin, then the final levels against the quantized scales.
void quantize_k_affine(const float * x, int nmax, float rmin, float rdelta, int nstep, uint16_t * d_out,
                       uint16_t * dmin_out, uint8_t * scales_out, uint8_t * L) {
    uint8_t Laux[32];
    float weights[32];
    float mins[QK_K / 32];
    float scales[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] =
            make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(scales_out, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
        uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
        set_scale_min_k4(j, ls, lm, scales_out);
    }
    *d_out = fp32_to_fp16(max_scale / 63.f);
    *dmin_out = fp32_to_fp16(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, scales_out, &sc, &m);
        const float d = fp16_to_fp32(*d_out) * sc;
        if (!d) continue;  // keeps the levels found by the search, as llama.cpp does
        const float dm = fp16_to_fp32(*dmin_out) * m;
        for (int ii = 0; ii < 32; ++ii) {
            const int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = static_cast<uint8_t>(imax(0, imin(nmax, l)));
        }
    }
}

void quantize_q4_K(const float * x, block_q4_K * y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        quantize_k_affine(x, 15, -1.f, 0.1f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t * q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32) {
            for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
        }
    }
}

void dequantize_q4_K(const block_q4_K * x, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t * q = x[i].qs;
        const float d = fp16_to_fp32(x[i].d);
        const float min = fp16_to_fp32(x[i].dmin);
        for (int j = 0, is = 0; j < QK_K; j += 64, q += 32, is += 2) {
            uint8_t sc, m;
            get_scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

void quantize_q5_K(const float * x, block_q5_K * y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        quantize_k_affine(x, 31, -0.5f, 0.1f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t * qh = y[i].qh;
        uint8_t * ql = y[i].qs;
        std::memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < QK_K; n += 64, ql += 32) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n + j];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                int l2 = L[n + j + 32];
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }
}

void dequantize_q5_K(const block_q5_K * x, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t * ql = x[i].qs;
        const uint8_t * qh = x[i].qh;
        const float d = fp16_to_fp32(x[i].d);
        const float min = fp16_to_fp32(x[i].dmin);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < QK_K; j += 64, ql += 32, is += 2) {
            uint8_t sc, m;
            get_scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

void quantize_q6_K(const float * x, block_q6_K * y, int64_t nb) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            if (std::fabs(scale) > max_abs_scale) {
                max_abs_scale = std::fabs(scale);
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            std::memset(&y[i], 0, sizeof(block_q6_K));
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = fp32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            y[i].scales[ib] = static_cast<int8_t>(imin(127, nearest_int(iscale * scales[ib])));
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = fp16_to_fp32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                const int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = static_cast<int8_t>(imax(-32, imin(31, l)) + 32);
            }
        }
        uint8_t * ql = y[i].ql;
        uint8_t * qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l] & 0xF;
                const uint8_t q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF;
                const uint8_t q4 = L[j + l + 96] & 0xF;
                ql[l] = static_cast<uint8_t>(q1 | (q3 << 4));
                ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
                qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                             ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

void dequantize_q6_K(const block_q6_K * x, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t * ql = x[i].ql;
        const uint8_t * qh = x[i].qh;
        const int8_t * sc = x[i].scales;
        for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

void quantize_q8_K(const float * x, block_q8_K * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; ++j) {
            if (std::fabs(x[j]) > amax) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        if (!amax) {
            std::memset(&y[i], 0, sizeof(block_q8_K));
            continue;
        }
        // -127 (not -128) keeps every level in [-127, 127], which the integer dot products rely on.
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; ++j) y[i].qs[j] = static_cast<int8_t>(imin(127, nearest_int(iscale * x[j])));
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = static_cast<int16_t>(sum);
        }
        y[i].d = 1 / iscale;
    }
}

void dequantize_q8_K(const block_q8_K * x, float * y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += QK_K) {
        for (int j = 0; j < QK_K; ++j) y[j] = x[i].d * x[i].qs[j];
    }
}

bool check_args(dtype t, const void * a, const void * b, int64_t n, int64_t * nb) {
    const dtype_traits * tr = dtype_get_traits(t);
    if (!tr || !a || !b || n < 0 || n % tr->block_size != 0) return false;
    if (t == DTYPE_I8 || t == DTYPE_I16 || t == DTYPE_I32) return false;  // integer tensors are not float rows
    *nb = n / tr->block_size;
    return true;
}

}  // namespace

bool quantize_row(dtype t, const float * x, void * dst, int64_t n) {
    int64_t nb = 0;
    if (!check_args(t, x, dst, n, &nb)) return false;
    switch (t) {
        case DTYPE_F32:
            std::memcpy(dst, x, static_cast<size_t>(n) * 4);
            return true;
        case DTYPE_F16: {
            uint16_t * y = static_cast<uint16_t *>(dst);
            for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
            return true;
        }
        case DTYPE_BF16: {
            uint16_t * y = static_cast<uint16_t *>(dst);
            for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
            return true;
        }
        case DTYPE_Q4_0:
            quantize_q4_0(x, static_cast<block_q4_0 *>(dst), nb);
            return true;
        case DTYPE_Q5_0:
            quantize_q5_0(x, static_cast<block_q5_0 *>(dst), nb);
            return true;
        case DTYPE_Q8_0:
            quantize_q8_0(x, static_cast<block_q8_0 *>(dst), nb);
            return true;
        case DTYPE_Q4_K:
            quantize_q4_K(x, static_cast<block_q4_K *>(dst), nb);
            return true;
        case DTYPE_Q5_K:
            quantize_q5_K(x, static_cast<block_q5_K *>(dst), nb);
            return true;
        case DTYPE_Q6_K:
            quantize_q6_K(x, static_cast<block_q6_K *>(dst), nb);
            return true;
        case DTYPE_Q8_K:
            quantize_q8_K(x, static_cast<block_q8_K *>(dst), nb);
            return true;
        default:
            return false;
    }
}

bool dequantize_row(dtype t, const void * src, float * y, int64_t n) {
    int64_t nb = 0;
    if (!check_args(t, src, y, n, &nb)) return false;
    switch (t) {
        case DTYPE_F32:
            std::memcpy(y, src, static_cast<size_t>(n) * 4);
            return true;
        case DTYPE_F16: {
            const uint16_t * x = static_cast<const uint16_t *>(src);
            for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
            return true;
        }
        case DTYPE_BF16: {
            const uint16_t * x = static_cast<const uint16_t *>(src);
            for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(x[i]);
            return true;
        }
        case DTYPE_Q4_0:
            dequantize_q4_0(static_cast<const block_q4_0 *>(src), y, nb);
            return true;
        case DTYPE_Q5_0:
            dequantize_q5_0(static_cast<const block_q5_0 *>(src), y, nb);
            return true;
        case DTYPE_Q8_0:
            dequantize_q8_0(static_cast<const block_q8_0 *>(src), y, nb);
            return true;
        case DTYPE_Q4_K:
            dequantize_q4_K(static_cast<const block_q4_K *>(src), y, nb);
            return true;
        case DTYPE_Q5_K:
            dequantize_q5_K(static_cast<const block_q5_K *>(src), y, nb);
            return true;
        case DTYPE_Q6_K:
            dequantize_q6_K(static_cast<const block_q6_K *>(src), y, nb);
            return true;
        case DTYPE_Q8_K:
            dequantize_q8_K(static_cast<const block_q8_K *>(src), y, nb);
            return true;
        default:
            return false;
    }
}

}  // namespace spider
