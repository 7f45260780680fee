// LLM weights: hyperparameters, the tensors of every block (views into the mmapped GGUF), Spider's added-token
// rows, and loading + validation. A loaded llm_model is immutable and may be shared by many contexts.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/huge_buffer.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "io/gguf.h"
#include "llm/arch.h"

struct spider_model;
struct spider_context;

namespace spider {

struct llm_hparams {
    int64_t n_vocab = 0;  // base vocabulary (rows of token_embd.weight)
    int64_t n_added = 0;  // Spider added tokens (rows of token_embd_extra.weight), ids n_vocab + i
    int64_t n_ctx_train = 0;
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;  // key_length (= value_length: both are required equal)
    int64_t n_ff = 0;
    int64_t n_rot = 0;  // rope.dimension_count (defaults to head_dim)
    float rms_eps = 1e-5f;
    float rope_freq_base = 10000.0f;
    float rope_freq_scale = 1.0f;  // 1 / linear scaling factor (global layers)
    float rope_freq_base_swa = 10000.0f;
    rope_mode rope_type = ROPE_MODE_NORMAL;
    int64_t n_swa = 0;            // sliding window in tokens; 0 = none
    int64_t swa_pattern = 0;      // layer il is sliding-window unless (il + 1) % swa_pattern == 0; 0 = none
    float attn_scale = 0.0f;      // logits multiplier; 0 = 1/sqrt(head_dim)
    float embd_scale = 1.0f;      // multiplier of token embeddings (gemma: sqrt(n_embd))
    act_type ffn_act = ACT_SILU;  // gated FFN activation

    int64_t n_vocab_total() const { return n_vocab + n_added; }
    bool is_swa(int64_t il) const { return n_swa > 0 && swa_pattern > 0 && (il + 1) % swa_pattern != 0; }
};

// One transformer block. Optional tensors have data == nullptr.
struct llm_layer {
    tensor attn_norm;       // {n_embd} F32
    tensor wq;              // {n_embd, n_head * head_dim}
    tensor wk;              // {n_embd, n_head_kv * head_dim}
    tensor wv;              // {n_embd, n_head_kv * head_dim}
    tensor wo;              // {n_head * head_dim, n_embd}
    tensor attn_q_norm;     // {head_dim} F32 (gemma3)
    tensor attn_k_norm;     // {head_dim} F32 (gemma3)
    tensor attn_post_norm;  // {n_embd} F32 (gemma3)
    tensor ffn_norm;        // {n_embd} F32
    tensor ffn_gate;        // {n_embd, n_ff}
    tensor ffn_up;          // {n_embd, n_ff}
    tensor ffn_down;        // {n_ff, n_embd}
    tensor ffn_post_norm;   // {n_embd} F32 (gemma3)
};

struct llm_model_params {
    int n_threads = 0;
    bool use_mmap = true;
};

struct llm_model {
    llm_arch arch = LLM_ARCH_UNKNOWN;
    const llm_arch_impl * impl = nullptr;
    llm_hparams hparams;
    std::unique_ptr<uint8_t[]> file_data;  // the file's bytes when loaded without mmap (declared before `file`)
    std::unique_ptr<gguf_file> file;
    std::string path;
    std::string name;  // general.name, if any

    tensor tok_embd;     // {n_embd, n_vocab}
    tensor output_norm;  // {n_embd} F32
    tensor output;       // {n_embd, n_vocab}; == tok_embd when tied
    bool output_tied = false;
    tensor tok_embd_extra;  // {n_embd, n_added} F32 or empty
    tensor output_extra;    // {n_embd, n_added} F32 or empty (then == tok_embd_extra)
    tensor rope_freqs;      // {n_rot / 2} F32 divisors of the RoPE pair frequencies, or empty (llama only)
    std::vector<std::string> added_tokens;
    std::vector<llm_layer> layers;

    uint64_t n_params = 0;   // elements of all weight tensors
    uint64_t n_bytes = 0;    // bytes of all weight tensors
    std::string ftype_name;  // "Q4_K_M", "F16", ... from general.file_type, or the dominant tensor type

    // Loads and validates; on failure returns nullptr with *err naming the problem (file, key, tensor, shape).
    static std::unique_ptr<llm_model> load(const std::string & path, const llm_model_params & params,
                                           std::string * err);

    // Binds a tensor by its table name and checks its shape (ne beyond the given dims must be 1). A missing
    // optional tensor leaves *out empty and returns true. 1-D norm weights must be F32 (converted if F16).
    bool bind(llm_tensor t, int layer, int64_t ne0, int64_t ne1, bool required, tensor * out, std::string * err);
    std::string desc() const;

    // F32 copies of small tensors stored as F16/BF16 in the file (norm weights); kept alive with the model.
    std::vector<std::unique_ptr<std::vector<float>>> owned;

    // Gives each matmul weight (layer projections, output matrix) its packed copy where the matmul kernels have
    // one at this CPU level (matmul_pack, core/ops.h), and, when the file is mmapped, every other matmul weight a
    // plain copy (its `data` then points there), all in one buffer on huge pages (core/huge_buffer.h): decode
    // streams every weight once per token. The mapped pages of a copied tensor are released: inference reads only
    // the copies, and any reader of a packed tensor's original (LoRA merge, the backward pass of training) faults
    // them back in from the file. Called by load(); returns the bytes copied.
    size_t pack_weights();
    huge_buffer weights;  // the copies, one after the other
    // Drops the mapped file's pages from this process (they stay in the page cache): called once loading has read
    // what it needs (the vocabulary, the copies above). Anything that reads the mapping later faults its pages back.
    void release_mapped_pages();

    // The bytes one decode step reads from the weights, tensor by tensor (the packed copy where there is one): every
    // layer tensor, the output norm and the output matrix, which is the embedding table when tied (an untied table
    // gives a step one row only). `spider bench --roofline` times a plain read of exactly these bytes.
    std::vector<std::pair<const uint8_t *, size_t>> decode_weight_spans() const;
};

class vocab;

// C++ access to what the C API handles wrap, for tools and modules linked with the engine (the handles themselves
// stay opaque in include/spider.h). nullptr for a null handle; llm_vocab_of is nullptr when the file has no vocabulary.
const llm_model * llm_model_of(const ::spider_model * m);
const vocab * llm_vocab_of(const ::spider_model * m);
llm_context * llm_context_of(::spider_context * c);

// Status kinds for the C API (see spider.h) carried with an error message.
enum llm_error_kind { LLM_ERR_IO = 2, LLM_ERR_FORMAT = 3, LLM_ERR_UNSUPPORTED = 4 };
// Kind of the last llm_model::load failure on this thread (for mapping to spider_status).
llm_error_kind llm_model_last_error_kind();
// For the architecture hooks: records the kind of a load failure and sets *err; returns false.
bool llm_load_error(llm_error_kind kind, std::string * err, const std::string & msg);

}  // namespace spider
