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

#include <cstdint>
#include <random>
#include <vector>

namespace spider_cli {

// Sampling settings of the LLM subcommands (llama.cpp defaults).
struct sampling_options {
    float temp = 0.8f;  // <= 0: greedy
    int top_k = 40;     // <= 0: off
    float top_p = 0.95f;
    float min_p = 0.05f;
    float repeat_penalty = 1.0f;  // 1: off
    int repeat_last_n = 64;
    uint32_t seed = 0xFFFFFFFFu;  // 0xFFFFFFFF: random
};

// The CLI's own token picker (greedy, or penalties -> top-k -> top-p -> min-p -> temperature -> draw). It is the
// fallback used until the shared sampler of src/llm (tok) is wired in.
class token_picker {
public:
    explicit token_picker(const sampling_options& o);
    int32_t pick(const float* logits, int32_t n_vocab);
    void accept(int32_t token);  // remember for the repetition penalty

private:
    sampling_options o_;
    std::mt19937 rng_;
    std::vector<int32_t> recent_;
    std::vector<std::pair<float, int32_t>> cand_;
};

// Stop-string handling for streamed text: feed pieces, get the bytes that are safe to print now.
class stop_filter {
public:
    explicit stop_filter(std::vector<std::string> stops) : stops_(std::move(stops)) {}
    // Appends a piece; returns what can be printed; sets *stopped when a stop string appeared (the text before it
    // is returned, the stop string and anything after are dropped).
    std::string feed(const std::string& piece, bool* stopped);
    std::string flush();  // what is held back at the end

private:
    std::vector<std::string> stops_;
    std::string pending_;
};

}  // namespace spider_cli
