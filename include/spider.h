// Spider public C API: the LLM runtime (model weights, run contexts, decoding, vocabulary, hidden states).
// Plain C, no third-party types; every function that can fail returns a spider_status and leaves the message in
// spider_last_error() (thread-local). Nothing here throws or aborts on bad input.
//
// Usage (greedy continuation of a prompt):
//
//     spider_model * model = NULL;
//     spider_model_params mp = spider_model_default_params();
//     if (spider_model_load("gemma-3-270m-q4_k_m.gguf", mp, &model) != SPIDER_STATUS_OK) {
//         fprintf(stderr, "%s\n", spider_last_error());
//         return 1;
//     }
//     spider_context * ctx = NULL;
//     spider_context_params cp = spider_context_default_params();
//     cp.n_ctx = 2048;
//     spider_context_create(model, cp, &ctx);
//
//     spider_token toks[256];
//     int32_t n = spider_tokenize(model, "The capital of France is", -1, toks, 256, true, false);
//     spider_batch b = spider_batch_tokens(toks, n);  // logits for the last token only
//     for (int i = 0; i < 16 && spider_decode(ctx, b) == SPIDER_STATUS_OK; i++) {
//         const float * logits = spider_get_logits_ith(ctx, -1);  // [n_vocab]
//         spider_token best = 0;
//         for (int32_t v = 1; v < spider_model_n_vocab(model); v++) if (logits[v] > logits[best]) best = v;
//         if (spider_token_is_eog(model, best)) break;
//         char piece[64];
//         int32_t len = spider_token_to_piece(model, best, piece, sizeof piece, false);
//         if (len > 0) fwrite(piece, 1, len, stdout);
//         toks[0] = best;
//         b = spider_batch_tokens(toks, 1);
//     }
//     spider_context_free(ctx);
//     spider_model_free(model);
//
// Conventions
// - Positions are implicit: a decode appends its tokens after the current KV length (spider_kv_len).
// - Hidden states follow the Hugging Face `output_hidden_states` numbering: index 0 is the input of block 0
//   (token embeddings, already scaled where the architecture scales them), index i in 1..n_layer-1 is the output
//   of block i-1, and index n_layer is the output of the final norm. So "the last layer's hidden state" is index
//   n_layer (or -1), and logits = hidden[n_layer] x output matrix^T.
// - Added tokens (Spider's template tokens such as <IMAGE>, [IMAGE0], [END]): a GGUF may carry
//     KV     spider.added_tokens          array of strings, the token texts, ids n_vocab_base + i
//     tensor token_embd_extra.weight      F32, ne = {n_embd, n_added}: their input-embedding rows (unscaled)
//     tensor output_extra.weight          F32, ne = {n_embd, n_added}: their LM-head rows (optional; when absent
//                                         the output is tied to token_embd_extra.weight)
//   spider_model_n_vocab() counts them; spider_tokenize() with parse_special recognises their texts.
#ifndef SPIDER_H
#define SPIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t spider_token;

// Immutable weights + vocabulary; one model may serve many contexts on many threads.
typedef struct spider_model spider_model;
// Mutable run state: KV cache, scratch buffers, logits, captured hidden states. One thread at a time.
typedef struct spider_context spider_context;

typedef enum spider_status {
    SPIDER_STATUS_OK = 0,
    SPIDER_STATUS_INVALID_ARGUMENT = 1,  // a null pointer, a bad size or index, an out-of-range token id
    SPIDER_STATUS_IO_ERROR = 2,          // the file cannot be opened or read
    SPIDER_STATUS_BAD_FORMAT = 3,        // the file is not a valid GGUF / misses a tensor / has wrong shapes
    SPIDER_STATUS_UNSUPPORTED = 4,       // valid file, but an architecture or tensor type Spider cannot run
    SPIDER_STATUS_OUT_OF_MEMORY = 5,
    SPIDER_STATUS_CONTEXT_FULL = 6,  // the decode would exceed n_ctx: truncate or clear the KV cache
    SPIDER_STATUS_INTERNAL = 7,
} spider_status;

// Message of the last failure on this thread ("" if none). Valid until the next failing call on this thread.
const char * spider_last_error(void);
const char * spider_status_name(spider_status s);

