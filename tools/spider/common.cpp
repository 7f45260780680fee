// Helpers shared by the LLM subcommands (see common.h).
#include "common.h"

#include <cstdio>
#include <thread>

#include "llm/default_model.h"

namespace spider_cli {

spider_model * load_model_or_report(const std::string & model_arg, int n_threads) {
    std::string path = model_arg;
    if (path.empty()) {
        std::string err;
        if (!spider::find_default_model(&path, &err)) {
            std::fprintf(stderr, "error: %s\n", err.c_str());
            return nullptr;
        }
    }
    spider_model_params mp = spider_model_default_params();
    mp.n_threads = n_threads;
    spider_model * model = nullptr;
    spider_status st = spider_model_load(path.c_str(), mp, &model);
    if (st != SPIDER_STATUS_OK) {
        std::fprintf(stderr, "error: %s (%s)\n", spider_last_error(), spider_status_name(st));
        return nullptr;
    }
    return model;
}

std::string format_speed(const spider_timings & t) {
    char buf[256];
    const double pp = t.t_prompt_ms > 0 ? t.n_prompt * 1000.0 / t.t_prompt_ms : 0.0;
    const double tg = t.t_eval_ms > 0 ? t.n_eval * 1000.0 / t.t_eval_ms : 0.0;
    std::snprintf(buf, sizeof buf,
                  "prompt eval: %.2f tok/s (%d tokens, %.1f ms), eval: %.2f tok/s (%d tokens, %.1f ms)", pp, t.n_prompt,
                  t.t_prompt_ms, tg, t.n_eval, t.t_eval_ms);
    return buf;
}

int default_threads() {
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : (int)n;
}

}  // namespace spider_cli

#include <random>

namespace spider_cli {

void sampling_cli::add_to(CLI::App & app) {
    app.add_option("--temp", p.temperature, "temperature; 0 = greedy (default 0.8)");
    app.add_option("--top-k", p.top_k, "top-k (default 40, 0 = off)");
    app.add_option("--top-p", p.top_p, "top-p (default 0.95, 1 = off)")->check(CLI::Range(0.0, 1.0));
    app.add_option("--min-p", p.min_p, "min-p (default 0.05, 0 = off)")->check(CLI::Range(0.0, 1.0));
    app.add_option("--repeat-penalty", p.repeat_penalty, "repetition penalty (default 1.0 = off)")
        ->check(CLI::Range(0.0, 100.0));
    app.add_option("--repeat-last-n", p.penalty_last_n, "tokens the penalties look back on (default 64)")
        ->check(CLI::Range(0, 1 << 20));
    app.add_option("--frequency-penalty", p.frequency_penalty, "frequency penalty (default 0)");
    app.add_option("--presence-penalty", p.presence_penalty, "presence penalty (default 0)");
    app.add_option("-s,--seed", seed, "random seed (default: random)");
}

spider::sampler_params sampling_cli::resolve() const {
    spider::sampler_params r = p;
    if (seed >= 0) {
        r.seed = (uint64_t)seed;
    } else {
        std::random_device rd;
        r.seed = ((uint64_t)rd() << 32) ^ rd();
    }
    return r;
}

}  // namespace spider_cli
