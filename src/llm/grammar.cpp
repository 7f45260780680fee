// Grammar parser (GBNF-style text -> rules of elements) and the matcher (pushdown automaton over code points with
// interned states, cached byte transitions and a byte trie over token pieces). Format: docs/GRAMMAR.md.
#include "llm/grammar.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "llm/unicode.h"
#include "llm/vocab.h"

namespace spider {

// ============================================================================================== parser

struct grammar_parser {
    const std::string & src;
    grammar * g;
    std::string err;
    std::map<std::string, uint32_t> symbols;
    std::vector<bool> defined;
    std::vector<size_t> first_use;
    int depth = 0;          // nesting of ( ), bounded so hostile input cannot exhaust the stack
    size_t n_elements = 0;  // bounded so repetition counts cannot exhaust memory

    static constexpr int k_max_depth = 128;
    static constexpr size_t k_max_elements = 1000000;

    grammar_parser(const std::string & s, grammar * gr) : src(s), g(gr) {}

    bool fail(size_t at, const std::string & msg) {
        if (!err.empty()) return false;
        size_t line = 1, col = 1;
        for (size_t i = 0; i < at && i < src.size(); ++i) {
            if (src[i] == '\n') {
                ++line;
                col = 1;
            } else {
                ++col;
            }
        }
        err = std::to_string(line) + ":" + std::to_string(col) + ": " + msg;
        return false;
    }

    uint32_t symbol(const std::string & name, size_t at) {
        auto it = symbols.find(name);
        if (it != symbols.end()) return it->second;
        const uint32_t id = static_cast<uint32_t>(g->names_.size());
        symbols[name] = id;
        g->names_.push_back(name);
        g->rules_.emplace_back();
        defined.push_back(false);
        first_use.push_back(at);
        return id;
    }

    uint32_t new_rule(const std::string & base, size_t at) {
        std::string n;
        for (int k = static_cast<int>(g->names_.size());; ++k) {
            n = base + "_" + std::to_string(k);
            if (!symbols.count(n)) break;
        }
        uint32_t id = symbol(n, at);
        defined[id] = true;
        return id;
    }

    static bool is_name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    }

    size_t skip_space(size_t pos, bool newline_ok) {
        while (pos < src.size()) {
            const char c = src[pos];
            if (c == ' ' || c == '\t') {
                ++pos;
            } else if (c == '#') {
                while (pos < src.size() && src[pos] != '\n') ++pos;
            } else if (newline_ok && (c == '\n' || c == '\r')) {
                ++pos;
            } else {
                break;
            }
        }
        return pos;
    }

    bool parse_hex(size_t * pos, int n, uint32_t * out) {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
            if (*pos >= src.size()) return fail(*pos, "unexpected end of input in escape sequence");
            const char c = src[*pos];
            int d = (c >= '0' && c <= '9')   ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                             : -1;
            if (d < 0) return fail(*pos, std::string("expecting a hex digit, got '") + c + "'");
            v = v * 16 + d;
            ++*pos;
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return fail(*pos, "escape is not a valid code point");
        *out = v;
        return true;
    }

    // One character of a literal or class (escapes decoded, UTF-8 decoded).
    bool parse_char(size_t * pos, uint32_t * cp) {
        if (*pos >= src.size()) return fail(*pos, "unexpected end of input");
        if (src[*pos] == '\\') {
            const size_t at = *pos;
            ++*pos;
            if (*pos >= src.size()) return fail(at, "unexpected end of input after '\\'");
            const char e = src[(*pos)++];
            switch (e) {
                case 'n':
                    *cp = '\n';
                    return true;
                case 't':
                    *cp = '\t';
                    return true;
                case 'r':
                    *cp = '\r';
                    return true;
                case '0':
                    *cp = 0;
                    return true;
                case '\\':
                case '"':
                case '[':
                case ']':
                case '-':
                case '^':
                case '\'':
                    *cp = static_cast<uint8_t>(e);
                    return true;
                case 'x':
                    return parse_hex(pos, 2, cp);
                case 'u':
                    return parse_hex(pos, 4, cp);
                case 'U':
                    return parse_hex(pos, 8, cp);
                default:
                    return fail(at, std::string("unknown escape '\\") + e + "'");
            }
        }
        const size_t at = *pos;
        *cp = utf8_decode(src, pos);
        if (*cp == UNICODE_INVALID && !(src.compare(at, 3, "\xEF\xBF\xBD") == 0)) {
            return fail(at, "invalid UTF-8 in grammar text");
        }
        return true;
    }