// ---- logging ------------------------------------------------------------------------------------------------

typedef enum spider_log_level {
    SPIDER_LOG_LEVEL_DEBUG = 0,
    SPIDER_LOG_LEVEL_INFO = 1,
    SPIDER_LOG_LEVEL_WARN = 2,
    SPIDER_LOG_LEVEL_ERROR = 3,
} spider_log_level;

typedef void (*spider_log_callback)(spider_log_level level, const char * text, void * user_data);
// Redirects the engine's log lines (default: WARN and ERROR to stderr). NULL restores the default.
void spider_log_set(spider_log_callback cb, void * user_data);

// ---- model --------------------------------------------------------------------------------------------------

typedef struct spider_model_params {
    int32_t n_threads;  // threads for load-time work (validation, repacking); <= 0: hardware concurrency
    bool use_mmap;      // map the file (weights stay in the page cache, shared between processes)
} spider_model_params;

spider_model_params spider_model_default_params(void);

// Loads a GGUF model (architectures: "llama", "gemma3"). On failure *out is NULL and the status says why.
spider_status spider_model_load(const char * path, spider_model_params params, spider_model ** out);
// Merges a Spider LoRA adapter (`spider train` stage `instruct`) into a loaded model and adds its new tokens.
// Call before creating any context on the model.
spider_status spider_model_apply_lora(spider_model * model, const char * adapter_path);
void spider_model_free(spider_model * model);

const char * spider_model_arch(const spider_model * model);  // "llama", "gemma3"
int32_t spider_model_n_embd(const spider_model * model);
int32_t spider_model_n_layer(const spider_model * model);
int32_t spider_model_n_head(const spider_model * model);
int32_t spider_model_n_head_kv(const spider_model * model);
int32_t spider_model_n_vocab(const spider_model * model);  // including added tokens
int32_t spider_model_n_ctx_train(const spider_model * model);
uint64_t spider_model_n_params(const spider_model * model);  // number of weights
uint64_t spider_model_size(const spider_model * model);      // bytes of weight data
// A one-line description ("gemma3 270M Q4_K_M ..."); returns the length written (truncated to buf_size - 1).
int32_t spider_model_desc(const spider_model * model, char * buf, size_t buf_size);
// A string metadata value of the GGUF (e.g. "tokenizer.chat_template"); returns its full length, or -1 if the
// key is absent or not a string. Writes at most buf_size - 1 bytes plus a NUL.
int32_t spider_model_meta_str(const spider_model * model, const char * key, char * buf, size_t buf_size);

// ---- vocabulary ---------------------------------------------------------------------------------------------

// Text -> tokens. text_len < 0: NUL-terminated. add_special: prepend BOS (etc.) as the model's vocab asks.
// parse_special: recognise control / added token texts in the text. Returns the number of tokens, or
// -(needed count) if n_tokens_max is too small, or INT32_MIN on error (spider_last_error says why).
int32_t spider_tokenize(const spider_model * model, const char * text, int32_t text_len, spider_token * tokens,
                        int32_t n_tokens_max, bool add_special, bool parse_special);
// One token -> its text bytes (no NUL). special: render control tokens too. Returns the length, -(needed) if
// the buffer is too small, INT32_MIN for an invalid token.
int32_t spider_token_to_piece(const spider_model * model, spider_token token, char * buf, int32_t length, bool special);
// Tokens -> text (no NUL). Returns the length, -(needed) if the buffer is too small, INT32_MIN on error.
int32_t spider_detokenize(const spider_model * model, const spider_token * tokens, int32_t n_tokens, char * text,
                          int32_t text_len_max, bool remove_special, bool unparse_special);
// The vocabulary text of a token (e.g. "<start_of_turn>", "▁Paris"), NULL for an invalid id.
const char * spider_token_get_text(const spider_model * model, spider_token token);
// The id whose text is exactly `text` (useful for added / control tokens), or -1.
spider_token spider_token_find(const spider_model * model, const char * text);
spider_token spider_token_bos(const spider_model * model);                 // -1 if none
spider_token spider_token_eos(const spider_model * model);                 // -1 if none
bool spider_token_is_eog(const spider_model * model, spider_token token);  // end of generation (eos, eot, ...)
bool spider_token_is_control(const spider_model * model, spider_token token);

