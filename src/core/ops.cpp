// Optimised implementations of every op except matmul / get_rows: row kernels chosen at run time (AVX-512 in
// ops_avx512.cpp, AVX2+FMA in ops_avx2.cpp, or the generic C++ twins below), threads from thread_pool for the big
// ops (attention over (query, head) items, convolutions over column chunks of an im2col GEMM). Every op here is
// compared against spider::ref in tests/test_ops.cpp, on every kernel set.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/ops.h"

namespace spider {

// The row kernels every ISA file defines (ops_avx2.cpp, ops_avx512.cpp), declared once for each namespace.
#define SPIDER_OPS_ROW_KERNELS                                               \
    void add(const float * a, const float * b, float * y, int64_t n);        \
    void mul(const float * a, const float * b, float * y, int64_t n);        \
    void scale(const float * x, float s, float * y, int64_t n);              \
    void act(int a, const float * x, float * y, int64_t n);                  \
    void glu(int a, const float * g, const float * u, float * y, int64_t n); \
    float dot(const float * a, const float * b, int64_t n);                  \
    void axpy(float a, const float * x, float * y, int64_t n);               \
    float max(const float * x, int64_t n);                                   \
    float exp_sum(const float * x, float m, float * y, int64_t n);           \
    void sums(const float * x, int64_t n, float * sum, float * sum_sq);      \
    float sq_dev(const float * x, float mean, int64_t n);                    \
    void norm_apply(const float * x, float mean, float inv, const float * w, const float * b, float * y, int64_t n);

namespace avx2 {
SPIDER_OPS_ROW_KERNELS
void gemm(int64_t M, int64_t N, int64_t K, const float * A, int64_t lda, const float * B, int64_t ldb, float * C,
          int64_t ldc, bool accumulate);
void attn_tile(const float * q, int64_t ldq, int G, const float * k, const float * v, int64_t ldkv, int64_t hd,
               int64_t j0, int64_t j1, float sc, float * out, int64_t ldo, float * scratch, float * ms);
void attn_tile_f16(const float * q, int64_t ldq, int G, const uint16_t * k, const uint16_t * v, int64_t ldkv,
                   int64_t hd, int64_t j0, int64_t j1, float sc, float * out, int64_t ldo, float * scratch, float * ms);
void f16_to_f32(const uint16_t * src, float * dst, int64_t n);
}  // namespace avx2

namespace avx512 {
SPIDER_OPS_ROW_KERNELS
}  // namespace avx512

#undef SPIDER_OPS_ROW_KERNELS

namespace {

// ---- generic kernels: the same contracts as ops_avx2.cpp, in plain C++ (the compiler vectorises the easy ones)

float act_scalar(int a, float x) {
    switch (a) {
        case ACT_GELU_TANH: {
            const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
            return x / (1.0f + std::exp(-2.0f * u));  // 0.5 (1 + tanh u) = sigmoid(2u)
        }
        case ACT_GELU_ERF:
            return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
        case ACT_SILU:
            return x / (1.0f + std::exp(-x));
        default:
            return x > 0.0f ? x : 0.0f;
    }
}

void g_add(const float * a, const float * b, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
void g_mul(const float * a, const float * b, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}
void g_scale(const float * x, float s, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s;
}
void g_act(int a, const float * x, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = act_scalar(a, x[i]);
}
void g_glu(int a, const float * g, const float * u, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = act_scalar(a, g[i]) * u[i];
}
float g_dot(const float * a, const float * b, int64_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; ++i) r += a[i] * b[i];
    return r;
}
void g_axpy(float a, const float * x, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
float g_max(const float * x, int64_t n) {
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
    return m;
}
float g_exp_sum(const float * x, float m, float * y, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
        y[i] = std::exp(x[i] - m);
        s += y[i];
    }
    return s;
}
void g_sums(const float * x, int64_t n, float * sum, float * sum_sq) {
    float s = 0.0f, q = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
        s += x[i];
        q += x[i] * x[i];
    }
    *sum = s;
    *sum_sq = q;
}
float g_sq_dev(const float * x, float mean, int64_t n) {
    float q = 0.0f;
    for (int64_t i = 0; i < n; ++i) q += (x[i] - mean) * (x[i] - mean);
    return q;
}
void g_norm_apply(const float * x, float mean, float inv, const float * w, const float * b, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        float v = (x[i] - mean) * inv;
        if (w) v *= w[i];
        if (b) v += b[i];
        y[i] = v;
    }
}
void g_gemm(int64_t M, int64_t N, int64_t K, const float * A, int64_t lda, const float * B, int64_t ldb, float * C,
            int64_t ldc, bool accumulate) {
    for (int64_t m = 0; m < M; ++m) {
        float * c = C + m * ldc;
        if (!accumulate) std::fill(c, c + N, 0.0f);
        for (int64_t k = 0; k < K; ++k) {
            const float a = A[m * lda + k];
            const float * b = B + k * ldb;
            for (int64_t n = 0; n < N; ++n) c[n] += a * b[n];
        }
    }
}

