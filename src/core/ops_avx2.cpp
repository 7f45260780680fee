// AVX2 + FMA inner kernels of the optimised ops (ops.cpp picks them at run time when the CPU has AVX2 and FMA;
// this file alone is compiled with those flags). Each kernel works on one contiguous row; threading and shape
// handling stay in ops.cpp. The generic twins of these kernels are in ops.cpp, and tests/test_ops.cpp compares
// every op built on them against spider::ref.
//
// Fast exp: Cephes expf range reduction (x = n ln2 + r, |r| <= ln2/2) with its degree-6 polynomial; relative
// error <= 2e-7 on [-87.3, 88.7]; below -87.3 the result is exactly 0 (so -inf logits vanish), above it is
// clamped to exp(88.7). GELU (tanh form) uses the identity 0.5 (1 + tanh u) = 1 / (1 + exp(-2u)), so its error
// is that of exp plus one division (< 1e-6 relative). GELU (erf form) uses Abramowitz & Stegun 7.1.26 for erf,
// absolute error <= 1.5e-7 (times |x| / 2 in the output).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace spider {
namespace avx2 {

static inline float hsum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static inline float hmax(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_max_ps(lo, hi);
    lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_max_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static inline __m256 exp_ps(__m256 x) {
    const __m256 zero_mask = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm256_min_ps(x, _mm256_set1_ps(88.7f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // Scale by 2^n: add n to the exponent field. n is in [-126, 128]; split so 2^n never overflows the field.
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i half = _mm256_srai_epi32(ni, 1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
    p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_andnot_ps(zero_mask, p);
}

// Scalar exp through the vector path, so tails agree with the body bit for bit.
static inline float exp_1(float x) {
    return _mm256_cvtss_f32(exp_ps(_mm256_set1_ps(x)));
}

static inline __m256 gelu_tanh_ps(__m256 x) {
    const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    const __m256 u =
        _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
    const __m256 e = exp_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f), u));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline __m256 silu_ps(__m256 x) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline __m256 gelu_erf_ps(__m256 x) {
    // z = |x| / sqrt(2); erfc(z) ~= t (a1 + t (a2 + ...)) exp(-z^2), t = 1 / (1 + p z)
    const __m256 sign_mask = _mm256_set1_ps(-0.0f);
    const __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign_mask, x), _mm256_set1_ps(0.7071067811865476f));
    const __m256 t =
        _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), z, _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    const __m256 erfc =
        _mm256_mul_ps(_mm256_mul_ps(p, t), exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z, z))));
    // x >= 0: 0.5 x (2 - erfc); x < 0: 0.5 x erfc (no cancellation in the negative tail)
    const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 f = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(2.0f), erfc), erfc, neg);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), f);
}

static inline __m256 act_ps(int a, __m256 x) {
    switch (a) {
        case 0:
            return gelu_tanh_ps(x);
        case 1:
            return gelu_erf_ps(x);
        case 2:
            return silu_ps(x);
        default:
            return _mm256_max_ps(x, _mm256_setzero_ps());
    }
}

// Loads n < 8 trailing floats (zero-filled) and stores them back, so every kernel handles odd sizes the same way.
static inline __m256 load_tail(const float * p, int64_t n) {
    float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n; ++i) buf[i] = p[i];
    return _mm256_loadu_ps(buf);
}
static inline void store_tail(float * p, __m256 v, int64_t n) {
    float buf[8];
    _mm256_storeu_ps(buf, v);
    for (int64_t i = 0; i < n; ++i) p[i] = buf[i];
}

void add(const float * a, const float * b, float * y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; ++i) y[i] = a[i] + b[i];
}

void mul(const float * a, const float * b, float * y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; ++i) y[i] = a[i] * b[i];
}

void scale(const float * x, float s, float * y, int64_t n) {
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    for (; i < n; ++i) y[i] = x[i] * s;
}

void act(int a, const float * x, float * y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, act_ps(a, _mm256_loadu_ps(x + i)));
    if (i < n) store_tail(y + i, act_ps(a, load_tail(x + i, n - i)), n - i);
}

