// Internal state of spider::vocab shared by vocab.cpp (loading, special-token split, pieces), vocab_spm.cpp and
// vocab_bpe.cpp (the two merge algorithms). Not a public header.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "llm/vocab.h"

namespace spider {

struct vocab::impl {
    vocab_type type = VOCAB_TYPE_NONE;
    vocab_pre_type pre = VOCAB_PRE_TYPE_DEFAULT;
    std::string model;
    std::string chat_template;

    std::vector<std::string> text;
    std::vector<float> score;
    std::vector<int32_t> ttype;
    std::unordered_map<std::string, int32_t> token_to_id;  // last id wins for duplicate texts (as llama.cpp)
    std::unordered_map<std::string, int32_t> bpe_ranks;    // key: bpe_rank_key(left, right)
    std::vector<int32_t> special_cache;                    // control / user-defined / unknown ids, longest text first
    std::vector<std::string> pieces;                       // token_to_piece(id, special=true), precomputed

    int32_t bos = TOKEN_NULL, eos = TOKEN_NULL, eot = TOKEN_NULL, unk = TOKEN_NULL, pad = TOKEN_NULL, sep = TOKEN_NULL;
    bool add_bos = false, add_eos = false, add_space_prefix = false;
    bool ignore_merges = false;  // BPE: a whole word found in the vocabulary is emitted as is

    int32_t find(const std::string & s) const {
        auto it = token_to_id.find(s);
        return it == token_to_id.end() ? TOKEN_NULL : it->second;
    }
    int32_t byte_to_token_spm(uint8_t ch) const;
    int bpe_rank(const std::string & left, const std::string & right) const;
};

inline std::string bpe_rank_key(const std::string & left, const std::string & right) {
    // length-prefixed so that no two (left, right) pairs share a key whatever bytes they hold
    return std::to_string(left.size()) + ':' + left + right;
}

// SentencePiece-style merge of one fragment (spaces already escaped to U+2581).
void spm_tokenize(const vocab::impl & v, const std::string & text, std::vector<int32_t> & out);
// Byte-level BPE of one fragment: pre-split into words, byte-map, merge by rank.
void bpe_tokenize(const vocab::impl & v, const std::string & text, std::vector<int32_t> & out);
// Pre-tokenizer: splits text into words by the rules of `pre` (raw UTF-8 words, not byte-mapped).
std::vector<std::string> bpe_pre_split(const std::string & text, vocab_pre_type pre);

}  // namespace spider
