// `spider bench-train`: training throughput of a tiny Llama trained fully (train/tiny_lm.h) with AdamW, in the
// style of llama-bench: warm-up steps, then timed steps, one markdown (or JSON) row with samples/s, tokens/s and
// ms/step. tests/reference/bench_train_torch.py trains the same architecture, data and optimiser with PyTorch;
// scripts/bench_train.sh runs both back to back (docs/BENCHMARKS.md, "Training").
//
// Data: windows of seq_len + 1 bytes of a text file; window b of step s starts at rng64{seed}.next() % span drawn
// in (step, example) order, which the PyTorch script reproduces exactly.
#include <malloc.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "core/cpu_features.h"
#include "train/optim.h"
#include "train/tiny_lm.h"

using namespace spider::train;

// CPU time of the whole process (all threads), ms: on a loaded machine wall time mostly measures the load.
static double cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int run_bench_train(int argc, char ** argv) {
    CLI::App app{"spider bench-train: training throughput of a tiny Llama (docs/BENCHMARKS.md)", "spider bench-train"};
    tiny_lm_config c;
    c.n_embd = 256;
    c.n_ff = 768;
    c.n_layer = 4;
    c.n_head = 8;
    c.n_head_kv = 4;
    int64_t batch = 8, seq = 128, warmup = 2, steps = 10;
    int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    uint64_t seed = 42;
    float lr = 1e-3f;
    bool as_json = false, per_sequence = false;
    std::string data_path = "tests/data/train/corpus.txt";
    app.add_option("--data", data_path, "training text (bytes are the tokens)");
    app.add_option("--n-embd", c.n_embd, "hidden size");
    app.add_option("--n-ff", c.n_ff, "MLP size");
    app.add_option("--n-layer", c.n_layer, "layers");
    app.add_option("--n-head", c.n_head, "attention heads");
    app.add_option("--n-head-kv", c.n_head_kv, "key/value heads");
    app.add_option("-b,--batch", batch, "sequences per step");
    app.add_option("-s,--seq", seq, "tokens per sequence");
    app.add_option("-t,--threads", threads, "threads");
    app.add_option("--warmup", warmup, "untimed steps first");
    app.add_option("-n,--steps", steps, "timed steps");
    app.add_option("--seed", seed, "init and data seed");
    app.add_option("--lr", lr, "AdamW learning rate");
    app.add_flag("--json", as_json, "one JSON object instead of a markdown table");
    app.add_flag("--per-sequence", per_sequence, "one tape per sequence (gradients accumulated) instead of per batch");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError & e) {
        return app.exit(e);
    }
    if (batch < 1 || seq < 2 || steps < 1 || warmup < 0 || threads < 1 || c.n_embd % c.n_head != 0 ||
        c.n_head % c.n_head_kv != 0 || (c.n_embd / c.n_head) % 2 != 0) {
        std::fprintf(stderr, "spider bench-train: bad shape or counts (see --help)\n");
        return 1;
    }
    std::ifstream f(data_path, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (static_cast<int64_t>(data.size()) < seq + 1) {
        std::fprintf(stderr, "spider bench-train: '%s' is missing or shorter than seq + 1 bytes\n", data_path.c_str());
        return 1;
    }
    set_threads(threads);
    // A step frees and reallocates the same tape buffers (MBs each): keep them in the heap instead of mmap/munmap
    // with fresh zeroed pages every step (spider train does the same).
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    tiny_lm model(c);
    model.init_random(seed, 0.02f);
    auto params = model.params();
    int64_t n_params = 0;
    for (const auto & p : params) n_params += p->numel();
    adamw_params ap;
    ap.lr = lr;
    adamw opt(params, ap);
    rng64 r{seed};
    const uint64_t span = data.size() - static_cast<size_t>(seq);  // windows of seq + 1 bytes: starts 0..span-1
    std::vector<double> ms;
    double cpu_timed = 0;
    float first_loss = 0, last_loss = 0;
    for (int64_t s = 0; s < warmup + steps; ++s) {
        const auto t0 = std::chrono::steady_clock::now();
        const double c0 = cpu_ms();
        opt.zero_grad();
        std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(batch));
        for (auto & ids : seqs) {
            const size_t start = static_cast<size_t>(r.next() % span);
            ids.resize(static_cast<size_t>(seq));
            for (int64_t i = 0; i < seq; ++i) ids[i] = static_cast<unsigned char>(data[start + i]);
        }
        double loss_sum = 0;
        if (per_sequence) {
            for (const auto & ids : seqs) {
                value loss = model.forward_loss(ids);
                backward(scale(loss, 1.0f / static_cast<float>(batch)));
                loss_sum += loss->data[0] / batch;
            }
        } else {
            value loss = model.forward_loss_batch(seqs);
            backward(loss);
            loss_sum = loss->data[0];
        }
        clip_grad_norm(params, 1.0f);
        opt.step(lr);
        const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (s >= warmup) {
            ms.push_back(dt);
            cpu_timed += cpu_ms() - c0;
        }
        last_loss = static_cast<float>(loss_sum);
        if (s == 0) first_loss = last_loss;
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    double mean = 0;
    for (double v : ms) mean += v;
    mean /= ms.size();
    const double median = sorted[sorted.size() / 2];
    const double sps = batch * 1000.0 / mean, tps = sps * seq;
    const char * cpu = spider::cpu_level_name(spider::cpu_level_active());
    if (as_json) {
        nlohmann::json j = {{"impl", std::string("spider (") + cpu + ")"},
                            {"params", n_params},
                            {"n_embd", c.n_embd},
                            {"n_layer", c.n_layer},
                            {"batch", batch},
                            {"seq", seq},
                            {"threads", threads},
                            {"steps", steps},
                            {"warmup", warmup},
                            {"ms_per_step", mean},
                            {"ms_median", median},
                            {"samples_per_s", sps},
                            {"tokens_per_s", tps},
                            {"cpu_ms_per_step", cpu_timed / steps},
                            {"loss_first", first_loss},
                            {"loss_last", last_loss},
                            {"cpu", cpu},
                            {"tape", per_sequence ? "sequence" : "batch"}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf(
            "| impl | params | n_embd x layers | batch x seq | threads | ms/step (median) | samples/s | tokens/s "
            "| CPU ms/step | loss first -> last |\n|---|---|---|---|---|---|---|---|---|---|\n");
        std::printf(
            "| spider (%s) | %.2fM | %lld x %lld | %lld x %lld | %d | %.1f (%.1f) | %.2f | %.0f | %.1f | %.3f -> %.3f "
            "|\n",
            cpu, n_params / 1e6, static_cast<long long>(c.n_embd), static_cast<long long>(c.n_layer),
            static_cast<long long>(batch), static_cast<long long>(seq), threads, mean, median, sps, tps,
            cpu_timed / steps, first_loss, last_loss);
    }
    return 0;
}

static spider_cli::command_registrar reg({"bench-train",
                                          "training throughput of a tiny Llama (vs PyTorch: "
                                          "scripts/bench_train.sh)",
                                          run_bench_train});
