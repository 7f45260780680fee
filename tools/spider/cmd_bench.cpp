// `spider bench`: LLM speed in the style of llama.cpp's llama-bench, with the same flags, test names and output
// so the two tables can be laid side by side (docs/BENCHMARKS.md, scripts/bench_vs_llamacpp.sh).
//   -m MODEL (repeatable)  -t N[,N..]  -p N[,N..]  -n N[,N..]  -d N[,N..]  -r REPS  -b BATCH  -ctk f16|f32
//   -o md|json
//   --membw [--membw-mib N,..]: instead, the memory read bandwidth at each -t and buffer size (the decode
//   roofline's denominator).
//   --roofline: tgN tests also read the decode's weight bytes before the first run and after each, for as long as
//   a run takes, and report each run's share of the roofline, run t/s / (read GB/s / bytes per token), against the
//   mean read bandwidth of the reads just before and after it (and, stricter, against the best single pass).
//   --profile: each test also reports where its timed runs' time went, per section of the forward pass (per token:
//   calls, microseconds, share, weight bytes and the GB/s at which a matmul section read them).
// Method (as llama-bench): one context per test with n_ctx = n_depth + n_prompt + n_gen; one warm-up run; then REPS
// timed runs from an empty KV cache, or from one holding n_depth tokens (-d: "tg128 @ d2048"; the depth is decoded
// once, untimed, and each run starts from it again by truncating the cache). ppN decodes N random tokens (first one
// BOS) in batches of BATCH; tgN decodes N tokens one at a time. t/s per run = tokens / wall time; rows show mean ±
// sample standard deviation over runs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "command.h"
#include "common.h"
#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "git_commit.h"
#include "llm/context.h"
#include "llm/model.h"
#include "read_bandwidth.h"
#include "spider.h"

namespace {

void usage() {
    std::fprintf(
        stderr,
        "usage: spider bench [-m MODEL]... [-t N,..] [-p N,..] [-n N,..] [-d N,..] [-r REPS] [-b BATCH]\n"
        "                    [-ctk f16|f32] [-o md|json] [--roofline] [--profile]\n"
        "       spider bench --membw [-t N,..] [--membw-mib N,..] [-r REPS]\n"
        "  -m MODEL   GGUF model, repeatable (default: the installed default model)\n"
        "  -t N,..    thread counts (default: all cores)\n"
        "  -p N,..    prompt lengths for the ppN tests (default 512; 0 = none)\n"
        "  -n N,..    generated tokens for the tgN tests (default 128; 0 = none)\n"
        "  -d N,..    tokens already in the KV cache when each test starts (default 0; tests named 'tg128 @ d2048')\n"
        "  -r REPS    timed repetitions per test (default 5)\n"
        "  -b BATCH   tokens per decode call in ppN (default 2048)\n"
        "  -ctk TYPE  KV cache type, f16 (default, as llama-bench) or f32\n"
        "  -o FMT     md (default) or json\n"
        "  --membw    measure memory read bandwidth instead (best of >= -r passes per way of reading and buffer size)\n"
        "  --membw-mib N,..  buffer sizes for --membw in MiB (default 1024)\n"
        "  --roofline share of the decode roofline for tgN: the weight bytes a decode step reads are read\n"
        "             between runs for as long as a run, and each run is held to the reads around it (weights only:\n"
        "             at a depth the KV cache's reads are not in the roofline)\n"
        "  --profile  where each test's time goes: wall time per section of the forward pass, per token, and the\n"
        "             rate at which each matmul section read its weights\n");
}

bool parse_int_list(const std::string & s, std::vector<int> * out) {
    out->clear();
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        char * end = nullptr;
        long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 0 || v > 1000000) return false;
        out->push_back(static_cast<int>(v));
    }
    return !out->empty();
}

double mean_of(const std::vector<double> & v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / v.size();
}

