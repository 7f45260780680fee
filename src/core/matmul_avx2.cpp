// AVX2 + FMA + F16C matmul kernels (compiled with those flags only; chosen at run time by matmul.cpp).
// 16 vector registers: tiles of 4 weight rows x 2 activation rows keep the 8 accumulators in registers.
#define SPIDER_SIMD_VNNI 0
#define SPIDER_SIMD_ZMM 0
#define SPIDER_SIMD_MAX_NC 2
#define SPIDER_SIMD_MAX_NC_K 1
#define SPIDER_SIMD_NAME matmul_kernel_avx2
#include "core/matmul_simd_impl.h"
