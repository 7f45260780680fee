// Byte-level BPE tokenization (llama.cpp's llm_tokenizer_bpe with GPT-2 byte encoding): the pre-tokenizer splits
// text into words by hand-written matchers equivalent to the regexes of the `default`, `llama3` and `gpt2`
// pre-tokenizers (std::regex has no \p{L}); each word's bytes are mapped to printable code points and merged
// pairwise by merge rank (lowest first, ties leftmost).
#include <algorithm>
#include <queue>

#include "llm/unicode.h"
#include "llm/vocab_impl.h"

namespace spider {

namespace {

constexpr uint32_t OUT_OF_RANGE = 0xFFFFFFFF;

// One pre-tokenizer pass works on a piece [start, end) of the code points and appends the lengths of the pieces it
// cuts it into. Outside the piece, code points read as OUT_OF_RANGE and flags as 0, so lookaheads stop at piece
// boundaries (as llama.cpp's unicode_regex_split does).
struct piece_view {
    const std::vector<uint32_t> & cpts;
    size_t start, end;
    uint32_t cpt(size_t pos) const { return (pos >= start && pos < end) ? cpts[pos] : OUT_OF_RANGE; }
    uint16_t flags(size_t pos) const { return (pos >= start && pos < end) ? unicode_flags(cpts[pos]) : 0; }
};

constexpr uint16_t F_L = UNICODE_FLAG_LETTER, F_N = UNICODE_FLAG_NUMBER, F_WS = UNICODE_FLAG_WHITESPACE;

inline uint32_t ascii_lower(uint32_t c) {
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const piece_view & v, std::vector<size_t> & out) {
    size_t pos = v.start;
    size_t prev_end = v.start;
    auto add = [&](size_t end) {
        if (end > prev_end) out.push_back(end - prev_end);
        prev_end = end;
    };
    while (pos < v.end) {
        const uint32_t cpt = v.cpt(pos);
        const uint16_t fl = v.flags(pos);
        if (cpt == '\'' && pos + 1 < v.end) {
            const uint32_t n1 = v.cpt(pos + 1);
            if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
                pos += 2;
                add(pos);
                continue;
            }
            if (pos + 2 < v.end) {
                const uint32_t n2 = v.cpt(pos + 2);
                if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
                    pos += 3;
                    add(pos);
                    continue;
                }
            }
        }
        const uint16_t fl2 = (cpt == ' ') ? v.flags(pos + 1) : fl;
        if (fl2 & F_L) {
            pos += (cpt == ' ');
            while (v.flags(pos) & F_L) ++pos;
            add(pos);
            continue;
        }
        if (fl2 & F_N) {
            pos += (cpt == ' ');
            while (v.flags(pos) & F_N) ++pos;
            add(pos);
            continue;
        }
        if (!(fl2 & (F_WS | F_L | F_N)) && fl2) {
            pos += (cpt == ' ');
            for (;;) {
                const uint16_t f = v.flags(pos);
                if ((f & (F_WS | F_L | F_N)) || !f) break;
                ++pos;
            }
            add(pos);
            continue;
        }
        size_t nws = 0;
        while (v.flags(pos + nws) & F_WS) ++nws;
        if (nws > 1 && v.cpt(pos + nws) != OUT_OF_RANGE) {
            pos += nws - 1;  // leave the last space to prefix the next word
            add(pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            add(pos);
            continue;
        }
        ++pos;  // no rule matched: one code point on its own
        add(pos);
    }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
void split_llama3(const piece_view & v, std::vector<size_t> & out) {
    size_t pos = v.start;
    size_t prev_end = v.start;
    auto add = [&](size_t end) {
        if (end > prev_end) out.push_back(end - prev_end);
        prev_end = end;
    };
    while (pos < v.end) {
        const uint32_t cpt = v.cpt(pos);
        const uint16_t fl = v.flags(pos);
        if (cpt == '\'' && pos + 1 < v.end) {
            const uint32_t n1 = ascii_lower(v.cpt(pos + 1));
            if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
                pos += 2;
                add(pos);
                continue;
            }
            if (pos + 2 < v.end) {
                const uint32_t n2 = ascii_lower(v.cpt(pos + 2));
                if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
                    pos += 3;
                    add(pos);
                    continue;
                }
            }
        }
        if (!(cpt == '\r' || cpt == '\n' || (fl & F_N))) {
            if ((fl & F_L) || (v.flags(pos + 1) & F_L)) {
                ++pos;
                while (v.flags(pos) & F_L) ++pos;
                add(pos);
                continue;
            }
        }
        if (fl & F_N) {
            size_t ini = pos;
            while (v.flags(pos) & F_N) {
                if (++pos - ini >= 3) {
                    add(pos);
                    ini = pos;
                }
            }
            add(pos);
            continue;
        }
        const uint16_t fl2 = (cpt == ' ') ? v.flags(pos + 1) : fl;
        if (!(fl2 & (F_WS | F_L | F_N)) && fl2) {
            pos += (cpt == ' ');
            for (;;) {
                const uint16_t f = v.flags(pos);
                if ((f & (F_WS | F_L | F_N)) || !f) break;
                ++pos;
            }
            uint32_t c2 = v.cpt(pos);
            while (c2 == '\r' || c2 == '\n') c2 = v.cpt(++pos);
            add(pos);
            continue;
        }
        size_t nws = 0;
        size_t last_rn_end = 0;
        while (v.flags(pos + nws) & F_WS) {
            const uint32_t c2 = v.cpt(pos + nws);
            if (c2 == '\r' || c2 == '\n') last_rn_end = pos + nws + 1;
            ++nws;
        }
        if (last_rn_end > 0) {
            pos = last_rn_end;
            add(pos);
            continue;
        }
        if (nws > 1 && v.cpt(pos + nws) != OUT_OF_RANGE) {
            pos += nws - 1;
            add(pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            add(pos);
            continue;
        }
        ++pos;
        add(pos);
    }
}

// Cuts a piece into maximal runs of code points that satisfy `in_class` (the matches of `[class]+`) and the gaps
// between them.
template <typename pred>
void split_runs(const piece_view & v, std::vector<size_t> & out, pred in_class) {
    size_t pos = v.start;
    while (pos < v.end) {
        const bool c = in_class(v.cpts[pos]);
        size_t e = pos + 1;
        while (e < v.end && in_class(v.cpts[e]) == c) ++e;
        out.push_back(e - pos);
        pos = e;
    }
}

// [0-9][0-9][0-9]: leftmost triples of ASCII digits; everything else stays as gap pieces.
void split_digit_triples(const piece_view & v, std::vector<size_t> & out) {
    auto dig = [&](size_t p) { return p < v.end && v.cpts[p] >= '0' && v.cpts[p] <= '9'; };
    size_t pos = v.start, gap = v.start;
    while (pos < v.end) {
        if (dig(pos) && dig(pos + 1) && dig(pos + 2)) {
            if (pos > gap) out.push_back(pos - gap);
            out.push_back(3);
            pos += 3;
            gap = pos;
        } else {
            ++pos;
        }
    }
    if (v.end > gap) out.push_back(v.end - gap);
}

bool is_default_punct(uint32_t c) {
    return (unicode_flags(c) & UNICODE_FLAG_PUNCT) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
           c == '^' || c == '~' || c == '|';
}

using split_fn = void (*)(const piece_view &, std::vector<size_t> &);

void apply_pass(const std::vector<uint32_t> & cpts, std::vector<size_t> & lens, split_fn fn) {
    std::vector<size_t> next;
    size_t start = 0;
    for (size_t len : lens) {
        piece_view v{cpts, start, start + len};
        fn(v, next);
        start += len;
    }
    lens.swap(next);
}

}  // namespace