    bool parse_literal(size_t * pos, std::string * out) {
        // *pos at the opening quote
        const size_t open = *pos;
        ++*pos;
        while (true) {
            if (*pos >= src.size() || src[*pos] == '\n') return fail(open, "unterminated string literal");
            if (src[*pos] == '"') break;
            uint32_t cp;
            if (!parse_char(pos, &cp)) return false;
            utf8_append(*out, cp);
        }
        ++*pos;
        return true;
    }

    bool handle_repetition(std::vector<grammar_elem> & out, size_t last_start, int min, int max, size_t at,
                           const std::string & rule_name) {
        if (last_start >= out.size()) return fail(at, "expecting an item before the repetition operator");
        if (min > 1000 || max > 1000) return fail(at, "repetition count larger than 1000");
        const std::vector<grammar_elem> item(out.begin() + last_start, out.end());
        const size_t cost = item.size() * (static_cast<size_t>(std::max(min, max)) + 1) + 4;
        n_elements += cost;
        if (n_elements > k_max_elements) return fail(at, "grammar too large (more than 1000000 elements)");
        out.resize(last_start);
        for (int k = 0; k < min; ++k) out.insert(out.end(), item.begin(), item.end());
        if (max < 0) {
            // star ::= item star | (empty)
            const uint32_t r = new_rule(rule_name + "_star", at);
            std::vector<grammar_elem> & body = g->rules_[r];
            body = item;
            body.push_back({GRAMMAR_RULE_REF, r});
            body.push_back({GRAMMAR_ALT, 0});
            body.push_back({GRAMMAR_END, 0});
            out.push_back({GRAMMAR_RULE_REF, r});
        } else if (max > min) {
            // nested optionals: opt_k ::= item opt_{k+1} | (empty)
            uint32_t next = UINT32_MAX;
            for (int k = 0; k < max - min; ++k) {
                const uint32_t r = new_rule(rule_name + "_opt", at);
                std::vector<grammar_elem> body = item;
                if (next != UINT32_MAX) body.push_back({GRAMMAR_RULE_REF, next});
                body.push_back({GRAMMAR_ALT, 0});
                body.push_back({GRAMMAR_END, 0});
                g->rules_[r] = body;
                next = r;
            }
            out.push_back({GRAMMAR_RULE_REF, next});
        }
        return true;
    }

    bool parse_int(size_t * pos, int * v) {
        const size_t start = *pos;
        long long x = 0;
        while (*pos < src.size() && src[*pos] >= '0' && src[*pos] <= '9') {
            x = x * 10 + (src[*pos] - '0');
            if (x > 100000) return fail(start, "number too large");
            ++*pos;
        }
        if (*pos == start) return fail(start, "expecting a number");
        *v = static_cast<int>(x);
        return true;
    }

