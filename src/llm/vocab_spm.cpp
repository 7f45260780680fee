// SentencePiece-style (BPE-by-score) tokenization, the algorithm of llama.cpp's llm_tokenizer_spm: split the
// text into UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the vocabulary token with
// the best score (ties: leftmost), then emit each final symbol as its token, or re-split it along the merges that
// built it, or fall back to one <0xXX> byte token per byte.
#include <map>
#include <queue>

#include "llm/unicode.h"
#include "llm/vocab_impl.h"

namespace spider {

namespace {

struct spm_symbol {
    int prev;
    int next;
    size_t off;  // into the fragment text
    size_t n;    // 0 once merged into its left neighbour
};

struct spm_bigram {
    int left;
    int right;
    float score;
    size_t size;
};

struct spm_bigram_less {
    // priority_queue keeps the "largest" on top: higher score first, then smaller left index
    bool operator()(const spm_bigram & l, const spm_bigram & r) const {
        return l.score < r.score || (l.score == r.score && l.left > r.left);
    }
};

struct spm_session {
    const vocab::impl & v;
    const std::string & text;
    std::vector<spm_symbol> symbols;
    std::priority_queue<spm_bigram, std::vector<spm_bigram>, spm_bigram_less> queue;
    std::map<std::string, std::pair<int, int>> rev_merge;

    spm_session(const vocab::impl & v_, const std::string & t) : v(v_), text(t) {}

    void try_add_bigram(int left, int right) {
        if (left == -1 || right == -1) return;
        const std::string s = text.substr(symbols[left].off, symbols[left].n + symbols[right].n);
        const int32_t id = v.find(s);
        if (id == TOKEN_NULL) return;
        queue.push({left, right, v.score[id], s.size()});
        rev_merge[s] = {left, right};
    }

    void resegment(const spm_symbol & sym, std::vector<int32_t> & out) {
        const std::string s = text.substr(sym.off, sym.n);
        const int32_t id = v.find(s);
        if (id != TOKEN_NULL) {
            out.push_back(id);
            return;
        }
        auto it = rev_merge.find(s);
        if (it == rev_merge.end()) {
            for (size_t j = 0; j < sym.n; ++j) {
                const int32_t b = v.byte_to_token_spm(static_cast<uint8_t>(text[sym.off + j]));
                if (b != TOKEN_NULL) out.push_back(b);
            }
            return;
        }
        // copies: symbols is not resized during resegmentation, but keep the recursion independent of it
        const spm_symbol l = symbols[it->second.first];
        const spm_symbol r = symbols[it->second.second];
        resegment(l, out);
        resegment(r, out);
    }

    void run(std::vector<int32_t> & out) {
        int index = 0;
        size_t offs = 0;
        while (offs < text.size()) {
            spm_symbol sym;
            const size_t len = utf8_len(static_cast<uint8_t>(text[offs]));
            sym.off = offs;
            sym.n = std::min(len, text.size() - offs);
            offs += sym.n;
            sym.prev = index - 1;
            sym.next = offs == text.size() ? -1 : index + 1;
            ++index;
            symbols.push_back(sym);
        }
        for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add_bigram(i - 1, i);

        while (!queue.empty()) {
            const spm_bigram bg = queue.top();
            queue.pop();
            spm_symbol & ls = symbols[bg.left];
            spm_symbol & rs = symbols[bg.right];
            if (ls.n == 0 || rs.n == 0 || ls.n + rs.n != bg.size) continue;  // stale
            ls.n += rs.n;
            rs.n = 0;
            ls.next = rs.next;
            if (rs.next >= 0) symbols[rs.next].prev = bg.left;
            try_add_bigram(ls.prev, bg.left);
            try_add_bigram(bg.left, ls.next);
        }
        if (symbols.empty()) return;
        for (int i = 0; i != -1; i = symbols[i].next) resegment(symbols[i], out);
    }
};

}  // namespace

void spm_tokenize(const vocab::impl & v, const std::string & text, std::vector<int32_t> & out) {
    if (text.empty()) return;
    spm_session s(v, text);
    s.run(out);
}

}  // namespace spider