// Generic twin of avx2::attn_tile: G query rows of one GQA group over keys [j0, j1), online softmax per block. F16
// K / V (KV = uint16_t) are widened a block at a time into scratch (after the G * (64 + hd + 2) floats).
inline const float * kv_rows(const float * p, int64_t, int64_t, int64_t, float *) {
    return p;
}
inline const float * kv_rows(const uint16_t * p, int64_t ld, int64_t nb, int64_t hd, float * buf) {
    for (int64_t j = 0; j < nb; ++j) {
        for (int64_t e = 0; e < hd; ++e) buf[j * hd + e] = fp16_to_fp32(p[j * ld + e]);
    }
    return buf;
}

template <typename KV>
void g_attn_tile_impl(const float * q, int64_t ldq, int G, const KV * k, const KV * v, int64_t ldkv, int64_t hd,
                      int64_t j0, int64_t j1, float sc, float * out, int64_t ldo, float * scratch, float * ms) {
    constexpr int64_t BK = 64;
    constexpr bool F16 = std::is_same<KV, uint16_t>::value;
    float * logit = scratch;
    float * acc = logit + G * BK;
    float * kbuf = acc + G * (hd + 2);
    float * vbuf = kbuf + BK * hd;
    const int64_t ld = F16 ? hd : ldkv;  // row stride of the (widened) block
    std::fill(acc, acc + G * hd, 0.0f);
    for (int g = 0; g < G; ++g) {
        const float * qg = q + g * ldq;
        float * ag = acc + g * hd;
        float m = -std::numeric_limits<float>::infinity(), s = 0.0f;
        for (int64_t jb = j0; jb < j1; jb += BK) {
            const int64_t nb = std::min(BK, j1 - jb);
            const float * kb = kv_rows(k + jb * ldkv, ldkv, nb, hd, kbuf);
            const float * vb = kv_rows(v + jb * ldkv, ldkv, nb, hd, vbuf);
            for (int64_t j = 0; j < nb; ++j) logit[j] = g_dot(qg, kb + j * ld, hd) * sc;
            const float bm = g_max(logit, nb);
            if (bm > m) {
                if (s > 0.0f) {
                    const float r = std::exp(m - bm);
                    g_scale(ag, r, ag, hd);
                    s *= r;
                }
                m = bm;
            }
            s += g_exp_sum(logit, m, logit, nb);
            for (int64_t j = 0; j < nb; ++j) g_axpy(logit[j], vb + j * ld, ag, hd);
        }
        g_scale(ag, 1.0f / s, out + g * ldo, hd);
        if (ms) {
            ms[2 * g] = m;
            ms[2 * g + 1] = s;
        }
    }
}

void g_attn_tile(const float * q, int64_t ldq, int G, const float * k, const float * v, int64_t ldkv, int64_t hd,
                 int64_t j0, int64_t j1, float sc, float * out, int64_t ldo, float * scratch, float * ms) {
    g_attn_tile_impl<float>(q, ldq, G, k, v, ldkv, hd, j0, j1, sc, out, ldo, scratch, ms);
}

void g_attn_tile_f16(const float * q, int64_t ldq, int G, const uint16_t * k, const uint16_t * v, int64_t ldkv,
                     int64_t hd, int64_t j0, int64_t j1, float sc, float * out, int64_t ldo, float * scratch,
                     float * ms) {
    g_attn_tile_impl<uint16_t>(q, ldq, G, k, v, ldkv, hd, j0, j1, sc, out, ldo, scratch, ms);
}

void g_f16_to_f32(const uint16_t * src, float * dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}

struct kernel_set {
    const char * name;
    void (*add)(const float *, const float *, float *, int64_t);
    void (*mul)(const float *, const float *, float *, int64_t);
    void (*scale)(const float *, float, float *, int64_t);
    void (*act)(int, const float *, float *, int64_t);
    void (*glu)(int, const float *, const float *, float *, int64_t);
    float (*dot)(const float *, const float *, int64_t);
    void (*axpy)(float, const float *, float *, int64_t);
    float (*max)(const float *, int64_t);
    float (*exp_sum)(const float *, float, float *, int64_t);
    void (*sums)(const float *, int64_t, float *, float *);
    float (*sq_dev)(const float *, float, int64_t);
    void (*norm_apply)(const float *, float, float, const float *, const float *, float *, int64_t);
    void (*gemm)(int64_t, int64_t, int64_t, const float *, int64_t, const float *, int64_t, float *, int64_t, bool);
    // Attention tiles: out gets the normalized result; ms (nullptr or 2 * G floats) each row's running max and sum
    // of exponentials, so results over separate key ranges can be merged (attention_impl's decode segments).
    void (*attn_tile)(const float *, int64_t, int, const float *, const float *, int64_t, int64_t, int64_t, int64_t,
                      float, float *, int64_t, float *, float *);
    void (*attn_tile_f16)(const float *, int64_t, int, const uint16_t *, const uint16_t *, int64_t, int64_t, int64_t,
                          int64_t, float, float *, int64_t, float *, float *);
    void (*f16_to_f32)(const uint16_t *, float *, int64_t);
};

const kernel_set GENERIC = {"generic",    g_add,  g_mul,       g_scale,         g_act,       g_glu,
                            g_dot,        g_axpy, g_max,       g_exp_sum,       g_sums,      g_sq_dev,
                            g_norm_apply, g_gemm, g_attn_tile, g_attn_tile_f16, g_f16_to_f32};