std::vector<std::string> bpe_pre_split(const std::string & text, vocab_pre_type pre) {
    const std::vector<uint32_t> cpts = utf8_to_cpts(text);
    std::vector<size_t> lens;
    if (!cpts.empty()) lens.push_back(cpts.size());
    switch (pre) {
        case VOCAB_PRE_TYPE_GPT2:
            apply_pass(cpts, lens, split_gpt2);
            break;
        case VOCAB_PRE_TYPE_LLAMA3:
            apply_pass(cpts, lens, split_llama3);
            break;
        case VOCAB_PRE_TYPE_DEFAULT:
            // llama.cpp's default list: [\p{P}\$\+<=>\^~\|]+ ; the gpt2 rules ; \p{N}+ ; [0-9][0-9][0-9]
            apply_pass(cpts, lens,
                       [](const piece_view & v, std::vector<size_t> & o) { split_runs(v, o, is_default_punct); });
            apply_pass(cpts, lens, split_gpt2);
            apply_pass(cpts, lens, [](const piece_view & v, std::vector<size_t> & o) {
                split_runs(v, o, [](uint32_t c) { return (unicode_flags(c) & UNICODE_FLAG_NUMBER) != 0; });
            });
            apply_pass(cpts, lens, split_digit_triples);
            break;
    }
    std::vector<std::string> words;
    words.reserve(lens.size());
    size_t start = 0;
    for (size_t len : lens) {
        std::string w;
        for (size_t i = start; i < start + len; ++i) utf8_append(w, cpts[i]);
        words.push_back(std::move(w));
        start += len;
    }
    return words;
}

