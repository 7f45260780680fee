// libFuzzer target: the GGUF reader on arbitrary bytes. A file that opens must be fully usable: every KV
// printable, every tensor view inside the buffer (its first and last byte are read, so ASan catches a view that
// points outside), and the quantization planner must accept it.
// fuzz-links: spider_io spider_core
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    std::string err;
    auto f = spider::gguf_file::open_buffer(data, size, &err);
    if (!f) {
        if (err.empty()) __builtin_trap();  // every refusal must say why
        return 0;
    }
    volatile uint8_t sink = 0;
    for (const std::string & k : f->keys()) {
        const spider::gguf_value * v = f->find(k);
        if (!v) __builtin_trap();
        sink = sink + static_cast<uint8_t>(spider::gguf_value_to_string(*v, 4).size());
    }
    for (const spider::gguf_tensor_info & t : f->tensors()) {
        if (f->find_tensor(t.name) != &t) __builtin_trap();
        if (t.nbytes == 0) continue;
        const spider::tensor v = f->view(t);
        const uint8_t * p = static_cast<const uint8_t *>(v.data);
        if (p < data || p + t.nbytes > data + size) __builtin_trap();
        sink = sink + p[0] + p[t.nbytes - 1];
    }
    std::vector<spider::dtype> plan;
    if (!spider::gguf_quantize_plan(*f, "Q4_K_M", &plan, &err) || plan.size() != f->tensors().size()) {
        __builtin_trap();
    }
    (void)sink;
    return 0;
}
