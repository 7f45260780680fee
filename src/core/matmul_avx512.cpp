// AVX-512 (VL + VNNI) matmul kernels: the shared 256-bit kernels with vpdpbusd for int8 dot products and 32 vector
// registers, enough for 4 weight rows x 4 activation rows of accumulators, plus 512-bit one-token kernels for the
// packed Q4_0 / Q5_0 / Q8_0 layouts on CPUs where cpu_wide_vectors_fast(). Chosen at run time by matmul.cpp.
#define SPIDER_SIMD_VNNI 1
#define SPIDER_SIMD_ZMM 1
#define SPIDER_SIMD_MAX_NC 4
// K-quants too: a 4 x 4 tile spills a few registers, but it decodes each weight block's nibbles and scales for 4
// tokens instead of 2. SPIDER_BENCH=1 SPIDER_BENCH_L3=1 test_matmul, 1024 x 640, 1 thread, 2 alternating pairs
// (2026-12-05): pp512 Q4_K 44 -> 52 GFLOP/s, Q6_K 49 -> 55-64; gemma-3-270m pp512 ahead in 5 of 6 pairs, +3-26%.
#define SPIDER_SIMD_MAX_NC_K 4
#define SPIDER_SIMD_NAME matmul_kernel_avx512
#include "core/matmul_simd_impl.h"