    bool parse_sequence(size_t * ppos, const std::string & rule_name, std::vector<grammar_elem> & out, bool nested) {
        size_t pos = *ppos;
        size_t last_start = out.size();
        while (pos < src.size()) {
            const char c = src[pos];
            if (c == '"') {
                std::string lit;
                if (!parse_literal(&pos, &lit)) return false;
                last_start = out.size();
                if (!lit.empty()) {
                    out.push_back({GRAMMAR_LITERAL, static_cast<uint32_t>(g->literals_.size())});
                    g->literals_.push_back(lit);
                }
            } else if (c == '@') {
                const size_t at = pos;
                ++pos;
                if (pos >= src.size() || src[pos] != '"') return fail(at, "expecting a quoted token text after '@'");
                std::string lit;
                if (!parse_literal(&pos, &lit)) return false;
                if (lit.empty()) return fail(at, "empty special-token name");
                last_start = out.size();
                out.push_back({GRAMMAR_TOKEN, static_cast<uint32_t>(g->literals_.size())});
                g->literals_.push_back(lit);
            } else if (c == '[') {
                const size_t open = pos;
                ++pos;
                last_start = out.size();
                grammar_elem_type start_type = GRAMMAR_CHAR;
                if (pos < src.size() && src[pos] == '^') {
                    ++pos;
                    start_type = GRAMMAR_CHAR_NOT;
                }
                bool first = true;
                while (true) {
                    if (pos >= src.size() || src[pos] == '\n') return fail(open, "unterminated character class");
                    if (src[pos] == ']') break;
                    uint32_t lo;
                    if (!parse_char(&pos, &lo)) return false;
                    out.push_back({first ? start_type : GRAMMAR_CHAR_ALT, lo});
                    first = false;
                    if (pos + 1 < src.size() && src[pos] == '-' && src[pos + 1] != ']') {
                        ++pos;
                        uint32_t hi;
                        const size_t at = pos;
                        if (!parse_char(&pos, &hi)) return false;
                        if (hi < lo) return fail(at, "character range is reversed");
                        out.push_back({GRAMMAR_CHAR_RNG_UPPER, hi});
                    }
                }
                if (first) {
                    // [] matches nothing, [^] anything: written as a class that never / always matches
                    if (start_type == GRAMMAR_CHAR_NOT) {
                        out.push_back({GRAMMAR_CHAR_ANY, 0});
                    } else {
                        return fail(open, "empty character class");
                    }
                }
                ++pos;
            } else if (is_name_char(c)) {
                const size_t at = pos;
                while (pos < src.size() && is_name_char(src[pos])) ++pos;
                const std::string name = src.substr(at, pos - at);
                // a name followed by ::= starts the next rule: this sequence is over
                size_t look = skip_space(pos, false);
                if (src.compare(look, 3, "::=") == 0) {
                    pos = at;
                    break;
                }
                last_start = out.size();
                out.push_back({GRAMMAR_RULE_REF, symbol(name, at)});
            } else if (c == '(') {
                const size_t open = pos;
                if (++depth > k_max_depth) return fail(open, "parentheses nested deeper than 128");
                pos = skip_space(pos + 1, true);
                const uint32_t sub = new_rule(rule_name, open);
                std::vector<grammar_elem> body;
                if (!parse_alternates(&pos, rule_name, body, true)) return false;
                g->rules_[sub] = body;
                if (pos >= src.size() || src[pos] != ')') return fail(open, "expecting ')' to close this '('");
                ++pos;
                --depth;
                last_start = out.size();
                out.push_back({GRAMMAR_RULE_REF, sub});
            } else if (c == '.') {
                last_start = out.size();
                out.push_back({GRAMMAR_CHAR_ANY, 0});
                ++pos;
            } else if (c == '*' || c == '+' || c == '?') {
                if (!handle_repetition(out, last_start, c == '+' ? 1 : 0, c == '?' ? 1 : -1, pos, rule_name)) {
                    return false;
                }
                ++pos;
            } else if (c == '{') {
                const size_t at = pos;
                pos = skip_space(pos + 1, false);
                int mn = 0, mx = -1;
                if (!parse_int(&pos, &mn)) return false;
                pos = skip_space(pos, false);
                if (pos < src.size() && src[pos] == ',') {
                    pos = skip_space(pos + 1, false);
                    if (pos < src.size() && src[pos] != '}') {
                        if (!parse_int(&pos, &mx)) return false;
                        if (mx < mn) return fail(at, "repetition {m,n} with n < m");
                    }
                } else {
                    mx = mn;
                }
                pos = skip_space(pos, false);
                if (pos >= src.size() || src[pos] != '}') return fail(at, "expecting '}'");
                ++pos;
                if (!handle_repetition(out, last_start, mn, mx, at, rule_name)) return false;
            } else {
                break;
            }
            pos = skip_space(pos, nested);
        }
        *ppos = pos;
        return true;
    }

    bool parse_alternates(size_t * pos, const std::string & rule_name, std::vector<grammar_elem> & out, bool nested) {
        if (!parse_sequence(pos, rule_name, out, nested)) return false;
        while (*pos < src.size() && src[*pos] == '|') {
            out.push_back({GRAMMAR_ALT, 0});
            *pos = skip_space(*pos + 1, true);
            if (!parse_sequence(pos, rule_name, out, nested)) return false;
        }
        out.push_back({GRAMMAR_END, 0});
        return true;
    }

    bool parse_rule(size_t * pos) {
        const size_t at = *pos;
        size_t p = *pos;
        while (p < src.size() && is_name_char(src[p])) ++p;
        if (p == at) return fail(at, std::string("expecting a rule name, got '") + src[at] + "'");
        const std::string name = src.substr(at, p - at);
        p = skip_space(p, false);
        if (src.compare(p, 3, "::=") != 0) return fail(p, "expecting '::=' after rule name '" + name + "'");
        p = skip_space(p + 3, true);
        const uint32_t id = symbol(name, at);
        if (defined[id]) return fail(at, "rule '" + name + "' is defined twice");
        defined[id] = true;
        std::vector<grammar_elem> body;
        if (!parse_alternates(&p, name, body, false)) return false;
        g->rules_[id] = body;
        // the rule ends at a newline (or the end of the input)
        if (p < src.size() && src[p] != '\n' && src[p] != '\r') {
            return fail(p, std::string("unexpected '") + src[p] + "' in rule '" + name + "'");
        }
        *pos = p;
        return true;
    }

    bool parse_all() {
        size_t pos = skip_space(0, true);
        while (pos < src.size()) {
            if (!parse_rule(&pos)) return false;
            pos = skip_space(pos, true);
        }
        for (size_t i = 0; i < defined.size(); ++i) {
            if (!defined[i]) return fail(first_use[i], "undefined rule '" + g->names_[i] + "'");
        }
        auto it = symbols.find("root");
        if (it == symbols.end()) return fail(src.size(), "the grammar has no 'root' rule");
        g->root_ = it->second;
        return check_left_recursion();
    }

