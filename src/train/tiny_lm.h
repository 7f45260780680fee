// A Llama-architecture language model built on the autograd tape, for training from scratch (byte-level or any
// small vocab) and for parity checks against transformers' LlamaForCausalLM (same weight names and layout).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "train/autograd.h"

namespace spider::train {

struct tiny_lm_config {
    int64_t vocab = 256;
    int64_t n_embd = 64;
    int64_t n_ff = 128;
    int64_t n_layer = 2;
    int64_t n_head = 4;
    int64_t n_head_kv = 2;
    float eps = 1e-6f;
    float rope_theta = 10000.0f;
};

class tiny_lm {
public:
    explicit tiny_lm(const tiny_lm_config & c) : c_(c) {}
    // Random init (normal(0, std) for matrices, ones for norms) from a seed; deterministic on every platform.
    void init_random(uint64_t seed, float std = 0.02f);
    // Adds/replaces a named parameter (e.g. loaded from a checkpoint or a PyTorch golden).
    void set_param(const std::string & name, value v);
    // Mean next-token cross-entropy of one sequence.
    value forward_loss(const std::vector<int32_t> & ids);
    // The same over a batch of sequences of equal length on one tape (larger products, fewer nodes): the mean over
    // all predicted tokens, which equals the mean of forward_loss over the sequences.
    value forward_loss_batch(const std::vector<std::vector<int32_t>> & seqs);
    // Parameters in a fixed order (by name).
    std::vector<std::pair<std::string, value>> named_params() const;
    std::vector<value> params() const;
    const tiny_lm_config & config() const { return c_; }
    // Expected parameter shapes by name, for validating checkpoints against a config.
    std::map<std::string, std::vector<int64_t>> expected_shapes() const;

private:
    tiny_lm_config c_;
    std::map<std::string, value> w_;
};

// Deterministic splitmix64 stream, shared by data sampling and init so runs reproduce everywhere.
struct rng64 {
    uint64_t s;
    uint64_t next();
    float uniform();  // [0, 1)
    float normal();
};

}  // namespace spider::train
