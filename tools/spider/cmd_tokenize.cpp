// `spider tokenize`: prints the token ids of a text, one per line (optionally with the piece of each token), using
// only the vocabulary of a GGUF (no weights are read).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "command.h"
#include "io/gguf.h"
#include "llm/default_model.h"
#include "llm/vocab.h"

namespace {

void print_usage() {
    std::printf(
        "usage: spider tokenize [-m MODEL.gguf] (-p TEXT | -f FILE) [--no-bos] [--pieces] [--parse-special]\n"
        "  -m, --model FILE    GGUF whose vocabulary to use (default: $SPIDER_MODEL or the installed gemma3)\n"
        "  -p, --prompt TEXT   text to tokenize\n"
        "  -f, --file FILE     read the text from FILE (bytes as they are)\n"
        "  --no-bos            do not add BOS/EOS even if the vocabulary asks for them\n"
        "  --pieces            print `id<TAB>piece` (piece with \\n, \\t, \\\\ and non-printable bytes escaped)\n"
        "  --parse-special     recognise control-token texts such as <start_of_turn> as single tokens\n");
}

std::string escape_piece(const std::string & s) {
    std::string out;
    for (unsigned char c : s) {
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

int run_tokenize(int argc, char ** argv) {
    std::string model, prompt, file;
    bool have_prompt = false, no_bos = false, pieces = false, parse_special = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](std::string * dst) -> bool {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "tokenize: %s needs a value\n", a.c_str());
                return false;
            }
            *dst = argv[++i];
            return true;
        };
        if (a == "-h" || a == "--help") {
            print_usage();
            return 0;
        } else if (a == "-m" || a == "--model") {
            if (!value(&model)) return 2;
        } else if (a == "-p" || a == "--prompt") {
            if (!value(&prompt)) return 2;
            have_prompt = true;
        } else if (a == "-f" || a == "--file") {
            if (!value(&file)) return 2;
        } else if (a == "--no-bos") {
            no_bos = true;
        } else if (a == "--pieces") {
            pieces = true;
        } else if (a == "--parse-special") {
            parse_special = true;
        } else {
            std::fprintf(stderr, "tokenize: unknown argument '%s'\n", a.c_str());
            print_usage();
            return 2;
        }
    }
    if (have_prompt == !file.empty()) {
        std::fprintf(stderr, "tokenize: give exactly one of -p TEXT or -f FILE\n");
        return 2;
    }
    std::string text = prompt;
    if (!file.empty()) {
        std::ifstream f(file, std::ios::binary);
        if (!f) {
            std::fprintf(stderr, "tokenize: cannot read '%s'\n", file.c_str());
            return 1;
        }
        std::stringstream ss;
        ss << f.rdbuf();
        text = ss.str();
    }
    std::string err;
    if (model.empty() && !spider::find_default_model(&model, &err)) {
        std::fprintf(stderr, "tokenize: %s\n", err.c_str());
        return 1;
    }
    auto gf = spider::gguf_file::open(model, &err);
    if (!gf) {
        std::fprintf(stderr, "tokenize: %s\n", err.c_str());
        return 1;
    }
    spider::vocab v;
    if (!v.load(*gf, &err)) {
        std::fprintf(stderr, "tokenize: %s: %s\n", model.c_str(), err.c_str());
        return 1;
    }
    const std::vector<int32_t> ids = v.tokenize(text, !no_bos, parse_special);
    std::string out;
    for (int32_t id : ids) {
        out += std::to_string(id);
        if (pieces) {
            out += '\t';
            out += escape_piece(v.token_to_piece(id, true));
        }
        out += '\n';
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

spider_cli::command_registrar reg({"tokenize", "print the token ids of a text (one per line)", run_tokenize});

}  // namespace
