// Any-to-Many template: added tokens, task tokens, input layout, grammar text and the streaming output parser
// (groups reported when they close, malformed output -> per-group errors, never a crash).
#include <gtest/gtest.h>

#include <random>

#include "controller/template.h"
#include "llm/grammar.h"

using namespace spider;

static std::vector<parsed_group> groups_of(const std::vector<parse_event> & ev) {
    std::vector<parsed_group> g;
    for (const auto & e : ev) {
        if (e.kind == parse_event::GROUP) g.push_back(e.group);
    }
    return g;
}
static std::string text_of(const std::vector<parse_event> & ev) {
    std::string t;
    for (const auto & e : ev) {
        if (e.kind == parse_event::TEXT) t += e.text;
    }
    return t;
}
static int warnings_of(const std::vector<parse_event> & ev) {
    int n = 0;
    for (const auto & e : ev) n += e.kind == parse_event::WARNING;
    return n;
}

TEST(template_tokens, added_tokens_released_and_class_default) {
    auto t = template_added_tokens(template_config());
    // 5 modalities x (open, close, 1 signal) + 3 structure + 8 task + 3 placeholders
    EXPECT_EQ(t.size(), 5u * 3 + 3 + 8 + 3);
    EXPECT_EQ(t[0], "<IMAGE>");
    EXPECT_EQ(t[1], "</IMAGE>");
    EXPECT_EQ(t[2], "[IMAGE0]");
    auto c = template_added_tokens(template_config::class_default());
    EXPECT_EQ(c.size(), 5u * 2 + (4 + 24 + 8 + 1 + 1) + 3 + 8 + 3);
    EXPECT_NE(std::find(c.begin(), c.end(), "[VIDEO23]"), c.end());
    EXPECT_NE(std::find(c.begin(), c.end(), "[SMARTMULTIMODAL]"), c.end());
    EXPECT_NE(std::find(c.begin(), c.end(), "<AUDIO-Placeholder>"), c.end());
    // no duplicates
    std::sort(c.begin(), c.end());
    EXPECT_EQ(std::adjacent_find(c.begin(), c.end()), c.end());
}

TEST(template_tokens, task_token_from_choices) {
    EXPECT_EQ(task_token_for({}, false), "[TEXT]");
    EXPECT_EQ(task_token_for({MODALITY_AUDIO}, false), "[AUDIO]");
    EXPECT_EQ(task_token_for({MODALITY_AUDIO, MODALITY_AUDIO}, false), "[AUDIO]");
    EXPECT_EQ(task_token_for({MODALITY_IMAGE, MODALITY_VIDEO}, false), "[SPECIFICMULTIMODAL]");
    EXPECT_EQ(task_token_for({MODALITY_IMAGE}, true), "[SMARTMULTIMODAL]");
}

TEST(template_tokens, modality_list_parsing) {
    std::vector<modality> m;
    std::string err;
    ASSERT_TRUE(modality_list_from_string("image, AUDIO,image", &m, &err));
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[0], MODALITY_IMAGE);
    EXPECT_EQ(m[1], MODALITY_AUDIO);
    EXPECT_FALSE(modality_list_from_string("image,smell", &m, &err));
    EXPECT_NE(err.find("smell"), std::string::npos);
}

TEST(template_layout, media_in_front_and_markers) {
    input_layout l;
    std::string err;
    ASSERT_TRUE(build_input_layout("Describe this.", {{MODALITY_IMAGE, 0}}, "[TEXT]", &l, &err)) << err;
    // One space after media placed in front, as in the TMM records the template adapter is trained on.
    EXPECT_EQ(l.to_string(), "[INPUT]<IMAGE><IMAGE-Placeholder></IMAGE> Describe this.[TEXT]");
    ASSERT_EQ(l.segments.size(), 3u);
    EXPECT_TRUE(l.segments[1].is_media);

    ASSERT_TRUE(build_input_layout("Compare <audio> and <image> please", {{MODALITY_IMAGE, 0}, {MODALITY_AUDIO, 0}},
                                   "[SMARTMULTIMODAL]", &l, &err));
    EXPECT_EQ(l.to_string(),
              "[INPUT]Compare <AUDIO><AUDIO-Placeholder></AUDIO> and <IMAGE><IMAGE-Placeholder></IMAGE> "
              "please[SMARTMULTIMODAL]");
    EXPECT_FALSE(build_input_layout("two <image> <image>", {{MODALITY_IMAGE, 0}}, "[TEXT]", &l, &err));
    EXPECT_NE(err.find("<image>"), std::string::npos);
    EXPECT_FALSE(build_input_layout("q", {{MODALITY_BOX, 0}}, "[TEXT]", &l, &err));
}

