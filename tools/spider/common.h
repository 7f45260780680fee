// Helpers shared by the LLM subcommands of the `spider` tool (never part of the engine): model path resolution,
// loading with readable errors, speed summaries.
#pragma once
#include <string>

#include "spider.h"

namespace spider_cli {

// Resolves -m (empty = the default model) and loads it; prints the error to stderr and returns nullptr on failure.
spider_model* load_model_or_report(const std::string& model_arg, int n_threads);
// "prompt eval: 123.4 tok/s (12 tokens, 97.2 ms), eval: 56.7 tok/s (31 tokens, 546.7 ms)"
std::string format_speed(const spider_timings& t);
// Hardware threads, at least 1.
int default_threads();

}  // namespace spider_cli
