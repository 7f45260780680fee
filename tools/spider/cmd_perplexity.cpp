// `spider perplexity [-m MODEL] -f FILE [-c CTX] [-t N] [-b BATCH] [--chunks N]`: perplexity of a text file with
// llama.cpp's method (tools/perplexity), so the numbers are directly comparable with `llama-perplexity`:
// the whole text is tokenized once with the model's BOS; it is cut into chunks of n_ctx tokens; each chunk is run
// from an empty KV cache with its first token replaced by BOS; only the second half of each chunk is scored
// (positions n_ctx/2 .. n_ctx-2 predicting the next token), so every scored token has at least n_ctx/2 tokens of
// context. Prints the running perplexity after each chunk as `[i]ppl,` and ends with
// `Final estimate: PPL = X +/- err` where err is the standard error propagated from the per-token NLLs.
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "common.h"
#include "spider.h"

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: spider perplexity [-m MODEL] -f FILE [-c CTX] [-t N] [-b BATCH] [--chunks N]\n"
                 "  -m MODEL    GGUF model (default: the installed default model)\n"
                 "  -f FILE     text file to score (needs at least 2 * CTX tokens)\n"
                 "  -c CTX      tokens per chunk (default 512)\n"
                 "  -t N        threads (default: all cores)\n"
                 "  -b BATCH    tokens per decode call (default: CTX; a chunk is split into CTX / BATCH calls)\n"
                 "  --chunks N  score only the first N chunks (default: all)\n");
}

bool parse_int(const char * s, int * out) {
    char * end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < -2147483647L || v > 2147483647L) return false;
    *out = static_cast<int>(v);
    return true;
}

// log of the softmax probability of token tok in a row of logits (max-shifted, sum in double as llama.cpp does).
double log_prob(const float * logits, int n_vocab, int tok) {
    float max_logit = logits[0];
    for (int i = 1; i < n_vocab; ++i) max_logit = logits[i] > max_logit ? logits[i] : max_logit;
    double sum_exp = 0.0;
    for (int i = 0; i < n_vocab; ++i) sum_exp += std::exp(static_cast<double>(logits[i] - max_logit));
    return static_cast<double>(logits[tok] - max_logit) - std::log(sum_exp);
}