    // A rule that can reach itself without consuming input would loop forever in the matcher: reject it.
    bool check_left_recursion() {
        const size_t n = g->rules_.size();
        std::vector<bool> nullable(n, false);
        for (bool changed = true; changed;) {
            changed = false;
            for (size_t r = 0; r < n; ++r) {
                if (nullable[r]) continue;
                const auto & body = g->rules_[r];
                bool alt_nullable = true;
                for (const grammar_elem & e : body) {
                    if (e.type == GRAMMAR_ALT || e.type == GRAMMAR_END) {
                        if (alt_nullable) {
                            nullable[r] = true;
                            changed = true;
                            break;
                        }
                        alt_nullable = true;
                        continue;
                    }
                    if (e.type == GRAMMAR_RULE_REF) {
                        if (!nullable[e.value]) alt_nullable = false;
                    } else if (e.type != GRAMMAR_CHAR_RNG_UPPER && e.type != GRAMMAR_CHAR_ALT) {
                        alt_nullable = false;
                    }
                }
            }
        }
        // edges r -> s when s can be the first thing r matches
        std::vector<std::vector<uint32_t>> first(n);
        for (size_t r = 0; r < n; ++r) {
            bool prefix_nullable = true;
            for (const grammar_elem & e : g->rules_[r]) {
                if (e.type == GRAMMAR_ALT || e.type == GRAMMAR_END) {
                    prefix_nullable = true;
                    continue;
                }
                if (!prefix_nullable) continue;
                if (e.type == GRAMMAR_RULE_REF) {
                    first[r].push_back(e.value);
                    if (!nullable[e.value]) prefix_nullable = false;
                } else if (e.type != GRAMMAR_CHAR_RNG_UPPER && e.type != GRAMMAR_CHAR_ALT) {
                    prefix_nullable = false;
                }
            }
        }
        std::vector<int> color(n, 0);  // 0 new, 1 on path, 2 done
        std::vector<std::pair<uint32_t, size_t>> st;
        for (size_t s = 0; s < n; ++s) {
            if (color[s]) continue;
            st.push_back({static_cast<uint32_t>(s), 0});
            color[s] = 1;
            while (!st.empty()) {
                auto & top = st.back();
                if (top.second < first[top.first].size()) {
                    const uint32_t nx = first[top.first][top.second++];
                    if (color[nx] == 1) return fail(first_use[nx], "rule '" + g->names_[nx] + "' is left-recursive");
                    if (color[nx] == 0) {
                        color[nx] = 1;
                        st.push_back({nx, 0});
                    }
                } else {
                    color[top.first] = 2;
                    st.pop_back();
                }
            }
        }
        return true;
    }
};

std::unique_ptr<grammar> grammar::parse(const std::string & text, std::string * err) {
    std::unique_ptr<grammar> g(new grammar);
    grammar_parser p(text, g.get());
    if (!p.parse_all()) {
        if (err) *err = "[grammar] " + p.err;
        return nullptr;
    }
    return g;
}

// ============================================================================================== vocab side

void grammar_vocab::build_trie() {
    std::vector<int32_t> order;
    for (int32_t i = 0; i < n_tokens; ++i) {
        if (!pieces[i].empty()) order.push_back(i);
    }
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return pieces[a] < pieces[b]; });
    node_byte.clear();
    node_depth.clear();
    node_end.clear();
    node_tok_begin.clear();
    trie_tokens.clear();
    std::vector<int32_t> path;  // node index at each depth (path[d-1] = node of depth d)
    std::string prev;
    for (int32_t id : order) {
        const std::string & s = pieces[id];
        if (s.size() > 255) continue;  // depth is stored in a byte; no real token is this long
        size_t common = 0;
        while (common < prev.size() && common < s.size() && prev[common] == s[common] && common < path.size()) ++common;
        // close nodes deeper than the common prefix
        while (path.size() > common) {
            node_end[path.back()] = static_cast<int32_t>(node_byte.size());
            path.pop_back();
        }
        for (size_t d = common; d < s.size(); ++d) {
            path.push_back(static_cast<int32_t>(node_byte.size()));
            node_byte.push_back(static_cast<uint8_t>(s[d]));
            node_depth.push_back(static_cast<uint8_t>(d + 1));
            node_end.push_back(0);
            node_tok_begin.push_back(static_cast<int32_t>(trie_tokens.size()));
        }
        // tokens are appended in preorder, so the tokens of node path.back() are contiguous
        trie_tokens.push_back(id);
        prev = s;
    }
    while (!path.empty()) {
        node_end[path.back()] = static_cast<int32_t>(node_byte.size());
        path.pop_back();
    }
    node_tok_begin.push_back(static_cast<int32_t>(trie_tokens.size()));
}

