// `spider random-model --arch llama ... --type q4_0|q8_0|f16|f32 OUT.gguf`: a Llama-architecture GGUF with random
// weights and a valid SentencePiece-style vocabulary, loadable by Spider and by llama.cpp. It exists for speed
// comparisons at real model shapes without downloading weights: the default shape is TinyLlama-1.1B
// (n_embd 2048, 22 layers, 32 heads, 4 KV heads, FFN 5632, vocab 32000).
// The tensor-type mix follows llama.cpp's `llama-quantize` for the same file type, so both engines read the same
// bytes a real quantized file would have: q4_0 -> Q4_0 everywhere except output.weight in Q6_K; q8_0 -> Q8_0;
// f16 -> F16; norms always F32.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "common.h"
#include "core/quants.h"
#include "core/threadpool.h"
#include "io/gguf.h"

using namespace spider;

namespace {

struct shape {
    int64_t n_embd = 2048, n_layer = 22, n_head = 32, n_head_kv = 4, n_ff = 5632, n_vocab = 32000, n_ctx = 2048;
};

void usage() {
    std::fprintf(stderr,
                 "usage: spider random-model [--arch llama] [--n-embd N] [--n-layer N] [--n-head N] [--n-head-kv N]\n"
                 "                           [--n-ff N] [--n-vocab N] [--n-ctx N] [--type q4_0|q8_0|f16|f32]\n"
                 "                           [--seed S] [-t N] OUT.gguf\n"
                 "  defaults: the TinyLlama-1.1B shape (2048, 22, 32, 4, 5632, 32000), --type q8_0, --seed 1\n");
}

// splitmix64: a fast, well-mixed generator; each row gets its own stream so threads give identical files.
uint64_t splitmix(uint64_t * s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte-fallback tokens <0x00>..<0xFF>, then distinct
// normal pieces ("▁a", "b", "▁ab", ...) with decreasing scores, as a llama tokenizer.model has.
void make_vocab(int64_t n_vocab, std::vector<std::string> * toks, std::vector<float> * scores,
                std::vector<int32_t> * types) {
    toks->clear();
    scores->clear();
    types->clear();
    auto add = [&](const std::string & t, float s, int32_t ty) {
        toks->push_back(t);
        scores->push_back(s);
        types->push_back(ty);
    };
    add("<unk>", 0.0f, 2);  // UNKNOWN
    add("<s>", 0.0f, 3);    // CONTROL
    add("</s>", 0.0f, 3);
    for (int b = 0; b < 256 && (int64_t)toks->size() < n_vocab; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        add(buf, 0.0f, 6);  // BYTE
    }
    const std::string space = "\xe2\x96\x81";  // U+2581, SentencePiece's word-boundary mark
    const std::string letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'-()";
    // Pieces of growing length built from the letters; with and without the boundary mark: all distinct.
    std::vector<std::string> frontier = {""};
    int64_t rank = 0;
    while ((int64_t)toks->size() < n_vocab) {
        std::vector<std::string> next;
        for (const std::string & f : frontier) {
            for (char c : letters) {
                const std::string p = f + c;
                next.push_back(p);
                for (const std::string & piece : {space + p, p}) {
                    if ((int64_t)toks->size() >= n_vocab) break;
                    add(piece, -static_cast<float>(++rank), 1);  // NORMAL
                }
                if ((int64_t)toks->size() >= n_vocab) break;
            }
            if ((int64_t)toks->size() >= n_vocab) break;
        }
        frontier.swap(next);
    }
}

// Fills a [n_out rows x n_in] weight of type t with values uniform in [-a, a] (a = sqrt(3) * std, std 0.02 like
// Hugging Face's init), quantized row by row on the pool.
bool random_weight(thread_pool & pool, dtype t, int64_t n_in, int64_t n_out, uint64_t seed, std::vector<uint8_t> * out,
                   std::string * err) {
    const size_t rb = dtype_row_bytes(t, n_in);
    if (rb == 0) {
        *err = "a row of " + std::to_string(n_in) + " values cannot be stored as " + dtype_name(t) +
               " (not a multiple of its block size)";
        return false;
    }
    out->assign(rb * static_cast<size_t>(n_out), 0);
    const float a = 0.02f * std::sqrt(3.0f);
    bool ok = true;
    pool.run([&](int ith, int nth) {
        long long r0, r1;
        split_range(n_out, ith, nth, r0, r1);
        std::vector<float> row(n_in);
        for (long long r = r0; r < r1; ++r) {
            uint64_t s = seed * 0x100000001B3ull + static_cast<uint64_t>(r);
            for (int64_t i = 0; i < n_in; ++i) {
                const double u = (splitmix(&s) >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
                row[i] = static_cast<float>((2.0 * u - 1.0) * a);
            }
            if (!quantize_row(t, row.data(), out->data() + static_cast<size_t>(r) * rb, n_in)) ok = false;
        }
    });
    if (!ok) *err = std::string("quantize_row failed for ") + dtype_name(t);
    return ok;
}

bool parse_i64(const char * s, int64_t * out) {
    char * end = nullptr;
    long long v = std::strtoll(s, &end, 10);
    if (end == s || *end != '\0') return false;
    *out = v;
    return true;
}

int run_random_model(int argc, char ** argv) {
    shape sh;
    std::string arch = "llama", type = "q8_0", out_path;
    int64_t seed = 1, n_threads = spider_cli::default_threads();
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            usage();
            return 0;
        }
        if (a.size() > 1 && a[0] == '-') {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "error: %s needs an argument\n", a.c_str());
                return 1;
            }
            const char * v = argv[++i];
            int64_t * target = nullptr;
            if (a == "--arch") {
                arch = v;
                continue;
            }
            if (a == "--type") {
                type = v;
                continue;
            }
            if (a == "--n-embd") target = &sh.n_embd;
            if (a == "--n-layer") target = &sh.n_layer;
            if (a == "--n-head") target = &sh.n_head;
            if (a == "--n-head-kv") target = &sh.n_head_kv;
            if (a == "--n-ff") target = &sh.n_ff;
            if (a == "--n-vocab") target = &sh.n_vocab;
            if (a == "--n-ctx") target = &sh.n_ctx;
            if (a == "--seed") target = &seed;
            if (a == "-t" || a == "--threads") target = &n_threads;
            if (!target) {
                std::fprintf(stderr, "error: unknown option '%s'\n", a.c_str());
                usage();
                return 1;
            }
            if (!parse_i64(v, target)) {
                std::fprintf(stderr, "error: %s '%s' is not an integer\n", a.c_str(), v);
                return 1;
            }
        } else if (out_path.empty()) {
            out_path = a;
        } else {
            std::fprintf(stderr, "error: more than one output path ('%s', '%s')\n", out_path.c_str(), a.c_str());
            return 1;
        }
    }
    if (out_path.empty()) {
        std::fprintf(stderr, "error: OUT.gguf is required\n");
        usage();
        return 1;
    }
    if (arch != "llama") {
        std::fprintf(stderr, "error: --arch '%s' is not supported (only llama)\n", arch.c_str());
        return 1;
    }
    dtype wt;
    if (type == "q4_0")
        wt = DTYPE_Q4_0;
    else if (type == "q8_0")
        wt = DTYPE_Q8_0;
    else if (type == "f16")
        wt = DTYPE_F16;
    else if (type == "f32")
        wt = DTYPE_F32;
    else {
        std::fprintf(stderr, "error: --type '%s' is not one of q4_0, q8_0, f16, f32\n", type.c_str());
        return 1;
    }
    // Shape checks: everything that would make an invalid model or an impossible row layout.
    const int64_t lim = 1 << 20;
    struct {
        const char * name;
        int64_t v;
    } dims[] = {{"--n-embd", sh.n_embd},       {"--n-layer", sh.n_layer}, {"--n-head", sh.n_head},
                {"--n-head-kv", sh.n_head_kv}, {"--n-ff", sh.n_ff},       {"--n-vocab", sh.n_vocab},
                {"--n-ctx", sh.n_ctx}};
    for (const auto & d : dims) {
        if (d.v <= 0 || d.v > lim) {
            std::fprintf(stderr, "error: %s %lld out of range (1..%lld)\n", d.name, (long long)d.v, (long long)lim);
            return 1;
        }
    }
    if (sh.n_embd % sh.n_head != 0 || sh.n_head % sh.n_head_kv != 0 || (sh.n_embd / sh.n_head) % 2 != 0) {
        std::fprintf(stderr,
                     "error: n_embd %lld / n_head %lld / n_head_kv %lld: need n_head | n_embd, n_head_kv | "
                     "n_head and an even head size\n",
                     (long long)sh.n_embd, (long long)sh.n_head, (long long)sh.n_head_kv);
        return 1;
    }
    if (sh.n_vocab < 259 + 16) {
        std::fprintf(stderr, "error: --n-vocab %lld: need at least 275 (3 special + 256 byte tokens + pieces)\n",
                     (long long)sh.n_vocab);
        return 1;
    }
    if (n_threads <= 0 || n_threads > 1024) {
        std::fprintf(stderr, "error: -t %lld out of range\n", (long long)n_threads);
        return 1;
    }
    const int64_t head_dim = sh.n_embd / sh.n_head, n_embd_kv = head_dim * sh.n_head_kv;
    const dtype out_t = wt == DTYPE_Q4_0 ? DTYPE_Q6_K : wt;

    gguf_writer w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.name", "spider random llama");
    // llama_ftype numbers: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7.
    w.set_u32("general.file_type", wt == DTYPE_F32 ? 0 : wt == DTYPE_F16 ? 1 : wt == DTYPE_Q4_0 ? 2 : 7);
    w.set_u32("general.quantization_version", 2);
    w.set_u32("llama.context_length", static_cast<uint32_t>(sh.n_ctx));
    w.set_u32("llama.embedding_length", static_cast<uint32_t>(sh.n_embd));
    w.set_u32("llama.block_count", static_cast<uint32_t>(sh.n_layer));
    w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(sh.n_ff));
    w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
    w.set_u32("llama.attention.head_count", static_cast<uint32_t>(sh.n_head));
    w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(sh.n_head_kv));
    w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_f32("llama.rope.freq_base", 10000.0f);
    w.set_u32("llama.vocab_size", static_cast<uint32_t>(sh.n_vocab));
    std::vector<std::string> toks;
    std::vector<float> scores;
    std::vector<int32_t> types;
    make_vocab(sh.n_vocab, &toks, &scores, &types);
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_array_str("tokenizer.ggml.tokens", toks);
    w.set_array_f32("tokenizer.ggml.scores", scores);
    w.set_array_i32("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    w.set_bool("tokenizer.ggml.add_eos_token", false);

    thread_pool pool(static_cast<int>(n_threads));
    std::string err;
    uint64_t tensor_seed = static_cast<uint64_t>(seed) * 1000003ull;
    uint64_t n_bytes = 0;
    auto add_weight = [&](const std::string & name, dtype t, int64_t n_in, int64_t n_out) {
        std::vector<uint8_t> data;
        if (!random_weight(pool, t, n_in, n_out, ++tensor_seed, &data, &err)) {
            err = name + ": " + err;
            return false;
        }
        const int64_t ne[2] = {n_in, n_out};
        n_bytes += data.size();
        return w.add_tensor(name, t, ne, 2, data.data(), &err);
    };
    auto add_norm = [&](const std::string & name) {
        std::vector<float> ones(sh.n_embd, 1.0f);
        const int64_t ne[1] = {sh.n_embd};
        n_bytes += ones.size() * sizeof(float);
        return w.add_tensor(name, DTYPE_F32, ne, 1, ones.data(), &err);
    };
    bool ok = add_weight("token_embd.weight", wt, sh.n_embd, sh.n_vocab) && add_norm("output_norm.weight") &&
              add_weight("output.weight", out_t, sh.n_embd, sh.n_vocab);
    for (int64_t l = 0; ok && l < sh.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        ok = add_norm(p + "attn_norm.weight") && add_weight(p + "attn_q.weight", wt, sh.n_embd, sh.n_embd) &&
             add_weight(p + "attn_k.weight", wt, sh.n_embd, n_embd_kv) &&
             add_weight(p + "attn_v.weight", wt, sh.n_embd, n_embd_kv) &&
             add_weight(p + "attn_output.weight", wt, sh.n_embd, sh.n_embd) && add_norm(p + "ffn_norm.weight") &&
             add_weight(p + "ffn_gate.weight", wt, sh.n_embd, sh.n_ff) &&
             add_weight(p + "ffn_up.weight", wt, sh.n_embd, sh.n_ff) &&
             add_weight(p + "ffn_down.weight", wt, sh.n_ff, sh.n_embd);
    }
    if (!ok || !w.write(out_path, &err)) {
        std::fprintf(stderr, "error: random-model: %s\n", err.c_str());
        return 1;
    }
    std::printf(
        "wrote %s: llama n_embd %lld, %lld layers, %lld heads (%lld KV), n_ff %lld, vocab %lld, %s, %.2f MiB "
        "of weights\n",
        out_path.c_str(), (long long)sh.n_embd, (long long)sh.n_layer, (long long)sh.n_head, (long long)sh.n_head_kv,
        (long long)sh.n_ff, (long long)sh.n_vocab, type.c_str(), n_bytes / 1024.0 / 1024.0);
    return 0;
}

}  // namespace

static spider_cli::command_registrar reg({"random-model", "write a random-weight Llama GGUF (speed tests)",
                                          run_random_model});