const kernel_set AVX2 = {
    "avx2",           avx2::add,  avx2::mul,       avx2::scale,         avx2::act,       avx2::glu,
    avx2::dot,        avx2::axpy, avx2::max,       avx2::exp_sum,       avx2::sums,      avx2::sq_dev,
    avx2::norm_apply, avx2::gemm, avx2::attn_tile, avx2::attn_tile_f16, avx2::f16_to_f32};
// The AVX-512 row kernels with the AVX2 gemm and attention tile (ops_avx512.cpp says why).
const kernel_set AVX512 = {
    "avx512",           avx512::add,  avx512::mul,     avx512::scale,       avx512::act,     avx512::glu,
    avx512::dot,        avx512::axpy, avx512::max,     avx512::exp_sum,     avx512::sums,    avx512::sq_dev,
    avx512::norm_apply, avx2::gemm,   avx2::attn_tile, avx2::attn_tile_f16, avx2::f16_to_f32};

// nullptr = follow cpu_level_active() (which tests and benchmarks may force through cpu_features_force or
// SPIDER_CPU_LEVEL); else the set forced by ops_use_generic_kernels.
std::atomic<const kernel_set *> g_forced{nullptr};

const kernel_set & K() {
    const kernel_set * k = g_forced.load(std::memory_order_acquire);
    if (k) return *k;
    const cpu_level lv = cpu_level_active();
    return lv >= CPU_LEVEL_AVX512 ? AVX512 : lv >= CPU_LEVEL_AVX2 ? AVX2 : GENERIC;
}

void parallel(thread_pool * pool, const std::function<void(int, int)> & fn) {
    if (!pool || pool->size() <= 1) {
        fn(0, 1);
    } else {
        pool->run(fn);
    }
}

}  // namespace

bool ops_use_generic_kernels(bool on) {
    if (on) {
        g_forced.store(&GENERIC, std::memory_order_release);
        return true;
    }
    g_forced.store(nullptr, std::memory_order_release);
    return cpu_level_active() >= CPU_LEVEL_AVX2;
}

const char * ops_kernel_name() {
    return K().name;
}

// ---- elementwise

void add(const float * a, const float * b, float * y, int64_t n) {
    K().add(a, b, y, n);
}
void mul(const float * a, const float * b, float * y, int64_t n) {
    K().mul(a, b, y, n);
}
void scale(const float * x, float s, float * y, int64_t n) {
    K().scale(x, s, y, n);
}

void mul_row(const float * x, const float * w, float * y, int64_t rows, int64_t n) {
    const kernel_set & k = K();
    for (int64_t r = 0; r < rows; ++r) k.mul(x + r * n, w, y + r * n, n);
}

void add_row(const float * x, const float * b, float * y, int64_t rows, int64_t n) {
    const kernel_set & k = K();
    for (int64_t r = 0; r < rows; ++r) k.add(x + r * n, b, y + r * n, n);
}

void activation(act_type a, const float * x, float * y, int64_t n) {
    K().act(a, x, y, n);
}

void glu(act_type a, const float * gate, const float * up, float * y, int64_t n) {
    K().glu(a, gate, up, y, n);
}

// ---- softmax and norms: one row at a time, two vectorised passes each

void softmax_rows(const float * x, float * y, int64_t rows, int64_t n) {
    const kernel_set & k = K();
    for (int64_t r = 0; r < rows; ++r) {
        const float m = k.max(x + r * n, n);
        const float s = k.exp_sum(x + r * n, m, y + r * n, n);
        k.scale(y + r * n, 1.0f / s, y + r * n, n);
    }
}

void rms_norm(const float * x, const float * w, float * y, int64_t rows, int64_t n, float eps) {
    const kernel_set & k = K();
    for (int64_t r = 0; r < rows; ++r) {
        float s, q;
        k.sums(x + r * n, n, &s, &q);
        const float inv = 1.0f / std::sqrt(q / static_cast<float>(n) + eps);
        k.norm_apply(x + r * n, 0.0f, inv, w, nullptr, y + r * n, n);
    }
}

void layer_norm(const float * x, const float * w, const float * b, float * y, int64_t rows, int64_t n, float eps) {
    const kernel_set & k = K();
    for (int64_t r = 0; r < rows; ++r) {
        float s, q;
        k.sums(x + r * n, n, &s, &q);
        const float mean = s / static_cast<float>(n);
        const float var = k.sq_dev(x + r * n, mean, n) / static_cast<float>(n);
        k.norm_apply(x + r * n, mean, 1.0f / std::sqrt(var + eps), w, b, y + r * n, n);
    }
}

void group_norm(const float * x, const float * w, const float * b, float * y, int64_t C, int64_t HW, int64_t n_groups,
                float eps) {
    const kernel_set & k = K();
    const int64_t cg = C / n_groups;
    for (int64_t g = 0; g < n_groups; ++g) {
        const float * xg = x + g * cg * HW;
        const int64_t m = cg * HW;  // a group is one contiguous block of cg channels
        float s, q;
        k.sums(xg, m, &s, &q);
        const float mean = s / static_cast<float>(m);
        const float inv = 1.0f / std::sqrt(k.sq_dev(xg, mean, m) / static_cast<float>(m) + eps);
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
            float * yc = y + c * HW;
            k.norm_apply(x + c * HW, mean, inv * (w ? w[c] : 1.0f), nullptr, nullptr, yc, HW);
            if (b) {
                const float bc = b[c];
                for (int64_t i = 0; i < HW; ++i) yc[i] += bc;
            }
        }
    }
}

