// AVX-512 (VL + VNNI) matmul kernels: the shared 256-bit kernels with vpdpbusd for int8 dot products and 32 vector
// registers, enough for 4 weight rows x 4 activation rows of accumulators. Chosen at run time by matmul.cpp.
#define SPIDER_SIMD_VNNI 1
#define SPIDER_SIMD_MAX_NC 4
#define SPIDER_SIMD_MAX_NC_K 2
#define SPIDER_SIMD_NAME matmul_kernel_avx512
#include "core/matmul_simd_impl.h"