namespace {

struct bpe_symbol {
    int prev, next;
    size_t off, n;
};

struct bpe_bigram {
    int left, right;
    int rank;
    std::string text;
};

struct bpe_bigram_greater {
    bool operator()(const bpe_bigram & l, const bpe_bigram & r) const {
        return l.rank > r.rank || (l.rank == r.rank && l.left > r.left);
    }
};

}  // namespace

void bpe_tokenize(const vocab::impl & v, const std::string & text, std::vector<int32_t> & out) {
    const std::vector<std::string> words = bpe_pre_split(text, v.pre);
    for (const std::string & raw_word : words) {
        std::string word;
        for (unsigned char c : raw_word) word += byte_to_unicode(c);
        if (v.ignore_merges) {
            const int32_t whole = v.find(word);
            if (whole != TOKEN_NULL) {
                out.push_back(whole);
                continue;
            }
        }

        std::vector<bpe_symbol> symbols;
        size_t offset = 0;
        int index = 0;
        while (offset < word.size()) {
            const size_t n = std::min(word.size() - offset, utf8_len(static_cast<uint8_t>(word[offset])));
            symbols.push_back({index - 1, offset + n == word.size() ? -1 : index + 1, offset, n});
            offset += n;
            ++index;
        }
        std::priority_queue<bpe_bigram, std::vector<bpe_bigram>, bpe_bigram_greater> queue;
        auto add_bigram = [&](int left, int right) {
            if (left == -1 || right == -1) return;
            const std::string l = word.substr(symbols[left].off, symbols[left].n);
            const std::string r = word.substr(symbols[right].off, symbols[right].n);
            const int rank = v.bpe_rank(l, r);
            if (rank < 0) return;
            queue.push({left, right, rank, l + r});
        };
        for (int i = 1; i < static_cast<int>(symbols.size()); ++i) add_bigram(i - 1, i);
        while (!queue.empty()) {
            const bpe_bigram bg = queue.top();
            queue.pop();
            bpe_symbol & ls = symbols[bg.left];
            bpe_symbol & rs = symbols[bg.right];
            if (ls.n == 0 || rs.n == 0) continue;
            if (word.compare(ls.off, ls.n + rs.n, bg.text) != 0 || ls.n + rs.n != bg.text.size()) continue;  // stale
            ls.n += rs.n;
            rs.n = 0;
            ls.next = rs.next;
            if (rs.next >= 0) symbols[rs.next].prev = bg.left;
            add_bigram(ls.prev, bg.left);
            add_bigram(bg.left, ls.next);
        }
        for (const bpe_symbol & s : symbols) {
            if (s.n == 0) continue;
            const std::string str = word.substr(s.off, s.n);
            const int32_t id = v.find(str);
            if (id != TOKEN_NULL) {
                out.push_back(id);
                continue;
            }
            // llama.cpp's fallback: each byte of the mapped text on its own, where the vocabulary has it
            for (char c : str) {
                const int32_t b = v.find(std::string(1, c));
                if (b != TOKEN_NULL) out.push_back(b);
            }
        }
    }
}

}  // namespace spider
