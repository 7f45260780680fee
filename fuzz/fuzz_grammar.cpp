// libFuzzer target: the grammar parser and matcher on arbitrary text. A refused grammar must say why; an accepted
// one is bound to a small vocabulary and driven for a few steps: the mask must agree with is_allowed() token by
// token, and accepting an allowed token must succeed.
// fuzz-links: spider_llm spider_io spider_core
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "llm/grammar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    static const std::shared_ptr<const spider::grammar_vocab> gv = spider::grammar_vocab::from_pieces(
        {"<eos>", "[A]", "a", "b", "ab", " ", "\n", "[", "]", "\xC3", "\xA9", "\xE4\xB8\xAD", "0", "12", "\"", "x"},
        {1, 1}, {0});
    const std::string text(reinterpret_cast<const char *>(data), size);
    std::string err;
    auto g = spider::grammar::parse(text, &err);
    if (!g) {
        if (err.empty()) __builtin_trap();
        return 0;
    }
    spider::grammar_accepts(*g, "ab[A]\xC3\xA9");
    auto m = spider::grammar_matcher::create(*g, gv, &err);
    if (!m) {
        if (err.empty()) __builtin_trap();
        return 0;
    }
    std::vector<uint8_t> mask;
    for (int step = 0; step < 8; ++step) {
        m->allowed_tokens(&mask);
        if (mask.size() != static_cast<size_t>(gv->n_tokens)) __builtin_trap();
        int32_t pick = -1;
        for (int32_t t = 0; t < gv->n_tokens; ++t) {
            if ((mask[t] != 0) != m->is_allowed(t)) __builtin_trap();
            if (mask[t] && (pick < 0 || (t * 7 + step) % 5 == 0)) pick = t;
        }
        if (pick < 0) break;
        if (!m->accept_token(pick, &err)) __builtin_trap();
        if (pick == 0) break;
    }
    return 0;
}
