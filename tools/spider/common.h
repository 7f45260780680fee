// Helpers shared by the LLM subcommands of the `spider` tool (never part of the engine): model path resolution,
// loading with readable errors, the shared sampling options, speed summaries.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "llm/sampler.h"
#include "spider.h"

namespace spider_cli {

// Resolves -m (empty = the default model) and loads it; prints the error to stderr and returns nullptr on failure.
spider_model * load_model_or_report(const std::string & model_arg, int n_threads);
// "prompt eval: 123.4 tok/s (12 tokens, 97.2 ms), eval: 56.7 tok/s (31 tokens, 546.7 ms)"
std::string format_speed(const spider_timings & t);
// Hardware threads, at least 1.
int default_threads();

// The sampling options of generate / chat (llama.cpp defaults), added to a CLI11 app; resolve() after parsing
// fills the seed (random unless --seed was given).
struct sampling_cli {
    spider::sampler_params p = spider::sampler_default_params();
    long long seed = -1;
    void add_to(CLI::App & app);
    spider::sampler_params resolve() const;
};

}  // namespace spider_cli
