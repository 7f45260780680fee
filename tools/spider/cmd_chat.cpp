// `spider chat`: an interactive conversation with the LLM. Reads one user message per stdin line, renders the whole
// conversation with the model's chat template, decodes only what the KV cache does not hold yet (the common
// prefix stays cached), and streams the answer. Ends at end of input or on "/exit".
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "command.h"
#include "common.h"
#include "llm/chat_template.h"
#include "spider.h"

namespace {

int run_chat(int argc, char ** argv) {
    CLI::App app{"Chat with the LLM: one user message per input line (uses the model's chat template)", "spider chat"};
    std::string model_path, system_prompt, template_name;
    int n_predict = 256, n_threads = spider_cli::default_threads(), n_ctx = 4096;
    spider_cli::sampling_cli sc;
    app.add_option("-m,--model", model_path, "GGUF model (default: $SPIDER_MODEL or the installed gemma-3-270m)");
    app.add_option("--system", system_prompt, "system message");
    app.add_option("--template", template_name, "chat format: gemma, llama2, llama3, zephyr, mistral, chatml");
    app.add_option("-n,--n-predict", n_predict, "most tokens per answer (default 256)")->check(CLI::Range(1, 1 << 20));
    app.add_option("-t,--threads", n_threads, "threads")->check(CLI::Range(1, 1024));
    app.add_option("-c,--ctx-size", n_ctx, "context size in tokens (default 4096)")->check(CLI::Range(16, 1 << 20));
    sc.add_to(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError & e) {
        return app.exit(e);
    }

    spider_model * model = spider_cli::load_model_or_report(model_path, n_threads);
    if (!model) return 1;
    spider::chat_template_kind kind;
    if (!template_name.empty()) {
        kind = spider::chat_template_from_name(template_name);
        if (kind == spider::CHAT_TEMPLATE_UNKNOWN) {
            std::fprintf(stderr, "error: unknown --template '%s'\n", template_name.c_str());
            spider_model_free(model);
            return 1;
        }
    } else {
        std::string tmpl;
        int32_t len = spider_model_meta_str(model, "tokenizer.chat_template", nullptr, 0);
        if (len > 0) {
            tmpl.resize((size_t)len + 1);
            spider_model_meta_str(model, "tokenizer.chat_template", &tmpl[0], tmpl.size());
            tmpl.resize((size_t)len);
        }
        kind = spider::chat_template_detect(tmpl, spider_model_arch(model));
    }

    spider_context_params cp = spider_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_threads = n_threads;
    spider_context * ctx = nullptr;
    if (spider_context_create(model, cp, &ctx) != SPIDER_STATUS_OK) {
        std::fprintf(stderr, "error: %s\n", spider_last_error());
        spider_model_free(model);
        return 1;
    }
    const bool interactive = isatty(STDIN_FILENO);
    if (interactive) {
        std::fprintf(stderr, "spider chat (%s template) - one message per line, /exit or Ctrl-D to quit\n",
                     spider::chat_template_name(kind));
    }

    std::vector<spider::chat_message> messages;
    if (!system_prompt.empty()) messages.push_back({"system", system_prompt});
    std::vector<spider_token> cached;  // tokens whose keys/values are in the cache, in order
    spider::sampler picker(sc.resolve());
    std::vector<char> piece(256);
    int rc = 0;
    std::string line;
    while (true) {
        if (interactive) std::fprintf(stderr, "> ");
        if (!std::getline(std::cin, line)) break;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line == "/exit") break;
        if (line.empty()) continue;
        messages.push_back({"user", line});

        std::string prompt, err;
        std::vector<spider_token> toks;
        while (true) {
            if (!spider::chat_template_apply(kind, messages, true, &prompt, &err)) {
                std::fprintf(stderr, "error: %s\n", err.c_str());
                rc = 1;
                break;
            }
            toks.assign(prompt.size() + 16, 0);
            int32_t n = spider_tokenize(model, prompt.c_str(), (int32_t)prompt.size(), toks.data(),
                                        (int32_t)toks.size(), true, true);
            if (n < 0) {
                std::fprintf(stderr, "error: tokenization failed: %s\n", spider_last_error());
                rc = 1;
                break;
            }
            toks.resize(n);
            if (n + n_predict <= n_ctx) break;
            // Too long: forget the oldest exchange (keep a system message), or give up on a single huge message.
            size_t first = (!messages.empty() && messages[0].role == "system") ? 1 : 0;
            if (messages.size() - first <= 1) {
                std::fprintf(stderr, "error: the message (%d tokens) does not fit the context (%d); use -c\n", n,
                             n_ctx);
                messages.pop_back();
                toks.clear();
                break;
            }
            messages.erase(messages.begin() + first, messages.begin() + std::min(messages.size() - 1, first + 2));
        }
        if (rc != 0) break;
        if (toks.empty()) continue;

        // Reuse the cached prefix; decode the rest.
        size_t common = 0;
        while (common < cached.size() && common < toks.size() && cached[common] == toks[common]) common++;
        if (common == toks.size()) common--;  // always decode at least one token to get logits
        if (spider_kv_truncate(ctx, (int32_t)common) != SPIDER_STATUS_OK) {
            std::fprintf(stderr, "error: %s\n", spider_last_error());
            rc = 1;
            break;
        }
        cached.assign(toks.begin(), toks.begin() + common);
        spider_batch b = spider_batch_tokens(toks.data() + common, (int32_t)(toks.size() - common));
        cached.insert(cached.end(), toks.begin() + common, toks.end());
        std::string answer;
        spider_token cur = 0;
        for (int i = 0; i < n_predict; i++) {
            if (spider_decode(ctx, b) != SPIDER_STATUS_OK) {
                std::fprintf(stderr, "\nerror: %s\n", spider_last_error());
                rc = 1;
                break;
            }
            cur = picker.sample(spider_get_logits_ith(ctx, -1), spider_model_n_vocab(model));
            if (spider_token_is_eog(model, cur)) break;
            picker.accept(cur);
            int32_t len = spider_token_to_piece(model, cur, piece.data(), (int32_t)piece.size(), false);
            if (len < 0 && len != INT32_MIN) {
                piece.resize(-len);
                len = spider_token_to_piece(model, cur, piece.data(), (int32_t)piece.size(), false);
            }
            if (len > 0) {
                std::fwrite(piece.data(), 1, len, stdout);
                std::fflush(stdout);
                answer.append(piece.data(), len);
            }
            cached.push_back(cur);
            b = spider_batch_tokens(&cached.back(), 1);
        }
        // The last sampled token was never decoded: drop it from the cache bookkeeping.
        if ((int32_t)cached.size() > spider_kv_len(ctx)) cached.resize(spider_kv_len(ctx));
        std::printf("\n");
        std::fflush(stdout);
        if (rc != 0) break;
        messages.push_back({"assistant", answer});
    }
    if (interactive) std::fprintf(stderr, "%s\n", spider_cli::format_speed(spider_get_timings(ctx)).c_str());
    spider_context_free(ctx);
    spider_model_free(model);
    return rc;
}

spider_cli::command_registrar reg({"chat", "interactive chat with the LLM (one message per line)", run_chat});

}  // namespace
