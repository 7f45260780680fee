// `spider bench`: LLM speed in the style of llama.cpp's llama-bench, with the same flags, test names and output
// so the two tables can be laid side by side (docs/BENCHMARKS.md, scripts/bench_vs_llamacpp.sh).
//   -m MODEL (repeatable)  -t N[,N..]  -p N[,N..]  -n N[,N..]  -r REPS  -b BATCH  -ctk f16|f32  -o md|json
//   --membw [--membw-mib N,..]: instead, the memory read bandwidth at each -t and buffer size (the decode
//   roofline's denominator).
// Method (as llama-bench): one context per test with n_ctx = n_prompt + n_gen; one warm-up run; then REPS timed
// runs from an empty KV cache. ppN decodes N random tokens (first one BOS) in batches of BATCH; tgN decodes N
// tokens one at a time. t/s per run = tokens / wall time; rows show mean ± sample standard deviation over runs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "git_commit.h"
#include "common.h"
#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "spider.h"

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: spider bench [-m MODEL]... [-t N,..] [-p N,..] [-n N,..] [-r REPS] [-b BATCH] [-ctk f16|f32]\n"
                 "                    [-o md|json]\n"
                 "       spider bench --membw [-t N,..] [--membw-mib N,..] [-r REPS]\n"
                 "  -m MODEL   GGUF model, repeatable (default: the installed default model)\n"
                 "  -t N,..    thread counts (default: all cores)\n"
                 "  -p N,..    prompt lengths for the ppN tests (default 512; 0 = none)\n"
                 "  -n N,..    generated tokens for the tgN tests (default 128; 0 = none)\n"
                 "  -r REPS    timed repetitions per test (default 5)\n"
                 "  -b BATCH   tokens per decode call in ppN (default 2048)\n"
                 "  -ctk TYPE  KV cache type, f16 (default, as llama-bench) or f32\n"
                 "  -o FMT     md (default) or json\n"
                 "  --membw    measure memory read bandwidth instead (best of >= -r passes per way of reading and buffer size)\n"
                 "  --membw-mib N,..  buffer sizes for --membw in MiB (default 1024)\n");
}

// Read bandwidth, the decode roofline's denominator: every thread sums its share of a buffer of `mib` MiB with
// 16-byte vector loads (eight independent chains, so neither the adder nor the load ports limit a core). The
// buffer is 2 MiB aligned and advised for transparent huge pages, so TLB misses do not lower the figure: a roofline
// is an upper bound. Sized like a model's per-token weight bytes it measures what that decode could stream, whether
// those bytes stay in the last-level cache or not. One pass faults the pages in; then, for each way of reading,
// the best of at least `reps` passes and of as many more as fit in about 0.3 s; the table shows the best
// way. The ways: the plain loop (hardware prefetch only), and the loop with a software prefetch 1-8 KiB ahead
// (what the decode kernels do, DECODE_PREFETCH in core/matmul_simd_impl.h). On the 2-core Xeon of 2026-12-05 the
// plain loop alone read 27 GB/s from a 1.1 GB buffer while a Q8_0 decode streamed its 1.17 GB of weights at 30 GB/s
// (a probe that reads more slowly than a decode is no roofline); 1, 2 and 4 KiB ahead read 30, 34 and 35 GB/s, and
// 8 KiB no more. From a 235 MiB buffer (gemma-3-270m's weights, mostly in the 480 MiB L3): 36 plain, 58 at 4 KiB.
using u64x2 = uint64_t __attribute__((vector_size(16)));

constexpr int k_prefetch_ways[] = {0, 1024, 2048, 4096, 8192};  // bytes ahead; 0 = no software prefetch

