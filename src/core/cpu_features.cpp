// CPU feature detection (GCC/Clang __builtin_cpu_supports, which also checks that the OS saves the wide
// registers) and the forced-level switch for tests.
#include "core/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace spider {

namespace {

cpu_info detect() {
    cpu_info c;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.f16c = c.avx2;  // every AVX2 CPU has F16C; __builtin_cpu_supports has no "f16c" name on older compilers
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
    c.avx512dq = __builtin_cpu_supports("avx512dq");
    c.avx512vnni = __builtin_cpu_supports("avx512vnni");
    c.avx512bf16 = __builtin_cpu_supports("avx512bf16");
    c.amd = __builtin_cpu_is("amd");
#endif
    return c;
}

cpu_level level_of(const cpu_info & c) {
    const bool avx2 = c.avx2 && c.fma && c.f16c;
    if (avx2 && c.avx512f && c.avx512bw && c.avx512vl && c.avx512dq && c.avx512vnni) return CPU_LEVEL_AVX512;
    if (avx2) return CPU_LEVEL_AVX2;
    return CPU_LEVEL_PORTABLE;
}

// -1: not forced.
std::atomic<int> g_forced{-1};

int env_level() {
    static const int lvl = [] {
        const char * e = std::getenv("SPIDER_CPU_LEVEL");
        if (!e) return -1;
        if (!std::strcmp(e, "portable")) return static_cast<int>(CPU_LEVEL_PORTABLE);
        if (!std::strcmp(e, "avx2")) return static_cast<int>(CPU_LEVEL_AVX2);
        if (!std::strcmp(e, "avx512")) return static_cast<int>(CPU_LEVEL_AVX512);
        return -1;
    }();
    return lvl;
}

}  // namespace

const cpu_info & cpu_features() {
    static const cpu_info info = detect();
    return info;
}

cpu_level cpu_level_detected() {
    static const cpu_level lvl = level_of(cpu_features());
    return lvl;
}

cpu_level cpu_level_active() {
    const int f = g_forced.load(std::memory_order_relaxed);
    if (f >= 0) return static_cast<cpu_level>(f);
    const int e = env_level();
    // An environment request above what the CPU supports is ignored rather than crashing on an illegal opcode.
    if (e >= 0 && e <= static_cast<int>(cpu_level_detected())) return static_cast<cpu_level>(e);
    return cpu_level_detected();
}

const char * cpu_level_name(cpu_level level) {
    switch (level) {
        case CPU_LEVEL_PORTABLE:
            return "portable";
        case CPU_LEVEL_AVX2:
            return "avx2";
        case CPU_LEVEL_AVX512:
            return "avx512";
    }
    return "unknown";
}

bool cpu_features_force(cpu_level level) {
    if (level < CPU_LEVEL_PORTABLE || level > cpu_level_detected()) return false;
    g_forced.store(static_cast<int>(level), std::memory_order_relaxed);
    return true;
}

void cpu_features_reset() {
    g_forced.store(-1, std::memory_order_relaxed);
}

namespace {
std::atomic<int> g_wide_forced{-1};
}  // namespace

bool cpu_wide_vectors_fast() {
    const int f = g_wide_forced.load(std::memory_order_relaxed);
    if (f >= 0) return f == 1 && cpu_level_detected() >= CPU_LEVEL_AVX512;
    static const bool detected = [] {
        if (cpu_level_detected() < CPU_LEVEL_AVX512) return false;
        if (const char * e = std::getenv("SPIDER_WIDE_VECTORS")) return std::strcmp(e, "0") != 0;
        return cpu_features().amd;
    }();
    return detected;
}

void cpu_wide_vectors_force(int on) {
    g_wide_forced.store(on < 0 ? -1 : (on ? 1 : 0), std::memory_order_relaxed);
}

}  // namespace spider
