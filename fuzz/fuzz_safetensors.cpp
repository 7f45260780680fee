// libFuzzer target: the safetensors reader on arbitrary bytes. A file that opens must describe tensors that lie
// inside the buffer and convert to f32 without reading outside them.
// fuzz-links: spider_io spider_core
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    std::string err;
    auto f = spider::safetensors_file::open_buffer(data, size, &err);
    if (!f) {
        if (err.empty()) __builtin_trap();  // every refusal must say why
        return 0;
    }
    std::vector<float> buf;
    for (const spider::st_tensor & t : f->tensors()) {
        if (f->find(t.name) != &t) __builtin_trap();
        if (t.nbytes != static_cast<size_t>(t.nelements()) * spider::st_dtype_size(t.dtype)) __builtin_trap();
        if (t.nbytes && (t.data < data || t.data + t.nbytes > data + size)) __builtin_trap();
        buf.resize(static_cast<size_t>(t.nelements()));
        if (!spider::safetensors_model::read_f32(t, buf.data(), &err)) __builtin_trap();
    }
    return 0;
}