// ---- rope: the cos / sin table is computed once per token and applied to every head

namespace {

// The cos / sin tables of the last two kinds of rope() call on this thread. A layer rotates Q and then K at the same
// positions with the same frequencies: the second call reuses the table instead of repeating n_rot / 2 pow and
// sincos calls per token (about 1% of gemma-3-270m's decode). Two tables, because gemma 3 alternates two RoPE bases
// (sliding-window and global layers): with one, a decode step recomputed it 6 times instead of 2. A table is what
// its first call computed, so results are unchanged.
struct rope_table {
    float freq_base = 0, freq_scale = 0;
    int64_t n_rot = -1;
    bool has_factors = false;
    std::vector<float> factors;  // a copy: the caller's array may change between calls
    std::vector<int32_t> pos;
    std::vector<float> cs, sn;  // [n_tok, n_rot / 2]

    bool matches(const int32_t * p, int64_t n_tok, int64_t nr, float base, float scale, const float * ff) const {
        return n_rot == nr && freq_base == base && freq_scale == scale && has_factors == (ff != nullptr) &&
               (!ff || std::equal(factors.begin(), factors.end(), ff)) && static_cast<int64_t>(pos.size()) == n_tok &&
               std::equal(pos.begin(), pos.end(), p);
    }
};

const rope_table & rope_angles(const int32_t * pos, int64_t n_tok, int64_t n_rot, float freq_base, float freq_scale,
                               const float * freq_factors) {
    static thread_local rope_table tabs[2];
    static thread_local int last = 0;  // the table used last; the other one is replaced
    for (int i : {last, 1 - last}) {
        if (tabs[i].matches(pos, n_tok, n_rot, freq_base, freq_scale, freq_factors)) {
            last = i;
            return tabs[i];
        }
    }
    last = 1 - last;
    rope_table & tab = tabs[last];
    const int64_t half = n_rot / 2;
    std::vector<double> inv_freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
        inv_freq[i] = std::pow(static_cast<double>(freq_base), -2.0 * i / n_rot) * freq_scale;
        if (freq_factors) inv_freq[i] /= static_cast<double>(freq_factors[i]);
    }
    tab.n_rot = -1;  // invalid until filled
    tab.pos.assign(pos, pos + n_tok);
    tab.cs.resize(static_cast<size_t>(n_tok * half));
    tab.sn.resize(static_cast<size_t>(n_tok * half));
    for (int64_t t = 0; t < n_tok; ++t) {
        for (int64_t i = 0; i < half; ++i) {
            const double theta = static_cast<double>(pos[t]) * inv_freq[i];
            tab.cs[t * half + i] = static_cast<float>(std::cos(theta));
            tab.sn[t * half + i] = static_cast<float>(std::sin(theta));
        }
    }
    tab.freq_base = freq_base;
    tab.freq_scale = freq_scale;
    tab.has_factors = freq_factors != nullptr;
    if (freq_factors) {
        tab.factors.assign(freq_factors, freq_factors + half);
    } else {
        tab.factors.clear();
    }
    tab.n_rot = n_rot;
    return tab;
}

}  // namespace

void rope(float * x, const int32_t * pos, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot,
          float freq_base, float freq_scale, rope_mode mode, const float * freq_factors) {
    const int64_t half = n_rot / 2;
    const rope_table & tab = rope_angles(pos, n_tok, n_rot, freq_base, freq_scale, freq_factors);
    for (int64_t t = 0; t < n_tok; ++t) {
        const float * cs = tab.cs.data() + t * half;
        const float * sn = tab.sn.data() + t * half;
        for (int64_t h = 0; h < n_head; ++h) {
            float * v = x + (t * n_head + h) * head_dim;
            if (mode == ROPE_MODE_NEOX) {
                float * a = v;
                float * b = v + half;
                for (int64_t i = 0; i < half; ++i) {
                    const float x0 = a[i], x1 = b[i];
                    a[i] = x0 * cs[i] - x1 * sn[i];
                    b[i] = x0 * sn[i] + x1 * cs[i];
                }
            } else {
                for (int64_t i = 0; i < half; ++i) {
                    const float x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = x0 * cs[i] - x1 * sn[i];
                    v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
                }
            }
        }
    }
}

// ---- attention: one work item = (query position, KV head, slice of that head's GQA group, key segment). The keys
// visible to a query form one contiguous range [j0, j1); the tile kernel walks it in blocks with an online softmax
// (running max, running sum, accumulator rescaled when the max grows), loading each K / V row once for the whole
// group.
//
// Decode (one query) also cuts the visible keys into segments (flash-decoding): each item reads only its segment's
// keys and values for all the heads it holds, and the segments' results are merged with their maxima and sums.
// Without segments every thread read every key (the threads could only split the heads), so a long context's K / V
// were read once per thread. The segments depend only on the number of visible keys, never on the thread count, and
// the merge runs in segment order: results are identical with any number of threads. Up to DECODE_SEG_KEYS keys
// there is one segment, computed exactly as before.