void glu(int a, const float * g, const float * u, float * y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(act_ps(a, _mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
    if (i < n) store_tail(y + i, _mm256_mul_ps(act_ps(a, load_tail(g + i, n - i)), load_tail(u + i, n - i)), n - i);
}

float dot(const float * a, const float * b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

// y += a * x
void axpy(float a, const float * x, float * y, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
}

float max(const float * x, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float r = hmax(m);
    for (; i < n; ++i) r = x[i] > r ? x[i] : r;
    return r;
}

// y[i] = exp(x[i] - m); returns the sum of y.
float exp_sum(const float * x, float m, float * y, int64_t n) {
    const __m256 vm = _mm256_set1_ps(m);
    __m256 s = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(y + i, e);
        s = _mm256_add_ps(s, e);
    }
    float r = hsum(s);
    for (; i < n; ++i) {
        y[i] = exp_1(x[i] - m);
        r += y[i];
    }
    return r;
}

// Sum and sum of squares of x (mean / variance pass of the norms).
void sums(const float * x, int64_t n, float * sum, float * sum_sq) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        s0 = _mm256_add_ps(s0, a);
        s1 = _mm256_add_ps(s1, b);
        q0 = _mm256_fmadd_ps(a, a, q0);
        q1 = _mm256_fmadd_ps(b, b, q1);
    }
    float s = hsum(_mm256_add_ps(s0, s1)), q = hsum(_mm256_add_ps(q0, q1));
    for (; i < n; ++i) {
        s += x[i];
        q += x[i] * x[i];
    }
    *sum = s;
    *sum_sq = q;
}

// Sum of (x - mean)^2: the second pass of layer / group norm (two passes keep the variance accurate).
float sq_dev(const float * x, float mean, int64_t n) {
    const __m256 vm = _mm256_set1_ps(mean);
    __m256 q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm), b = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm);
        q0 = _mm256_fmadd_ps(a, a, q0);
        q1 = _mm256_fmadd_ps(b, b, q1);
    }
    float q = hsum(_mm256_add_ps(q0, q1));
    for (; i < n; ++i) q += (x[i] - mean) * (x[i] - mean);
    return q;
}

// y = (x - mean) * inv * w + b, w / b optional
void norm_apply(const float * x, float mean, float inv, const float * w, const float * b, float * y, int64_t n) {
    const __m256 vm = _mm256_set1_ps(mean), vi = _mm256_set1_ps(inv);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vi);
        if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
        if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; ++i) {
        float v = (x[i] - mean) * inv;
        if (w) v *= w[i];
        if (b) v += b[i];
        y[i] = v;
    }
}

// C[M, N] (+)= A[M, K] * B[K, N], all row-major with leading dimensions lda / ldb / ldc. Register tile of 4 rows
// x 16 columns (8 accumulators); B rows are streamed, A entries broadcast. Callers keep B's panel small enough
// to stay in cache (ops.cpp packs an im2col slice of a few dozen columns per thread).
void gemm(int64_t M, int64_t N, int64_t K, const float * A, int64_t lda, const float * B, int64_t ldb, float * C,
          int64_t ldc, bool accumulate) {
    int64_t n0 = 0;
    for (; n0 + 16 <= N; n0 += 16) {
        int64_t m0 = 0;
        for (; m0 + 4 <= M; m0 += 4) {
            __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
                   c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
                   c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
            const float * a0 = A + m0 * lda;
            const float * a1 = a0 + lda;
            const float * a2 = a1 + lda;
            const float * a3 = a2 + lda;
            for (int64_t k = 0; k < K; ++k) {
                const __m256 b0 = _mm256_loadu_ps(B + k * ldb + n0), b1 = _mm256_loadu_ps(B + k * ldb + n0 + 8);
                __m256 a = _mm256_broadcast_ss(a0 + k);
                c00 = _mm256_fmadd_ps(a, b0, c00);
                c01 = _mm256_fmadd_ps(a, b1, c01);
                a = _mm256_broadcast_ss(a1 + k);
                c10 = _mm256_fmadd_ps(a, b0, c10);
                c11 = _mm256_fmadd_ps(a, b1, c11);
                a = _mm256_broadcast_ss(a2 + k);
                c20 = _mm256_fmadd_ps(a, b0, c20);
                c21 = _mm256_fmadd_ps(a, b1, c21);
                a = _mm256_broadcast_ss(a3 + k);
                c30 = _mm256_fmadd_ps(a, b0, c30);
                c31 = _mm256_fmadd_ps(a, b1, c31);
            }
            float * c = C + m0 * ldc + n0;
            const __m256 acc[8] = {c00, c01, c10, c11, c20, c21, c30, c31};
            for (int r = 0; r < 4; ++r) {
                for (int h = 0; h < 2; ++h) {
                    float * p = c + r * ldc + h * 8;
                    const __m256 v = acc[r * 2 + h];
                    _mm256_storeu_ps(p, accumulate ? _mm256_add_ps(_mm256_loadu_ps(p), v) : v);
                }
            }
        }
        for (; m0 < M; ++m0) {
            __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
            for (int64_t k = 0; k < K; ++k) {
                const __m256 a = _mm256_broadcast_ss(A + m0 * lda + k);
                c0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(B + k * ldb + n0), c0);
                c1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(B + k * ldb + n0 + 8), c1);
            }
            float * p = C + m0 * ldc + n0;
            _mm256_storeu_ps(p, accumulate ? _mm256_add_ps(_mm256_loadu_ps(p), c0) : c0);
            _mm256_storeu_ps(p + 8, accumulate ? _mm256_add_ps(_mm256_loadu_ps(p + 8), c1) : c1);
        }
    }
    // Remaining columns (< 16): plain loops.
    for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = n0; n < N; ++n) {
            float s = 0.0f;
            for (int64_t k = 0; k < K; ++k) s += A[m * lda + k] * B[k * ldb + n];
            C[m * ldc + n] = accumulate ? C[m * ldc + n] + s : s;
        }
    }
}

}  // namespace avx2
}  // namespace spider

