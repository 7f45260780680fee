// Portable (plain C++) matmul kernels: integer dot products of weight blocks against Q8_0 / Q8_K activation blocks,
// and float dot products for F32 / F16 / BF16 weights. They define the arithmetic the SIMD kernels reproduce
// (block by block: integer sum, then scaled by the product of the two block scales) and run on any CPU.
#include <cstring>
#include <vector>

#include "core/matmul_kernels.h"
#include "core/quants.h"

namespace spider {

namespace {

inline float h2f(uint16_t h) {
    return fp16_to_fp32(h);
}

float dot_q8_0(int64_t n, const uint8_t * w, const uint8_t * x) {
    const block_q8_0 * a = reinterpret_cast<const block_q8_0 *>(w);
    const block_q8_0 * b = reinterpret_cast<const block_q8_0 *>(x);
    float sum = 0;
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        int s = 0;
        for (int j = 0; j < QK8_0; ++j) s += a[i].qs[j] * b[i].qs[j];
        sum += s * (h2f(a[i].d) * h2f(b[i].d));
    }
    return sum;
}

float dot_q4_0(int64_t n, const uint8_t * w, const uint8_t * x) {
    const block_q4_0 * a = reinterpret_cast<const block_q4_0 *>(w);
    const block_q8_0 * b = reinterpret_cast<const block_q8_0 *>(x);
    float sum = 0;
    for (int64_t i = 0; i < n / QK4_0; ++i) {
        int s = 0;
        for (int j = 0; j < QK4_0 / 2; ++j) {
            s += ((a[i].qs[j] & 0xF) - 8) * b[i].qs[j];
            s += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + QK4_0 / 2];
        }
        sum += s * (h2f(a[i].d) * h2f(b[i].d));
    }
    return sum;
}

float dot_q5_0(int64_t n, const uint8_t * w, const uint8_t * x) {
    const block_q5_0 * a = reinterpret_cast<const block_q5_0 *>(w);
    const block_q8_0 * b = reinterpret_cast<const block_q8_0 *>(x);
    float sum = 0;
    for (int64_t i = 0; i < n / QK5_0; ++i) {
        uint32_t qh;
        std::memcpy(&qh, a[i].qh, 4);
        int s = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int h0 = ((qh >> j) & 1) << 4;
            const int h1 = ((qh >> (j + 16)) & 1) << 4;
            s += (((a[i].qs[j] & 0xF) | h0) - 16) * b[i].qs[j];
            s += (((a[i].qs[j] >> 4) | h1) - 16) * b[i].qs[j + QK5_0 / 2];
        }
        sum += s * (h2f(a[i].d) * h2f(b[i].d));
    }
    return sum;
}

inline void scale_min_k4(int j, const uint8_t * q, int * d, int * m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

float dot_q4_K(int64_t n, const uint8_t * w, const uint8_t * x) {
    const block_q4_K * a = reinterpret_cast<const block_q4_K *>(w);
    const block_q8_K * b = reinterpret_cast<const block_q8_K *>(x);
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < QK_K / 64; ++j) {  // 64-element chunk: low nibbles = sub-block 2j, high = 2j+1
            int sc0, m0, sc1, m1;
            scale_min_k4(2 * j, a[i].scales, &sc0, &m0);
            scale_min_k4(2 * j + 1, a[i].scales, &sc1, &m1);
            const uint8_t * q = a[i].qs + 32 * j;
            const int8_t * y = b[i].qs + 64 * j;
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; ++l) {
                s0 += (q[l] & 0xF) * y[l];
                s1 += (q[l] >> 4) * y[l + 32];
            }
            sumi += sc0 * s0 + sc1 * s1;
            summ +=
                m0 * (b[i].bsums[4 * j] + b[i].bsums[4 * j + 1]) + m1 * (b[i].bsums[4 * j + 2] + b[i].bsums[4 * j + 3]);
        }
        sum += b[i].d * (h2f(a[i].d) * sumi - h2f(a[i].dmin) * summ);
    }
    return sum;
}

float dot_q5_K(int64_t n, const uint8_t * w, const uint8_t * x) {
    const block_q5_K * a = reinterpret_cast<const block_q5_K *>(w);
    const block_q8_K * b = reinterpret_cast<const block_q8_K *>(x);
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < QK_K / 64; ++j) {
            int sc0, m0, sc1, m1;
            scale_min_k4(2 * j, a[i].scales, &sc0, &m0);
            scale_min_k4(2 * j + 1, a[i].scales, &sc1, &m1);
            const uint8_t * q = a[i].qs + 32 * j;
            const int8_t * y = b[i].qs + 64 * j;
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; ++l) {
                const int h0 = ((a[i].qh[l] >> (2 * j)) & 1) << 4;
                const int h1 = ((a[i].qh[l] >> (2 * j + 1)) & 1) << 4;
                s0 += ((q[l] & 0xF) | h0) * y[l];
                s1 += ((q[l] >> 4) | h1) * y[l + 32];
            }
            sumi += sc0 * s0 + sc1 * s1;
            summ +=
                m0 * (b[i].bsums[4 * j] + b[i].bsums[4 * j + 1]) + m1 * (b[i].bsums[4 * j + 2] + b[i].bsums[4 * j + 3]);
        }
        sum += b[i].d * (h2f(a[i].d) * sumi - h2f(a[i].dmin) * summ);
    }
    return sum;
}