namespace {

constexpr int64_t DECODE_SEG_KEYS = 64;  // one block of the tiles
constexpr int64_t DECODE_MAX_SEGS = 16;

// Segments for nv visible keys: whole DECODE_SEG_KEYS blocks, at most DECODE_MAX_SEGS of them.
int64_t decode_segments(int64_t nv, int64_t * seg_len) {
    const int64_t blocks = (nv + DECODE_SEG_KEYS - 1) / DECODE_SEG_KEYS;
    const int64_t n_seg = std::max<int64_t>(1, std::min(blocks, DECODE_MAX_SEGS));
    *seg_len = (blocks + n_seg - 1) / n_seg * DECODE_SEG_KEYS;
    return (nv + *seg_len - 1) / *seg_len;
}

template <typename KV, typename Tile>
void attention_impl(const float * q, const KV * k, const KV * v, float * out, int64_t n_q, int64_t n_kv, int64_t n_head,
                    int64_t n_head_kv, int64_t head_dim, float scale, bool causal, int64_t q_pos0, int64_t window,
                    thread_pool * pool, Tile tile) {
    const int64_t group = n_head / n_head_kv;
    const int nth = pool ? pool->size() : 1;
    // Decode: the visible range (the same for every head) and its segments.
    int64_t n_seg = 1, seg_len = 0, dj0 = 0, dj1 = 0;
    if (n_q == 1) {
        dj1 = causal ? std::min<int64_t>(n_kv, q_pos0 + 1) : n_kv;
        if (window > 0) dj0 = std::max<int64_t>(0, q_pos0 - window + 1);
        if (dj1 > dj0) n_seg = decode_segments(dj1 - dj0, &seg_len);
    }
    // Few items (decode with few KV heads and segments) and several threads: split each group so every thread gets
    // work. (One thread keeps whole groups: a split would only read each key and value again.) The split of heads
    // does not change any result: each head is computed alone either way.
    int64_t n_split = 1;
    const int64_t base_items = n_q * n_head_kv * n_seg;
    if (nth > 1 && base_items < nth) n_split = std::min<int64_t>(group, (nth + base_items - 1) / base_items);
    const int64_t gsz = (group + n_split - 1) / n_split;
    n_split = (group + gsz - 1) / gsz;
    const int64_t total = base_items * n_split;
    const int64_t ldkv = n_head_kv * head_dim;
    // F16 K / V: room for one widened block of 64 keys and one of 64 values (the generic attn_tile_f16; the AVX2
    // one widens in registers and needs one row).
    const size_t widen = std::is_same<KV, uint16_t>::value ? static_cast<size_t>(2 * 64 * head_dim) : 0;
    // Segment results (decode with n_seg > 1): per head and segment, the normalized output and (max, sum).
    static thread_local std::vector<float> seg_out, seg_ms;
    if (n_seg > 1) {
        seg_out.resize(static_cast<size_t>(n_head * n_seg * head_dim));
        seg_ms.resize(static_cast<size_t>(n_head * n_seg * 2));
    }
    float * so = seg_out.data();
    float * sms = seg_ms.data();
    // Items come from a shared counter (later queries of a causal prompt see more keys, so fixed ranges would be
    // uneven), and the caller does not wait for a worker the OS has not scheduled yet (run_any): every item is
    // computed the same way by whichever thread takes it.
    std::atomic<int64_t> next{0};
    auto work = [&](int, int) {
        static thread_local std::vector<float> scratch;
        const size_t need = static_cast<size_t>(gsz * (64 + head_dim + 2)) + widen;
        if (scratch.size() < need) scratch.resize(need);
        for (int64_t it = next.fetch_add(1, std::memory_order_relaxed); it < total;
             it = next.fetch_add(1, std::memory_order_relaxed)) {
            const int64_t per_q = n_head_kv * n_split * n_seg;
            const int64_t i = it / per_q, rem = it % per_q;
            const int64_t hk = rem / (n_split * n_seg), part = rem / n_seg % n_split, seg = rem % n_seg;
            const int64_t h0 = hk * group + part * gsz, G = std::min(gsz, hk * group + group - h0);
            const float * qi = q + (i * n_head + h0) * head_dim;
            const int64_t qpos = q_pos0 + i;
            int64_t j0 = 0, j1 = n_kv;
            if (causal) j1 = std::min<int64_t>(n_kv, qpos + 1);
            if (window > 0) j0 = std::max<int64_t>(0, qpos - window + 1);
            if (j1 <= j0) {
                float * oi = out + (i * n_head + h0) * head_dim;
                std::fill(oi, oi + G * head_dim, 0.0f);  // no visible key
                continue;
            }
            if (n_seg == 1) {
                tile(qi, head_dim, static_cast<int>(G), k + hk * head_dim, v + hk * head_dim, ldkv, head_dim, j0, j1,
                     scale, out + (i * n_head + h0) * head_dim, head_dim, scratch.data(), nullptr);
                continue;
            }
            // Segment seg of head h: its output row at [h * n_seg + seg] (rows of head_dim), its (max, sum) pair at
            // [seg * n_head + h] (the tile writes the pairs of its G heads next to each other).
            const int64_t s0 = j0 + seg * seg_len, s1 = std::min(j1, s0 + seg_len);
            tile(qi, head_dim, static_cast<int>(G), k + hk * head_dim, v + hk * head_dim, ldkv, head_dim, s0, s1, scale,
                 so + (h0 * n_seg + seg) * head_dim, n_seg * head_dim, scratch.data(), sms + (seg * n_head + h0) * 2);
        }
    };
    if (pool && pool->size() > 1 && total > 1) {
        pool->run_any(work);
    } else {
        work(0, 1);
    }
    if (n_seg == 1) return;
    // Merge each head's segments in order: out = sum_s w_s o_s / sum_s w_s, w_s = sum_s * exp(max_s - max), with the
    // row kernels of this CPU level (on the calling thread only, so the same operations whatever the thread count).
    const kernel_set & kr = K();
    for (int64_t h = 0; h < n_head; ++h) {
        const float * ms = sms + h * 2;  // segment sg's pair at ms + sg * n_head * 2
        float m = ms[0];
        for (int64_t sg = 1; sg < n_seg; ++sg) m = std::max(m, ms[sg * n_head * 2]);
        float * oh = out + h * head_dim;
        float wsum = 0.0f;
        for (int64_t sg = 0; sg < n_seg; ++sg) {
            const float w = ms[sg * n_head * 2 + 1] * std::exp(ms[sg * n_head * 2] - m);
            const float * os = so + (h * n_seg + sg) * head_dim;
            if (sg == 0) {
                kr.scale(os, w, oh, head_dim);
            } else {
                kr.axpy(w, os, oh, head_dim);
            }
            wsum += w;
        }
        kr.scale(oh, 1.0f / wsum, oh, head_dim);
    }
}

}  // namespace

