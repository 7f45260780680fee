// A frozen GGUF LLM (arch gemma3 or llama) on the autograd tape, for LoRA instruction tuning (Spider stage 3).
//
//   auto m = llm_model::load("gemma-3-270m-q4_k_m.gguf", {}, &err);
//   llm_tape_config c;  c.lora_targets = {"q", "k", "v", "o"};  c.added_tokens = template_added_tokens(...);
//   auto t = llm_tape::create(*m, c, &err);
//   value loss = t->loss(ids, targets);   // targets[i] = next token to predict at i, -1 = no loss there
//   backward(loss);  ... optimiser on t->params() ...
//   t->save_adapter("adapter.gguf", &err);
//
// The base weights stay in their GGUF dtype and are used through the same kernels as inference; their backward
// runs through F16 transposed copies built once (train/autograd_llm.h). Trainable: LoRA A/B on the chosen
// projections of every block, and one row per added token shared by the input embedding and the (tied) LM head.
// Logits are computed only at the rows the loss needs (the LM head has 262k rows on gemma3).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llm/model.h"
#include "train/autograd.h"
#include "train/lora.h"

namespace spider::train {

struct llm_tape_config {
    int64_t lora_rank = 8;
    float lora_alpha = 16.0f;
    // Short names: q, k, v, o, gate, up, down (the GGUF tensors blk.N.attn_q / attn_k / attn_v / attn_output /
    // ffn_gate / ffn_up / ffn_down).
    std::vector<std::string> lora_targets = {"q", "k", "v", "o"};
    // Texts of the new tokens; ids n_vocab + i. Their rows start at the mean embedding of the token's own text
    // pieces (embed_init_ids[i], when given) else at zero.
    std::vector<std::string> added_tokens;
    std::vector<std::vector<int32_t>> embed_init_ids;
    uint64_t seed = 42;
    int n_threads = 2;
    bool build_backward_cache = true;  // false: forward only (no F16 transposes)
};

class llm_tape {
public:
    // Fails (nullptr, *err) on an unsupported architecture, an unknown target, a model that already carries added
    // tokens, or a bad rank.
    static std::unique_ptr<llm_tape> create(const llm_model & m, const llm_tape_config & c, std::string * err);
    ~llm_tape();

    // Final normed hidden state -> logits [out_rows.size(), n_vocab + n_added] at the positions out_rows.
    // ids < n_vocab + n_added; embd_rows [m, n_embd] (may be null) replace the (scaled) input embeddings at
    // embd_pos (Spider's projected media at placeholder positions).
    value logits(const std::vector<int32_t> & ids, const std::vector<int32_t> & out_rows,
                 const std::vector<int32_t> & embd_pos = {}, const value & embd_rows = nullptr);
    // Mean cross-entropy over the positions with targets[i] >= 0 (logits only there).
    value loss(const std::vector<int32_t> & ids, const std::vector<int32_t> & targets,
               const std::vector<int32_t> & embd_pos = {}, const value & embd_rows = nullptr);
    // loss() plus, from the same forward, the M-Prompt rows the pipeline hands the UDP at mprompt_pos (e.g. the
    // signal tokens): last-layer hidden state after the final norm + the token's (scaled) input embedding, as
    // generator_llm.cpp builds them; *mprompt = [mprompt_pos.size(), n_embd].
    value loss_with_mprompt(const std::vector<int32_t> & ids, const std::vector<int32_t> & targets,
                            const std::vector<int32_t> & embd_pos, const value & embd_rows,
                            const std::vector<int32_t> & mprompt_pos, value * mprompt);

    // Trainable values, by name: "lora.<tensor>.a/.b", "token_embd_extra".
    std::vector<std::pair<std::string, value>> named_params() const;
    std::vector<value> params() const;
    const std::map<std::string, lora_adapter> & adapters() const { return adapters_; }
    std::map<std::string, lora_adapter> & adapters() { return adapters_; }
    value extra_rows() const { return extra_; }  // [n_added, n_embd] or null
    int64_t n_vocab() const;

    // Adapter GGUF: train/lora.h's tensors and keys (lora.<target>.a/.b, spider.lora.alpha/rank,
    // general.architecture = spider-lora) plus spider.added_tokens and token_embd_extra.weight [n_added, n_embd]
    // (unscaled rows, as in a model file), and spider.lora.base (the base model's general.name).
    bool save_adapter(const std::string & path, std::string * err) const;

private:
    llm_tape() = default;
    // Input rows (scaled embeddings with embd_rows placed) -> *input; returns the last block's output [n, n_embd].
    value hidden(const std::vector<int32_t> & ids, const std::vector<int32_t> & embd_pos, const value & embd_rows,
                 value * input);
    value head(const value & h, const std::vector<int32_t> & out_rows);  // final norm + LM head at out_rows
    value targets_loss(const std::vector<int32_t> & targets, const value & h);
    struct impl;
    std::unique_ptr<impl> p_;
    std::map<std::string, lora_adapter> adapters_;
    value extra_;
};

// GGUF tensor name of a short target name in block il ("q" -> "blk.3.attn_q.weight"); empty if unknown.
std::string llm_lora_target_tensor(const std::string & target, int il);

}  // namespace spider::train
