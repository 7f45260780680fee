// spider::vocab: loading and validating tokenizer metadata, the special-token split that runs before either
// tokenizer, and detokenization (pieces). The merge algorithms live in vocab_spm.cpp and vocab_bpe.cpp.
#include "llm/vocab.h"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include "io/gguf.h"
#include "llm/unicode.h"
#include "llm/vocab_impl.h"

namespace spider {

namespace {

const std::string k_empty;
const char * k_escaped_space = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

void replace_all(std::string & s, const std::string & from, const std::string & to) {
    if (from.empty()) return;
    std::string out;
    out.reserve(s.size());
    size_t pos = 0;
    for (;;) {
        size_t hit = s.find(from, pos);
        if (hit == std::string::npos) break;
        out.append(s, pos, hit - pos);
        out += to;
        pos = hit + from.size();
    }
    out.append(s, pos, std::string::npos);
    s.swap(out);
}

bool set_err(std::string * err, const std::string & msg) {
    if (err) *err = "[vocab] " + msg;
    return false;
}

// Byte value of a "<0xXX>" token, or -1.
int parse_byte_token(const std::string & t) {
    if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; ++k) {
        char c = t[k];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                         : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

}  // namespace

int32_t vocab::impl::byte_to_token_spm(uint8_t ch) const {
    static const char * hex = "0123456789ABCDEF";
    const char buf[7] = {'<', '0', 'x', hex[ch >> 4], hex[ch & 15], '>', 0};
    int32_t id = find(buf);
    if (id != TOKEN_NULL) return id;
    // vocabularies without byte tokens may hold the raw byte itself
    id = find(std::string(1, static_cast<char>(ch)));
    if (id != TOKEN_NULL) return id;
    return unk;
}

int vocab::impl::bpe_rank(const std::string & left, const std::string & right) const {
    auto it = bpe_ranks.find(bpe_rank_key(left, right));
    return it == bpe_ranks.end() ? -1 : it->second;
}

vocab::vocab() : p_(new impl) {}
vocab::~vocab() = default;
vocab::vocab(vocab &&) noexcept = default;
vocab & vocab::operator=(vocab &&) noexcept = default;

bool vocab::load(const gguf_file & f, std::string * err) {
    vocab_data d;
    if (!f.get_string("tokenizer.ggml.model", &d.model)) {
        return set_err(err, "tokenizer.ggml.model is missing or not a string");
    }
    if (!f.get_string("tokenizer.ggml.pre", &d.pre)) d.pre = "default";

    const gguf_value * tokens = f.find("tokenizer.ggml.tokens");
    if (!tokens || tokens->type != GGUF_TYPE_ARRAY || tokens->arr_type != GGUF_TYPE_STRING) {
        return set_err(err, "tokenizer.ggml.tokens is missing or not an array of strings");
    }
    d.tokens = tokens->arr_str;
    const size_t n = d.tokens.size();

    if (const gguf_value * v = f.find("tokenizer.ggml.scores")) {
        if (v->type != GGUF_TYPE_ARRAY || (v->arr_type != GGUF_TYPE_FLOAT32 && v->arr_type != GGUF_TYPE_FLOAT64)) {
            return set_err(err, "tokenizer.ggml.scores is not an array of floats");
        }
        if (v->arr_float.size() != n) {
            return set_err(err, "tokenizer.ggml.scores has " + std::to_string(v->arr_float.size()) +
                                    " entries, tokens has " + std::to_string(n));
        }
        d.scores.assign(v->arr_float.begin(), v->arr_float.end());
    }
    if (const gguf_value * v = f.find("tokenizer.ggml.token_type")) {
        if (v->type != GGUF_TYPE_ARRAY || v->arr_type == GGUF_TYPE_STRING || v->arr_type == GGUF_TYPE_FLOAT32 ||
            v->arr_type == GGUF_TYPE_FLOAT64 || v->arr_type == GGUF_TYPE_ARRAY) {
            return set_err(err, "tokenizer.ggml.token_type is not an array of integers");
        }
        if (v->arr_int.size() != n) {
            return set_err(err, "tokenizer.ggml.token_type has " + std::to_string(v->arr_int.size()) +
                                    " entries, tokens has " + std::to_string(n));
        }
        d.token_types.reserve(n);
        for (int64_t t : v->arr_int) d.token_types.push_back(static_cast<int32_t>(t));
    }
    if (const gguf_value * v = f.find("tokenizer.ggml.merges")) {
        if (v->type != GGUF_TYPE_ARRAY || v->arr_type != GGUF_TYPE_STRING) {
            return set_err(err, "tokenizer.ggml.merges is not an array of strings");
        }
        d.merges = v->arr_str;
    }

    // llama.cpp's defaults for keys a file may omit
    if (d.model == "llama") {
        d.bos = 1;
        d.eos = 2;
        d.unk = 0;
        d.add_bos = true;
        d.add_space_prefix = true;
    } else if (d.model == "gpt2" && (d.pre == "llama3" || d.pre == "llama-v3" || d.pre == "llama-bpe")) {
        d.add_bos = true;
    }
    struct id_key {
        const char * key;
        int32_t * dst;
    } id_keys[] = {
        {"tokenizer.ggml.bos_token_id", &d.bos},       {"tokenizer.ggml.eos_token_id", &d.eos},
        {"tokenizer.ggml.unknown_token_id", &d.unk},   {"tokenizer.ggml.padding_token_id", &d.pad},
        {"tokenizer.ggml.seperator_token_id", &d.sep}, {"tokenizer.ggml.eot_token_id", &d.eot},
    };
    for (const auto & k : id_keys) {
        if (!f.find(k.key)) continue;
        int64_t v = 0;
        if (!f.get_int(k.key, &v)) return set_err(err, std::string(k.key) + " is not an integer");
        if (v < -1 || v > INT32_MAX)
            return set_err(err, std::string(k.key) + " = " + std::to_string(v) + " is out of range");
        *k.dst = static_cast<int32_t>(v);
    }
    struct bool_key {
        const char * key;
        bool * dst;
    } bool_keys[] = {
        {"tokenizer.ggml.add_bos_token", &d.add_bos},
        {"tokenizer.ggml.add_eos_token", &d.add_eos},
        {"tokenizer.ggml.add_space_prefix", &d.add_space_prefix},
    };
    for (const auto & k : bool_keys) {
        if (!f.find(k.key)) continue;
        if (!f.get_bool(k.key, k.dst)) return set_err(err, std::string(k.key) + " is not a bool");
    }
    f.get_string("tokenizer.chat_template", &d.chat_template);
    return build(d, err);
}

bool vocab::build(const vocab_data & d, std::string * err) {
    impl v;
    v.model = d.model;
    if (d.model == "llama") {
        v.type = VOCAB_TYPE_SPM;
    } else if (d.model == "gpt2") {
        v.type = VOCAB_TYPE_BPE;
    } else {
        return set_err(err, "unsupported tokenizer model '" + d.model + "' (supported: llama, gpt2)");
    }
    if (d.pre == "default" || d.pre.empty()) {
        v.pre = VOCAB_PRE_TYPE_DEFAULT;
    } else if (d.pre == "llama3" || d.pre == "llama-v3" || d.pre == "llama-bpe") {
        v.pre = VOCAB_PRE_TYPE_LLAMA3;
    } else if (d.pre == "gpt2" || d.pre == "gpt-2") {
        v.pre = VOCAB_PRE_TYPE_GPT2;
    } else if (v.type == VOCAB_TYPE_BPE) {
        return set_err(err, "unsupported pre-tokenizer '" + d.pre + "' (supported: default, llama3, gpt2)");
    }

    const size_t n = d.tokens.size();
    if (n == 0) return set_err(err, "vocabulary has no tokens");
    if (n > static_cast<size_t>(INT32_MAX)) return set_err(err, "vocabulary too large");
    if (!d.scores.empty() && d.scores.size() != n) return set_err(err, "scores and tokens differ in length");
    if (!d.token_types.empty() && d.token_types.size() != n)
        return set_err(err, "token types and tokens differ in length");

    v.text = d.tokens;
    v.score = d.scores.empty() ? std::vector<float>(n, 0.0f) : d.scores;
    v.ttype = d.token_types.empty() ? std::vector<int32_t>(n, TOKEN_TYPE_NORMAL) : d.token_types;
    v.token_to_id.reserve(n * 2);
    for (size_t i = 0; i < n; ++i) {
        const int32_t t = v.ttype[i];
        if (t < TOKEN_TYPE_UNDEFINED || t > TOKEN_TYPE_BYTE) {
            return set_err(err, "token " + std::to_string(i) + " has invalid type " + std::to_string(t));
        }
        if (t == TOKEN_TYPE_BYTE && parse_byte_token(v.text[i]) < 0) {
            return set_err(err, "byte token " + std::to_string(i) + " is not of the form <0xXX>");
        }
        v.token_to_id[v.text[i]] = static_cast<int32_t>(i);
    }

    if (v.type == VOCAB_TYPE_BPE) {
        if (d.merges.empty()) return set_err(err, "byte-level BPE vocabulary has no merges");
        v.bpe_ranks.reserve(d.merges.size() * 2);
        for (size_t r = 0; r < d.merges.size(); ++r) {
            const std::string & m = d.merges[r];
            // split at the first space after the first character (a merge side may start with a space)
            const size_t pos = m.find(' ', 1);
            if (pos == std::string::npos || pos == 0 || pos + 1 > m.size()) {
                return set_err(err, "merge " + std::to_string(r) + " '" + m + "' is not 'left right'");
            }
            v.bpe_ranks.emplace(bpe_rank_key(m.substr(0, pos), m.substr(pos + 1)), static_cast<int32_t>(r));
        }
    }

    auto check_id = [&](int32_t id, const char * name, bool lenient) -> int32_t {
        if (id == TOKEN_NULL) return TOKEN_NULL;
        if (id < 0 || static_cast<size_t>(id) >= n) {
            if (lenient) return TOKEN_NULL;  // llama.cpp ignores these too (some files set pad = n_vocab)
            set_err(err, std::string(name) + " id " + std::to_string(id) + " is outside the vocabulary (" +
                             std::to_string(n) + " tokens)");
            return -2;
        }
        return id;
    };
    if ((v.bos = check_id(d.bos, "bos", false)) == -2) return false;
    if ((v.eos = check_id(d.eos, "eos", false)) == -2) return false;
    if ((v.unk = check_id(d.unk, "unk", true)) == -2) return false;
    if ((v.eot = check_id(d.eot, "eot", false)) == -2) return false;
    v.pad = check_id(d.pad, "pad", true);
    v.sep = check_id(d.sep, "sep", true);
    if (v.eot == TOKEN_NULL) {
        // models name their end-of-turn token in the text only
        for (const char * t : {"<end_of_turn>", "<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>"}) {
            int32_t id = v.find(t);
            if (id != TOKEN_NULL && id != v.eos && v.ttype[id] == TOKEN_TYPE_CONTROL) {
                v.eot = id;
                break;
            }
        }
    }
    v.add_bos = d.add_bos;
    v.add_eos = d.add_eos;
    v.add_space_prefix = d.add_space_prefix;
    // llama3-style vocabularies emit a word that is itself a token without merging (HF "ignore_merges")
    v.ignore_merges = v.type == VOCAB_TYPE_BPE && v.pre == VOCAB_PRE_TYPE_LLAMA3;
    if (v.add_bos && v.bos == TOKEN_NULL) return set_err(err, "add_bos_token is true but there is no bos token");
    if (v.add_eos && v.eos == TOKEN_NULL) return set_err(err, "add_eos_token is true but there is no eos token");
    v.chat_template = d.chat_template;

    for (size_t i = 0; i < n; ++i) {
        const int32_t t = v.ttype[i];
        if ((t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED || t == TOKEN_TYPE_UNKNOWN) &&
            !v.text[i].empty()) {
            v.special_cache.push_back(static_cast<int32_t>(i));
        }
    }
    // longest first; ties by id so the order is deterministic
    std::stable_sort(v.special_cache.begin(), v.special_cache.end(),
                     [&](int32_t a, int32_t b) { return v.text[a].size() > v.text[b].size(); });

    *p_ = std::move(v);
    // piece cache (needs p_ in place)
    p_->pieces.clear();
    p_->pieces.resize(n);
    for (size_t i = 0; i < n; ++i) {
        const std::string & t = p_->text[i];
        const int32_t ty = p_->ttype[i];
        std::string piece;
        if (ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_UNKNOWN || ty == TOKEN_TYPE_USER_DEFINED) {
            piece = t;
        } else if (ty == TOKEN_TYPE_NORMAL) {
            if (p_->type == VOCAB_TYPE_SPM) {
                piece = t;
                replace_all(piece, k_escaped_space, " ");
            } else {
                // byte-level: every code point stands for one byte
                size_t pos = 0;
                while (pos < t.size()) {
                    uint32_t cp = utf8_decode(t, &pos);
                    int b = unicode_to_byte(cp);
                    if (b >= 0) {
                        piece += static_cast<char>(b);
                    } else {
                        utf8_append(piece, cp);  // not a byte-level vocabulary entry: keep the text
                    }
                }
            }
        } else if (ty == TOKEN_TYPE_BYTE) {
            piece = std::string(1, static_cast<char>(parse_byte_token(t)));
        }
        p_->pieces[i] = std::move(piece);
    }
    return true;
}

std::vector<int32_t> vocab::tokenize(const std::string & raw, bool add_special, bool parse_special) const {
    const impl & v = *p_;
    std::vector<int32_t> out;
    if (v.type == VOCAB_TYPE_NONE) return out;

    // fragments: either a token id or a [offset, offset+length) range of raw text
    struct fragment {
        int32_t token;  // TOKEN_NULL for text
        size_t off, len;
    };
    std::vector<fragment> frags;
    if (!raw.empty()) frags.push_back({TOKEN_NULL, 0, raw.size()});

    for (int32_t id : v.special_cache) {
        const int32_t ty = v.ttype[id];
        if (!parse_special && (ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_UNKNOWN)) continue;
        const std::string & st = v.text[id];
        std::vector<fragment> next;
        next.reserve(frags.size());
        bool changed = false;
        for (const fragment & fr : frags) {
            if (fr.token != TOKEN_NULL || fr.len < st.size()) {
                next.push_back(fr);
                continue;
            }
            size_t pos = fr.off;
            const size_t end = fr.off + fr.len;
            for (;;) {
                // search only inside this fragment (a search to the end of the text would make this quadratic)
                const size_t hit = std::string_view(raw.data(), end).find(st, pos);
                if (hit == std::string_view::npos) break;
                if (hit > pos) next.push_back({TOKEN_NULL, pos, hit - pos});
                next.push_back({id, 0, 0});
                pos = hit + st.size();
                changed = true;
            }
            if (pos < end) next.push_back({TOKEN_NULL, pos, end - pos});
        }
        if (changed) frags.swap(next);
    }

    if (add_special && v.add_bos) out.push_back(v.bos);
    bool prev_special = true;  // SPM: a space prefix goes before the first text and after special tokens
    for (const fragment & fr : frags) {
        if (fr.token != TOKEN_NULL) {
            out.push_back(fr.token);
            prev_special = true;
            continue;
        }
        if (v.type == VOCAB_TYPE_SPM) {
            std::string text;
            if (v.add_space_prefix && prev_special) text = " ";
            text.append(raw, fr.off, fr.len);
            replace_all(text, " ", k_escaped_space);
            spm_tokenize(v, text, out);
        } else {
            bpe_tokenize(v, raw.substr(fr.off, fr.len), out);
        }
        prev_special = false;
    }
    if (add_special && v.add_eos) out.push_back(v.eos);
    return out;
}

std::string vocab::token_to_piece(int32_t id, bool special) const {
    const impl & v = *p_;
    if (id < 0 || static_cast<size_t>(id) >= v.pieces.size()) return k_empty;
    const int32_t ty = v.ttype[id];
    if (!special && (ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_UNKNOWN)) return k_empty;
    return v.pieces[id];
}

std::string vocab::detokenize(const std::vector<int32_t> & ids, bool special) const {
    std::string out;
    for (int32_t id : ids) out += token_to_piece(id, special);
    return out;
}

vocab_type vocab::type() const {
    return p_->type;
}
vocab_pre_type vocab::pre_type() const {
    return p_->pre;
}
int32_t vocab::n_tokens() const {
    return static_cast<int32_t>(p_->text.size());
}
const std::string & vocab::token_text(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= p_->text.size()) return k_empty;
    return p_->text[id];
}
float vocab::token_score(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= p_->score.size()) return 0.0f;
    return p_->score[id];
}
token_type vocab::get_token_type(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= p_->ttype.size()) return TOKEN_TYPE_UNDEFINED;
    return static_cast<token_type>(p_->ttype[id]);
}
int32_t vocab::text_to_token(const std::string & text) const {
    return p_->find(text);
}
bool vocab::is_special(int32_t id) const {
    const token_type t = get_token_type(id);
    return t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED || t == TOKEN_TYPE_UNKNOWN;
}
bool vocab::is_eog(int32_t id) const {
    return id != TOKEN_NULL && (id == p_->eos || id == p_->eot);
}
int32_t vocab::bos() const {
    return p_->bos;
}
int32_t vocab::eos() const {
    return p_->eos;
}
int32_t vocab::eot() const {
    return p_->eot;
}
int32_t vocab::unk() const {
    return p_->unk;
}
int32_t vocab::pad() const {
    return p_->pad;
}
bool vocab::add_bos() const {
    return p_->add_bos;
}
bool vocab::add_eos() const {
    return p_->add_eos;
}
bool vocab::add_space_prefix() const {
    return p_->add_space_prefix;
}
const std::string & vocab::chat_template() const {
    return p_->chat_template;
}
const std::string & vocab::model_name() const {
    return p_->model;
}

}  // namespace spider