void attention(const float * q, const float * k, const float * v, float * out, int64_t n_q, int64_t n_kv,
               int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, bool causal, int64_t q_pos0,
               int64_t window, thread_pool * pool) {
    attention_impl(q, k, v, out, n_q, n_kv, n_head, n_head_kv, head_dim, scale, causal, q_pos0, window, pool,
                   K().attn_tile);
}

void attention_f16kv(const float * q, const uint16_t * k, const uint16_t * v, float * out, int64_t n_q, int64_t n_kv,
                     int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, bool causal, int64_t q_pos0,
                     int64_t window, thread_pool * pool, std::vector<float> * wide) {
    const kernel_set & kr = K();
    if (n_q == 1) {
        // One query (decode): each visible key and value is widened once, a block at a time, inside the tile.
        attention_impl(q, k, v, out, n_q, n_kv, n_head, n_head_kv, head_dim, scale, causal, q_pos0, window, pool,
                       kr.attn_tile_f16);
        return;
    }
    // Several queries (a prompt): every query would widen the keys it sees again, n_q / 2 times the cache on average
    // (gemma-3-270m pp512: attention 17% of the time instead of ~5%). Widen the cache once and attend in F32.
    std::vector<float> own;
    std::vector<float> & buf = wide ? *wide : own;
    const size_t n = static_cast<size_t>(n_kv * n_head_kv * head_dim);
    if (buf.size() < 2 * n) buf.resize(2 * n);
    kr.f16_to_f32(k, buf.data(), static_cast<int64_t>(n));
    kr.f16_to_f32(v, buf.data() + n, static_cast<int64_t>(n));
    attention_impl(q, buf.data(), buf.data() + n, out, n_q, n_kv, n_head, n_head_kv, head_dim, scale, causal, q_pos0,
                   window, pool, kr.attn_tile);
}

// ---- convolutions: im2col of a chunk of output columns into a per-thread panel, then GEMM with the weights
// (row-major [C_out, C_in * KH * KW], exactly PyTorch's layout) straight into y's rows.