float dot_q6_K(int64_t n, const uint8_t * w, const uint8_t * x) {
    const block_q6_K * a = reinterpret_cast<const block_q6_K *>(w);
    const block_q8_K * b = reinterpret_cast<const block_q8_K *>(x);
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        int sumi = 0;
        for (int h = 0; h < 2; ++h) {  // two 128-element halves
            const uint8_t * ql = a[i].ql + 64 * h;
            const uint8_t * qh = a[i].qh + 32 * h;
            const int8_t * sc = a[i].scales + 8 * h;
            const int8_t * y = b[i].qs + 128 * h;
            int s[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // per 16-element group
            for (int l = 0; l < 32; ++l) {
                const int g = l / 16;
                s[g + 0] += (((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32) * y[l];
                s[g + 2] += (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32) * y[l + 32];
                s[g + 4] += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * y[l + 64];
                s[g + 6] += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * y[l + 96];
            }
            for (int g = 0; g < 8; ++g) sumi += sc[g] * s[g];
        }
        sum += b[i].d * h2f(a[i].d) * sumi;
    }
    return sum;
}

float dot_f32(int64_t n, const uint8_t * w, const uint8_t * x) {
    const float * a = reinterpret_cast<const float *>(w);
    const float * b = reinterpret_cast<const float *>(x);
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

float dot_f16(int64_t n, const uint8_t * w, const uint8_t * x) {
    const uint16_t * a = reinterpret_cast<const uint16_t *>(w);
    const float * b = reinterpret_cast<const float *>(x);
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += h2f(a[i]) * b[i];
    return s;
}

float dot_bf16(int64_t n, const uint8_t * w, const uint8_t * x) {
    const uint16_t * a = reinterpret_cast<const uint16_t *>(w);
    const float * b = reinterpret_cast<const float *>(x);
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += bf16_to_fp32(a[i]) * b[i];
    return s;
}

template <float (*DOT)(int64_t, const uint8_t *, const uint8_t *)>
void tile(int64_t n, const uint8_t * w, size_t w_stride, int nr, const uint8_t * xq, size_t x_stride, int nc, float * y,
          size_t y_stride) {
    for (int c = 0; c < nc; ++c) {
        for (int r = 0; r < nr; ++r) y[c * y_stride + r] = DOT(n, w + r * w_stride, xq + c * x_stride);
    }
}

}  // namespace

size_t matmul_q8_0x_bytes(int64_t n) {
    return static_cast<size_t>(n / QK8_0) * (QK8_0 + sizeof(float) + 9 * sizeof(int32_t));
}

void matmul_prep_q8_0x(const float * x, int64_t n, uint8_t * dst) {
    const int64_t nb = n / QK8_0;
    static thread_local std::vector<block_q8_0> tmp;
    if (tmp.size() < static_cast<size_t>(nb)) tmp.resize(static_cast<size_t>(nb));
    quantize_row(DTYPE_Q8_0, x, tmp.data(), n);
    int8_t * qs = reinterpret_cast<int8_t *>(dst);
    float * d = reinterpret_cast<float *>(dst + nb * QK8_0);
    int32_t * nsum = reinterpret_cast<int32_t *>(dst + nb * (QK8_0 + sizeof(float)));
    int32_t * xsum = nsum + nb * 8;
    for (int64_t b = 0; b < nb; ++b) {
        const block_q8_0 & blk = tmp[static_cast<size_t>(b)];
        std::memcpy(qs + b * QK8_0, blk.qs, QK8_0);
        d[b] = fp16_to_fp32(blk.d);
        for (int j = 0; j < 8; ++j) {
            nsum[b * 8 + j] = -16 * (blk.qs[4 * j] + blk.qs[4 * j + 1] + blk.qs[4 * j + 2] + blk.qs[4 * j + 3]);
        }
        int32_t sum = 0;
        for (int j = 0; j < QK8_0; ++j) sum += blk.qs[j];
        xsum[b] = sum;
    }
}

dtype matmul_vec_dot_type(dtype t) {
    switch (t) {
        case DTYPE_Q4_0:
        case DTYPE_Q5_0:
        case DTYPE_Q8_0:
            return DTYPE_Q8_0;
        case DTYPE_Q4_K:
        case DTYPE_Q5_K:
        case DTYPE_Q6_K:
            return DTYPE_Q8_K;
        default:
            return DTYPE_F32;
    }
}

bool matmul_kernel_portable(dtype t, matmul_kernel * k) {
    k->vec_dot_type = matmul_vec_dot_type(t);
    k->max_nc = 1;
    switch (t) {
        case DTYPE_F32:
            k->tile = tile<dot_f32>;
            return true;
        case DTYPE_F16:
            k->tile = tile<dot_f16>;
            return true;
        case DTYPE_BF16:
            k->tile = tile<dot_bf16>;
            return true;
        case DTYPE_Q4_0:
            k->tile = tile<dot_q4_0>;
            return true;
        case DTYPE_Q5_0:
            k->tile = tile<dot_q5_0>;
            return true;
        case DTYPE_Q8_0:
            k->tile = tile<dot_q8_0>;
            return true;
        case DTYPE_Q4_K:
            k->tile = tile<dot_q4_K>;
            return true;
        case DTYPE_Q5_K:
            k->tile = tile<dot_q5_K>;
            return true;
        case DTYPE_Q6_K:
            k->tile = tile<dot_q6_K>;
            return true;
        default:
            return false;
    }
}

}  // namespace spider
