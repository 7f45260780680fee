// Grammar-constrained decoding. A GBNF-style grammar (docs/GRAMMAR.md: rules, alternation, sequences, literals,
// character classes, grouping, * + ? {m,n}, comments, and @"..." for special tokens) is parsed once into an
// immutable `grammar`; a `grammar_matcher` tracks one generation: which tokens may come next (a mask over the
// vocabulary) and advancing by an accepted token.
//
// Matching runs on Unicode code points with a pushdown automaton (a set of rule stacks, as in llama.cpp's grammar
// engine). For speed on large vocabularies, token pieces sit in a byte trie (grammar_vocab) and automaton states
// (stack set + pending UTF-8 bytes) are interned with cached byte transitions, so a mask costs one trie walk that
// skips every subtree the grammar rejects, and repeated states reuse their mask.
//
//   std::string err;
//   auto g = spider::grammar::parse("root ::= \"yes\" | \"no\"", &err);
//   auto gv = spider::grammar_vocab::from_vocab(vocab);
//   auto m = spider::grammar_matcher::create(*g, gv, &err);
//   std::vector<uint8_t> mask;
//   m->allowed_tokens(&mask);            // feed to sampler::sample(logits, n, mask.data())
//   m->accept_token(tok, &err);
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace spider {

class vocab;

enum grammar_elem_type : uint8_t {
    GRAMMAR_END = 0,             // end of a rule
    GRAMMAR_ALT = 1,             // start of the next alternative
    GRAMMAR_RULE_REF = 2,        // value: rule index
    GRAMMAR_CHAR = 3,            // value: code point; starts a class (followed by RNG_UPPER / CHAR_ALT)
    GRAMMAR_CHAR_NOT = 4,        // negated class start
    GRAMMAR_CHAR_RNG_UPPER = 5,  // value: upper bound of a range whose lower bound is the previous element
    GRAMMAR_CHAR_ALT = 6,        // value: another code point of the class
    GRAMMAR_CHAR_ANY = 7,        // `.`: any code point
    GRAMMAR_TOKEN = 8,           // value: literal index; a special token named by @"text" (bound to an id later)
    GRAMMAR_LITERAL = 9,         // value: literal index; a quoted string (text, or one special token when bound)
};

struct grammar_elem {
    grammar_elem_type type;
    uint32_t value;
};

class grammar {
public:
    // Parses grammar text. Errors: "line:col: message". The start rule is `root`.
    static std::unique_ptr<grammar> parse(const std::string & text, std::string * err);

    const std::vector<std::vector<grammar_elem>> & rules() const { return rules_; }
    const std::vector<std::string> & rule_names() const { return names_; }
    const std::vector<std::string> & literals() const { return literals_; }  // UTF-8
    uint32_t root() const { return root_; }

private:
    friend struct grammar_parser;
    std::vector<std::vector<grammar_elem>> rules_;
    std::vector<std::string> names_;
    std::vector<std::string> literals_;
    uint32_t root_ = 0;
};

// What constrained decoding needs to know about a vocabulary, precomputed once per model and shared by matchers.
struct grammar_vocab {
    int32_t n_tokens = 0;
    std::vector<std::string> pieces;                 // decoded bytes of each text token ("" = not text)
    std::unordered_map<std::string, int32_t> named;  // special tokens by their text (@"..." targets)
    std::vector<uint8_t> literal_token;              // 1: a quoted literal equal to its text means this token
    std::vector<int32_t> eog;                        // end-of-generation ids
    // byte trie over the text pieces, in preorder
    std::vector<uint8_t> node_byte;
    std::vector<uint8_t> node_depth;      // 1 for children of the (implicit) root
    std::vector<int32_t> node_end;        // index one past the node's subtree
    std::vector<int32_t> node_tok_begin;  // tokens ending at node i: trie_tokens[node_tok_begin[i] .. [i+1])
    std::vector<int32_t> trie_tokens;

    // From a vocabulary: normal / byte / user-defined tokens are text; control tokens are named, matched only as
    // whole tokens. extra_special: texts of tokens appended after the base vocabulary (ids n_tokens + i), e.g.
    // Spider's <IMAGE>, [IMAGE0], [OUTPUT].
    static std::shared_ptr<const grammar_vocab> from_vocab(const vocab & v,
                                                           const std::vector<std::string> & extra_special = {});
    // From explicit pieces (tests): specials[i] = 1 makes token i a named token instead of text.
    static std::shared_ptr<const grammar_vocab> from_pieces(const std::vector<std::string> & pieces,
                                                            const std::vector<uint8_t> & specials,
                                                            const std::vector<int32_t> & eog);
    void build_trie();
};

class grammar_matcher {
public:
    // gv may be null: string mode (accept_text only; @"x" and literals match their text).
    static std::unique_ptr<grammar_matcher> create(const grammar & g, std::shared_ptr<const grammar_vocab> gv,
                                                   std::string * err);
    ~grammar_matcher();

    // mask[id] = 1 if token id may come next (n_tokens entries). EOG tokens are allowed iff the grammar can end.
    void allowed_tokens(std::vector<uint8_t> * mask);
    bool is_allowed(int32_t token);
    // Advances by a token; false (state unchanged) if the grammar does not allow it.
    bool accept_token(int32_t token, std::string * err);
    // Advances by raw text (bytes); false (state unchanged) if not a valid continuation.
    bool accept_text(const std::string & bytes);
    bool can_end() const;  // the text so far is a complete sentence of the grammar
    bool is_dead() const;  // no continuation and cannot end (never happens when accepting only allowed tokens)
    void reset();
    size_t n_states() const;  // interned automaton states so far (for tests / diagnostics)

    struct impl;

private:
    grammar_matcher();
    std::unique_ptr<impl> p_;
};

// Convenience: does `text` belong to the grammar's language (string mode)?
bool grammar_accepts(const grammar & g, const std::string & text);

}  // namespace spider
