// Runtime CPU feature detection and the dispatch level used by the SIMD kernels (matmul_*.cpp). Only files named
// *_avx2.cpp / *_avx512.cpp are compiled with those ISA flags; everything else asks cpu_level_active() first.
// Tests and benchmarks force a lower level (cpu_features_force, or the environment variable
// SPIDER_CPU_LEVEL=portable|avx2|avx512) to exercise every code path on one machine.
#pragma once

namespace spider {

enum cpu_level : int {
    CPU_LEVEL_PORTABLE = 0,  // plain C++ (baseline x86-64 / any CPU)
    CPU_LEVEL_AVX2 = 1,      // AVX2 + FMA + F16C
    CPU_LEVEL_AVX512 = 2,    // AVX-512 F/BW/VL/DQ + VNNI (+ the AVX2 set)
};

struct cpu_info {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
    bool avx512bf16 = false;
    bool amd = false;  // AuthenticAMD: Zen 4 / Zen 5 run 512-bit integer ops at full rate per instruction
};

const cpu_info & cpu_features();  // what this CPU (and OS) supports
cpu_level cpu_level_detected();   // the best level this CPU supports
cpu_level cpu_level_active();     // the level kernels use now: forced level, else SPIDER_CPU_LEVEL, else detected
const char * cpu_level_name(cpu_level level);  // "portable", "avx2", "avx512"
// Forces kernels to use `level`. Returns false (and changes nothing) if the CPU does not support it.
// Not synchronised with running kernels: call it between matmuls (tests, benchmarks, startup).
bool cpu_features_force(cpu_level level);
void cpu_features_reset();  // back to the environment variable / detected level

// Whether the AVX-512 kernels should use their 512-bit variants (matmul_simd_impl.h, SPIDER_SIMD_ZMM): true on AMD
// CPUs with the AVX-512 level, false elsewhere (on the Xeons measured so far the 512-bit integer kernels were
// slower than the 256-bit ones). SPIDER_WIDE_VECTORS=0|1 or cpu_wide_vectors_force overrides it (tests run both).
bool cpu_wide_vectors_fast();
void cpu_wide_vectors_force(int on);  // 1 / 0 forces, -1 back to the environment variable / detection

}  // namespace spider
