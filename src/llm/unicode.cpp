// UTF-8 codec, category lookup over the generated range table, and the GPT-2 byte <-> unicode mapping.
#include "llm/unicode.h"

#include <algorithm>

namespace spider {

uint16_t unicode_flags(uint32_t cp) {
    if (cp > 0x10FFFF) return 0;
    // last range whose first <= cp
    const unicode_range * b = unicode_flag_ranges;
    const unicode_range * e = unicode_flag_ranges + unicode_flag_ranges_count;
    const unicode_range * it =
        std::upper_bound(b, e, cp, [](uint32_t v, const unicode_range & r) { return v < r.first; });
    if (it == b) return 0;
    return (it - 1)->flags;
}

size_t utf8_len(uint8_t lead) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

uint32_t utf8_decode(const std::string & s, size_t * pos) {
    const size_t i = *pos;
    const size_t n = s.size();
    const uint8_t c0 = static_cast<uint8_t>(s[i]);
    if (c0 < 0x80) {
        *pos = i + 1;
        return c0;
    }
    size_t len = 0;
    uint32_t cp = 0;
    uint32_t min_cp = 0;
    if ((c0 & 0xE0) == 0xC0) {
        len = 2;
        cp = c0 & 0x1F;
        min_cp = 0x80;
    } else if ((c0 & 0xF0) == 0xE0) {
        len = 3;
        cp = c0 & 0x0F;
        min_cp = 0x800;
    } else if ((c0 & 0xF8) == 0xF0) {
        len = 4;
        cp = c0 & 0x07;
        min_cp = 0x10000;
    } else {
        *pos = i + 1;
        return UNICODE_INVALID;
    }
    if (i + len > n) {
        *pos = i + 1;
        return UNICODE_INVALID;
    }
    for (size_t k = 1; k < len; ++k) {
        const uint8_t c = static_cast<uint8_t>(s[i + k]);
        if ((c & 0xC0) != 0x80) {
            *pos = i + 1;
            return UNICODE_INVALID;
        }
        cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        *pos = i + 1;
        return UNICODE_INVALID;
    }
    *pos = i + len;
    return cp;
}

std::vector<uint32_t> utf8_to_cpts(const std::string & s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    size_t pos = 0;
    while (pos < s.size()) out.push_back(utf8_decode(s, &pos));
    return out;
}

void utf8_append(std::string & out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::string cpt_to_utf8(uint32_t cp) {
    std::string s;
    utf8_append(s, cp);
    return s;
}

size_t utf8_incomplete_tail(const std::string & s) {
    // look back at most 3 bytes for a lead byte whose sequence is not finished
    const size_t n = s.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const uint8_t c = static_cast<uint8_t>(s[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
        if (c < 0x80) return 0;
        size_t need = 0;
        if ((c & 0xE0) == 0xC0)
            need = 2;
        else if ((c & 0xF0) == 0xE0)
            need = 3;
        else if ((c & 0xF8) == 0xF0)
            need = 4;
        else
            return 0;  // invalid lead: not a pending sequence
        return need > back ? back : 0;
    }
    return 0;
}

namespace {
struct byte_map {
    std::string to_unicode[256];
    int from_cp[512];
    byte_map() {
        for (int i = 0; i < 512; ++i) from_cp[i] = -1;
        int n = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
            to_unicode[b] = cpt_to_utf8(cp);
            from_cp[cp] = b;
        }
    }
};
const byte_map & get_byte_map() {
    static const byte_map m;
    return m;
}
}  // namespace

const std::string & byte_to_unicode(uint8_t b) {
    return get_byte_map().to_unicode[b];
}

int unicode_to_byte(uint32_t cp) {
    if (cp >= 512) return -1;
    return get_byte_map().from_cp[cp];
}

}  // namespace spider
