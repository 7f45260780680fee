// `spider gguf-info FILE [--all]`: dumps a GGUF file's header, metadata KVs and tensor table (name, type, shape,
// offset, size). Long arrays are cut unless --all is given.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "command.h"
#include "io/gguf.h"

namespace {

int run_gguf_info(int argc, char ** argv) {
    std::string path;
    bool all = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--all")) {
            all = true;
        } else if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
            std::printf("usage: spider gguf-info FILE.gguf [--all]\n  --all  print every array element\n");
            return 0;
        } else if (path.empty()) {
            path = argv[i];
        } else {
            std::fprintf(stderr, "gguf-info: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (path.empty()) {
        std::fprintf(stderr, "usage: spider gguf-info FILE.gguf [--all]\n");
        return 2;
    }
    std::string err;
    auto f = spider::gguf_file::open(path, &err);
    if (!f) {
        std::fprintf(stderr, "gguf-info: %s\n", err.c_str());
        return 1;
    }
    std::printf("file: %s\n", path.c_str());
    std::printf("version: %u\nalignment: %zu\nfile size: %zu\ndata offset: %zu\n", f->version(), f->alignment(),
                f->file_size(), f->data_offset());
    std::printf("kv count: %zu\n", f->keys().size());
    for (const std::string & k : f->keys()) {
        const spider::gguf_value * v = f->find(k);
        std::string type = spider::gguf_type_name(v->type);
        if (v->type == spider::GGUF_TYPE_ARRAY) {
            type =
                std::string("arr[") + spider::gguf_type_name(v->arr_type) + "," + std::to_string(v->arr_size()) + "]";
        }
        std::printf("  %-48s %-16s = %s\n", k.c_str(), type.c_str(),
                    spider::gguf_value_to_string(*v, all ? SIZE_MAX : 8).c_str());
    }
    std::printf("tensor count: %zu\n", f->tensors().size());
    std::map<std::string, std::pair<int, size_t>> by_type;
    size_t total = 0;
    int64_t params = 0;
    for (size_t i = 0; i < f->tensors().size(); ++i) {
        const spider::gguf_tensor_info & t = f->tensors()[i];
        std::string shape;
        for (int d = 0; d < t.n_dims; ++d) shape += (d ? " x " : "") + std::to_string(t.ne[d]);
        std::printf("  %4zu %-40s %-6s [%s] offset %" PRIu64 " size %zu\n", i, t.name.c_str(),
                    spider::dtype_name(t.type), shape.c_str(), t.offset, t.nbytes);
        by_type[spider::dtype_name(t.type)].first++;
        by_type[spider::dtype_name(t.type)].second += t.nbytes;
        total += t.nbytes;
        params += t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3];
    }
    std::printf("types:");
    for (const auto & e : by_type) std::printf(" %s=%d", e.first.c_str(), e.second.first);
    std::printf("\nparameters: %" PRId64 "\ntensor bytes: %zu (%.2f MiB, %.3f bits/weight)\n", params, total,
                total / 1048576.0, params ? 8.0 * total / params : 0.0);
    return 0;
}

spider_cli::command_registrar reg({"gguf-info", "dump a GGUF file: metadata KVs and tensor table", run_gguf_info});

}  // namespace