struct test_result {
    std::string model_path, model_desc, test;
    uint64_t size = 0, n_params = 0;
    int n_threads = 0, n_prompt = 0, n_gen = 0, n_depth = 0, n_batch = 0;
    std::vector<double> samples_ns, samples_ts;
    // --roofline (tgN): bytes per token, the way of reading, and the read GB/s (mean over the passes, best pass)
    // before the first run and after each.
    size_t roof_bytes = 0;
    spider_cli::read_way roof_way;
    std::vector<double> roof_gbps, roof_best_gbps;
    // --profile: the forward pass's sections over the timed runs, and the tokens they covered.
    std::vector<spider::llm_profile_section> profile;
    int64_t profile_tokens = 0;
    // Run i's share of the roofline: its t/s against the mean of the reads before and after it (or the better of
    // their best passes, `best`).
    std::vector<double> roof_shares(bool best = false) const {
        const std::vector<double> & g = best ? roof_best_gbps : roof_gbps;
        std::vector<double> v;
        for (size_t i = 0; i < samples_ts.size() && i + 1 < g.size(); ++i) {
            const double gbps = best ? std::max(g[i], g[i + 1]) : (g[i] + g[i + 1]) / 2;
            v.push_back(samples_ts[i] * roof_bytes / 1e9 / gbps);
        }
        return v;
    }
    double avg_ts() const { return mean_of(samples_ts); }
    double stdev_ts() const {
        if (samples_ts.size() < 2) return 0.0;
        const double m = avg_ts();
        double s = 0;
        for (double v : samples_ts) s += (v - m) * (v - m);
        return std::sqrt(s / (samples_ts.size() - 1));
    }
};

// The --profile table of one test: per token, each section's calls, time, share of the timed runs' wall time and
// weight bytes with their read rate; the rest of the wall time (the API call, input checks) is its own row.
void print_profile_md(const test_result & r) {
    double wall_ns = 0;
    for (double v : r.samples_ns) wall_ns += v;
    const double per = r.profile_tokens > 0 ? 1.0 / r.profile_tokens : 0.0;
    std::printf("\nprofile: %s, %s, %d threads (%lld tokens in the timed runs; per token)\n", r.model_desc.c_str(),
                r.test.c_str(), r.n_threads, static_cast<long long>(r.profile_tokens));
    std::printf("| %-28s | %11s | %10s | %7s | %10s | %8s |\n", "section", "calls/token", "us/token", "share",
                "MiB/token", "GB/s");
    std::printf("| %s | %s: | %s: | %s: | %s: | %s: |\n", std::string(28, '-').c_str(), std::string(10, '-').c_str(),
                std::string(9, '-').c_str(), std::string(6, '-').c_str(), std::string(9, '-').c_str(),
                std::string(7, '-').c_str());
    double in_ns = 0;
    uint64_t bytes = 0;
    auto row = [&](const char * name, double calls, double ns, uint64_t b) {
        char mib[32] = "", gbps[32] = "";
        if (b) {
            std::snprintf(mib, sizeof mib, "%.2f", b * per / 1048576.0);
            std::snprintf(gbps, sizeof gbps, "%.2f", ns > 0 ? b / ns : 0.0);
        }
        char c[32] = "";
        if (calls > 0) std::snprintf(c, sizeof c, "%.1f", calls * per);
        std::printf("| %-28s | %11s | %10.1f | %6.1f%% | %10s | %8s |\n", name, c, ns * per / 1e3,
                    wall_ns > 0 ? 100 * ns / wall_ns : 0.0, mib, gbps);
    };
    for (const spider::llm_profile_section & sec : r.profile) {
        row(sec.name, static_cast<double>(sec.calls), sec.ns, sec.bytes);
        in_ns += sec.ns;
        bytes += sec.bytes;
    }
    row("(outside the forward pass)", 0, std::max(0.0, wall_ns - in_ns), 0);
    row("total", 0, wall_ns, bytes);
}

// One ppN run: n_prompt random tokens, first BOS, decoded in batches of n_batch with logits of the last only.
bool run_prompt(spider_context * ctx, int n_vocab, spider_token bos, int n_prompt, int n_batch, std::mt19937 * rng) {
    std::vector<spider_token> toks(n_prompt);
    std::uniform_int_distribution<int> dist(0, n_vocab - 1);
    for (auto & t : toks) t = dist(*rng);
    if (bos >= 0) toks[0] = bos;
    for (int i = 0; i < n_prompt; i += n_batch) {
        const int len = std::min(n_batch, n_prompt - i);
        if (spider_decode(ctx, spider_batch_tokens(toks.data() + i, len)) != SPIDER_STATUS_OK) return false;
    }
    return true;
}