namespace spider {
namespace avx2 {

namespace {

// acc[g][e..e+8) += sum_j p[g][j] * v[j][e..e+8) for GN query rows at once: each V chunk is loaded once and
// feeds GN accumulators held in registers.
// Eight K or V values as floats: F32 loaded, F16 widened in the register (the same values widen_rows stores).
inline __m256 load8(const float * p) {
    return _mm256_loadu_ps(p);
}
inline __m256 load8(const uint16_t * p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
}
inline float load1(const float * p) {
    return *p;
}
inline float load1(const uint16_t * p) {
    return _cvtsh_ss(*p);
}

template <int GN, typename KV>
void v_accumulate(const float * p, int64_t ldp, const KV * v, int64_t ldv, int64_t nb, float * acc, int64_t lda,
                  int64_t hd) {
    int64_t e = 0;
    if constexpr (GN <= 4) {
        // Two V chunks per step: each broadcast weight feeds two FMAs (a load per FMA would bound the loop by the
        // load ports). Every accumulator still takes its terms in key order: the same results.
        for (; e + 16 <= hd; e += 16) {
            __m256 a[GN][2];
            for (int g = 0; g < GN; ++g) {
                a[g][0] = _mm256_loadu_ps(acc + g * lda + e);
                a[g][1] = _mm256_loadu_ps(acc + g * lda + e + 8);
            }
            for (int64_t j = 0; j < nb; ++j) {
                const __m256 v0 = load8(v + j * ldv + e), v1 = load8(v + j * ldv + e + 8);
                for (int g = 0; g < GN; ++g) {
                    const __m256 pj = _mm256_broadcast_ss(p + g * ldp + j);
                    a[g][0] = _mm256_fmadd_ps(pj, v0, a[g][0]);
                    a[g][1] = _mm256_fmadd_ps(pj, v1, a[g][1]);
                }
            }
            for (int g = 0; g < GN; ++g) {
                _mm256_storeu_ps(acc + g * lda + e, a[g][0]);
                _mm256_storeu_ps(acc + g * lda + e + 8, a[g][1]);
            }
        }
    }
    for (; e + 8 <= hd; e += 8) {
        __m256 a[GN];
        for (int g = 0; g < GN; ++g) a[g] = _mm256_loadu_ps(acc + g * lda + e);
        for (int64_t j = 0; j < nb; ++j) {
            const __m256 vv = load8(v + j * ldv + e);
            for (int g = 0; g < GN; ++g) a[g] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + g * ldp + j), vv, a[g]);
        }
        for (int g = 0; g < GN; ++g) _mm256_storeu_ps(acc + g * lda + e, a[g]);
    }
    for (; e < hd; ++e)
        for (int g = 0; g < GN; ++g) {
            float s = acc[g * lda + e];
            for (int64_t j = 0; j < nb; ++j) s += p[g * ldp + j] * load1(v + j * ldv + e);
            acc[g * lda + e] = s;
        }
}

// nb rows of hd F16 values, ld apart, widened into dst (rows hd apart): one key block of the F16 KV cache.
void widen_rows(const uint16_t * src, int64_t ld, int64_t nb, int64_t hd, float * dst) {
    for (int64_t j = 0; j < nb; ++j) {
        const uint16_t * s = src + j * ld;
        float * d = dst + j * hd;
        int64_t e = 0;
        for (; e + 8 <= hd; e += 8) {
            _mm256_storeu_ps(d + e, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(s + e))));
        }
        for (; e < hd; ++e) d[e] = _cvtsh_ss(s[e]);
    }
}

