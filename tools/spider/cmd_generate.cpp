// `spider generate`: continue a prompt with the LLM, streaming tokens to stdout, then print prompt / generation
// speed to stderr (like llama.cpp). Without -m it uses the installed default model.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "common.h"
#include "llm/grammar.h"
#include "llm/model.h"
#include "llm/vocab.h"
#include "spider.h"

namespace {

int run_generate(int argc, char ** argv) {
    CLI::App app{"Continue a prompt with the LLM (streams tokens; prints speed at the end)", "spider generate"};
    std::string model_path, prompt, prompt_file, grammar_file, lora_path;
    std::vector<std::string> stops;
    int n_predict = 64, n_threads = spider_cli::default_threads(), n_ctx = 2048;
    bool no_special = false, show_prompt = false, kv_f16 = false;
    spider_cli::sampling_cli sc;
    app.add_option("-m,--model", model_path, "GGUF model (default: $SPIDER_MODEL or the installed gemma-3-270m)");
    app.add_option("-p,--prompt", prompt, "prompt text");
    app.add_option("-f,--file", prompt_file, "read the prompt from a file");
    app.add_option("-n,--n-predict", n_predict, "tokens to generate (default 64)")->check(CLI::Range(0, 1 << 20));
    app.add_option("-t,--threads", n_threads, "threads")->check(CLI::Range(1, 1024));
    app.add_option("-c,--ctx-size", n_ctx, "context size in tokens (default 2048)")->check(CLI::Range(1, 1 << 20));
    app.add_option("--lora", lora_path, "merge a Spider LoRA adapter (spider train stage instruct) at load");
    app.add_option("--grammar", grammar_file, "GBNF grammar file constraining the output");
    app.add_option("--stop", stops, "stop when this text appears (repeatable)");
    app.add_flag("--kv-f16", kv_f16, "store the KV cache in F16");
    app.add_flag("--no-special", no_special, "do not add BOS / do not parse control tokens in the prompt");
    app.add_flag("--show-prompt", show_prompt, "echo the prompt before the continuation");
    sc.add_to(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError & e) {
        return app.exit(e);
    }
    if (!prompt_file.empty()) {
        std::ifstream in(prompt_file, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "error: cannot read prompt file '%s'\n", prompt_file.c_str());
            return 1;
        }
        std::stringstream ss;
        ss << in.rdbuf();
        prompt = ss.str();
    }
    if (prompt.empty()) {
        std::fprintf(stderr, "error: no prompt: pass -p TEXT or -f FILE\n");
        return 1;
    }
    std::string grammar_text;
    if (!grammar_file.empty()) {
        std::ifstream in(grammar_file, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "error: cannot read grammar file '%s'\n", grammar_file.c_str());
            return 1;
        }
        std::stringstream ss;
        ss << in.rdbuf();
        grammar_text = ss.str();
    }

    spider_model * model = spider_cli::load_model_or_report(model_path, n_threads);
    if (!model) return 1;
    if (!lora_path.empty() && spider_model_apply_lora(model, lora_path.c_str()) != SPIDER_STATUS_OK) {
        std::fprintf(stderr, "error: --lora: %s\n", spider_last_error());
        spider_model_free(model);
        return 1;
    }
    // Grammar-constrained sampling: a matcher masks the tokens that cannot continue a sentence of the grammar.
    std::unique_ptr<spider::grammar> grammar;
    std::unique_ptr<spider::grammar_matcher> matcher;
    if (!grammar_file.empty()) {
        std::string err;
        grammar = spider::grammar::parse(grammar_text, &err);
        const spider::vocab * voc = spider::llm_vocab_of(model);
        const spider::llm_model * lm = spider::llm_model_of(model);
        if (!grammar) {
            err = grammar_file + ": " + err;
        } else if (!voc) {
            err = "--grammar: the model has no vocabulary";
        } else if (lm->hparams.n_added > 0 && voc->n_tokens() != lm->hparams.n_vocab) {
            err = "--grammar: vocabulary size differs from the embedding rows; added-token ids would not line up";
        } else {
            matcher = spider::grammar_matcher::create(*grammar,
                                                      spider::grammar_vocab::from_vocab(*voc, lm->added_tokens), &err);
        }
        if (!matcher) {
            std::fprintf(stderr, "error: %s\n", err.c_str());
            spider_model_free(model);
            return 1;
        }
    }
    spider_context_params cp = spider_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_threads = n_threads;
    cp.kv_type = kv_f16 ? SPIDER_KV_TYPE_F16 : SPIDER_KV_TYPE_F32;
    spider_context * ctx = nullptr;
    if (spider_context_create(model, cp, &ctx) != SPIDER_STATUS_OK) {
        std::fprintf(stderr, "error: %s\n", spider_last_error());
        spider_model_free(model);
        return 1;
    }

    int rc = 0;
    std::vector<spider_token> toks(prompt.size() + 16);
    int32_t n = spider_tokenize(model, prompt.c_str(), (int32_t)prompt.size(), toks.data(), (int32_t)toks.size(),
                                !no_special, !no_special);
    if (n <= 0) {
        std::fprintf(stderr, "error: tokenization failed: %s\n", n == INT32_MIN ? spider_last_error() : "empty prompt");
        rc = 1;
    } else if (n + n_predict > n_ctx) {
        std::fprintf(stderr, "error: prompt (%d tokens) + %d to generate exceed the context size %d (use -c)\n", n,
                     n_predict, n_ctx);
        rc = 1;
    }
    if (rc == 0) {
        toks.resize(n);
        if (show_prompt) {
            std::fwrite(prompt.data(), 1, prompt.size(), stdout);
            std::fflush(stdout);
        }
        spider::sampler picker(sc.resolve());
        for (spider_token t : toks) picker.accept(t);
        spider::stop_detector filter(stops);
        spider_batch b = spider_batch_tokens(toks.data(), n);
        spider_token cur = 0;
        std::vector<char> piece(256);
        std::vector<uint8_t> mask;
        for (int i = 0; i < n_predict; i++) {
            if (spider_decode(ctx, b) != SPIDER_STATUS_OK) {
                std::fprintf(stderr, "\nerror: %s\n", spider_last_error());
                rc = 1;
                break;
            }
            const int32_t n_vocab = spider_model_n_vocab(model);
            const uint8_t * allowed = nullptr;
            if (matcher) {
                matcher->allowed_tokens(&mask);
                mask.resize(n_vocab, 0);
                allowed = mask.data();
            }
            cur = picker.sample(spider_get_logits_ith(ctx, -1), n_vocab, allowed);
            if (cur < 0) {  // the grammar allows nothing: it must have ended, else it is a dead end
                if (matcher && !matcher->can_end()) {
                    std::fprintf(stderr, "\nerror: grammar: no token can continue the output\n");
                    rc = 1;
                }
                break;
            }
            if (spider_token_is_eog(model, cur)) break;
            if (matcher) {
                std::string err;
                if (!matcher->accept_token(cur, &err)) {
                    std::fprintf(stderr, "\nerror: grammar: %s\n", err.c_str());
                    rc = 1;
                    break;
                }
            }
            picker.accept(cur);
            int32_t len = spider_token_to_piece(model, cur, piece.data(), (int32_t)piece.size(), false);
            if (len < 0 && len != INT32_MIN) {
                piece.resize(-len);
                len = spider_token_to_piece(model, cur, piece.data(), (int32_t)piece.size(), false);
            }
            bool stopped = false;
            std::string out = filter.feed(std::string(piece.data(), len > 0 ? len : 0), &stopped);
            std::fwrite(out.data(), 1, out.size(), stdout);
            std::fflush(stdout);
            if (stopped) break;
            b = spider_batch_tokens(&cur, 1);
        }
        std::string rest = filter.flush();
        std::fwrite(rest.data(), 1, rest.size(), stdout);
        std::printf("\n");
        std::fflush(stdout);
        std::fprintf(stderr, "%s\n", spider_cli::format_speed(spider_get_timings(ctx)).c_str());
    }
    spider_context_free(ctx);
    spider_model_free(model);
    return rc;
}

spider_cli::command_registrar reg({"generate", "continue a prompt with the LLM (streaming)", run_generate});

}  // namespace