// Input embeddings of token ids: out [n_tokens, n_embd], exactly what a token contributes at hidden-state
// index 0 (Gemma's sqrt(n_embd) scale included). Callers build embedding batches from these and replace rows
// (Spider puts projected media embeddings at placeholder positions).
spider_status spider_token_embeddings(const spider_model * model, const spider_token * tokens, int32_t n_tokens,
                                      float * out);

// ---- context ------------------------------------------------------------------------------------------------

typedef enum spider_kv_type {
    SPIDER_KV_TYPE_F32 = 0,
    SPIDER_KV_TYPE_F16 = 1,
} spider_kv_type;

typedef struct spider_context_params {
    uint32_t n_ctx;     // KV cache length in tokens; 0: the model's training context (capped at 8192)
    uint32_t n_batch;   // most tokens processed in one internal step; longer batches are split
    int32_t n_threads;  // <= 0: hardware concurrency
    spider_kv_type kv_type;
} spider_context_params;

spider_context_params spider_context_default_params(void);

spider_status spider_context_create(const spider_model * model, spider_context_params params, spider_context ** out);
void spider_context_free(spider_context * ctx);
const spider_model * spider_context_model(const spider_context * ctx);
uint32_t spider_n_ctx(const spider_context * ctx);
spider_status spider_set_n_threads(spider_context * ctx, int32_t n_threads);

// ---- decoding -----------------------------------------------------------------------------------------------

typedef enum spider_output {
    SPIDER_OUTPUT_LAST = 0,  // logits of the last token of the batch
    SPIDER_OUTPUT_ALL = 1,   // logits of every token of the batch (perplexity)
    SPIDER_OUTPUT_NONE = 2,  // only fill the KV cache (and captured hidden states)
} spider_output;

// Either tokens or embd is set. embd: [n_tokens, n_embd] rows used as hidden-state index 0 directly.
typedef struct spider_batch {
    int32_t n_tokens;
    const spider_token * tokens;
    const float * embd;
    spider_output output;
} spider_batch;

spider_batch spider_batch_tokens(const spider_token * tokens, int32_t n_tokens);  // output LAST
spider_batch spider_batch_embd(const float * embd, int32_t n_tokens);             // output LAST

// Runs the batch at positions kv_len .. kv_len + n_tokens - 1 and appends it to the KV cache. On failure the
// KV cache is left as it was before the call.
spider_status spider_decode(spider_context * ctx, spider_batch batch);

// Logits of the last decode: [n_outputs, n_vocab] (row i = i-th output token of the batch).
const float * spider_get_logits(const spider_context * ctx);
int32_t spider_n_outputs(const spider_context * ctx);
// Row i of the logits; negative i counts from the end (-1 = last). NULL if out of range.
const float * spider_get_logits_ith(const spider_context * ctx, int32_t i);

// Hidden-state capture (see Conventions). Negative layers count from the end (-1 = n_layer, after the final
// norm). The set applies to the following decodes; n_layers = 0 turns capture off.
spider_status spider_set_capture_layers(spider_context * ctx, const int32_t * layers, int32_t n_layers);
// Captured hidden states of one layer for every token of the last decode: [*n_rows, n_embd]. NULL if that
// layer was not captured.
const float * spider_get_hidden(const spider_context * ctx, int32_t layer, int32_t * n_rows);

// ---- KV cache -----------------------------------------------------------------------------------------------

int32_t spider_kv_len(const spider_context * ctx);  // tokens in the cache = position of the next token
void spider_kv_clear(spider_context * ctx);
// Keeps the first n tokens (0 <= n <= kv_len); the next decode continues at position n.
spider_status spider_kv_truncate(spider_context * ctx, int32_t n);

// ---- timings ------------------------------------------------------------------------------------------------

typedef struct spider_timings {
    double t_prompt_ms;  // time in decodes of more than one token
    double t_eval_ms;    // time in single-token decodes
    int32_t n_prompt;    // tokens in multi-token decodes
    int32_t n_eval;      // single-token decodes
} spider_timings;

spider_timings spider_get_timings(const spider_context * ctx);
void spider_reset_timings(spider_context * ctx);

#ifdef __cplusplus
}
#endif

#endif  // SPIDER_H