// One tgN run: n_gen single-token decodes (random tokens, first BOS), each producing the last token's logits.
bool run_gen(spider_context * ctx, int n_vocab, spider_token bos, int n_gen, std::mt19937 * rng) {
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

int run_bench(int argc, char ** argv) {
    std::vector<std::string> models;
    std::vector<int> threads = {spider_cli::default_threads()}, prompts = {512}, gens = {128}, depths = {0};
    int reps = 5, n_batch = 2048;
    std::string output = "md";
    spider_kv_type kv = SPIDER_KV_TYPE_F16;
    bool membw = false, roofline = false, profile = false;
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
        if (a == "--roofline") {
            roofline = true;
            continue;
        }
        if (a == "--profile") {
            profile = true;
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
        } else if (a == "-d" || a == "--n-depth") {
            if (!parse_int_list(v, &depths)) {
                std::fprintf(stderr, "error: -d '%s': need integers >= 0 separated by commas\n", v.c_str());
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
    if (membw) return spider_cli::run_membw(threads, membw_mib, reps);
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
    std::vector<test_result> roof_rows, profile_rows;
    std::mt19937 rng(42);
    for (const std::string & mpath : models) {
        spider_model * model = spider_cli::load_model_or_report(mpath, threads[0]);
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
            for (int nd : depths) {
                for (const auto & pg : tests) {
                    test_result r;
                    r.model_path = mpath;
                    r.model_desc = desc;
                    r.size = spider_model_size(model);
                    r.n_params = spider_model_n_params(model);
                    r.n_threads = nt;
                    r.n_prompt = pg.first;
                    r.n_gen = pg.second;
                    r.n_depth = nd;
                    r.n_batch = n_batch;
                    r.test = pg.first > 0 ? "pp" + std::to_string(pg.first) : "tg" + std::to_string(pg.second);
                    if (nd > 0) r.test += " @ d" + std::to_string(nd);
                    spider_context_params cp = spider_context_default_params();
                    cp.n_ctx = static_cast<uint32_t>(nd + pg.first + pg.second);
                    cp.n_batch = static_cast<uint32_t>(std::min(n_batch, std::max(std::max(pg.first, nd), 1)));
                    cp.n_threads = nt;
                    cp.kv_type = kv;
                    spider_context * ctx = nullptr;
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
                    // The depth: decoded once (untimed); every run starts from it.
                    if (ok && nd > 0) {
                        spider_kv_clear(ctx);
                        ok = run_prompt(ctx, n_vocab, bos, nd, n_batch, &rng);
                    }
                    std::unique_ptr<spider::thread_pool> probe_pool;
                    std::unique_ptr<spider_cli::roofline_probe> probe;
                    if (roofline && pg.first == 0) {
                        probe_pool = std::make_unique<spider::thread_pool>(nt);
                        probe = std::make_unique<spider_cli::roofline_probe>(
                            spider::llm_model_of(model)->decode_weight_spans(), *probe_pool);
                        r.roof_bytes = probe->bytes();
                        r.roof_way = probe->way();
                        const auto rd = probe->measure(1.0);
                        r.roof_gbps.push_back(rd.mean_gbps);
                        r.roof_best_gbps.push_back(rd.best_gbps);
                    }
                    spider::llm_context * ictx = spider::llm_context_of(ctx);
                    if (profile) ictx->prof.enable(true);
                    for (int rep = 0; ok && rep < reps; ++rep) {
                        if (nd > 0) {
                            ok = spider_kv_truncate(ctx, nd) == SPIDER_STATUS_OK;
                            if (!ok) break;
                        } else {
                            spider_kv_clear(ctx);
                        }
                        const auto t0 = std::chrono::steady_clock::now();
                        ok = pg.first > 0 ? run_prompt(ctx, n_vocab, bos, pg.first, n_batch, &rng)
                                          : run_gen(ctx, n_vocab, bos, pg.second, &rng);
                        const double ns =
                            std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
                        r.samples_ns.push_back(ns);
                        r.samples_ts.push_back((pg.first + pg.second) * 1e9 / ns);
                        if (probe) {
                            const auto rd = probe->measure(std::min(10.0, ns / 1e9));
                            r.roof_gbps.push_back(rd.mean_gbps);
                            r.roof_best_gbps.push_back(rd.best_gbps);
                        }
                    }
                    if (profile) {
                        r.profile = ictx->prof.sections();
                        r.profile_tokens = ictx->prof.n_tokens();
                        ictx->prof.enable(false);
                        profile_rows.push_back(r);
                    }
                    if (probe) roof_rows.push_back(r);
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
                        j["n_depth"] = r.n_depth;
                        j["test"] = r.test;
                        j["avg_ns"] = static_cast<uint64_t>(avg_ns);
                        j["stddev_ns"] = static_cast<uint64_t>(sd_ns);
                        j["avg_ts"] = r.avg_ts();
                        j["stddev_ts"] = r.stdev_ts();
                        j["samples_ns"] = r.samples_ns;
                        j["samples_ts"] = r.samples_ts;
                        if (r.roof_bytes) {
                            const std::vector<double> sh = r.roof_shares(), shb = r.roof_shares(true);
                            j["roofline_bytes"] = r.roof_bytes;
                            j["roofline_prefetch_bytes"] = r.roof_way.ahead;
                            j["roofline_prefetch_level"] = r.roof_way.level;
                            j["roofline_read_gbps"] = r.roof_gbps;
                            j["roofline_best_read_gbps"] = r.roof_best_gbps;
                            j["roofline_shares"] = sh;
                            j["roofline_share"] = mean_of(sh);
                            j["roofline_shares_vs_best_pass"] = shb;
                            j["roofline_share_vs_best_pass"] = mean_of(shb);
                        }
                        if (profile) {
                            nlohmann::json pj = nlohmann::json::array();
                            for (const spider::llm_profile_section & sec : r.profile) {
                                pj.push_back({{"section", sec.name},
                                              {"calls", sec.calls},
                                              {"ns", static_cast<uint64_t>(sec.ns)},
                                              {"weight_bytes", sec.bytes}});
                            }
                            j["profile_tokens"] = r.profile_tokens;
                            j["profile"] = pj;
                        }
                        rows.push_back(j);
                    }
                }
            }
        }
        spider_model_free(model);
    }
    if (md && !roof_rows.empty()) {
        std::printf("\n| %-30s | %7s | %15s | %12s | %8s | %10s | %12s | %10s | %10s |\n", "model", "threads", "test",
                    "bytes/token", "prefetch", "read GB/s", "roofline t/s", "share", "vs best");
        std::printf("| %s | %s: | %s: | %s: | %s: | %s: | %s: | %s: | %s: |\n", std::string(30, '-').c_str(),
                    std::string(6, '-').c_str(), std::string(14, '-').c_str(), std::string(11, '-').c_str(),
                    std::string(7, '-').c_str(), std::string(9, '-').c_str(), std::string(11, '-').c_str(),
                    std::string(9, '-').c_str(), std::string(9, '-').c_str());
        for (const test_result & r : roof_rows) {
            const double gbps = mean_of(r.roof_gbps);
            // The probe's way of reading: bytes of prefetch ahead and the cache level it prefetches into.
            char way[32];
            std::snprintf(way, sizeof way, r.roof_way.ahead ? "%d L%d" : "%d", r.roof_way.ahead, r.roof_way.level);
            std::printf("| %-30.30s | %7d | %15s | %12s | %8s | %10.2f | %12.1f | %9.1f%% | %9.1f%% |\n",
                        r.model_desc.c_str(), r.n_threads, r.test.c_str(), fmt_size(r.roof_bytes).c_str(), way, gbps,
                        gbps * 1e9 / r.roof_bytes, 100 * mean_of(r.roof_shares()), 100 * mean_of(r.roof_shares(true)));
        }
    }
    if (md) {
        for (const test_result & r : profile_rows) print_profile_md(r);
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
