// GGUF v2/v3 reading (mmap, every metadata type, full validation) and writing. Layout facts:
// shared/reference/formats-and-baselines.md. Every check failure is an error naming the problem and the offset;
// the reader never reads outside the file.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace spider {

enum gguf_type : int32_t {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
};

// One metadata value. Scalars are held widened (ints in i64/u64, floats in f64); arrays keep their element type.
struct gguf_value {
    gguf_type type = GGUF_TYPE_UINT8;
    gguf_type arr_type = GGUF_TYPE_UINT8;  // element type when type == GGUF_TYPE_ARRAY
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    bool b = false;
    std::string str;
    // arrays: exactly one of these is filled, by element type
    std::vector<int64_t> arr_int;      // any signed/unsigned integer or bool element type
    std::vector<double> arr_float;     // float32/float64 elements
    std::vector<std::string> arr_str;  // string elements
    size_t arr_size() const;
};

// "u8", "i32", "str", "arr", ... ("unknown" for a bad number).
const char * gguf_type_name(gguf_type t);
// Human-readable value (strings quoted, arrays cut after max_elems elements), for dumps such as `spider gguf-info`.
std::string gguf_value_to_string(const gguf_value & v, size_t max_elems = 8);

struct gguf_tensor_info {
    std::string name;
    dtype type = DTYPE_F32;
    int n_dims = 0;
    int64_t ne[MAX_DIMS] = {1, 1, 1, 1};
    uint64_t offset = 0;  // relative to the data section
    size_t nbytes = 0;
};

class gguf_file {
public:
    // Opens and validates a file (mmap). On failure returns nullptr and sets *err to a message naming the problem.
    static std::unique_ptr<gguf_file> open(const std::string & path, std::string * err);
    // Same checks on a buffer in memory (used by the fuzzer); the buffer must outlive the object.
    static std::unique_ptr<gguf_file> open_buffer(const void * data, size_t size, std::string * err);
    ~gguf_file();

    uint32_t version() const;
    size_t alignment() const;
    const std::vector<std::string> & keys() const;           // in file order
    const gguf_value * find(const std::string & key) const;  // nullptr if absent

    // Typed getters: return false (and leave *out alone) if absent or of an incompatible type.
    bool get_string(const std::string & key, std::string * out) const;
    bool get_int(const std::string & key, int64_t * out) const;   // any integer type or bool
    bool get_float(const std::string & key, double * out) const;  // float32/64 or any integer
    bool get_bool(const std::string & key, bool * out) const;

    const std::vector<gguf_tensor_info> & tensors() const;
    const gguf_tensor_info * find_tensor(const std::string & name) const;
    // A view of a tensor's data in the mapping (shape from the file, contiguous strides).
    tensor view(const gguf_tensor_info & info) const;
    const uint8_t * data_section() const;
    size_t data_offset() const;  // byte offset of the data section in the file
    size_t file_size() const;

private:
    gguf_file();
    struct impl;
    std::unique_ptr<impl> p_;
};

// Builds a GGUF file in memory description and writes it atomically (temp file + rename).
class gguf_writer {
public:
    gguf_writer();
    ~gguf_writer();
    void set_alignment(uint32_t a);
    // Setting a key that exists replaces its value in place (file order is first-set order).
    void set_u8(const std::string & key, uint8_t v);
    void set_i8(const std::string & key, int8_t v);
    void set_u16(const std::string & key, uint16_t v);
    void set_i16(const std::string & key, int16_t v);
    void set_u32(const std::string & key, uint32_t v);
    void set_i32(const std::string & key, int32_t v);
    void set_u64(const std::string & key, uint64_t v);
    void set_i64(const std::string & key, int64_t v);
    void set_f32(const std::string & key, float v);
    void set_f64(const std::string & key, double v);
    void set_bool(const std::string & key, bool v);
    void set_string(const std::string & key, const std::string & v);
    // Any type, including arrays. Integer scalars are taken from `u` for unsigned types (from `i` when u == 0) and
    // from `i` for signed ones; out-of-range values are reported by write().
    void set_value(const std::string & key, const gguf_value & v);
    void set_array_str(const std::string & key, const std::vector<std::string> & v);
    void set_array_f32(const std::string & key, const std::vector<float> & v);
    void set_array_i32(const std::string & key, const std::vector<int32_t> & v);
    // Adds a tensor; data (nbytes = dtype_row_bytes(type, ne[0]) * rows) is copied.
    bool add_tensor(const std::string & name, dtype type, const int64_t * ne, int n_dims, const void * data,
                    std::string * err);
    // Same, without copying: data must stay valid until write() returns (e.g. a view into an mmapped file).
    bool add_tensor_ref(const std::string & name, dtype type, const int64_t * ne, int n_dims, const void * data,
                        std::string * err);
    bool remove(const std::string & key);  // false if absent
    size_t n_tensors() const;
    bool write(const std::string & path, std::string * err) const;

private:
    struct impl;
    std::unique_ptr<impl> p_;
};

// ---------------------------------------------------------------------------------------------------------------
// Quantizing a GGUF file (`spider quantize`), following llama.cpp's src/llama-quant.cpp type selection: which
// tensors are quantized (2-D+ "*weight", not norms), output.weight / tied token_embd get Q6_K (Q8_0 when the row
// length does not fit 256), the Q4_K_M mix (Q6_K for attn_v / ffn_down in the use_more_bits layers), and the
// fallback for rows that are not a multiple of the block size (Q4_K -> Q5_0, Q6_K -> Q8_0, ... -> F16).

// Mixes by name: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q4_K_M (case-insensitive). Sets *default_type and
// *ftype (llama.cpp's llama_ftype number written to general.file_type). False for an unknown name.
bool gguf_quant_mix_from_name(const std::string & name, dtype * default_type, uint32_t * ftype, bool * q4_k_m);

// The target type of every tensor of `in` (file order) for the mix `mix_name`. False + *err on an unknown mix.
bool gguf_quantize_plan(const gguf_file & in, const std::string & mix_name, std::vector<dtype> * plan,
                        std::string * err);

struct gguf_quantize_progress {
    size_t index = 0, count = 0;  // tensor index (0-based) and number of tensors
    const gguf_tensor_info * info = nullptr;
    dtype new_type = DTYPE_F32;
    bool converted = false;  // false: bytes copied unchanged
    double rel_rmse = 0;     // ||dequant(new) - src|| / ||src|| over the tensor (0 when copied)
    size_t new_bytes = 0;
};

struct gguf_quantize_params {
    std::string mix = "Q4_K_M";
    int n_threads = 0;                                             // 0: hardware concurrency
    std::function<void(const gguf_quantize_progress &)> progress;  // called after each tensor
};

// Reads in_path, quantizes per the plan, copies every KV (sets general.file_type and
// general.quantization_version, drops split.* keys) and writes out_path atomically.
bool gguf_quantize_file(const std::string & in_path, const std::string & out_path, const gguf_quantize_params & params,
                        std::string * err);

}  // namespace spider
