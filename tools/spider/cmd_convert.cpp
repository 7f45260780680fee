// `spider convert HF_DIR OUT.gguf [--type f32|f16|bf16] [--name NAME] [--quiet]`: converts a Hugging Face
// LlamaForCausalLM / Gemma3ForCausalLM checkpoint to GGUF (io/hf_convert.h).
#include <cstdio>
#include <string>
#include <vector>

#include "command.h"
#include "io/hf_convert.h"

namespace {

void usage(FILE * f) {
    std::fprintf(f,
                 "usage: spider convert HF_DIR OUT.gguf [--type f32|f16|bf16] [--name NAME] [--quiet]\n"
                 "  HF_DIR holds config.json, model.safetensors (or an index + shards) and tokenizer.model or\n"
                 "  tokenizer.json. Matrices are written in --type (default f16), 1-D tensors in f32.\n"
                 "  Quantize afterwards with `spider quantize`.\n");
}

int run_convert(int argc, char ** argv) {
    std::vector<std::string> pos;
    spider::hf_convert_params p;
    bool quiet = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            usage(stdout);
            return 0;
        } else if (a == "--type" || a == "--outtype" || a == "--name") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "convert: %s needs a value\n", a.c_str());
                return 2;
            }
            const std::string v = argv[++i];
            if (a == "--name") {
                p.name = v;
            } else if (v == "f32" || v == "F32") {
                p.out_type = spider::DTYPE_F32;
            } else if (v == "f16" || v == "F16") {
                p.out_type = spider::DTYPE_F16;
            } else if (v == "bf16" || v == "BF16") {
                p.out_type = spider::DTYPE_BF16;
            } else {
                std::fprintf(stderr, "convert: unknown --type '%s' (f32, f16 or bf16; quantize afterwards)\n",
                             v.c_str());
                return 2;
            }
        } else if (a == "--quiet" || a == "-q") {
            quiet = true;
        } else if (!a.empty() && a[0] == '-') {
            std::fprintf(stderr, "convert: unknown option '%s'\n", a.c_str());
            usage(stderr);
            return 2;
        } else {
            pos.push_back(a);
        }
    }
    if (pos.size() != 2) {
        usage(stderr);
        return 2;
    }
    if (!quiet) {
        p.log = [](const std::string & line) {
            std::printf("%s\n", line.c_str());
            std::fflush(stdout);
        };
    }
    std::string err;
    if (!spider::hf_convert(pos[0], pos[1], p, &err)) {
        std::fprintf(stderr, "%s\n", err.c_str());
        return 1;
    }
    return 0;
}

spider_cli::command_registrar reg({"convert", "convert a Hugging Face Llama / Gemma 3 checkpoint to GGUF",
                                   run_convert});

}  // namespace
