// F32 -> F16 row conversion for the F16 KV cache with F16C instructions (this file is compiled with AVX2/F16C
// flags; context.cpp calls it only when cpu_level_active() >= CPU_LEVEL_AVX2). The scalar reference is
// fp32_to_fp16 in core/dtype.h; tests compare the F16 cache against the F32 one. (Attention reads the F16 cache
// itself: attention_f16kv in core/ops.h.)
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace spider {

void kv_f32_to_f16_avx2(const float * src, uint16_t * dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128(reinterpret_cast<__m128i *>(dst + i), h);
    }
    for (; i < n; i++) dst[i] = fp32_to_fp16(src[i]);
}

}  // namespace spider
