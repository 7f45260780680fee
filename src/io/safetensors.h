// safetensors reading (Hugging Face's tensor file format): a single file or a sharded checkpoint described by
// model.safetensors.index.json. Files are mmapped; the JSON header is parsed with nlohmann-json and fully validated
// (dtype, shape, offsets inside the data, no overlaps or gaps, no duplicate names) so a hostile file is refused with
// an error naming the tensor and the problem. Layout facts: docs/FORMATS.md.
//
//   std::string err;
//   auto m = spider::safetensors_model::open("path/to/hf_dir", &err);   // or a .safetensors / index.json path
//   if (!m) { fprintf(stderr, "%s\n", err.c_str()); ... }
//   const spider::st_tensor * t = m->find("model.embed_tokens.weight");
//   std::vector<float> w(t->nelements());
//   m->read_f32(*t, w.data(), &err);
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace spider {

enum st_dtype : int32_t {
    ST_F64,
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
};

const char * st_dtype_name(st_dtype t);  // "F32", "BF16", ... (the spelling used in the header)
size_t st_dtype_size(st_dtype t);        // bytes per element

struct st_tensor {
    std::string name;
    st_dtype dtype = ST_F32;
    std::vector<int64_t> shape;      // numpy / PyTorch order: the LAST dimension is contiguous (reverse of GGUF ne)
    const uint8_t * data = nullptr;  // into the mapping
    size_t nbytes = 0;
    int shard = 0;  // index of the file it lives in

    int64_t nelements() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
};

// One .safetensors file.
class safetensors_file {
public:
    static std::unique_ptr<safetensors_file> open(const std::string & path, std::string * err);
    // Same checks on a buffer in memory (fuzzer, tests); the buffer must outlive the object.
    static std::unique_ptr<safetensors_file> open_buffer(const void * data, size_t size, std::string * err);
    ~safetensors_file();

    const std::vector<st_tensor> & tensors() const;  // in header order
    const st_tensor * find(const std::string & name) const;
    const std::map<std::string, std::string> & metadata() const;  // "__metadata__" (string values only)

private:
    safetensors_file();
    struct impl;
    std::unique_ptr<impl> p_;
};

// A whole checkpoint: one file, or every shard named by an index. Tensor names are unique across shards.
class safetensors_model {
public:
    // path: a .safetensors file, a model.safetensors.index.json, or a directory holding either
    // (model.safetensors.index.json is preferred over model.safetensors when both exist).
    static std::unique_ptr<safetensors_model> open(const std::string & path, std::string * err);
    ~safetensors_model();

    const std::vector<st_tensor> & tensors() const;  // shard order, then header order
    const st_tensor * find(const std::string & name) const;
    size_t n_shards() const;

    // Converts any float or integer dtype to float32 (out must hold t.nelements() floats).
    static bool read_f32(const st_tensor & t, float * out, std::string * err);

private:
    safetensors_model();
    struct impl;
    std::unique_ptr<impl> p_;
};

}  // namespace spider
