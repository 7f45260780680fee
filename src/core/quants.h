// Quantization and dequantization of rows, reference (plain C++) implementations. Block structs mirror the
// GGUF / ggml layouts byte for byte; optimised dot products live in matmul_*.cpp and are tested against these.
#pragma once
#include <string>

#include "core/dtype.h"
#include "core/tensor.h"

namespace spider {

constexpr int QK4_0 = 32;
constexpr int QK5_0 = 32;
constexpr int QK8_0 = 32;
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

#pragma pack(push, 1)
struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
};
struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};
struct block_q8_0 {
    uint16_t d;
    int8_t qs[QK8_0];
};
struct block_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};
struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
};
struct block_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
// One block of 8 Q4_K rows in matmul_pack's layout (ops.h), the same 8 * 144 bytes rearranged so that row r sits in
// 32-bit lane r of every 32-byte vector:
//   d[r], dmin[r]               the rows' fp16 scales;
//   scales[32 * k + 4 * r + i]  byte 4k + i of row r's 12 packed 6-bit scales and mins (k = 0..2);
//   qs[128 * s + 32 * v + 4 * r + i]  for sub-block s (elements 32s..32s+31) and v = 0..3: the low nibble is row r's
//                               level of element 32s + 4v + i, the high nibble that of element 32s + 16 + 4v + i.
struct block_q4_K_x8 {
    uint16_t d[8];
    uint16_t dmin[8];
    uint8_t scales[8 * K_SCALE_SIZE];
    uint8_t qs[8 * QK_K / 2];
};
// One block of 8 Q6_K rows in matmul_pack's layout, the same 8 * 210 bytes with row r in 32-bit lane r:
//   d[r]                              the rows' fp16 scales;
//   scales[16 * p + 2 * r + t]        row r's scale 2p + t (p = 0..7, t = 0..1);
//   ql[128 * c + 32 * v + 4 * r + i]  for chunk c (elements 32c..32c+31) and v = 0..3: the low nibble holds the low
//                                     4 bits of row r's level of element 32c + 4v + i, the high nibble those of
//                                     element 32c + 16 + 4v + i;
//   qh[64 * c + 32 * h + 4 * r + i]   bits 2g..2g+1: the high 2 bits of row r's level of element 32c + 16h + 4g + i
//                                     (g = 0..3).
struct block_q6_K_x8 {
    uint16_t d[8];
    int8_t scales[8 * QK_K / 16];
    uint8_t ql[8 * QK_K / 2];
    uint8_t qh[8 * QK_K / 4];
};
#pragma pack(pop)
static_assert(sizeof(block_q6_K_x8) == 8 * 210, "packed q6_K layout");
static_assert(sizeof(block_q4_0) == 18, "q4_0 layout");
static_assert(sizeof(block_q5_0) == 22, "q5_0 layout");
static_assert(sizeof(block_q8_0) == 34, "q8_0 layout");
static_assert(sizeof(block_q4_K) == 144, "q4_K layout");
static_assert(sizeof(block_q5_K) == 176, "q5_K layout");
static_assert(sizeof(block_q6_K) == 210, "q6_K layout");
static_assert(sizeof(block_q8_K) == 292, "q8_K layout");
static_assert(sizeof(block_q4_K_x8) == 8 * sizeof(block_q4_K), "packed q4_K layout");

// x: n floats -> dst: dtype_row_bytes(t, n) bytes. n must be a multiple of the block size. Returns false for an
// unsupported type or a bad n. Quantizers follow llama.cpp's reference rounding so our files match theirs.
bool quantize_row(dtype t, const float * x, void * dst, int64_t n);
// src: one row of type t with n elements -> y: n floats.
bool dequantize_row(dtype t, const void * src, float * y, int64_t n);

// matmul / get_rows (ops.h) return void and treat their arguments as invariants; a caller holding weights from a
// file checks them once with these (at load time) and reports the message. They name the tensor and the bad value.
// matmul_check: W is a 2-D (ne[2] = ne[3] = 1) view of a float or quantized type with contiguous rows whose
// ne[0] is a multiple of the block size, data non-null, n_tok >= 0.
bool matmul_check(const tensor & W, int64_t n_tok, std::string * err);
// get_rows_check: table as for matmul_check and every ids[i] in [0, table.ne[1]).
bool get_rows_check(const tensor & table, const int32_t * ids, int64_t n_ids, std::string * err);

}  // namespace spider
