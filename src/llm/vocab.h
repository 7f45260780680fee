// Vocabulary and tokenizers of an LLM, loaded from GGUF `tokenizer.ggml.*` metadata (or built from arrays).
// Two algorithms, each matching llama.cpp token for token:
//   - SentencePiece-style (`tokenizer.ggml.model = "llama"`: llama, gemma): spaces escaped to U+2581, symbols
//     merged best-score-first with a priority queue, unknown pieces emitted as byte tokens <0xXX>;
//   - byte-level BPE (`"gpt2"`: llama3, gpt2, ...): pre-split by the `tokenizer.ggml.pre` rules, bytes mapped to
//     printable code points, merges applied by rank.
// Special (control / user-defined) tokens are cut out of the text first: user-defined always, control only
// with parse_special (as llama.cpp).
//
//   std::string err;
//   spider::vocab v;
//   if (!v.load(*gguf, &err)) { ... }
//   std::vector<int32_t> ids = v.tokenize("Hello world", /*add_special=*/true, /*parse_special=*/false);
//   std::string text = v.detokenize(ids, /*special=*/false);
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace spider {

class gguf_file;

enum vocab_type : int32_t {
    VOCAB_TYPE_NONE = 0,
    VOCAB_TYPE_SPM = 1,  // "llama"
    VOCAB_TYPE_BPE = 2,  // "gpt2"
};

// Pre-tokenizer (word splitting) rules of byte-level BPE, from `tokenizer.ggml.pre`.
enum vocab_pre_type : int32_t {
    VOCAB_PRE_TYPE_DEFAULT = 0,
    VOCAB_PRE_TYPE_LLAMA3 = 1,
    VOCAB_PRE_TYPE_GPT2 = 2,
};

// Token types as stored in `tokenizer.ggml.token_type` (llama.cpp numbering).
enum token_type : int32_t {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,
    TOKEN_TYPE_USER_DEFINED = 4,
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6,
};

constexpr int32_t TOKEN_NULL = -1;

// Everything a vocabulary is made of, as plain arrays (what the GGUF holds).
struct vocab_data {
    std::string model = "llama";  // "llama" (SPM) or "gpt2" (byte-level BPE)
    std::string pre = "default";
    std::vector<std::string> tokens;
    std::vector<float> scores;         // may be empty (all 0)
    std::vector<int32_t> token_types;  // may be empty (all NORMAL)
    std::vector<std::string> merges;   // BPE only: "left right", in rank order
    int32_t bos = TOKEN_NULL, eos = TOKEN_NULL, unk = TOKEN_NULL, pad = TOKEN_NULL, sep = TOKEN_NULL;
    int32_t eot = TOKEN_NULL;  // end-of-turn, when the model has one
    bool add_bos = false, add_eos = false;
    bool add_space_prefix = false;
    std::string chat_template;  // `tokenizer.chat_template`, empty if none
};

class vocab {
public:
    vocab();
    ~vocab();
    vocab(vocab &&) noexcept;
    vocab & operator=(vocab &&) noexcept;

    // Reads tokenizer.ggml.* from a GGUF. Validates array types and lengths and special ids.
    bool load(const gguf_file & f, std::string * err);
    // Same from arrays (tests, converters). Validates as load does.
    bool build(const vocab_data & d, std::string * err);

    // add_special: add BOS/EOS as the vocabulary asks (add_bos / add_eos). parse_special: cut control tokens
    // written as text ("<start_of_turn>") out of the text as single tokens. Never fails: any bytes are accepted.
    std::vector<int32_t> tokenize(const std::string & text, bool add_special, bool parse_special) const;

    // Text of one token as it appears in output (spaces unescaped, byte tokens as their single raw byte, byte-level
    // BPE mapped back to bytes). special=false: control/unknown tokens give "". Invalid ids give "".
    std::string token_to_piece(int32_t id, bool special = true) const;
    // Concatenation of pieces; byte tokens reassemble into UTF-8.
    std::string detokenize(const std::vector<int32_t> & ids, bool special) const;

    vocab_type type() const;
    vocab_pre_type pre_type() const;
    int32_t n_tokens() const;
    const std::string & token_text(int32_t id) const;  // raw text as in the vocabulary ("" if invalid id)
    float token_score(int32_t id) const;
    token_type get_token_type(int32_t id) const;
    int32_t text_to_token(const std::string & text) const;  // exact raw text lookup; TOKEN_NULL if absent
    // Control / user-defined / unknown token (one that tokenize() cuts out of text rather than spelling it).
    bool is_special(int32_t id) const;
    bool is_eog(int32_t id) const;  // end of generation: eos, eot
    int32_t bos() const;
    int32_t eos() const;
    int32_t eot() const;
    int32_t unk() const;
    int32_t pad() const;
    bool add_bos() const;
    bool add_eos() const;
    bool add_space_prefix() const;
    const std::string & chat_template() const;
    const std::string & model_name() const;  // "llama" / "gpt2"

    struct impl;  // opaque; defined in vocab_impl.h for the tokenizer sources

private:
    std::unique_ptr<impl> p_;
};

}  // namespace spider
