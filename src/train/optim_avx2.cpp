// AVX2 body of the AdamW update (optim.cpp; compiled with AVX2 flags, chosen at run time). The same operations in
// the same order as the plain loop, without fused multiply-adds, so every lane rounds exactly like it: the
// parameters do not depend on which of the two runs.
// GCC would otherwise contract the multiply-adds below into FMAs (-ffp-contract=fast is its default).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <immintrin.h>

#include "train/optim.h"

namespace spider::train::detail {

void adamw_update_avx2(float * p, const float * g, float * m, float * v, int64_t n, const adamw_scalars & s) {
    const __m256 b1 = _mm256_set1_ps(s.beta1), b2 = _mm256_set1_ps(s.beta2);
    const __m256 one_b1 = _mm256_set1_ps(1.0f - s.beta1), one_b2 = _mm256_set1_ps(1.0f - s.beta2);
    const __m256 step = _mm256_set1_ps(s.step_size), sqrt_bc2 = _mm256_set1_ps(s.sqrt_bc2);
    const __m256 eps = _mm256_set1_ps(s.eps);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gi = _mm256_loadu_ps(g + i);
        const __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(one_b1, gi));
        const __m256 vi =
            _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(one_b2, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), sqrt_bc2), eps);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(step, mi), denom)));
    }
    if (i < n) adamw_update_plain(p + i, g + i, m + i, v + i, n - i, s);
}

}  // namespace spider::train::detail