double read_pass(const u64x2 * v, size_t n, int prefetch_bytes, spider::thread_pool & pool,
                 std::vector<uint64_t> & sums) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.run([&](int ith, int nth) {
        long long b, e;
        spider::split_range(static_cast<long long>(n / 8), ith, nth, b, e);
        u64x2 s[8] = {};
        const long long ahead = prefetch_bytes / static_cast<long long>(sizeof(u64x2));
        if (ahead == 0) {
            for (long long i = b * 8; i < e * 8; i += 8) {
                for (int k = 0; k < 8; ++k) s[k] += v[i + k];
            }
        } else {
            // 8 vectors = 128 bytes = two cache lines per step; prefetches past the share's end are harmless hints.
            for (long long i = b * 8; i < e * 8; i += 8) {
                __builtin_prefetch(v + i + ahead, 0, 3);
                __builtin_prefetch(v + i + ahead + 4, 0, 3);
                for (int k = 0; k < 8; ++k) s[k] += v[i + k];
            }
        }
        u64x2 t = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
        sums[ith] = t[0] + t[1];
    });
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
        auto * v = static_cast<u64x2 *>(mem);
        const size_t n = bytes / sizeof(u64x2) / 8 * 8;
        for (size_t i = 0; i < n; ++i) v[i] = u64x2{i, i * 0x9E3779B97F4A7C15ull};
        for (int nt : threads) {
            spider::thread_pool pool(nt);
            std::vector<uint64_t> sums(nt);
            read_pass(v, n, 0, pool, sums);  // warm-up
            double best = 0;
            for (int ahead : k_prefetch_ways) {
                double spent = 0;
                for (int rep = 0; rep < reps || (spent < 0.3 && rep < 1000); ++rep) {
                    const double s = read_pass(v, n, ahead, pool, sums);
                    spent += s;
                    best = std::max(best, n * sizeof(u64x2) / s / 1e9);
                }
            }
            uint64_t check = 0;
            for (uint64_t x : sums) check += x;  // keeps the loads alive
            std::printf("| %7d | %10d | %12.2f |\n", nt, mib, best + (check == 1 ? 1e-12 : 0.0));
            std::fflush(stdout);
        }
        std::free(mem);
    }
    return 0;
}

bool parse_int_list(const std::string& s, std::vector<int>* out) {
    out->clear();
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        char* end = nullptr;
        long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 0 || v > 1000000) return false;
        out->push_back(static_cast<int>(v));
    }
    return !out->empty();
}

struct test_result {
    std::string model_path, model_desc, test;
    uint64_t size = 0, n_params = 0;
    int n_threads = 0, n_prompt = 0, n_gen = 0, n_batch = 0;
    std::vector<double> samples_ns, samples_ts;
    double avg_ts() const {
        double s = 0;
        for (double v : samples_ts) s += v;
        return samples_ts.empty() ? 0.0 : s / samples_ts.size();
    }
    double stdev_ts() const {
        if (samples_ts.size() < 2) return 0.0;
        const double m = avg_ts();
        double s = 0;
        for (double v : samples_ts) s += (v - m) * (v - m);
        return std::sqrt(s / (samples_ts.size() - 1));
    }
};

// One ppN run: n_prompt random tokens, first BOS, decoded in batches of n_batch with logits of the last only.
bool run_prompt(spider_context* ctx, int n_vocab, spider_token bos, int n_prompt, int n_batch, std::mt19937* rng) {
    std::vector<spider_token> toks(n_prompt);
    std::uniform_int_distribution<int> dist(0, n_vocab - 1);
    for (auto& t : toks) t = dist(*rng);
    if (bos >= 0) toks[0] = bos;
    for (int i = 0; i < n_prompt; i += n_batch) {
        const int len = std::min(n_batch, n_prompt - i);
        if (spider_decode(ctx, spider_batch_tokens(toks.data() + i, len)) != SPIDER_STATUS_OK) return false;
    }
    return true;
}

// One tgN run: n_gen single-token decodes (random tokens, first BOS), each producing the last token's logits.
bool run_gen(spider_context* ctx, int n_vocab, spider_token bos, int n_gen, std::mt19937* rng) {
    std::uniform_int_distribution<int> dist(0, n_vocab - 1);
    spider_token t = bos >= 0 ? bos : dist(*rng);
    for (int i = 0; i < n_gen; ++i) {
        if (spider_decode(ctx, spider_batch_tokens(&t, 1)) != SPIDER_STATUS_OK) return false;
        t = dist(*rng);
    }
    return true;
}

std::string fmt_size(uint64_t bytes) {
    char buf[64];
    if (bytes >= (1ull << 30))
        std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / 1024.0 / 1024.0 / 1024.0);
    else
        std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / 1024.0 / 1024.0);
    return buf;
}

std::string fmt_params(uint64_t n) {
    char buf[64];
    if (n >= 1000000000ull)
        std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
    else if (n >= 1000000ull)
        std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
    else
        std::snprintf(buf, sizeof buf, "%.2f K", n / 1e3);
    return buf;
}