std::shared_ptr<const grammar_vocab> grammar_vocab::from_pieces(const std::vector<std::string> & pieces,
                                                                const std::vector<uint8_t> & specials,
                                                                const std::vector<int32_t> & eog) {
    auto gv = std::make_shared<grammar_vocab>();
    gv->n_tokens = static_cast<int32_t>(pieces.size());
    gv->pieces.resize(pieces.size());
    gv->literal_token.assign(pieces.size(), 0);
    for (size_t i = 0; i < pieces.size(); ++i) {
        if (i < specials.size() && specials[i]) {
            gv->named[pieces[i]] = static_cast<int32_t>(i);
            gv->literal_token[i] = 1;
        } else {
            gv->pieces[i] = pieces[i];
        }
    }
    gv->eog = eog;
    gv->build_trie();
    return gv;
}

std::shared_ptr<const grammar_vocab> grammar_vocab::from_vocab(const vocab & v,
                                                               const std::vector<std::string> & extra_special) {
    auto gv = std::make_shared<grammar_vocab>();
    const int32_t n_base = v.n_tokens();
    gv->n_tokens = n_base + static_cast<int32_t>(extra_special.size());
    gv->pieces.resize(gv->n_tokens);
    gv->literal_token.assign(gv->n_tokens, 0);
    for (int32_t i = 0; i < n_base; ++i) {
        switch (v.get_token_type(i)) {
            case TOKEN_TYPE_NORMAL:
            case TOKEN_TYPE_BYTE:
                gv->pieces[i] = v.token_to_piece(i, true);
                break;
            case TOKEN_TYPE_USER_DEFINED:
                // text-like (gemma's whitespace runs): both text and nameable
                gv->pieces[i] = v.token_to_piece(i, true);
                gv->named[v.token_text(i)] = i;
                break;
            case TOKEN_TYPE_CONTROL:
            case TOKEN_TYPE_UNKNOWN:
                gv->named[v.token_text(i)] = i;
                gv->literal_token[i] = 1;
                break;
            default:
                break;  // unused / undefined: never generated
        }
    }
    for (size_t k = 0; k < extra_special.size(); ++k) {
        const int32_t id = n_base + static_cast<int32_t>(k);
        gv->named[extra_special[k]] = id;
        gv->literal_token[id] = 1;
    }
    for (int32_t id : {v.eos(), v.eot()}) {
        if (id >= 0) gv->eog.push_back(id);
    }
    gv->build_trie();
    return gv;
}

// ============================================================================================== matcher

namespace {
using gstack = std::vector<uint32_t>;  // positions into the flattened element array; back() is next
using gset = std::vector<gstack>;      // sorted, unique
}  // namespace

struct grammar_matcher::impl {
    std::shared_ptr<const grammar_vocab> gv;
    std::vector<grammar_elem> E;  // all rules, flattened; TOKEN values are token ids here
    std::vector<uint32_t> rule_start;
    uint32_t root = 0;

    std::map<gset, int32_t> set_ids;
    std::vector<gset> sets;
    struct dstate {
        int32_t set;
        std::string pending;  // bytes of an unfinished UTF-8 sequence
    };
    std::map<std::pair<int32_t, std::string>, int32_t> dstate_ids;
    std::vector<dstate> dstates;
    std::vector<std::array<int32_t, 256>> trans;  // -2 unknown, -1 dead
    std::map<int32_t, std::vector<uint8_t>> mask_cache;
    static constexpr size_t k_max_stacks = 4096;
    static constexpr size_t k_max_expansions = 65536;
    mutable bool overflow = false;
    int32_t initial = -1;
    int32_t cur = -1;

    bool end_of_seq(uint32_t pos) const { return E[pos].type == GRAMMAR_END || E[pos].type == GRAMMAR_ALT; }

    // Expands rule references at the top of st until every resulting stack has a terminal (or nothing) on top.
    // seen: stacks already expanded in this operation; ambiguous nullable rules would otherwise reach the same
    // stack along exponentially many paths.
    void advance(const gstack & st, gset & out, std::set<gstack> & seen) const {
        // highly ambiguous grammars (nested repetitions of repetitions) can need exponentially many stacks:
        // beyond these bounds the step fails instead of running away
        if (seen.size() > k_max_expansions || out.size() > k_max_stacks) {
            overflow = true;
            return;
        }
        if (!seen.insert(st).second) return;
        if (st.empty()) {
            out.push_back(st);
            return;
        }
        const uint32_t pos = st.back();
        const grammar_elem & e = E[pos];
        if (e.type != GRAMMAR_RULE_REF) {
            out.push_back(st);
            return;
        }
        uint32_t sub = rule_start[e.value];
        while (true) {
            gstack ns(st.begin(), st.end() - 1);
            if (!end_of_seq(pos + 1)) ns.push_back(pos + 1);
            if (!end_of_seq(sub)) ns.push_back(sub);
            advance(ns, out, seen);
            while (!end_of_seq(sub)) ++sub;
            if (E[sub].type == GRAMMAR_ALT) {
                ++sub;
            } else {
                break;
            }
        }
    }

