// LLM run state: the KV cache (contiguous per layer, [n_ctx, n_head_kv, head_dim], F32 or F16), scratch buffers
// allocated once at creation (decode allocates nothing per token), logits, captured hidden states, timings,
// and the debug dump of named intermediates (env SPIDER_DUMP=dir).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "llm/model.h"
#include "llm/profile.h"

namespace spider {

struct llm_context_params {
    int64_t n_ctx = 2048;  // 0: the model's training context, capped at 8192
    int64_t n_batch = 512;
    int n_threads = 0;  // <= 0: hardware concurrency
    bool kv_f16 = false;
};

enum llm_output_mode { LLM_OUTPUT_LAST = 0, LLM_OUTPUT_ALL = 1, LLM_OUTPUT_NONE = 2 };

// One micro-batch handed to an architecture's forward hook (at most n_batch tokens).
struct llm_ubatch {
    const int32_t * tokens = nullptr;  // [n_tokens] or nullptr when embd is set
    const float * embd = nullptr;      // [n_tokens, n_embd] hidden-state-0 rows
    int64_t n_tokens = 0;
    int64_t pos0 = 0;       // absolute position of the first token (= KV length before the ubatch)
    int64_t row0 = 0;       // index of the first token within the whole decode (for hidden-state rows)
    int64_t out_first = 0;  // tokens [out_first, n_tokens) produce logits ...
    int64_t out_row0 = 0;   // ... written to logits rows out_row0 + (i - out_first)
    bool want_logits() const { return out_first < n_tokens; }
    // The rows [r0, n_tokens) as their own ubatch (positions and row indices shifted).
    llm_ubatch tail(int64_t r0) const {
        llm_ubatch t = *this;
        if (t.tokens) t.tokens += r0;
        t.embd = nullptr;  // tails are only used after the input stage
        t.n_tokens -= r0;
        t.pos0 += r0;
        t.row0 += r0;
        t.out_first = out_first > r0 ? out_first - r0 : 0;
        return t;
    }
};

struct llm_kv_layer {
    std::vector<float> k, v;         // F32 cache: [n_ctx, n_head_kv, head_dim]
    std::vector<uint16_t> k16, v16;  // F16 cache (same layout) when kv_f16
};

struct llm_timings {
    double t_prompt_ms = 0, t_eval_ms = 0;
    int64_t n_prompt = 0, n_eval = 0;
};

struct llm_context {
    const llm_model * model = nullptr;
    llm_context_params params;
    std::unique_ptr<thread_pool> pool;

    std::vector<llm_kv_layer> kv;
    int64_t kv_len = 0;

    // Scratch for one ubatch (sizes from n_batch), allocated at creation.
    std::vector<float> x;        // [n_batch, n_embd] residual stream
    std::vector<float> xn;       // [n_batch, n_embd] normed input of a sub-block
    std::vector<float> q;        // [n_batch, n_head * head_dim]
    std::vector<float> k;        // [n_batch, n_head_kv * head_dim]
    std::vector<float> v;        // [n_batch, n_head_kv * head_dim]
    std::vector<float> attn;     // [n_batch, n_head * head_dim]
    std::vector<float> proj;     // [n_batch, n_embd] output of wo / ffn_down
    std::vector<float> k2;       // [n_batch, n_head_kv * head_dim] normed K (gemma3)
    std::vector<float> gate;     // [n_batch, n_ff]
    std::vector<float> up;       // [n_batch, n_ff]
    std::vector<float> act;      // [n_batch, n_ff] act(gate) * up
    std::vector<int32_t> pos;    // [n_batch] absolute positions of the ubatch
    std::vector<float> kv_wide;  // F16 cache widened for a prompt's attention (attention_f16kv), grown on first use

    // Outputs of the last decode.
    std::vector<float> logits;  // [n_outputs, n_vocab_total]
    int64_t n_outputs = 0;
    std::vector<bool> capture;               // [n_layer + 1]
    std::vector<std::vector<float>> hidden;  // [n_layer + 1][n_rows * n_embd]
    int64_t hidden_rows = 0;

    llm_timings timings;
    llm_profile prof;      // per-section wall time of the forward pass (spider bench --profile), off by default
    int err_kind = 0;      // spider_status value of the last failure (see spider.h)
    std::string dump_dir;  // from SPIDER_DUMP; empty = off

    // Creates a context; nullptr + *err on a bad size or when memory cannot be allocated.
    static std::unique_ptr<llm_context> create(const llm_model * model, const llm_context_params & params,
                                               std::string * err);

    // Decodes n tokens (or embedding rows) at positions kv_len.. and appends them to the cache. On failure the
    // cache length is restored.
    bool decode(const int32_t * tokens, const float * embd, int64_t n, llm_output_mode out, std::string * err);
    bool kv_truncate(int64_t n, std::string * err);
    void kv_clear() { kv_len = 0; }
    bool set_capture(const std::vector<int> & layers, std::string * err);
    bool set_n_threads(int n, std::string * err);

    // Helpers for the architecture hooks.
    // Writes the input rows (token embeddings * embd_scale, or the given embeddings) into x.
    bool embed_input(const llm_ubatch & ub, std::string * err);
    // Stores K and V rows [n_tokens, n_head_kv * head_dim] at positions pos0.. of layer il.
    void kv_store(int64_t il, const llm_ubatch & ub, const float * k_rows, const float * v_rows);
    // Causal attention of q [n_tokens, n_head, head_dim] over the cache of layer il (positions 0..pos0+n-1).
    void kv_attend(int64_t il, const llm_ubatch & ub, const float * q_rows, float * out, float scale, int64_t window);
    // First row whose block output is still needed after layer il's K/V are stored: 0 except in the last layer,
    // where only the rows that produce logits (or the captured final hidden state) go on; n_tokens = none.
    int64_t rows_needed_from(int64_t il, const llm_ubatch & ub) const;
    // Copies x rows into hidden[idx] when that index is captured.
    void capture_rows(int64_t idx, const llm_ubatch & ub, const float * rows);
    // The common head: final RMSNorm of x (the rows needed for capture or logits) -> hidden[n_layer] -> logits.
    void output_head(const llm_ubatch & ub);
    // Logits rows for the output tokens of the ubatch from final-normed rows [n_tokens, n_embd].
    void compute_logits(const llm_ubatch & ub, const float * normed);
    // Writes a named intermediate [rows, cols] to dump_dir/<name>.f32 (+ .shape) when SPIDER_DUMP is set.
    void dump(const char * name, int64_t il, const float * data, int64_t rows, int64_t cols) const;
};

}  // namespace spider
