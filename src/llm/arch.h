// The LLM architecture registry and the ONE table of GGUF tensor names. Every architecture lives in
// src/llm/models/<arch>.cpp and plugs three hooks in here: read hyperparameters, bind tensors, run the forward
// pass. Code never spells a tensor name as an ad-hoc string: it asks llm_tensor_name().
#pragma once
#include <string>

namespace spider {

class gguf_file;
struct llm_hparams;
struct llm_model;
struct llm_context;
struct llm_ubatch;

enum llm_arch : int {
    LLM_ARCH_LLAMA = 0,
    LLM_ARCH_GEMMA3 = 1,
    LLM_ARCH_COUNT,
    LLM_ARCH_UNKNOWN = -1,
};

enum llm_tensor : int {
    LLM_TENSOR_TOKEN_EMBD,        // token_embd.weight          ne {n_embd, n_vocab}
    LLM_TENSOR_TOKEN_EMBD_EXTRA,  // token_embd_extra.weight    ne {n_embd, n_added}  F32 (Spider added tokens)
    LLM_TENSOR_OUTPUT_NORM,       // output_norm.weight         ne {n_embd}
    LLM_TENSOR_OUTPUT,            // output.weight              ne {n_embd, n_vocab}  (absent: tied)
    LLM_TENSOR_OUTPUT_EXTRA,      // output_extra.weight        ne {n_embd, n_added}  F32 (absent: tied)
    LLM_TENSOR_ATTN_NORM,         // blk.N.attn_norm.weight     ne {n_embd}
    LLM_TENSOR_ATTN_Q,            // blk.N.attn_q.weight        ne {n_embd, n_head * head_dim}
    LLM_TENSOR_ATTN_K,            // blk.N.attn_k.weight        ne {n_embd, n_head_kv * head_dim}
    LLM_TENSOR_ATTN_V,            // blk.N.attn_v.weight        ne {n_embd, n_head_kv * head_dim}
    LLM_TENSOR_ATTN_OUT,          // blk.N.attn_output.weight   ne {n_head * head_dim, n_embd}
    LLM_TENSOR_ATTN_Q_NORM,       // blk.N.attn_q_norm.weight   ne {head_dim}
    LLM_TENSOR_ATTN_K_NORM,       // blk.N.attn_k_norm.weight   ne {head_dim}
    LLM_TENSOR_ATTN_POST_NORM,    // blk.N.post_attention_norm.weight ne {n_embd}
    LLM_TENSOR_FFN_NORM,          // blk.N.ffn_norm.weight      ne {n_embd}
    LLM_TENSOR_FFN_GATE,          // blk.N.ffn_gate.weight      ne {n_embd, n_ff}
    LLM_TENSOR_FFN_UP,            // blk.N.ffn_up.weight        ne {n_embd, n_ff}
    LLM_TENSOR_FFN_DOWN,          // blk.N.ffn_down.weight      ne {n_ff, n_embd}
    LLM_TENSOR_FFN_POST_NORM,     // blk.N.post_ffw_norm.weight ne {n_embd}
    LLM_TENSOR_ROPE_FREQS,        // rope_freqs.weight          ne {n_rot / 2}  F32 (Llama 3.1 RoPE scaling)
    LLM_TENSOR_COUNT,
};

// GGUF KV keys added by Spider (documented in include/spider.h).
constexpr const char * LLM_KV_ADDED_TOKENS = "spider.added_tokens";

const char * llm_arch_name(llm_arch a);  // "llama", "gemma3"; "unknown" otherwise
llm_arch llm_arch_from_name(const std::string & name);

// "token_embd.weight", "blk.3.attn_q.weight", ... (layer ignored for non-block tensors).
std::string llm_tensor_name(llm_tensor t, int layer = -1);
// "<arch>.<suffix>", e.g. llm_kv(LLM_ARCH_GEMMA3, "attention.sliding_window").
std::string llm_kv(llm_arch a, const char * suffix);

// The three hooks of one architecture.
struct llm_arch_impl {
    llm_arch arch;
    // Reads the architecture-specific hyperparameters (the common ones are read by the model loader first).
    bool (*load_hparams)(const gguf_file & f, llm_hparams * hp, std::string * err);
    // Binds and shape-checks the weight tensors of model->layers (model->hparams is complete).
    bool (*load_tensors)(llm_model * model, std::string * err);
    // Runs one micro-batch through the network: fills ctx's KV cache at the batch positions, captured hidden
    // states and the logits rows the batch asks for.
    bool (*forward)(llm_context * ctx, const llm_ubatch & ub, std::string * err);
};

// nullptr for LLM_ARCH_UNKNOWN.
const llm_arch_impl * llm_arch_get(llm_arch a);

// Defined in models/<arch>.cpp.
const llm_arch_impl * llm_arch_impl_llama();
const llm_arch_impl * llm_arch_impl_gemma3();

}  // namespace spider
