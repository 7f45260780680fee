// The architecture registry and the tensor-name table (see arch.h).
#include "llm/arch.h"

#include <cstdio>

namespace spider {

namespace {

struct arch_entry {
    llm_arch arch;
    const char * name;
};

const arch_entry k_arch_names[] = {
    {LLM_ARCH_LLAMA, "llama"},
    {LLM_ARCH_GEMMA3, "gemma3"},
};

// Block tensors carry a "%d" for the layer index.
const char * const k_tensor_names[LLM_TENSOR_COUNT] = {
    "token_embd.weight",                  // LLM_TENSOR_TOKEN_EMBD
    "token_embd_extra.weight",            // LLM_TENSOR_TOKEN_EMBD_EXTRA
    "output_norm.weight",                 // LLM_TENSOR_OUTPUT_NORM
    "output.weight",                      // LLM_TENSOR_OUTPUT
    "output_extra.weight",                // LLM_TENSOR_OUTPUT_EXTRA
    "blk.%d.attn_norm.weight",            // LLM_TENSOR_ATTN_NORM
    "blk.%d.attn_q.weight",               // LLM_TENSOR_ATTN_Q
    "blk.%d.attn_k.weight",               // LLM_TENSOR_ATTN_K
    "blk.%d.attn_v.weight",               // LLM_TENSOR_ATTN_V
    "blk.%d.attn_output.weight",          // LLM_TENSOR_ATTN_OUT
    "blk.%d.attn_q_norm.weight",          // LLM_TENSOR_ATTN_Q_NORM
    "blk.%d.attn_k_norm.weight",          // LLM_TENSOR_ATTN_K_NORM
    "blk.%d.post_attention_norm.weight",  // LLM_TENSOR_ATTN_POST_NORM
    "blk.%d.ffn_norm.weight",             // LLM_TENSOR_FFN_NORM
    "blk.%d.ffn_gate.weight",             // LLM_TENSOR_FFN_GATE
    "blk.%d.ffn_up.weight",               // LLM_TENSOR_FFN_UP
    "blk.%d.ffn_down.weight",             // LLM_TENSOR_FFN_DOWN
    "blk.%d.post_ffw_norm.weight",        // LLM_TENSOR_FFN_POST_NORM
    "rope_freqs.weight",                  // LLM_TENSOR_ROPE_FREQS
};

}  // namespace

const char * llm_arch_name(llm_arch a) {
    for (const auto & e : k_arch_names) {
        if (e.arch == a) return e.name;
    }
    return "unknown";
}

llm_arch llm_arch_from_name(const std::string & name) {
    for (const auto & e : k_arch_names) {
        if (name == e.name) return e.arch;
    }
    return LLM_ARCH_UNKNOWN;
}

std::string llm_tensor_name(llm_tensor t, int layer) {
    if (t < 0 || t >= LLM_TENSOR_COUNT) return "";
    char buf[96];
    std::snprintf(buf, sizeof buf, k_tensor_names[t], layer);
    return buf;
}

std::string llm_kv(llm_arch a, const char * suffix) {
    return std::string(llm_arch_name(a)) + "." + suffix;
}

const llm_arch_impl * llm_arch_get(llm_arch a) {
    switch (a) {
        case LLM_ARCH_LLAMA:
            return llm_arch_impl_llama();
        case LLM_ARCH_GEMMA3:
            return llm_arch_impl_gemma3();
        default:
            return nullptr;
    }
}

}  // namespace spider