namespace {

struct conv_geom {
    int64_t C_in, H, W, C_out, KH, KW, stride_h, stride_w, pad_h, pad_w, H_out, W_out;
};

// col[r][n] for kernel tap r = (c, ky, kx) and output column n0 + n. Each output row is one segment whose valid
// taps [lo, hi) are found up front, so the inner loop is a branch-free (for stride 1: contiguous) copy.
void im2col_chunk(const float * x, const conv_geom & g, int64_t n0, int64_t nc, float * col) {
    for (int64_t c = 0; c < g.C_in; ++c) {
        for (int64_t ky = 0; ky < g.KH; ++ky) {
            for (int64_t kx = 0; kx < g.KW; ++kx) {
                float * row = col + ((c * g.KH + ky) * g.KW + kx) * nc;
                // Output columns ox whose input ix = ox * stride - pad + kx lies in [0, W).
                const int64_t off = g.pad_w - kx;
                const int64_t ox_min = off > 0 ? (off + g.stride_w - 1) / g.stride_w : 0;
                const int64_t ox_end = (g.W - 1 + off) >= 0 ? (g.W - 1 + off) / g.stride_w + 1 : 0;
                int64_t n = 0, oy = n0 / g.W_out, ox = n0 % g.W_out;
                while (n < nc) {
                    const int64_t seg = std::min(g.W_out - ox, nc - n);
                    float * dst = row + n;  // dst[o - ox] for output column o of this row
                    const int64_t iy = oy * g.stride_h - g.pad_h + ky;
                    if (iy < 0 || iy >= g.H) {
                        std::fill(dst, dst + seg, 0.0f);
                    } else {
                        const float * xr = x + (c * g.H + iy) * g.W;  // input column of output o: o * stride - off
                        // [lo, hi): the valid columns, clamped to this segment (a chunk may end before ox_min)
                        const int64_t lo = std::min(std::max(ox, ox_min), ox + seg);
                        const int64_t hi = std::min(ox + seg, std::max(ox_end, lo));
                        std::fill(dst, dst + (lo - ox), 0.0f);
                        if (g.stride_w == 1) {
                            if (hi > lo) std::memcpy(dst + (lo - ox), xr + (lo - off), sizeof(float) * (hi - lo));
                        } else {
                            for (int64_t o = lo; o < hi; ++o) dst[o - ox] = xr[o * g.stride_w - off];
                        }
                        std::fill(dst + (hi - ox), dst + seg, 0.0f);
                    }
                    n += seg;
                    ox = 0;
                    ++oy;
                }
            }
        }
    }
}

void conv_im2col(const float * x, const float * w, const float * b, float * y, const conv_geom & g,
                 thread_pool * pool) {
    const kernel_set & kr = K();
    const int64_t N = g.H_out * g.W_out, Kd = g.C_in * g.KH * g.KW;
    // Columns per chunk: the panel Kd x NC should stay in L2 (<= ~256 KiB), and at least 16 for the GEMM tile.
    int64_t NC = (256 * 1024 / 4) / std::max<int64_t>(Kd, 1);
    NC = std::max<int64_t>(16, std::min<int64_t>(256, NC / 16 * 16));
    const int64_t n_chunks = (N + NC - 1) / NC;
    parallel(pool, [&](int ith, int nth) {
        std::vector<float> col;
        for (int64_t ch = ith; ch < n_chunks; ch += nth) {
            const int64_t n0 = ch * NC, nc = std::min(NC, N - n0);
            col.resize(static_cast<size_t>(Kd * nc));
            im2col_chunk(x, g, n0, nc, col.data());
            kr.gemm(g.C_out, nc, Kd, w, Kd, col.data(), nc, y + n0, N, false);
            if (b) {
                for (int64_t o = 0; o < g.C_out; ++o) {
                    float * yo = y + o * N + n0;
                    for (int64_t n = 0; n < nc; ++n) yo[n] += b[o];
                }
            }
        }
    });
}

}  // namespace

void conv1d(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t L, int64_t C_out,
            int64_t K, int64_t stride, int64_t pad, thread_pool * pool) {
    const conv_geom g = {C_in, 1, L, C_out, 1, K, 1, stride, 0, pad, 1, (L + 2 * pad - K) / stride + 1};
    conv_im2col(x, w, b, y, g, pool);
}

void conv2d(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t H, int64_t W,
            int64_t C_out, int64_t KH, int64_t KW, int64_t stride, int64_t pad, thread_pool * pool) {
    const conv_geom g = {C_in,
                         H,
                         W,
                         C_out,
                         KH,
                         KW,
                         stride,
                         stride,
                         pad,
                         pad,
                         (H + 2 * pad - KH) / stride + 1,
                         (W + 2 * pad - KW) / stride + 1};
    conv_im2col(x, w, b, y, g, pool);
}

void conv_temporal(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t T, int64_t HW,
                   int64_t C_out, int64_t KT, thread_pool * pool) {
    // A KT x 1 conv2d over the [T, HW] plane of each channel, padded in time only.
    const int64_t pad = (KT - 1) / 2;
    const conv_geom g = {C_in, T, HW, C_out, KT, 1, 1, 1, pad, 0, T, HW};  // T outputs for odd and even KT, as ref
    conv_im2col(x, w, b, y, g, pool);
}

void conv_transpose2d(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t H, int64_t W,
                      int64_t C_out, int64_t KH, int64_t KW, int64_t stride, int64_t pad, thread_pool * pool) {
    // cols[(o, ky, kx), pixel_in] = sum_c w[c, (o, ky, kx)] x[c, pixel_in] (one GEMM with the transposed
    // weights), then each output channel gathers its KH * KW shifted planes (col2im), one channel per thread.
    const kernel_set & kr = K();
    const int64_t M2 = C_out * KH * KW, HW = H * W;
    const int64_t H_out = (H - 1) * stride - 2 * pad + KH, W_out = (W - 1) * stride - 2 * pad + KW;
    std::vector<float> wt(static_cast<size_t>(M2 * C_in));
    for (int64_t c = 0; c < C_in; ++c)
        for (int64_t m = 0; m < M2; ++m) wt[m * C_in + c] = w[c * M2 + m];
    std::vector<float> cols(static_cast<size_t>(M2 * HW));
    const int64_t row_blocks = (M2 + 15) / 16;
    parallel(pool, [&](int ith, int nth) {
        for (int64_t rb = ith; rb < row_blocks; rb += nth) {
            const int64_t m0 = rb * 16, mc = std::min<int64_t>(16, M2 - m0);
            kr.gemm(mc, HW, C_in, wt.data() + m0 * C_in, C_in, x, HW, cols.data() + m0 * HW, HW, false);
        }
    });
    parallel(pool, [&](int ith, int nth) {
        for (int64_t o = ith; o < C_out; o += nth) {
            float * yo = y + o * H_out * W_out;
            std::fill(yo, yo + H_out * W_out, b ? b[o] : 0.0f);
            for (int64_t ky = 0; ky < KH; ++ky) {
                for (int64_t kx = 0; kx < KW; ++kx) {
                    const float * cp = cols.data() + ((o * KH + ky) * KW + kx) * HW;
                    for (int64_t iy = 0; iy < H; ++iy) {
                        const int64_t oy = iy * stride - pad + ky;
                        if (oy < 0 || oy >= H_out) continue;
                        for (int64_t ix = 0; ix < W; ++ix) {
                            const int64_t ox = ix * stride - pad + kx;
                            if (ox < 0 || ox >= W_out) continue;
                            yo[oy * W_out + ox] += cp[iy * W + ix];
                        }
                    }
                }
            }
        }
    });
}

