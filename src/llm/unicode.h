// Unicode helpers for the tokenizers: UTF-8 decoding/encoding that never fails (bad bytes become U+FFFD, as
// llama.cpp does), code point category flags from generated tables (unicode_data.cpp), and the GPT-2
// byte <-> unicode mapping used by byte-level BPE vocabularies.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace spider {

// Category flags of a code point (bits may combine: a whitespace code point is also SEPARATOR or CONTROL).
enum unicode_flag : uint16_t {
    UNICODE_FLAG_LETTER = 1,        // \p{L}
    UNICODE_FLAG_NUMBER = 2,        // \p{N}
    UNICODE_FLAG_PUNCT = 4,         // \p{P}
    UNICODE_FLAG_SYMBOL = 8,        // \p{S}
    UNICODE_FLAG_MARK = 16,         // \p{M}
    UNICODE_FLAG_SEPARATOR = 32,    // \p{Z}
    UNICODE_FLAG_CONTROL = 64,      // \p{C} (assigned)
    UNICODE_FLAG_WHITESPACE = 128,  // \s (Python str.isspace, the set llama.cpp uses)
    UNICODE_FLAG_UNDEFINED = 256,   // unassigned (Cn)
};

struct unicode_range {
    uint32_t first;
    uint16_t flags;
};
extern const unicode_range unicode_flag_ranges[];
extern const size_t unicode_flag_ranges_count;

constexpr uint32_t UNICODE_INVALID = 0xFFFD;

uint16_t unicode_flags(uint32_t cp);  // 0 for cp > 0x10FFFF
inline bool unicode_is_letter(uint32_t cp) {
    return unicode_flags(cp) & UNICODE_FLAG_LETTER;
}
inline bool unicode_is_number(uint32_t cp) {
    return unicode_flags(cp) & UNICODE_FLAG_NUMBER;
}
inline bool unicode_is_whitespace(uint32_t cp) {
    return unicode_flags(cp) & UNICODE_FLAG_WHITESPACE;
}

// Length of the UTF-8 sequence announced by a lead byte, from its high nibble (1 for continuation bytes:
// llama.cpp's unicode_len_utf8, which the SPM tokenizer's symbol split depends on).
size_t utf8_len(uint8_t lead);

// Decodes one code point at s[*pos], advancing *pos; invalid or truncated sequences yield U+FFFD and advance
// one byte.
uint32_t utf8_decode(const std::string & s, size_t * pos);
std::vector<uint32_t> utf8_to_cpts(const std::string & s);
void utf8_append(std::string & out, uint32_t cp);
std::string cpt_to_utf8(uint32_t cp);
// Number of bytes at the end of s that form an incomplete (but so far valid) UTF-8 sequence.
size_t utf8_incomplete_tail(const std::string & s);

// GPT-2 byte-level mapping: each byte <-> one printable code point (as UTF-8 text).
const std::string & byte_to_unicode(uint8_t b);
// Returns -1 if the code point is not in the mapping.
int unicode_to_byte(uint32_t cp);

}  // namespace spider