TEST(template_grammar_text, names_only_allowed_modalities) {
    std::string g = template_grammar({MODALITY_IMAGE, MODALITY_AUDIO}, template_config());
    EXPECT_NE(g.find("root ::= \"[OUTPUT]\" text ( group text )* \"[END]\""), std::string::npos) << g;
    EXPECT_NE(g.find("image-group ::= \"<IMAGE>\" tprompt \"[IMAGE0]\" \"</IMAGE>\""), std::string::npos) << g;
    EXPECT_NE(g.find("audio-group"), std::string::npos);
    EXPECT_EQ(g.find("VIDEO"), std::string::npos);
    std::string t = template_grammar({}, template_config());
    EXPECT_EQ(t.find("group"), std::string::npos);
    std::string c = template_grammar({MODALITY_IMAGE}, template_config::class_default());
    EXPECT_NE(c.find("\"[IMAGE3]\" \"</IMAGE>\""), std::string::npos);
}

TEST(template_grammar_text, parses_with_the_grammar_engine) {
    // The generated GBNF is accepted by src/llm/grammar (the engine constrained decoding runs on).
    const std::vector<std::vector<modality>> sets = {
        {}, {MODALITY_IMAGE}, {MODALITY_IMAGE, MODALITY_VIDEO, MODALITY_AUDIO, MODALITY_BOX, MODALITY_MASK}};
    for (const auto & s : sets) {
        for (const auto & cfg : {template_config(), template_config::class_default()}) {
            std::string err;
            auto g = grammar::parse(template_grammar(s, cfg), &err);
            ASSERT_TRUE(g) << err << "\n" << template_grammar(s, cfg);
            EXPECT_NE(std::find(g->literals().begin(), g->literals().end(), "[END]"), g->literals().end());
        }
    }
}

TEST(template_parser, paper_examples) {
    auto ev = parse_output(
        "[OUTPUT]A snowy mountain under a blue sky.<IMAGE>A snowy mountain under a blue sky[IMAGE0]</IMAGE>"
        "<VIDEO>A snowy mountain under a blue sky[VIDEO0]</VIDEO>[END]");
    auto g = groups_of(ev);
    ASSERT_EQ(g.size(), 2u);
    EXPECT_EQ(g[0].m, MODALITY_IMAGE);
    EXPECT_EQ(g[1].m, MODALITY_VIDEO);
    EXPECT_TRUE(g[0].ok && g[1].ok);
    EXPECT_EQ(g[0].t_prompt, "A snowy mountain under a blue sky");
    EXPECT_EQ(g[1].index, 1);
    EXPECT_EQ(text_of(ev), "A snowy mountain under a blue sky.");
    EXPECT_EQ(warnings_of(ev), 0);
    EXPECT_EQ(ev.back().kind, parse_event::END);

    ev = parse_output(
        "[OUTPUT]2. Attractions\n - <IMAGE>Canton Tower[IMAGE0]</IMAGE>: the iconic tower.\n - <AUDIO>Cantonese "
        "opera[AUDIO0]</AUDIO>: a traditional performance.[END]");
    g = groups_of(ev);
    ASSERT_EQ(g.size(), 2u);
    EXPECT_EQ(g[1].t_prompt, "Cantonese opera");
    EXPECT_EQ(text_of(ev), "2. Attractions\n - : the iconic tower.\n - : a traditional performance.");
}

TEST(template_parser, group_emitted_when_it_closes_with_token_positions) {
    output_parser p;
    // token by token, as an LLM would write them
    std::vector<std::string> toks = {"[OUTPUT]", "Here",     " is",      " a",     " tiger",  ":",
                                     "<BOX>",    "tiger",    "[BOX0]",   "</BOX>", "<IMAGE>", "a",
                                     " tiger",   "[IMAGE0]", "</IMAGE>", " done",  "[END]"};
    int closed_at[2] = {-1, -1};
    int n = 0;
    for (size_t i = 0; i < toks.size(); ++i) {
        for (const auto & e : p.feed(toks[i], static_cast<int>(i))) {
            if (e.kind == parse_event::GROUP) {
                ASSERT_LT(n, 2);
                closed_at[n] = static_cast<int>(i);
                ASSERT_EQ(e.group.signal_positions.size(), 1u);
                EXPECT_EQ(e.group.signal_positions[0], n == 0 ? 8 : 13);
                ++n;
            }
        }
    }
    EXPECT_EQ(closed_at[0], 9);   // at </BOX>, long before [END]
    EXPECT_EQ(closed_at[1], 14);  // at </IMAGE>
    EXPECT_TRUE(p.ended());
    EXPECT_EQ(warnings_of(p.finish()), 0);
}

