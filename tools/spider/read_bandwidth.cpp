// Read bandwidth probes (see read_bandwidth.h).
//
// Why these loops: the probe is a roofline, an upper bound, so it must read at least as fast as any decode kernel
// streams. On the 2-core Xeon of 2026-12-05 the plain loop read 27 GB/s from a 1.1 GB buffer while a Q8_0 decode
// streamed its 1.17 GB of weights at 30 GB/s (a probe that reads more slowly than a decode is no roofline); 1, 2 and
// 4 KiB of software prefetch ahead read 30, 34 and 35 GB/s, and 8 KiB no more. From a 235 MiB buffer (gemma-3-270m's
// weights, mostly in the 480 MiB L3): 36 plain, 58 at 4 KiB. Since 2026-12-06 each distance is also read with
// prefetches into L2 (prefetcht1), the way the decode kernels now prefetch their weight streams
// (core/matmul_simd_impl.h, prefetch_stream), which read faster that way on that day's Xeon. Buffers are 2 MiB aligned
// and advised for transparent huge pages, as the models' weight copies are (core/huge_buffer.h), so TLB misses do not
// lower the figure.
#include "read_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sys/mman.h>

#include "core/threadpool.h"

namespace spider_cli {

const read_way k_read_ways[9] = {{0, 0},    {1024, 1}, {2048, 1}, {4096, 1}, {8192, 1},
                                 {1024, 2}, {2048, 2}, {4096, 2}, {8192, 2}};

namespace {

// 16 bytes, any alignment (a span of an unpacked tensor in a mapped file need not be 16-byte aligned).
using u64x2 = uint64_t __attribute__((vector_size(16), aligned(1)));

// Sums [b, e) of one span into s: 128 bytes (two cache lines) per step; prefetches past the end are harmless hints.
// LOCALITY: __builtin_prefetch's third argument (3 = prefetcht0, into L1; 2 = prefetcht1, into L2).
template <int LOCALITY>
const uint8_t * read_range_prefetch(const uint8_t * p, const uint8_t * e, int ahead, u64x2 * s) {
    for (; p + 128 <= e; p += 128) {
        __builtin_prefetch(p + ahead, 0, LOCALITY);
        __builtin_prefetch(p + ahead + 64, 0, LOCALITY);
        for (int k = 0; k < 8; ++k) s[k] += *reinterpret_cast<const u64x2 *>(p + 16 * k);
    }
    return p;
}

void read_range(const uint8_t * b, const uint8_t * e, read_way way, u64x2 * s) {
    const uint8_t * p = b;
    if (way.ahead == 0) {
        for (; p + 128 <= e; p += 128) {
            for (int k = 0; k < 8; ++k) s[k] += *reinterpret_cast<const u64x2 *>(p + 16 * k);
        }
    } else if (way.level == 2) {
        p = read_range_prefetch<2>(p, e, way.ahead, s);
    } else {
        p = read_range_prefetch<3>(p, e, way.ahead, s);
    }
    for (; p < e; ++p) s[0][0] += *p;
}

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

size_t total_bytes(const byte_spans & spans) {
    size_t n = 0;
    for (const auto & sp : spans) n += sp.second;
    return n;
}

}  // namespace

double read_pass(const byte_spans & spans, read_way way, spider::thread_pool & pool) {
    const size_t total = total_bytes(spans);
    static volatile uint64_t sink;  // keeps the loads alive
    (void)sink;
    const double t0 = now_seconds();
    pool.run([&](int ith, int nth) {
        // This thread's share [lo, hi) of the spans laid end to end, cut at 128-byte multiples.
        const size_t lo = total / 128 * ith / nth * 128,
                     hi = ith + 1 == nth ? total : total / 128 * (ith + 1) / nth * 128;
        u64x2 s[8] = {};
        size_t at = 0;  // offset of the current span's first byte
        for (const auto & sp : spans) {
            const size_t b = std::max(lo, at), e = std::min(hi, at + sp.second);
            if (b < e) read_range(sp.first + (b - at), sp.first + (e - at), way, s);
            at += sp.second;
            if (at >= hi) break;
        }
        const u64x2 t = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
        if (t[0] + t[1] == 1) sink = t[0];
    });
    return now_seconds() - t0;
}

double best_read_gbps(const byte_spans & spans, read_way way, spider::thread_pool & pool, int min_passes,
                      double seconds) {
    const size_t total = total_bytes(spans);
    double best = 0, spent = 0;
    for (int pass = 0; pass < min_passes || (spent < seconds && pass < 1000); ++pass) {
        const double s = read_pass(spans, way, pool);
        spent += s;
        best = std::max(best, total / s / 1e9);
    }
    return best;
}

int run_membw(const std::vector<int> & threads, const std::vector<int> & sizes_mib, int reps) {
    std::printf("| %7s | %10s | %12s |\n| %s: | %s: | %s: |\n", "threads", "buffer MiB", "read GB/s",
                std::string(6, '-').c_str(), std::string(9, '-').c_str(), std::string(11, '-').c_str());
    for (int mib : sizes_mib) {
        const size_t bytes = size_t(mib) << 20, align = size_t(1) << 21;
        void * mem = std::aligned_alloc(align, (bytes + align - 1) / align * align);
        if (!mem) {
            std::fprintf(stderr, "error: --membw: cannot allocate %d MiB\n", mib);
            return 1;
        }
#ifdef MADV_HUGEPAGE
        madvise(mem, bytes, MADV_HUGEPAGE);  // advice only: without THP the pages stay 4 KiB
#endif
        auto * v = static_cast<uint64_t *>(mem);
        for (size_t i = 0; i < bytes / 8; ++i) v[i] = i * 0x9E3779B97F4A7C15ull;  // faults every page in
        const byte_spans spans = {{static_cast<const uint8_t *>(mem), bytes}};
        for (int nt : threads) {
            spider::thread_pool pool(nt);
            read_pass(spans, read_way{}, pool);  // warm-up
            double best = 0;
            for (read_way w : k_read_ways) best = std::max(best, best_read_gbps(spans, w, pool, reps, 0.3));
            std::printf("| %7d | %10d | %12.2f |\n", nt, mib, best);
            std::fflush(stdout);
        }
        std::free(mem);
    }
    return 0;
}

roofline_probe::roofline_probe(byte_spans spans, spider::thread_pool & pool)
    : spans_(std::move(spans)), pool_(pool), bytes_(total_bytes(spans_)) {
    read_pass(spans_, read_way{}, pool_);  // warm-up
    double best = 0;
    for (read_way w : k_read_ways) {
        const double gbps = best_read_gbps(spans_, w, pool_, 3, 0.1);
        if (gbps > best) best = gbps, way_ = w;
    }
}

roofline_probe::reading roofline_probe::measure(double seconds) {
    reading r;
    double spent = 0;
    int passes = 0;
    for (; passes < 2 || (spent < seconds && passes < 100000); ++passes) {
        const double s = read_pass(spans_, way_, pool_);
        spent += s;
        r.best_gbps = std::max(r.best_gbps, bytes_ / s / 1e9);
    }
    r.mean_gbps = bytes_ * static_cast<double>(passes) / spent / 1e9;
    return r;
}

}  // namespace spider_cli