    int32_t intern_set(gset s) {
        std::sort(s.begin(), s.end());
        s.erase(std::unique(s.begin(), s.end()), s.end());
        if (s.empty()) return -1;
        auto it = set_ids.find(s);
        if (it != set_ids.end()) return it->second;
        const int32_t id = static_cast<int32_t>(sets.size());
        set_ids.emplace(s, id);
        sets.push_back(std::move(s));
        return id;
    }

    int32_t intern_dstate(int32_t set, const std::string & pending) {
        auto key = std::make_pair(set, pending);
        auto it = dstate_ids.find(key);
        if (it != dstate_ids.end()) return it->second;
        const int32_t id = static_cast<int32_t>(dstates.size());
        dstate_ids.emplace(key, id);
        dstates.push_back({set, pending});
        std::array<int32_t, 256> t;
        t.fill(-2);
        trans.push_back(t);
        return id;
    }

    // Does the class at pos accept cp? *next: the element after the class.
    bool match_char(uint32_t pos, uint32_t cp, uint32_t * next) const {
        if (E[pos].type == GRAMMAR_CHAR_ANY) {
            *next = pos + 1;
            return true;
        }
        const bool positive = E[pos].type == GRAMMAR_CHAR;
        bool found = false;
        do {
            if (E[pos + 1].type == GRAMMAR_CHAR_RNG_UPPER) {
                found = found || (E[pos].value <= cp && cp <= E[pos + 1].value);
                pos += 2;
            } else {
                found = found || E[pos].value == cp;
                pos += 1;
            }
        } while (E[pos].type == GRAMMAR_CHAR_ALT);
        *next = pos;
        return found == positive;
    }

    // Could the class at pos accept some code point in [lo, hi]? (for unfinished UTF-8 sequences)
    bool match_range(uint32_t pos, uint32_t lo, uint32_t hi) const {
        if (E[pos].type == GRAMMAR_CHAR_ANY) return true;
        const bool positive = E[pos].type == GRAMMAR_CHAR;
        do {
            uint32_t a = E[pos].value, b = a;
            if (E[pos + 1].type == GRAMMAR_CHAR_RNG_UPPER) {
                b = E[pos + 1].value;
                pos += 2;
            } else {
                pos += 1;
            }
            if (positive && a <= hi && b >= lo) return true;
            if (!positive && a <= lo && b >= hi) return false;  // everything in range excluded
        } while (E[pos].type == GRAMMAR_CHAR_ALT);
        return !positive;
    }

    bool is_char_elem(uint32_t pos) const {
        const auto t = E[pos].type;
        return t == GRAMMAR_CHAR || t == GRAMMAR_CHAR_NOT || t == GRAMMAR_CHAR_ANY;
    }

    int32_t accept_cp(int32_t set, uint32_t cp) {
        gset out;
        std::set<gstack> seen;
        overflow = false;
        for (const gstack & st : sets[set]) {
            if (st.empty() || !is_char_elem(st.back())) continue;
            uint32_t next;
            if (!match_char(st.back(), cp, &next)) continue;
            gstack ns(st.begin(), st.end() - 1);
            if (!end_of_seq(next)) ns.push_back(next);
            advance(ns, out, seen);
        }
        if (overflow) return -1;
        return intern_set(std::move(out));
    }

    int32_t accept_named(int32_t set, int32_t token) {
        gset out;
        std::set<gstack> seen;
        overflow = false;
        for (const gstack & st : sets[set]) {
            if (st.empty() || E[st.back()].type != GRAMMAR_TOKEN || static_cast<int32_t>(E[st.back()].value) != token) {
                continue;
            }
            gstack ns(st.begin(), st.end() - 1);
            if (!end_of_seq(st.back() + 1)) ns.push_back(st.back() + 1);
            advance(ns, out, seen);
        }
        if (overflow) return -1;
        return intern_set(std::move(out));
    }

