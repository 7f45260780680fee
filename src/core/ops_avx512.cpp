// AVX-512 (F/BW/VL/DQ) inner kernels of the optimised ops: the same contracts as ops_avx2.cpp, 16 floats per
// vector, tails done with masked loads and stores instead of scalar loops (so a row of any length takes the vector
// path end to end, and the tail of a row agrees with its body bit for bit). ops.cpp picks this set when
// cpu_level_active() is CPU_LEVEL_AVX512; tests/test_ops.cpp compares every op against spider::ref on each level.
//
// exp: the same Cephes range reduction and degree-6 polynomial as the AVX2 kernels (relative error <= 2e-7 on
// [-87.3, 88.7], exactly 0 below -87.3), with the 2^n scaling done by vscalefps, which cannot overflow the exponent
// field. The activations use the same formulas as ops_avx2.cpp (see there for their error bounds).
//
// The register-tiled gemm and the attention tile are not here: they are bound by their load / FMA ports, which
// Zen 4 (this project's reference machine) runs at the same width for 256- and 512-bit vectors, and they are
// tuned for 16 registers; the AVX-512 set uses the AVX2 ones (ops.cpp).
#include <immintrin.h>

// GCC 12's avx512fintrin.h builds _mm512_min_ps / _mm512_max_ps / _mm512_scalef_ps ... on a deliberately undefined
// pass-through vector (_mm512_undefined_ps), which -W(maybe-)uninitialized reports at every inlined use. The
// warning is about the header, not this code; it stays on everywhere else.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <cmath>
#include <cstdint>

namespace spider {
namespace avx512 {

static inline __mmask16 tail_mask(int64_t n) {
    return static_cast<__mmask16>((1u << n) - 1u);
}

// Horizontal sum / max, through 256- and 128-bit halves (GCC 12's _mm512_reduce_* warn -Wmaybe-uninitialized).
static inline float hsum(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax(__m512 v) {
    const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m512 exp_ps(__m512 x) {
    const __mmask16 zero = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm512_min_ps(x, _mm512_set1_ps(88.7f));
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(static_cast<__mmask16>(~zero), _mm512_scalef_ps(p, n));
}

static inline __m512 gelu_tanh_ps(__m512 x) {
    const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    const __m512 u =
        _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
    const __m512 e = exp_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), u));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

static inline __m512 silu_ps(__m512 x) {
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

static inline __m512 gelu_erf_ps(__m512 x) {
    // z = |x| / sqrt(2); erfc(z) ~= t (a1 + t (a2 + ...)) exp(-z^2), t = 1 / (1 + p z) (Abramowitz & Stegun 7.1.26)
    const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.7071067811865476f));
    const __m512 t =
        _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), z, _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    const __m512 erfc =
        _mm512_mul_ps(_mm512_mul_ps(p, t), exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z))));
    // x >= 0: 0.5 x (2 - erfc); x < 0: 0.5 x erfc (no cancellation in the negative tail)
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 f = _mm512_mask_mov_ps(_mm512_sub_ps(_mm512_set1_ps(2.0f), erfc), neg, erfc);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), f);
}

static inline __m512 act_ps(int a, __m512 x) {
    switch (a) {
        case 0:
            return gelu_tanh_ps(x);
        case 1:
            return gelu_erf_ps(x);
        case 2:
            return silu_ps(x);
        default:
            return _mm512_max_ps(x, _mm512_setzero_ps());
    }
}

// Applies f to every 16-float chunk of [0, n): f(i, mask) with a full mask for the body and a partial one for the
// tail. Masked-off lanes load as 0 and are never stored.
template <typename F>
static inline void for_chunks(int64_t n, F && f) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) f(i, static_cast<__mmask16>(0xFFFF));
    if (i < n) f(i, tail_mask(n - i));
}

static inline __m512 load(const float * p, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, p);
}