int run_perplexity(int argc, char ** argv) {
    std::string model_arg, file;
    int n_ctx = 512, n_threads = spider_cli::default_threads(), n_batch = -1, max_chunks = -1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next_int = [&](int * out) {
            if (i + 1 >= argc || !parse_int(argv[i + 1], out)) {
                std::fprintf(stderr, "error: %s needs an integer argument\n", a.c_str());
                return false;
            }
            ++i;
            return true;
        };
        if (a == "-h" || a == "--help") {
            usage();
            return 0;
        } else if ((a == "-m" || a == "--model") && i + 1 < argc) {
            model_arg = argv[++i];
        } else if ((a == "-f" || a == "--file") && i + 1 < argc) {
            file = argv[++i];
        } else if (a == "-c" || a == "--ctx-size") {
            if (!next_int(&n_ctx)) return 1;
        } else if (a == "-t" || a == "--threads") {
            if (!next_int(&n_threads)) return 1;
        } else if (a == "-b" || a == "--batch-size") {
            if (!next_int(&n_batch)) return 1;
        } else if (a == "--chunks") {
            if (!next_int(&max_chunks)) return 1;
        } else {
            std::fprintf(stderr, "error: unknown or incomplete argument '%s'\n", a.c_str());
            usage();
            return 1;
        }
    }
    if (file.empty()) {
        std::fprintf(stderr, "error: -f FILE is required\n");
        usage();
        return 1;
    }
    if (n_ctx < 4) {
        std::fprintf(stderr, "error: -c %d is too small (need at least 4)\n", n_ctx);
        return 1;
    }
    if (n_threads <= 0) {
        std::fprintf(stderr, "error: -t %d: need at least one thread\n", n_threads);
        return 1;
    }
    if (n_batch <= 0 || n_batch > n_ctx) n_batch = n_ctx;

    std::ifstream in(file, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "error: cannot open '%s': %s\n", file.c_str(), std::strerror(errno));
        return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();

    spider_model * model = spider_cli::load_model_or_report(model_arg, n_threads);
    if (!model) return 1;
    const int n_vocab = spider_model_n_vocab(model);

    // Tokenize the whole text with BOS (the model's add-special rule), like llama.cpp's common_tokenize(.., true).
    int32_t n = spider_tokenize(model, text.data(), static_cast<int32_t>(text.size()), nullptr, 0, true, false);
    if (n == INT32_MIN) {
        std::fprintf(stderr, "error: tokenizing '%s': %s\n", file.c_str(), spider_last_error());
        spider_model_free(model);
        return 1;
    }
    std::vector<spider_token> tokens(n < 0 ? -n : n);
    n = spider_tokenize(model, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                        static_cast<int32_t>(tokens.size()), true, false);
    if (n < 0) {
        std::fprintf(stderr, "error: tokenizing '%s': %s\n", file.c_str(), spider_last_error());
        spider_model_free(model);
        return 1;
    }
    tokens.resize(n);
    std::fprintf(stderr, "perplexity: tokenized %zu bytes into %d tokens\n", text.size(), n);
    if (n < 2 * n_ctx) {
        std::fprintf(stderr,
                     "error: you need at least %d tokens to evaluate perplexity with a context of %d (the text "
                     "has %d)\n",
                     2 * n_ctx, n_ctx, n);
        spider_model_free(model);
        return 1;
    }
    const spider_token bos = spider_token_bos(model);

    spider_context_params cp = spider_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(n_ctx);
    cp.n_batch = static_cast<uint32_t>(n_batch);
    cp.n_threads = n_threads;
    spider_context * ctx = nullptr;
    spider_status st = spider_context_create(model, cp, &ctx);
    if (st != SPIDER_STATUS_OK) {
        std::fprintf(stderr, "error: context: %s (%s)\n", spider_last_error(), spider_status_name(st));
        spider_model_free(model);
        return 1;
    }

    int n_chunk = n / n_ctx;
    if (max_chunks > 0 && max_chunks < n_chunk) n_chunk = max_chunks;
    const int first = n_ctx / 2;
    std::fprintf(stderr, "perplexity: calculating perplexity over %d chunks, n_ctx=%d, batch_size=%d, threads=%d\n",
                 n_chunk, n_ctx, n_batch, n_threads);

    std::vector<float> logits(static_cast<size_t>(n_ctx) * n_vocab);
    std::vector<spider_token> chunk(n_ctx);
    double nll = 0.0, nll2 = 0.0;
    long count = 0;
    int rc = 0;
    for (int c = 0; c < n_chunk && rc == 0; ++c) {
        const auto t0 = std::chrono::steady_clock::now();
        const int start = c * n_ctx;
        chunk.assign(tokens.begin() + start, tokens.begin() + start + n_ctx);
        if (bos >= 0) chunk[0] = bos;  // every chunk starts like a fresh document
        spider_kv_clear(ctx);
        for (int b = 0; b < n_ctx; b += n_batch) {
            const int len = n_ctx - b < n_batch ? n_ctx - b : n_batch;
            spider_batch batch = spider_batch_tokens(chunk.data() + b, len);
            batch.output = SPIDER_OUTPUT_ALL;
            st = spider_decode(ctx, batch);
            if (st != SPIDER_STATUS_OK) {
                std::fprintf(stderr, "\nerror: decode of chunk %d: %s (%s)\n", c + 1, spider_last_error(),
                             spider_status_name(st));
                rc = 1;
                break;
            }
            const float * out = spider_get_logits(ctx);
            if (!out || spider_n_outputs(ctx) != len) {
                std::fprintf(stderr, "\nerror: decode of chunk %d returned %d logit rows, expected %d\n", c + 1,
                             spider_n_outputs(ctx), len);
                rc = 1;
                break;
            }
            std::memcpy(logits.data() + static_cast<size_t>(b) * n_vocab, out, sizeof(float) * len * n_vocab);
        }
        if (rc) break;
        // Score positions first .. n_ctx-2, each predicting the next token of the original text. The log-softmax
        // over the vocabulary (262 144 exps per row on gemma) runs on n_threads threads, each on its own rows; the
        // sum is then taken in position order, so the result does not depend on the thread count.
        std::vector<double> lps(static_cast<size_t>(n_ctx - 1 - first));
        {
            auto score = [&](int ith, int nth) {
                for (int j = first + ith; j < n_ctx - 1; j += nth) {
                    lps[static_cast<size_t>(j - first)] =
                        log_prob(logits.data() + static_cast<size_t>(j) * n_vocab, n_vocab, tokens[start + j + 1]);
                }
            };
            std::vector<std::thread> workers;
            for (int t = 1; t < n_threads; ++t) workers.emplace_back(score, t, n_threads);
            score(0, n_threads);
            for (std::thread & w : workers) w.join();
        }
        for (int j = first; j < n_ctx - 1; ++j) {
            const double lp = lps[static_cast<size_t>(j - first)];
            nll += -lp;
            nll2 += lp * lp;
            ++count;
        }
        if (c == 0) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::fprintf(stderr, "perplexity: %.2f seconds per pass - ETA %.1f minutes\n", s, s * n_chunk / 60.0);
        }
        std::printf("[%d]%.4f,", c + 1, std::exp(nll / count));
        std::fflush(stdout);
    }
    std::printf("\n");
    if (rc == 0) {
        const double mean = nll / count;
        const double ppl = std::exp(mean);
        const double var = nll2 / count - mean * mean;
        // Standard error of the mean NLL, carried to PPL by d exp(x) = exp(x) dx (llama.cpp's estimate).
        const double err = var > 0 && count > 1 ? std::sqrt(var / (count - 1)) * ppl : 0.0;
        std::printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, err);
        std::fprintf(stderr, "perplexity: %ld tokens scored in %d chunks\n", count, n_chunk);
    }
    spider_context_free(ctx);
    spider_model_free(model);
    return rc;
}

}  // namespace

static spider_cli::command_registrar reg({"perplexity", "perplexity of a text file (llama.cpp's chunked method)",
                                          run_perplexity});
