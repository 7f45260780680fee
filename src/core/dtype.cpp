// Type table and scalar fp16/bf16 conversions.
#include "core/dtype.h"

#include <cstring>

#include "core/quants.h"

namespace spider {

static const dtype_traits * lookup(int32_t type) {
    static const dtype_traits f32 = {"f32", 1, 4, false};
    static const dtype_traits f16 = {"f16", 1, 2, false};
    static const dtype_traits bf16 = {"bf16", 1, 2, false};
    static const dtype_traits q4_0 = {"q4_0", QK4_0, sizeof(block_q4_0), true};
    static const dtype_traits q5_0 = {"q5_0", QK5_0, sizeof(block_q5_0), true};
    static const dtype_traits q8_0 = {"q8_0", QK8_0, sizeof(block_q8_0), true};
    static const dtype_traits q4_k = {"q4_K", QK_K, sizeof(block_q4_K), true};
    static const dtype_traits q5_k = {"q5_K", QK_K, sizeof(block_q5_K), true};
    static const dtype_traits q6_k = {"q6_K", QK_K, sizeof(block_q6_K), true};
    static const dtype_traits q8_k = {"q8_K", QK_K, sizeof(block_q8_K), true};
    static const dtype_traits i8 = {"i8", 1, 1, false};
    static const dtype_traits i16 = {"i16", 1, 2, false};
    static const dtype_traits i32 = {"i32", 1, 4, false};
    switch (type) {
        case DTYPE_F32:
            return &f32;
        case DTYPE_F16:
            return &f16;
        case DTYPE_BF16:
            return &bf16;
        case DTYPE_Q4_0:
            return &q4_0;
        case DTYPE_Q5_0:
            return &q5_0;
        case DTYPE_Q8_0:
            return &q8_0;
        case DTYPE_Q4_K:
            return &q4_k;
        case DTYPE_Q5_K:
            return &q5_k;
        case DTYPE_Q6_K:
            return &q6_k;
        case DTYPE_Q8_K:
            return &q8_k;
        case DTYPE_I8:
            return &i8;
        case DTYPE_I16:
            return &i16;
        case DTYPE_I32:
            return &i32;
        default:
            return nullptr;
    }
}

const dtype_traits * dtype_get_traits(int32_t type) {
    return lookup(type);
}
bool dtype_is_supported(int32_t type) {
    return lookup(type) != nullptr;
}
const char * dtype_name(int32_t type) {
    const dtype_traits * t = lookup(type);
    return t ? t->name : "unknown";
}

size_t dtype_row_bytes(dtype t, int64_t n) {
    const dtype_traits * tr = lookup(t);
    if (!tr || n < 0 || n % tr->block_size != 0) return 0;
    return static_cast<size_t>(n / tr->block_size) * tr->block_bytes;
}

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                mant <<= 1;
                ++e;
            } while (!(mant & 0x400));
            bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | mant << 13;
    } else {
        bits = sign | (exp + 112) << 23 | mant << 13;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
    if (absx < 0x38800000u) {                                              // subnormal or zero in half
        if (absx < 0x33000000u) return static_cast<uint16_t>(sign);
        const uint32_t e = absx >> 23;
        const uint32_t m = (absx & 0x7fffff) | 0x800000;
        const uint32_t shift = 126 - e;  // 14 + (113 - e) - 1
        uint32_t half_m = m >> (shift);
        const uint32_t rem = m & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half_m & 1))) ++half_m;
        return static_cast<uint16_t>(sign | half_m);
    }
    uint32_t h = ((absx >> 13) - (112u << 10));
    const uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
}

float bf16_to_fp32(uint16_t h) {
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 64);  // quiet NaN
    return static_cast<uint16_t>((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

}  // namespace spider