void add(const float * a, const float * b, float * y, int64_t n) {
    for_chunks(n, [&](int64_t i, __mmask16 m) {
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(load(a + i, m), load(b + i, m)));
    });
}

void mul(const float * a, const float * b, float * y, int64_t n) {
    for_chunks(n, [&](int64_t i, __mmask16 m) {
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(load(a + i, m), load(b + i, m)));
    });
}

void scale(const float * x, float s, float * y, int64_t n) {
    const __m512 vs = _mm512_set1_ps(s);
    for_chunks(n, [&](int64_t i, __mmask16 m) { _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(load(x + i, m), vs)); });
}

void act(int a, const float * x, float * y, int64_t n) {
    for_chunks(n, [&](int64_t i, __mmask16 m) { _mm512_mask_storeu_ps(y + i, m, act_ps(a, load(x + i, m))); });
}

void glu(int a, const float * g, const float * u, float * y, int64_t n) {
    for_chunks(n, [&](int64_t i, __mmask16 m) {
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(act_ps(a, load(g + i, m)), load(u + i, m)));
    });
}

float dot(const float * a, const float * b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - i);
        s0 = _mm512_fmadd_ps(load(a + i, m), load(b + i, m), s0);
    }
    return hsum(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

// y += a * x
void axpy(float a, const float * x, float * y, int64_t n) {
    const __m512 va = _mm512_set1_ps(a);
    for_chunks(n, [&](int64_t i, __mmask16 m) {
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, load(x + i, m), load(y + i, m)));
    });
}

float max(const float * x, int64_t n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for_chunks(n, [&](int64_t i, __mmask16 m) { mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + i)); });
    return hmax(mx);
}

// y[i] = exp(x[i] - m); returns the sum of y.
float exp_sum(const float * x, float m, float * y, int64_t n) {
    const __m512 vm = _mm512_set1_ps(m);
    __m512 s = _mm512_setzero_ps();
    for_chunks(n, [&](int64_t i, __mmask16 k) {
        const __m512 e = _mm512_maskz_mov_ps(k, exp_ps(_mm512_sub_ps(load(x + i, k), vm)));
        _mm512_mask_storeu_ps(y + i, k, e);
        s = _mm512_add_ps(s, e);
    });
    return hsum(s);
}

// Sum and sum of squares of x (mean / variance pass of the norms).
void sums(const float * x, int64_t n, float * sum, float * sum_sq) {
    __m512 s = _mm512_setzero_ps(), q = _mm512_setzero_ps();
    for_chunks(n, [&](int64_t i, __mmask16 m) {
        const __m512 a = load(x + i, m);
        s = _mm512_add_ps(s, a);
        q = _mm512_fmadd_ps(a, a, q);
    });
    *sum = hsum(s);
    *sum_sq = hsum(q);
}

// Sum of (x - mean)^2: the second pass of layer / group norm (two passes keep the variance accurate).
float sq_dev(const float * x, float mean, int64_t n) {
    const __m512 vm = _mm512_set1_ps(mean);
    __m512 q = _mm512_setzero_ps();
    for_chunks(n, [&](int64_t i, __mmask16 m) {
        const __m512 a = _mm512_maskz_sub_ps(m, load(x + i, m), vm);  // masked-off lanes stay 0
        q = _mm512_fmadd_ps(a, a, q);
    });
    return hsum(q);
}

// y = (x - mean) * inv * w + b, w / b optional
void norm_apply(const float * x, float mean, float inv, const float * w, const float * b, float * y, int64_t n) {
    const __m512 vm = _mm512_set1_ps(mean), vi = _mm512_set1_ps(inv);
    for_chunks(n, [&](int64_t i, __mmask16 m) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(load(x + i, m), vm), vi);
        if (w) v = _mm512_mul_ps(v, load(w + i, m));
        if (b) v = _mm512_add_ps(v, load(b + i, m));
        _mm512_mask_storeu_ps(y + i, m, v);
    });
}

}  // namespace avx512
}  // namespace spider
