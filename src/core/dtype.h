// Element types and their storage: numbering and block layouts are identical to GGUF / ggml so that files
// written by llama.cpp load without conversion (facts: shared/reference/formats-and-baselines.md).
#pragma once
#include <cstddef>
#include <cstdint>

namespace spider {

enum dtype : int32_t {
    DTYPE_F32 = 0,
    DTYPE_F16 = 1,
    DTYPE_Q4_0 = 2,
    DTYPE_Q5_0 = 6,  // gemma-3-270m uses it for rows whose length is not a multiple of 256
    DTYPE_Q8_0 = 8,
    DTYPE_Q4_K = 12,
    DTYPE_Q5_K = 13,
    DTYPE_Q6_K = 14,
    DTYPE_Q8_K = 15,  // activations only (partner of K-quants in dot products)
    DTYPE_I8 = 24,
    DTYPE_I16 = 25,
    DTYPE_I32 = 26,
    DTYPE_BF16 = 30,
    DTYPE_COUNT_SENTINEL = 64,
};

struct dtype_traits {
    const char * name;   // "f32", "q4_K", ... (ggml spelling)
    int64_t block_size;  // elements per block (1 for plain types)
    size_t block_bytes;  // bytes per block
    bool quantized;
};

// Returns nullptr for a type number Spider does not support (callers turn that into an error naming it).
const dtype_traits * dtype_get_traits(int32_t type);
bool dtype_is_supported(int32_t type);
const char * dtype_name(int32_t type);  // "unknown" if unsupported

// Bytes needed for one row of n elements; n must be a multiple of block_size (returns 0 otherwise).
size_t dtype_row_bytes(dtype t, int64_t n);

// Scalar conversions (IEEE binary16 and bfloat16, round-to-nearest-even).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

}  // namespace spider