// ---- resampling and layout

void upsample_nearest2d(const float * x, float * y, int64_t C, int64_t H, int64_t W, int64_t f) {
    const int64_t Wo = W * f;
    for (int64_t c = 0; c < C; ++c) {
        for (int64_t iy = 0; iy < H; ++iy) {
            const float * xr = x + (c * H + iy) * W;
            float * y0 = y + (c * H * f + iy * f) * Wo;
            for (int64_t ix = 0; ix < W; ++ix)
                for (int64_t r = 0; r < f; ++r) y0[ix * f + r] = xr[ix];
            for (int64_t r = 1; r < f; ++r) std::memcpy(y0 + r * Wo, y0, sizeof(float) * Wo);
        }
    }
}

void avg_pool2d(const float * x, float * y, int64_t C, int64_t H, int64_t W, int64_t k) {
    const int64_t Ho = H / k, Wo = W / k;
    const float inv = 1.0f / static_cast<float>(k * k);
    std::vector<float> acc(static_cast<size_t>(Wo));
    for (int64_t c = 0; c < C; ++c) {
        for (int64_t oy = 0; oy < Ho; ++oy) {
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t ky = 0; ky < k; ++ky) {
                const float * xr = x + (c * H + oy * k + ky) * W;
                for (int64_t ox = 0; ox < Wo; ++ox)
                    for (int64_t kx = 0; kx < k; ++kx) acc[ox] += xr[ox * k + kx];
            }
            for (int64_t ox = 0; ox < Wo; ++ox) y[(c * Ho + oy) * Wo + ox] = acc[ox] * inv;
        }
    }
}

void max_pool2d(const float * x, float * y, int64_t C, int64_t H, int64_t W, int64_t k) {
    const int64_t Ho = H / k, Wo = W / k;
    for (int64_t c = 0; c < C; ++c) {
        for (int64_t oy = 0; oy < Ho; ++oy) {
            float * yr = y + (c * Ho + oy) * Wo;
            std::fill(yr, yr + Wo, -std::numeric_limits<float>::infinity());
            for (int64_t ky = 0; ky < k; ++ky) {
                const float * xr = x + (c * H + oy * k + ky) * W;
                for (int64_t ox = 0; ox < Wo; ++ox)
                    for (int64_t kx = 0; kx < k; ++kx) yr[ox] = std::max(yr[ox], xr[ox * k + kx]);
            }
        }
    }
}

void permute(const float * x, float * y, const int64_t ne[4], const int perm[4]) {
    const int64_t in_stride[4] = {1, ne[0], ne[0] * ne[1], ne[0] * ne[1] * ne[2]};
    int64_t one[4], st[4];  // output shape, input stride of each output dim
    for (int d = 0; d < 4; ++d) {
        one[d] = ne[perm[d]];
        st[d] = in_stride[perm[d]];
    }
    float * yp = y;
    for (int64_t i3 = 0; i3 < one[3]; ++i3)
        for (int64_t i2 = 0; i2 < one[2]; ++i2)
            for (int64_t i1 = 0; i1 < one[1]; ++i1) {
                const float * xp = x + i3 * st[3] + i2 * st[2] + i1 * st[1];
                if (st[0] == 1) {
                    std::memcpy(yp, xp, sizeof(float) * one[0]);  // innermost dim kept: whole rows
                } else {
                    for (int64_t i0 = 0; i0 < one[0]; ++i0) yp[i0] = xp[i0 * st[0]];
                }
                yp += one[0];
            }
}

void concat(const float * a, const int64_t ne_a[4], const float * b, const int64_t ne_b[4], int dim, float * y) {
    // Both inputs are a sequence of `outer` blocks; block sizes are the products of the dims up to `dim`.
    int64_t outer = 1, ba = 1, bb = 1;
    for (int d = 0; d <= dim; ++d) {
        ba *= ne_a[d];
        bb *= ne_b[d];
    }
    for (int d = dim + 1; d < 4; ++d) outer *= ne_a[d];
    for (int64_t o = 0; o < outer; ++o) {
        std::memcpy(y, a + o * ba, sizeof(float) * ba);
        y += ba;
        std::memcpy(y, b + o * bb, sizeof(float) * bb);
        y += bb;
    }
}

}  // namespace spider