    int32_t step(int32_t d, uint8_t b) {
        int32_t & slot = trans[d][b];
        if (slot != -2) return slot;
        const int32_t set = dstates[d].set;
        std::string pend = dstates[d].pending;
        pend += static_cast<char>(b);
        const uint8_t lead = static_cast<uint8_t>(pend[0]);
        size_t need = 0;
        if (lead < 0x80)
            need = 1;
        else if (lead >= 0xC2 && lead <= 0xDF)
            need = 2;
        else if (lead >= 0xE0 && lead <= 0xEF)
            need = 3;
        else if (lead >= 0xF0 && lead <= 0xF4)
            need = 4;
        int32_t result = -1;
        if (need == 0 || (pend.size() > 1 && (b & 0xC0) != 0x80)) {
            result = -1;  // not UTF-8
        } else if (pend.size() < need) {
            // unfinished: alive if some stack could take a code point with this prefix
            uint32_t lo = lead & (0xFF >> (need + 1)), hi = lo;
            for (size_t k = 1; k < need; ++k) {
                const uint32_t c = k < pend.size() ? (static_cast<uint8_t>(pend[k]) & 0x3F) : 0;
                lo = (lo << 6) | (k < pend.size() ? c : 0x00);
                hi = (hi << 6) | (k < pend.size() ? c : 0x3F);
            }
            bool alive = false;
            for (const gstack & st : sets[set]) {
                if (!st.empty() && is_char_elem(st.back()) && match_range(st.back(), lo, hi)) {
                    alive = true;
                    break;
                }
            }
            result = alive ? intern_dstate(set, pend) : -1;
        } else {
            size_t p = 0;
            const uint32_t cp = utf8_decode(pend, &p);
            if (p != pend.size() || (cp == UNICODE_INVALID && pend != "\xEF\xBF\xBD")) {
                result = -1;
            } else {
                const int32_t ns = accept_cp(set, cp);
                result = ns < 0 ? -1 : intern_dstate(ns, "");
            }
        }
        trans[d][b] = result;  // (slot may have moved if trans grew)
        return result;
    }

    int32_t walk(int32_t d, const std::string & bytes) {
        for (unsigned char c : bytes) {
            d = step(d, c);
            if (d < 0) return -1;
        }
        return d;
    }

    bool can_end_at(int32_t d) const {
        if (d < 0 || !dstates[d].pending.empty()) return false;
        for (const gstack & st : sets[dstates[d].set]) {
            if (st.empty()) return true;
        }
        return false;
    }

    bool is_eog(int32_t t) const { return gv && std::find(gv->eog.begin(), gv->eog.end(), t) != gv->eog.end(); }

    // The state after token t, or -1.
    int32_t after_token(int32_t d, int32_t t) {
        if (!gv || t < 0 || t >= gv->n_tokens) return -1;
        int32_t named_set = -1;
        if (dstates[d].pending.empty()) named_set = accept_named(dstates[d].set, t);
        int32_t text_state = -1;
        if (t < static_cast<int32_t>(gv->pieces.size()) && !gv->pieces[t].empty()) text_state = walk(d, gv->pieces[t]);
        if (named_set >= 0 && text_state >= 0 && dstates[text_state].pending.empty()) {
            gset u = sets[named_set];
            u.insert(u.end(), sets[dstates[text_state].set].begin(), sets[dstates[text_state].set].end());
            return intern_dstate(intern_set(std::move(u)), "");
        }
        if (named_set >= 0) return intern_dstate(named_set, "");
        return text_state;
    }
};

grammar_matcher::grammar_matcher() : p_(new impl) {}
grammar_matcher::~grammar_matcher() = default;

std::unique_ptr<grammar_matcher> grammar_matcher::create(const grammar & g, std::shared_ptr<const grammar_vocab> gv,
                                                         std::string * err) {
    std::unique_ptr<grammar_matcher> m(new grammar_matcher);
    impl & p = *m->p_;
    p.gv = gv;
    const auto & rules = g.rules();
    for (size_t r = 0; r < rules.size(); ++r) {
        p.rule_start.push_back(static_cast<uint32_t>(p.E.size()));
        for (const grammar_elem & e : rules[r]) {
            if (e.type == GRAMMAR_LITERAL || e.type == GRAMMAR_TOKEN) {
                const std::string & lit = g.literals()[e.value];
                int32_t tok = -1;
                if (gv) {
                    auto it = gv->named.find(lit);
                    if (it != gv->named.end() && (e.type == GRAMMAR_TOKEN || gv->literal_token[it->second])) {
                        tok = it->second;
                    }
                    if (e.type == GRAMMAR_TOKEN && tok < 0) {
                        if (err) *err = "[grammar] @\"" + lit + "\" names no special token of the vocabulary";
                        return nullptr;
                    }
                }
                if (tok >= 0) {
                    p.E.push_back({GRAMMAR_TOKEN, static_cast<uint32_t>(tok)});
                } else {
                    for (uint32_t cp : utf8_to_cpts(lit)) p.E.push_back({GRAMMAR_CHAR, cp});
                }
            } else {
                p.E.push_back(e);
            }
        }
    }
    p.root = g.root();
    // initial state: the root rule expanded
    gset init;
    std::set<gstack> seen;
    const uint32_t rs = p.rule_start[p.root];
    uint32_t sub = rs;
    while (true) {
        gstack st;
        if (!p.end_of_seq(sub)) st.push_back(sub);
        p.advance(st, init, seen);
        while (!p.end_of_seq(sub)) ++sub;
        if (p.E[sub].type == GRAMMAR_ALT) {
            ++sub;
        } else {
            break;
        }
    }
    if (p.overflow) {
        if (err) *err = "[grammar] the grammar is too ambiguous (its start needs more than 4096 parse stacks)";
        return nullptr;
    }
    const int32_t set = p.intern_set(std::move(init));
    if (set < 0) {
        if (err) *err = "[grammar] the root rule matches nothing";
        return nullptr;
    }
    p.initial = p.intern_dstate(set, "");
    p.cur = p.initial;
    return m;
}