// Finishes the scores of one query against four keys: the four accumulators' horizontal sums (one tree for all
// four), the elements past hd8, and the scale, into out[0..4).
template <typename KV>
inline void scores4(const __m256 * s, const float * qg, const KV * const * k, int64_t hd8, int64_t hd, float sc,
                    float * out) {
    const __m256 h01 = _mm256_hadd_ps(s[0], s[1]), h23 = _mm256_hadd_ps(s[2], s[3]);
    const __m256 h = _mm256_hadd_ps(h01, h23);  // per 128-bit lane: s0 s1 s2 s3 partials
    const __m128 r = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    float t[4];
    _mm_storeu_ps(t, r);
    for (int64_t e = hd8; e < hd; ++e) {
        for (int u = 0; u < 4; ++u) t[u] += qg[e] * load1(k[u] + e);
    }
    for (int u = 0; u < 4; ++u) out[u] = t[u] * sc;
}

// scores4's tree for two keys: the same sums, in the same order, for each (query, key).
template <typename KV>
inline void scores2(__m256 s0, __m256 s1, const float * qg, const KV * k0, const KV * k1, int64_t hd8, int64_t hd,
                    float sc, float * out) {
    const __m256 h01 = _mm256_hadd_ps(s0, s1);
    const __m256 h = _mm256_hadd_ps(h01, h01);  // per 128-bit lane: s0 s1 partials (twice)
    const __m128 r = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    float t[4];
    _mm_storeu_ps(t, r);
    for (int64_t e = hd8; e < hd; ++e) {
        t[0] += qg[e] * load1(k0 + e);
        t[1] += qg[e] * load1(k1 + e);
    }
    out[0] = t[0] * sc;
    out[1] = t[1] * sc;
}

// Scores of four queries (qg + u * ldq) against keys k[0..3] (rows of KV): two keys at a time, so 8 accumulators,
// the two keys (converted once if F16) and a query chunk fit the 16 vector registers. Each (query, key) keeps
// scores4's accumulator and tree (the first two keys' hadd is taken before the next two are summed).
template <typename KV>
inline void scores4x4(const float * qg, int64_t ldq, const KV * const * k, int64_t hd8, int64_t hd, float sc,
                      float * out, int64_t ldo) {
    __m256 h01[4], h23[4];
    for (int half = 0; half < 2; ++half) {
        const KV * ka = k[2 * half];
        const KV * kc = k[2 * half + 1];
        __m256 a[4][2];
        for (int u = 0; u < 4; ++u) a[u][0] = a[u][1] = _mm256_setzero_ps();
        for (int64_t e = 0; e < hd8; e += 8) {
            const __m256 k0 = load8(ka + e), k1 = load8(kc + e);
            for (int u = 0; u < 4; ++u) {
                const __m256 qv = _mm256_loadu_ps(qg + u * ldq + e);
                a[u][0] = _mm256_fmadd_ps(qv, k0, a[u][0]);
                a[u][1] = _mm256_fmadd_ps(qv, k1, a[u][1]);
            }
        }
        for (int u = 0; u < 4; ++u) (half ? h23 : h01)[u] = _mm256_hadd_ps(a[u][0], a[u][1]);
    }
    for (int u = 0; u < 4; ++u) {
        const __m256 h = _mm256_hadd_ps(h01[u], h23[u]);
        const __m128 r = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        float t[4];
        _mm_storeu_ps(t, r);
        const float * qu = qg + u * ldq;
        for (int64_t e = hd8; e < hd; ++e) {
            for (int w = 0; w < 4; ++w) t[w] += qu[e] * load1(k[w] + e);
        }
        for (int w = 0; w < 4; ++w) out[u * ldo + w] = t[w] * sc;
    }
}