TEST(template_parser, marker_split_across_pieces_and_lookalikes) {
    output_parser p;
    std::vector<parse_event> ev;
    for (std::string s : {"[OUT", "PUT]a <b [x] <IMA", "GE>cat[IMA", "GE0]</IMAGE>[EN", "D]"}) {
        auto e = p.feed(s, 0);
        ev.insert(ev.end(), e.begin(), e.end());
    }
    auto g = groups_of(ev);
    ASSERT_EQ(g.size(), 1u);
    EXPECT_TRUE(g[0].ok) << g[0].error;
    EXPECT_EQ(g[0].t_prompt, "cat");
    EXPECT_EQ(text_of(ev), "a <b [x] ");
}

TEST(template_parser, malformed_groups_are_per_group_errors) {
    auto ev = parse_output(
        "[OUTPUT]<IMAGE>a cat</IMAGE>"        // no signal token
        "<AUDIO>rain[AUDIO0]</VIDEO>"         // closed by the wrong tag
        "<VIDEO>[VIDEO0]</VIDEO>"             // empty T-Prompt
        "<IMAGE>dog[AUDIO0]</IMAGE>"          // wrong signal token
        "<IMAGE>fox[IMAGE0] extra</IMAGE>"    // text after the signal
        "<MASK>nested<BOX>box[BOX0]</BOX>"    // MASK never closed, BOX fine
        "<IMAGE>good[IMAGE0]</IMAGE>"         // fine
        "[BOX0]</AUDIO>"                      // stray tokens outside groups: warnings
        "<VIDEO>unterminated[VIDEO0][END]");  // not closed before [END]
    auto g = groups_of(ev);
    ASSERT_EQ(g.size(), 9u);
    const bool want_ok[9] = {false, false, false, false, false, false, true, true, false};
    for (int i = 0; i < 9; ++i) {
        EXPECT_EQ(g[i].ok, want_ok[i]) << i << ": " << g[i].error;
        EXPECT_EQ(g[i].index, i);
        if (!want_ok[i]) {
            EXPECT_FALSE(g[i].error.empty());
        }
    }
    EXPECT_NE(g[0].error.find("signal"), std::string::npos);
    EXPECT_NE(g[1].error.find("</VIDEO>"), std::string::npos);
    EXPECT_NE(g[2].error.find("empty"), std::string::npos);
    EXPECT_NE(g[5].error.find("<MASK>"), std::string::npos);
    EXPECT_EQ(g[6].m, MODALITY_BOX);
    EXPECT_EQ(warnings_of(ev), 2);
}

TEST(template_parser, truncated_output_and_no_output_marker) {
    auto ev = parse_output("hello <IMAGE>a cat[IMAGE0]");
    auto g = groups_of(ev);
    ASSERT_EQ(g.size(), 1u);
    EXPECT_FALSE(g[0].ok);
    EXPECT_EQ(warnings_of(ev), 2);  // text before [OUTPUT], no [END]
    ev = parse_output("[OUTPUT]ok[END] trailing <IMAGE>x[IMAGE0]</IMAGE>");
    EXPECT_EQ(groups_of(ev).size(), 0u);
    EXPECT_EQ(warnings_of(ev), 1);
    ev = parse_output("[OUTPUT]dangling <IMA");
    EXPECT_EQ(text_of(ev), "dangling <IMA");
}

TEST(template_parser, class_default_needs_all_signal_tokens) {
    template_config cfg = template_config::class_default();
    auto ev =
        parse_output("[OUTPUT]<IMAGE>cat[IMAGE0][IMAGE1][IMAGE2][IMAGE3]</IMAGE><IMAGE>dog[IMAGE0]</IMAGE>[END]", cfg);
    auto g = groups_of(ev);
    ASSERT_EQ(g.size(), 2u);
    EXPECT_TRUE(g[0].ok);
    EXPECT_EQ(g[0].signal_positions.size(), 4u);
    EXPECT_FALSE(g[1].ok);
}

TEST(template_parser, random_bytes_never_crash) {
    std::mt19937 rng(7);
    const std::string alphabet = "[]<>/IMAGEVIDOUBXSKTPN0123 abc\n";
    for (int it = 0; it < 2000; ++it) {
        output_parser p;
        int len = rng() % 80;
        std::string s;
        for (int i = 0; i < len; ++i)
            s += (rng() % 8 == 0) ? static_cast<char>(rng() % 256) : alphabet[rng() % alphabet.size()];
        size_t at = 0;
        while (at < s.size()) {
            size_t n = 1 + rng() % 6;
            p.feed(s.substr(at, n), static_cast<int>(at));
            at += n;
        }
        auto ev = p.finish();
        for (const auto & e : ev) {
            if (e.kind == parse_event::GROUP && e.group.ok) {
                EXPECT_FALSE(e.group.t_prompt.empty());
            }
        }
    }
}