void grammar_matcher::allowed_tokens(std::vector<uint8_t> * mask) {
    impl & p = *p_;
    const int32_t n = p.gv ? p.gv->n_tokens : 0;
    auto hit = p.mask_cache.find(p.cur);
    if (hit != p.mask_cache.end()) {
        *mask = hit->second;
        return;
    }
    mask->assign(n, 0);
    if (!p.gv) return;
    const grammar_vocab & gv = *p.gv;
    const impl::dstate ds = p.dstates[p.cur];
    if (ds.pending.empty()) {
        for (const gstack & st : p.sets[ds.set]) {
            if (!st.empty() && p.E[st.back()].type == GRAMMAR_TOKEN) (*mask)[p.E[st.back()].value] = 1;
        }
        if (p.can_end_at(p.cur)) {
            for (int32_t t : gv.eog) {
                if (t >= 0 && t < n) (*mask)[t] = 1;
            }
        }
    }
    // one preorder pass over the trie, skipping dead subtrees
    int32_t st_at_depth[257];
    st_at_depth[0] = p.cur;
    const int32_t n_nodes = static_cast<int32_t>(gv.node_byte.size());
    for (int32_t i = 0; i < n_nodes;) {
        const int d = gv.node_depth[i];
        const int32_t nx = p.step(st_at_depth[d - 1], gv.node_byte[i]);
        if (nx < 0) {
            i = gv.node_end[i];
            continue;
        }
        st_at_depth[d] = nx;
        for (int32_t k = gv.node_tok_begin[i]; k < gv.node_tok_begin[i + 1]; ++k) (*mask)[gv.trie_tokens[k]] = 1;
        ++i;
    }
    if (p.mask_cache.size() >= 32) p.mask_cache.clear();
    p.mask_cache[p.cur] = *mask;
}

bool grammar_matcher::is_allowed(int32_t token) {
    impl & p = *p_;
    if (p.is_eog(token)) return p.can_end_at(p.cur);
    return p.after_token(p.cur, token) >= 0;
}

bool grammar_matcher::accept_token(int32_t token, std::string * err) {
    impl & p = *p_;
    if (p.is_eog(token)) {
        if (p.can_end_at(p.cur)) return true;
        if (err) *err = "[grammar] end of generation before the grammar is complete";
        return false;
    }
    const int32_t nx = p.after_token(p.cur, token);
    if (nx < 0) {
        if (err) *err = "[grammar] token " + std::to_string(token) + " is not allowed here";
        return false;
    }
    p.cur = nx;
    return true;
}

bool grammar_matcher::accept_text(const std::string & bytes) {
    impl & p = *p_;
    const int32_t nx = p.walk(p.cur, bytes);
    if (nx < 0) return false;
    p.cur = nx;
    return true;
}

bool grammar_matcher::can_end() const {
    return p_->can_end_at(p_->cur);
}

bool grammar_matcher::is_dead() const {
    const impl & p = *p_;
    if (p.can_end_at(p.cur)) return false;
    for (const gstack & st : p.sets[p.dstates[p.cur].set]) {
        if (!st.empty()) return false;
    }
    return true;
}

void grammar_matcher::reset() {
    p_->cur = p_->initial;
}

size_t grammar_matcher::n_states() const {
    return p_->dstates.size();
}

bool grammar_accepts(const grammar & g, const std::string & text) {
    auto m = grammar_matcher::create(g, nullptr, nullptr);
    if (!m) return false;
    return m->accept_text(text) && m->can_end();
}

}  // namespace spider