int run_bench(int argc, char** argv) {
    std::vector<std::string> models;
    std::vector<int> threads = {spider_cli::default_threads()}, prompts = {512}, gens = {128};
    int reps = 5, n_batch = 2048;
    std::string output = "md";
    spider_kv_type kv = SPIDER_KV_TYPE_F16;
    bool membw = false;
    std::vector<int> membw_mib = {1024};
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            usage();
            return 0;
        }
        if (a == "--membw") {
            membw = true;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "error: %s needs an argument\n", a.c_str());
            usage();
            return 1;
        }
        const std::string v = argv[++i];
        std::vector<int> one;
        if (a == "-m" || a == "--model") {
            models.push_back(v);
        } else if (a == "-t" || a == "--threads") {
            if (!parse_int_list(v, &threads) ||
                std::any_of(threads.begin(), threads.end(), [](int t) { return t <= 0; })) {
                std::fprintf(stderr, "error: -t '%s': need positive integers separated by commas\n", v.c_str());
                return 1;
            }
        } else if (a == "-p" || a == "--n-prompt") {
            if (!parse_int_list(v, &prompts)) {
                std::fprintf(stderr, "error: -p '%s': need integers >= 0 separated by commas\n", v.c_str());
                return 1;
            }
        } else if (a == "-n" || a == "--n-gen") {
            if (!parse_int_list(v, &gens)) {
                std::fprintf(stderr, "error: -n '%s': need integers >= 0 separated by commas\n", v.c_str());
                return 1;
            }
        } else if (a == "--membw-mib") {
            if (!parse_int_list(v, &membw_mib) ||
                std::any_of(membw_mib.begin(), membw_mib.end(), [](int m) { return m <= 0 || m > 65536; })) {
                std::fprintf(stderr, "error: --membw-mib '%s': need sizes in MiB, 1..65536, separated by commas\n",
                             v.c_str());
                return 1;
            }
            membw = true;
        } else if (a == "-r" || a == "--repetitions") {
            if (!parse_int_list(v, &one) || one.size() != 1 || one[0] < 1) {
                std::fprintf(stderr, "error: -r '%s': need one integer >= 1\n", v.c_str());
                return 1;
            }
            reps = one[0];
        } else if (a == "-b" || a == "--batch-size") {
            if (!parse_int_list(v, &one) || one.size() != 1 || one[0] < 1) {
                std::fprintf(stderr, "error: -b '%s': need one integer >= 1\n", v.c_str());
                return 1;
            }
            n_batch = one[0];
        } else if (a == "-ctk" || a == "--cache-type-k") {
            if (v == "f16")
                kv = SPIDER_KV_TYPE_F16;
            else if (v == "f32")
                kv = SPIDER_KV_TYPE_F32;
            else {
                std::fprintf(stderr, "error: -ctk '%s': supported KV types are f16 and f32\n", v.c_str());
                return 1;
            }
        } else if (a == "-o" || a == "--output") {
            if (v != "md" && v != "json") {
                std::fprintf(stderr, "error: -o '%s': use md or json\n", v.c_str());
                return 1;
            }
            output = v;
        } else {
            std::fprintf(stderr, "error: unknown argument '%s'\n", a.c_str());
            usage();
            return 1;
        }
    }
    if (membw) return run_membw(threads, membw_mib, reps);
    if (models.empty()) models.push_back("");  // the default model

    const bool md = output == "md";
    if (md) {
        std::printf("| %-30s | %10s | %10s | %-10s | %7s | %15s | %20s |\n", "model", "size", "params", "backend",
                    "threads", "test", "t/s");
        std::printf("| %s | %s: | %s: | %s | %s: | %s: | %s: |\n", std::string(30, '-').c_str(),
                    std::string(9, '-').c_str(), std::string(9, '-').c_str(), std::string(10, '-').c_str(),
                    std::string(6, '-').c_str(), std::string(14, '-').c_str(), std::string(19, '-').c_str());
        std::fflush(stdout);
    }
    nlohmann::json rows = nlohmann::json::array();
    std::mt19937 rng(42);
    for (const std::string& mpath : models) {
        spider_model* model = spider_cli::load_model_or_report(mpath, threads[0]);
        if (!model) return 1;
        char desc[256];
        spider_model_desc(model, desc, sizeof desc);
        const int n_vocab = spider_model_n_vocab(model);
        const spider_token bos = spider_token_bos(model);
        // Tests in llama-bench order: every pp, then every tg, for each thread count.
        std::vector<std::pair<int, int>> tests;
        for (int p : prompts)
            if (p > 0) tests.push_back({p, 0});
        for (int g : gens)
            if (g > 0) tests.push_back({0, g});
        for (int nt : threads) {
            for (const auto& pg : tests) {
                test_result r;
                r.model_path = mpath;
                r.model_desc = desc;
                r.size = spider_model_size(model);
                r.n_params = spider_model_n_params(model);
                r.n_threads = nt;
                r.n_prompt = pg.first;
                r.n_gen = pg.second;
                r.n_batch = n_batch;
                r.test = pg.first > 0 ? "pp" + std::to_string(pg.first) : "tg" + std::to_string(pg.second);
                spider_context_params cp = spider_context_default_params();
                cp.n_ctx = static_cast<uint32_t>(pg.first + pg.second);
                cp.n_batch = static_cast<uint32_t>(std::min(n_batch, std::max(pg.first, 1)));
                cp.n_threads = nt;
                cp.kv_type = kv;
                spider_context* ctx = nullptr;
                spider_status st = spider_context_create(model, cp, &ctx);
                if (st != SPIDER_STATUS_OK) {
                    std::fprintf(stderr, "error: context for %s: %s (%s)\n", r.test.c_str(), spider_last_error(),
                                 spider_status_name(st));
                    spider_model_free(model);
                    return 1;
                }
                bool ok = true;
                // Warm-up (as llama-bench: the whole prompt, or one generated token).
                ok = pg.first > 0 ? run_prompt(ctx, n_vocab, bos, pg.first, n_batch, &rng)
                                  : run_gen(ctx, n_vocab, bos, 1, &rng);
                for (int rep = 0; ok && rep < reps; ++rep) {
                    spider_kv_clear(ctx);
                    const auto t0 = std::chrono::steady_clock::now();
                    ok = pg.first > 0 ? run_prompt(ctx, n_vocab, bos, pg.first, n_batch, &rng)
                                      : run_gen(ctx, n_vocab, bos, pg.second, &rng);
                    const double ns =
                        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
                    r.samples_ns.push_back(ns);
                    r.samples_ts.push_back((pg.first + pg.second) * 1e9 / ns);
                }
                if (!ok) {
                    std::fprintf(stderr, "error: %s decode failed: %s\n", r.test.c_str(), spider_last_error());
                    spider_context_free(ctx);
                    spider_model_free(model);
                    return 1;
                }
                spider_context_free(ctx);
                if (md) {
                    char ts[64];
                    std::snprintf(ts, sizeof ts, "%.2f ± %.2f", r.avg_ts(), r.stdev_ts());
                    // "±" is two bytes in UTF-8: widen the field by one so columns line up on screen.
                    std::printf("| %-30.30s | %10s | %10s | %-10s | %7d | %15s | %21s |\n", r.model_desc.c_str(),
                                fmt_size(r.size).c_str(), fmt_params(r.n_params).c_str(), "CPU", nt, r.test.c_str(),
                                ts);
                    std::fflush(stdout);
                } else {
                    double avg_ns = 0;
                    for (double v : r.samples_ns) avg_ns += v;
                    avg_ns /= r.samples_ns.size();
                    double sd_ns = 0;
                    for (double v : r.samples_ns) sd_ns += (v - avg_ns) * (v - avg_ns);
                    sd_ns = r.samples_ns.size() > 1 ? std::sqrt(sd_ns / (r.samples_ns.size() - 1)) : 0.0;
                    nlohmann::json j;
                    j["build_commit"] = SPIDER_GIT_COMMIT;
                    j["cpu_info"] = spider::cpu_level_name(spider::cpu_level_active());
                    j["backends"] = "CPU";
                    j["model_filename"] = r.model_path;
                    j["model_type"] = r.model_desc;
                    j["model_size"] = r.size;
                    j["model_n_params"] = r.n_params;
                    j["n_batch"] = r.n_batch;
                    j["n_threads"] = r.n_threads;
                    j["type_k"] = kv == SPIDER_KV_TYPE_F16 ? "f16" : "f32";
                    j["type_v"] = kv == SPIDER_KV_TYPE_F16 ? "f16" : "f32";
                    j["n_prompt"] = r.n_prompt;
                    j["n_gen"] = r.n_gen;
                    j["test"] = r.test;
                    j["avg_ns"] = static_cast<uint64_t>(avg_ns);
                    j["stddev_ns"] = static_cast<uint64_t>(sd_ns);
                    j["avg_ts"] = r.avg_ts();
                    j["stddev_ts"] = r.stdev_ts();
                    j["samples_ns"] = r.samples_ns;
                    j["samples_ts"] = r.samples_ts;
                    rows.push_back(j);
                }
            }
        }
        spider_model_free(model);
    }
    if (md)
        std::printf("\nbuild: %s (spider 0.1.0, %s)\n", SPIDER_GIT_COMMIT,
                    spider::cpu_level_name(spider::cpu_level_active()));
    else
        std::printf("%s\n", rows.dump(2).c_str());
    return 0;
}

}  // namespace

static spider_cli::command_registrar reg({"bench", "LLM speed tests in the style of llama-bench (ppN, tgN)",
                                          run_bench});
