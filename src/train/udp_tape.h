// The Unified Decoder Projector (controller/udp.h) on the autograd tape, for training (Spider stage 2,
// `udp_align`). Same architecture and the same GGUF tensor names and keys as the pipeline's udp_model, so a file
// written by save() loads with udp_model::load and its forward equals this one (tests/test_stages.cpp).
// Parameters are F32 in PyTorch layout ([out, in] for Linear weights, [t_out, E] for queries), named with the GGUF
// tensor names of udp_tensor_specs(). The learned TM-Fusion part is not trained here: a file loaded with it keeps
// it unchanged; a new UDP is written with the reference blend (spider.tmf.learned = false).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "controller/udp.h"
#include "train/autograd.h"

namespace spider::train {

class udp_tape {
public:
    // Random weights from a seed (Linear: normal(0, 1/sqrt(n_in)); norms 1 and biases 0; queries normal(0, 0.02)).
    static std::unique_ptr<udp_tape> create(const udp_hparams & hp, uint64_t seed, std::string * err);
    // Weights of an existing UDP GGUF (any dtype udp_model reads, converted to F32). Learned TM-Fusion tensors are
    // kept as constants (not trained here) and written back by save().
    static std::unique_ptr<udp_tape> load(const std::string & path, std::string * err);

    const udp_hparams & hparams() const { return hp_; }
    bool has(modality m) const { return m >= 0 && m < MODALITY_COUNT && hp_.t_out[m] > 0; }
    // x [n_tok, d_model] -> y [t_out, d_out]; router (optional) receives the [1, n_expert] weights.
    value forward(modality m, const value & x, value * router = nullptr) const;
    // By GGUF name, sorted (fixed order for checkpoints).
    std::vector<std::pair<std::string, value>> named_params() const;
    // Writes a GGUF that udp_model::load reads (atomically).
    bool save(const std::string & path, std::string * err) const;

private:
    udp_hparams hp_;
    std::map<std::string, value> w_;      // trainable
    std::map<std::string, value> fixed_;  // spider.tmf.* of a loaded file with learned fusion
    const value & p(const std::string & n) const { return w_.at(n); }
    value lin(const std::string & base, const value & x) const;
    value norm(const std::string & base, const value & x) const;
    value mha(const std::string & qkv, const std::string & out, const value & xq, const value & xkv) const;
    value ffn(const std::string & up, const std::string & down, const value & x) const;
};

}  // namespace spider::train
