// `spider quantize IN.gguf OUT.gguf TYPE [--threads N] [--dry-run]`: re-encodes a GGUF model's weights with
// llama.cpp's type selection (gguf_quantize_file in io/gguf.h) and prints one progress line per tensor with the
// relative error of the new encoding.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "command.h"
#include "io/gguf.h"

namespace {

void usage(FILE * f) {
    std::fprintf(f,
                 "usage: spider quantize IN.gguf OUT.gguf TYPE [--threads N] [--dry-run] [--quiet]\n"
                 "  TYPE: F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K Q4_K_M\n"
                 "  --dry-run  print the type chosen for every tensor and write nothing\n");
}

std::string shape_of(const spider::gguf_tensor_info & t) {
    std::string s;
    for (int d = 0; d < std::max(1, t.n_dims); ++d) s += (d ? " x " : "") + std::to_string(t.ne[d]);
    return s;
}

int run_quantize(int argc, char ** argv) {
    std::vector<std::string> pos;
    int threads = 0;
    bool dry = false, quiet = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            usage(stdout);
            return 0;
        } else if (a == "--threads" || a == "-t") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "quantize: %s needs a value\n", a.c_str());
                return 2;
            }
            char * end = nullptr;
            const long v = std::strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1024) {
                std::fprintf(stderr, "quantize: bad thread count '%s'\n", argv[i]);
                return 2;
            }
            threads = static_cast<int>(v);
        } else if (a == "--dry-run") {
            dry = true;
        } else if (a == "--quiet" || a == "-q") {
            quiet = true;
        } else if (!a.empty() && a[0] == '-') {
            std::fprintf(stderr, "quantize: unknown option '%s'\n", a.c_str());
            usage(stderr);
            return 2;
        } else {
            pos.push_back(a);
        }
    }
    if (pos.size() != 3) {
        usage(stderr);
        return 2;
    }
    spider::dtype base;
    uint32_t ftype;
    bool mix_m;
    if (!spider::gguf_quant_mix_from_name(pos[2], &base, &ftype, &mix_m)) {
        std::fprintf(stderr, "quantize: unknown type '%s'\n", pos[2].c_str());
        usage(stderr);
        return 2;
    }
    std::string err;
    if (dry) {
        auto in = spider::gguf_file::open(pos[0], &err);
        std::vector<spider::dtype> plan;
        if (!in || !spider::gguf_quantize_plan(*in, pos[2], &plan, &err)) {
            std::fprintf(stderr, "quantize: %s\n", err.c_str());
            return 1;
        }
        std::map<std::string, int> count;
        for (size_t i = 0; i < plan.size(); ++i) {
            const spider::gguf_tensor_info & t = in->tensors()[i];
            std::printf("%-40s %-6s -> %-6s [%s]\n", t.name.c_str(), spider::dtype_name(t.type),
                        spider::dtype_name(plan[i]), shape_of(t).c_str());
            count[spider::dtype_name(plan[i])]++;
        }
        std::printf("types:");
        for (const auto & e : count) std::printf(" %s=%d", e.first.c_str(), e.second);
        std::printf("\n");
        return 0;
    }
    spider::gguf_quantize_params p;
    p.mix = pos[2];
    p.n_threads = threads;
    size_t bytes_in = 0, bytes_out = 0;
    double worst = 0;
    std::string worst_name;
    p.progress = [&](const spider::gguf_quantize_progress & pr) {
        bytes_in += pr.info->nbytes;
        bytes_out += pr.new_bytes;
        if (pr.converted && pr.rel_rmse > worst) {
            worst = pr.rel_rmse;
            worst_name = pr.info->name;
        }
        if (quiet) return;
        if (pr.converted) {
            std::printf("[%4zu/%4zu] %-40s %-6s -> %-6s [%s] %8.2f -> %8.2f MiB  rel.rmse %.5f\n", pr.index + 1,
                        pr.count, pr.info->name.c_str(), spider::dtype_name(pr.info->type),
                        spider::dtype_name(pr.new_type), shape_of(*pr.info).c_str(), pr.info->nbytes / 1048576.0,
                        pr.new_bytes / 1048576.0, pr.rel_rmse);
        } else {
            std::printf("[%4zu/%4zu] %-40s %-6s    (copied)  [%s]\n", pr.index + 1, pr.count, pr.info->name.c_str(),
                        spider::dtype_name(pr.info->type), shape_of(*pr.info).c_str());
        }
        std::fflush(stdout);
    };
    const auto t0 = std::chrono::steady_clock::now();
    if (!spider::gguf_quantize_file(pos[0], pos[1], p, &err)) {
        std::fprintf(stderr, "quantize: %s\n", err.c_str());
        return 1;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "quantize: wrote %s (%s, general.file_type %u): %.2f MiB -> %.2f MiB in %.2f s; worst rel.rmse %.5f (%s)\n",
        pos[1].c_str(), pos[2].c_str(), ftype, bytes_in / 1048576.0, bytes_out / 1048576.0, secs, worst,
        worst_name.empty() ? "-" : worst_name.c_str());
    return 0;
}

spider_cli::command_registrar reg({"quantize", "re-encode a GGUF model (F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q5_K/Q6_K/Q4_K_M)",
                                   run_quantize});

}  // namespace