// Attention of G query rows (q + g * ldq, one GQA group at one position) over keys [j0, j1) of one KV head
// (k / v + j * ldkv), online softmax in blocks of 64 keys; out + g * ldo gets the result. scratch holds
// G * (64 + hd + 2) floats, and hd more for F16 K / V. F16 keys and values are widened in registers as they are
// loaded (load8): a widened block of 64 keys and 64 values (128 KB at head_dim 256) overflowed L1 and cost more
// than the arithmetic (attention_f16kv for one query, 4 heads sharing one KV head of 256, 2-core Xeon, in cache:
// 64 keys 11.0 -> 4.9 us, 512 keys 85 -> 34 us).
template <typename KV>
void attn_tile_impl(const float * q, int64_t ldq, int G, const KV * k, const KV * v, int64_t ldkv, int64_t hd,
                    int64_t j0, int64_t j1, float sc, float * out, int64_t ldo, float * scratch, float * ms) {
    constexpr int64_t BK = 64;
    float * logit = scratch;
    float * acc = logit + G * BK;
    float * mrow = acc + G * hd;
    float * srow = mrow + G;
    float * krow = srow + G;  // F16: one key widened for dot()
    for (int64_t i = 0; i < G * hd; ++i) acc[i] = 0.0f;
    for (int g = 0; g < G; ++g) {
        mrow[g] = -INFINITY;
        srow[g] = 0.0f;
    }
    const int64_t hd8 = hd / 8 * 8;
    // dot(q row, key row) as for F32 keys: F16 keys widened first (the same values).
    auto dot_key = [&](const float * qr, const KV * kr) {
        if constexpr (std::is_same<KV, float>::value) {
            return dot(qr, kr, hd);
        } else {
            widen_rows(kr, hd, 1, hd, krow);
            return dot(qr, krow, hd);
        }
    };
    for (int64_t jb = j0; jb < j1; jb += BK) {
        const int64_t nb = j1 - jb < BK ? j1 - jb : BK;
        const KV * kb = k + jb * ldkv;
        const KV * vb = v + jb * ldkv;
        const int64_t ldk = ldkv;
        // Scores: four queries at a time where there are four (each key chunk loaded feeds eight FMAs), then two,
        // then one. Each (query, key) keeps its own accumulator and horizontal-sum tree: the same scores either way.
        int g = 0;
        for (; g + 4 <= G; g += 4) {
            const float * qa = q + g * ldq;
            float * la = logit + g * BK;
            int64_t j = 0;
            for (; j + 4 <= nb; j += 4) {
                const KV * kj[4] = {kb + j * ldk, kb + (j + 1) * ldk, kb + (j + 2) * ldk, kb + (j + 3) * ldk};
                scores4x4(qa, ldq, kj, hd8, hd, sc, la + j, BK);
            }
            for (; j < nb; ++j) {
                for (int u = 0; u < 4; ++u) la[u * BK + j] = dot_key(qa + u * ldq, kb + j * ldk) * sc;
            }
        }
        for (; g < G; g += 2) {
            const bool two = g + 1 < G;
            const float * qa = q + g * ldq;
            const float * qb = two ? qa + ldq : qa;
            float * la = logit + g * BK;
            float * lb = two ? la + BK : la;
            int64_t j = 0;
            for (; j + 4 <= nb; j += 4) {
                const KV * kj[4] = {kb + j * ldk, kb + (j + 1) * ldk, kb + (j + 2) * ldk, kb + (j + 3) * ldk};
                __m256 sa[4], sb[4];
                for (int u = 0; u < 4; ++u) sa[u] = sb[u] = _mm256_setzero_ps();
                if (two) {
                    for (int64_t e = 0; e < hd8; e += 8) {
                        const __m256 qav = _mm256_loadu_ps(qa + e), qbv = _mm256_loadu_ps(qb + e);
                        for (int u = 0; u < 4; ++u) {
                            const __m256 kv = load8(kj[u] + e);
                            sa[u] = _mm256_fmadd_ps(qav, kv, sa[u]);
                            sb[u] = _mm256_fmadd_ps(qbv, kv, sb[u]);
                        }
                    }
                } else {
                    for (int64_t e = 0; e < hd8; e += 8) {
                        const __m256 qav = _mm256_loadu_ps(qa + e);
                        for (int u = 0; u < 4; ++u) sa[u] = _mm256_fmadd_ps(qav, load8(kj[u] + e), sa[u]);
                    }
                }
                scores4(sa, qa, kj, hd8, hd, sc, la + j);
                if (two) scores4(sb, qb, kj, hd8, hd, sc, lb + j);
            }
            for (; j < nb; ++j) {
                la[j] = dot_key(qa, kb + j * ldk) * sc;
                if (two) lb[j] = dot_key(qb, kb + j * ldk) * sc;
            }
        }
        for (int g = 0; g < G; ++g) {
            float * lg = logit + g * BK;
            // Online softmax: rescale what was accumulated when the running max grows.
            const float bm = max(lg, nb);
            if (bm > mrow[g]) {
                if (srow[g] > 0.0f) {
                    const float r = exp_1(mrow[g] - bm);
                    scale(acc + g * hd, r, acc + g * hd, hd);
                    srow[g] *= r;
                }
                mrow[g] = bm;
            }
            srow[g] += exp_sum(lg, mrow[g], lg, nb);
        }
        for (int g0 = 0; g0 < G; g0 += 8) {
            const int gn = G - g0 < 8 ? G - g0 : 8;
            const float * p = logit + g0 * BK;
            float * a = acc + g0 * hd;
            switch (gn) {
                case 1:
                    v_accumulate<1>(p, BK, vb, ldk, nb, a, hd, hd);
                    break;
                case 2:
                    v_accumulate<2>(p, BK, vb, ldk, nb, a, hd, hd);
                    break;
                case 3:
                    v_accumulate<3>(p, BK, vb, ldk, nb, a, hd, hd);
                    break;
                case 4:
                    v_accumulate<4>(p, BK, vb, ldk, nb, a, hd, hd);
                    break;
                case 5:
                    v_accumulate<5>(p, BK, vb, ldk, nb, a, hd, hd);
                    break;
                case 6:
                    v_accumulate<6>(p, BK, vb, ldk, nb, a, hd, hd);
                    break;
                case 7:
                    v_accumulate<7>(p, BK, vb, ldk, nb, a, hd, hd);
                    break;
                default:
                    v_accumulate<8>(p, BK, vb, ldk, nb, a, hd, hd);
                    break;
            }
        }
    }
    for (int g = 0; g < G; ++g) scale(acc + g * hd, 1.0f / srow[g], out + g * ldo, hd);
    if (ms) {
        for (int g = 0; g < G; ++g) {
            ms[2 * g] = mrow[g];
            ms[2 * g + 1] = srow[g];
        }
    }
}

}  // namespace

void attn_tile(const float * q, int64_t ldq, int G, const float * k, const float * v, int64_t ldkv, int64_t hd,
               int64_t j0, int64_t j1, float sc, float * out, int64_t ldo, float * scratch, float * ms) {
    attn_tile_impl<float>(q, ldq, G, k, v, ldkv, hd, j0, j1, sc, out, ldo, scratch, ms);
}

void attn_tile_f16(const float * q, int64_t ldq, int G, const uint16_t * k, const uint16_t * v, int64_t ldkv,
                   int64_t hd, int64_t j0, int64_t j1, float sc, float * out, int64_t ldo, float * scratch,
                   float * ms) {
    attn_tile_impl<uint16_t>(q, ldq, G, k, v, ldkv, hd, j0, j1, sc, out, ldo, scratch, ms);
}

void f16_to_f32(const uint16_t * src, float * dst, int64_t n) {
    widen_rows(src, n, 1, n, dst);
}

}  // namespace avx2
}  // namespace spider
