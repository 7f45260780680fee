// The text side of the pipeline: a text_generator writes the answer piece by piece (one piece = one token) and
// afterwards hands back the M-Prompt of any output position (last-layer hidden state + the token's input
// embedding). Two implementations: a scripted one (a fixed answer text fed through exactly the same path as the
// LLM, for tests and `spider run --script`) and the LLM one (include/spider.h, template-constrained decoding).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "controller/template.h"
#include "spider.h"

namespace spider {

struct gen_token {
    std::string piece;  // text of the token (added tokens spelled out, e.g. "[IMAGE0]")
    int pos = -1;       // output position (0 = first generated token)
    bool end = false;   // no more tokens (piece is empty)
};

class text_generator {
public:
    virtual ~text_generator() = default;
    virtual std::string name() const = 0;
    virtual int n_embd() const = 0;
    // Starts an answer. media_tokens[i]: the projected embedding (n_embd) of the i-th media segment of the layout,
    // in layout order. allowed: the modalities the output grammar may use.
    virtual bool begin(const input_layout & layout, const std::vector<std::vector<float>> & media_tokens,
                       const std::vector<modality> & allowed, uint64_t seed, std::string * err) = 0;
    // The next token; out->end when the answer is complete. false on error.
    virtual bool next(gen_token * out, std::string * err) = 0;
    // M-Prompt rows for output positions: [positions.size(), n_embd], hidden[last] + input embedding.
    virtual bool m_prompt(const std::vector<int> & positions, std::vector<float> * out, std::string * err) = 0;
};

// Splits a scripted answer into pieces: template markers are single pieces, other text goes in word-sized pieces
// (leading spaces attached). Its "hidden states" are deterministic unit vectors seeded by the text so far, so
// the M-Prompt depends on the content like a real LLM's would. delay_ms: sleep before each token (to test that
// groups are dispatched while the text is still being written).
std::unique_ptr<text_generator> make_scripted_generator(const std::string & script, int n_embd, int delay_ms = 0,
                                                        const template_config & cfg = template_config());

struct llm_gen_params {
    int n_threads = 0;         // <= 0: hardware concurrency
    int max_tokens = 256;      // answer length limit (the constraint closes the answer before it)
    float temperature = 0.7f;  // 0: greedy
    int top_k = 40;
    int text_budget_first = 24;  // tokens of text before the first group
    int text_budget_next = 12;   // tokens of text after each group
    int tprompt_min = 2, tprompt_max = 12;
    // false: no template grammar and nothing forced, the model's own tokens (top-k / temperature) until [END], an
    // end-of-generation token or the token limit; the parser turns what is malformed into per-group errors. Only
    // for a model that writes the template itself (one carrying the template's added tokens).
    bool grammar = true;
};

// The LLM text generator (include/spider.h): the prompt (chat-wrapped when the vocabulary has Gemma's turn
// tokens) with each media placeholder replaced by its projected embedding, then template-constrained decoding:
// [OUTPUT] first, text free of '<' and '[', groups only of the allowed modalities with a non-empty one-line
// T-Prompt closed by all signal tokens, [END] last. Markers are written as the model's tokens for their text
// (one token each when the model carries Spider's added tokens). An untuned model does not yet choose groups by
// itself, so length budgets decide when a group opens: the requested modalities for [M] /
// [SPECIFICMULTIMODAL], modalities named in the prompt (else IMAGE) for [SMARTMULTIMODAL], none for [TEXT].
// A model tuned to the template (one that carries [OUTPUT] etc. as added tokens, e.g. the default LLM with
// models/spider-lora-gemma3-270m.gguf) is model-driven instead: no chat wrapping (it was trained on the raw
// `<bos>[INPUT]...` layout), it picks markers, groups and T-Prompts itself among the grammar-allowed tokens, and the
// constraint only adds requested groups it left out before [END] and closes a T-Prompt that runs past a phrase.
// The model must outlive the generator.
std::unique_ptr<text_generator> make_llm_generator(::spider_model * model, const llm_gen_params & params,
                                                   const template_config & cfg, std::string * err);

// The piece splitting used by the scripted generator (exposed for tests).
std::vector<std::string> split_script(const std::string & script, const template_config & cfg);

}  // namespace spider
