// `spider train CONFIG.json [--resume] [--quiet]`: runs a training config (docs/TRAINING.md). Under
// `mpirun -np N spider train ...` the global batch is split over N data-parallel ranks.
#include <malloc.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "command.h"
#include "train/trainer.h"

static int run_train(int argc, char ** argv) {
    CLI::App app{"spider train: train a model from a JSON config (docs/TRAINING.md)", "spider train"};
    std::string config_path;
    bool resume = false, quiet = false;
    int threads = 0;
    app.add_option("config", config_path, "training config (JSON)")->required();
    app.add_flag("--resume", resume, "continue from the checkpoint in the config's checkpoint.dir if there is one");
    app.add_flag("--quiet", quiet, "no progress bar");
    app.add_option("-t,--threads", threads, "threads per rank (default: the cores divided by the ranks)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError & e) {
        return app.exit(e);
    }
    auto comm = spider::train::comm_create(&argc, &argv);
    if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency()) / comm->size();
    spider::train::set_threads(threads);  // results do not depend on the thread count
    // Every step frees and reallocates the same tape buffers: keep them in the heap (no fresh zeroed pages per step).
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    std::ifstream f(config_path);
    if (!f) {
        std::fprintf(stderr, "spider train: cannot open config '%s'\n", config_path.c_str());
        return 1;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    spider::train::train_config cfg;
    std::string err;
    if (!spider::train::train_config_parse(ss.str(), &cfg, &err)) {
        std::fprintf(stderr, "spider train: %s: %s\n", config_path.c_str(), err.c_str());
        return 1;
    }
    spider::train::train_result res;
    if (!spider::train::train_run(cfg, *comm, resume, quiet || comm->rank() != 0, &res, &err)) {
        std::fprintf(stderr, "spider train: %s\n", err.c_str());
        return 2;
    }
    if (comm->rank() == 0)
        std::printf("trained %lld steps on %d rank(s): final loss %.4f, %.0f tokens/s; checkpoint %s/checkpoint.gguf\n",
                    static_cast<long long>(res.steps_done), comm->size(), res.last_loss, res.tokens_per_second,
                    cfg.out_dir.c_str());
    return 0;
}

static spider_cli::command_registrar reg({"train", "train a model from a JSON config (optionally under mpirun)",
                                          run_train});
