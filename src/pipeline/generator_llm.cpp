// The LLM text generator: prompt with media embeddings, template-constrained sampling, M-Prompt capture.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>

#include "llm/grammar.h"
#include "llm/model.h"
#include "pipeline/generator.h"

namespace spider {

namespace {

// The grammar view of a vocabulary takes ~0.7 s to build for a 262k vocabulary: build it once per model and
// share it between the generators of a process (batch mode makes one generator per request).
std::shared_ptr<const grammar_vocab> shared_grammar_vocab(const ::spider_model * m) {
    static std::mutex mu;
    static std::map<const ::spider_model *, std::weak_ptr<const grammar_vocab>> cache;
    std::lock_guard<std::mutex> lk(mu);
    if (auto gv = cache[m].lock()) return gv;
    const vocab * v = llm_vocab_of(m);
    if (!v) return nullptr;
    // Added tokens (a LoRA adapter's template tokens, ids n_vocab + i) are named tokens of the grammar view.
    const llm_model * lm = llm_model_of(m);
    std::shared_ptr<const grammar_vocab> gv =
        grammar_vocab::from_vocab(*v, lm ? lm->added_tokens : std::vector<std::string>{});
    cache[m] = gv;
    return gv;
}

class llm_generator : public text_generator {
public:
    llm_generator(::spider_model * m, const llm_gen_params & p, const template_config & cfg)
        : model_(m), p_(p), cfg_(cfg) {}
    ~llm_generator() override {
        if (ctx_) spider_context_free(ctx_);
    }
    std::string name() const override { return "llm"; }
    int n_embd() const override { return spider_model_n_embd(model_); }

    bool init(std::string * err) {
        spider_context_params cp = spider_context_default_params();
        cp.n_ctx = 4096;
        cp.n_threads = p_.n_threads;
        if (spider_context_create(model_, cp, &ctx_) != SPIDER_STATUS_OK) {
            *err = std::string("[llm] cannot create a context: ") + spider_last_error();
            return false;
        }
        const int32_t layers[1] = {-1};
        if (spider_set_capture_layers(ctx_, layers, 1) != SPIDER_STATUS_OK) {
            *err = std::string("[llm] cannot capture hidden states: ") + spider_last_error();
            return false;
        }
        n_vocab_ = spider_model_n_vocab(model_);
        // A model that carries the template's tokens as added tokens (a `spider train` stage-instruct adapter) was
        // tuned to write the template itself: it chooses its groups, markers and T-Prompts, and the grammar only
        // keeps the answer well formed. An untuned model is steered by the length budgets below.
        if (const llm_model * lm = llm_model_of(model_)) {
            model_driven_ = std::find(lm->added_tokens.begin(), lm->added_tokens.end(), std::string(TOKEN_OUTPUT)) !=
                            lm->added_tokens.end();
        }
        if (!p_.grammar) {
            if (!model_driven_) {
                *err =
                    "[llm] decoding without the template grammar needs a model that writes the template itself "
                    "(one with the template's added tokens: a `spider train` stage-instruct adapter)";
                return false;
            }
            return true;
        }
        // The project's GBNF engine checks every token against template_grammar() (src/llm/grammar.h); the
        // budget logic below only decides among the tokens it allows.
        gv_ = shared_grammar_vocab(model_);
        return true;
    }

    bool begin(const input_layout & layout, const std::vector<std::vector<float>> & media_tokens,
               const std::vector<modality> & allowed, uint64_t seed, std::string * err) override {
        spider_kv_clear(ctx_);
        states_.clear();
        forced_.clear();
        rng_.seed(seed);
        const int E = n_embd();
        // Chat wrapping for instruction-tuned Gemma vocabularies.
        const bool chat = !model_driven_ && spider_token_find(model_, "<start_of_turn>") >= 0;
        std::vector<float> rows;
        bool first = true;
        size_t media_i = 0;
        auto add_text = [&](const std::string & text) -> bool {
            if (text.empty()) return true;
            std::vector<spider_token> toks(text.size() + 8);
            int32_t n = spider_tokenize(model_, text.c_str(), static_cast<int32_t>(text.size()), toks.data(),
                                        static_cast<int32_t>(toks.size()), first, true);
            if (n < 0) {
                *err = std::string("[llm] tokenize failed: ") + spider_last_error();
                return false;
            }
            first = false;
            toks.resize(n);
            if (n == 0) return true;
            std::vector<float> e(static_cast<size_t>(n) * E);
            if (spider_token_embeddings(model_, toks.data(), n, e.data()) != SPIDER_STATUS_OK) {
                *err = std::string("[llm] embeddings: ") + spider_last_error();
                return false;
            }
            rows.insert(rows.end(), e.begin(), e.end());
            return true;
        };
        if (chat && !add_text("<start_of_turn>user\n")) return false;
        for (const auto & seg : layout.segments) {
            if (!seg.is_media) {
                if (!add_text(seg.text)) return false;
                continue;
            }
            if (media_i >= media_tokens.size() || static_cast<int>(media_tokens[media_i].size()) != E) {
                *err = "[llm] missing or mis-sized media embedding for a placeholder";
                return false;
            }
            rows.insert(rows.end(), media_tokens[media_i].begin(), media_tokens[media_i].end());
            ++media_i;
        }
        if (chat && !add_text("<end_of_turn>\n<start_of_turn>model\n")) return false;
        const int32_t n_rows = static_cast<int32_t>(rows.size() / E);
        if (spider_decode(ctx_, spider_batch_embd(rows.data(), n_rows)) != SPIDER_STATUS_OK) {
            *err = std::string("[llm] prompt decode failed: ") + spider_last_error();
            return false;
        }
        // What groups the constraint will open (see generator.h).
        plan_.clear();
        const std::string & task = layout.task;
        std::string prompt_lower;
        for (const auto & seg : layout.segments) {
            if (!seg.is_media) prompt_lower += seg.text;
        }
        for (auto & ch : prompt_lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (task == TOKEN_TASK_TEXT) {
            // text only
        } else if (task == TOKEN_TASK_SMART && model_driven_) {
            // the tuned model chooses its groups itself
        } else if (task == TOKEN_TASK_SMART) {
            static const struct {
                modality m;
                const char * words[4];
            } kw[] = {{MODALITY_IMAGE, {"image", "picture", "photo", "draw"}},
                      {MODALITY_VIDEO, {"video", "clip", "movie", "animation"}},
                      {MODALITY_AUDIO, {"sound", "audio", "music", "song"}},
                      {MODALITY_BOX, {"where", "locate", "find", "box"}},
                      {MODALITY_MASK, {"mask", "segment", "outline", "cut out"}}};
            for (const auto & k : kw) {
                if (std::find(allowed.begin(), allowed.end(), k.m) == allowed.end()) continue;
                for (const char * w : k.words) {
                    if (prompt_lower.find(w) != std::string::npos) {
                        plan_.push_back(k.m);
                        break;
                    }
                }
            }
            if (plan_.empty() && !allowed.empty()) {
                plan_.push_back(std::find(allowed.begin(), allowed.end(), MODALITY_IMAGE) != allowed.end()
                                    ? MODALITY_IMAGE
                                    : allowed[0]);
            }
        } else {
            plan_ = allowed;
        }
        state_ = ST_START;
        budget_ = p_.text_budget_first;
        gm_.reset();
        if (gv_) {
            std::string ge;
            g_ = grammar::parse(template_grammar(allowed, cfg_), &ge);
            if (g_) gm_ = grammar_matcher::create(*g_, gv_, &ge);
            if (!gm_) {
                *err = "[llm] template grammar: " + ge;
                return false;
            }
        }
        return true;
    }

    bool next(gen_token * out, std::string * err) override {
        out->end = false;
        if (forced_.empty()) {
            if (!plan_step(err)) return false;
        }
        if (state_ == ST_DONE && forced_.empty()) {
            out->end = true;
            out->piece.clear();
            out->pos = static_cast<int>(states_.size());
            return true;
        }
        spider_token tok;
        if (!forced_.empty()) {
            tok = forced_.front();
            forced_.pop_front();
        } else {
            tok = pending_;
        }
        return emit(tok, out, err);
    }

    bool m_prompt(const std::vector<int> & positions, std::vector<float> * out, std::string * err) override {
        out->clear();
        for (int p : positions) {
            if (p < 0 || p >= static_cast<int>(states_.size())) {
                *err = "[llm] no hidden state for output position " + std::to_string(p);
                return false;
            }
            out->insert(out->end(), states_[p].begin(), states_[p].end());
        }
        return true;
    }

private:
    enum state_t { ST_START, ST_TEXT, ST_TPROMPT, ST_DONE };

    bool force(const std::string & text, std::string * err) {
        std::vector<spider_token> toks(text.size() + 8);
        int32_t n = spider_tokenize(model_, text.c_str(), static_cast<int32_t>(text.size()), toks.data(),
                                    static_cast<int32_t>(toks.size()), false, true);
        if (n <= 0) {
            *err = "[llm] cannot tokenize the marker " + text;
            return false;
        }
        forced_.insert(forced_.end(), toks.begin(), toks.begin() + n);
        return true;
    }

    std::string piece_of(spider_token t) {
        char buf[256];
        int32_t n = spider_token_to_piece(model_, t, buf, sizeof buf, false);
        return n > 0 ? std::string(buf, n) : std::string();
    }

    // Samples among the top-k candidates that keep the output inside the grammar. Returns -1 when the model's
    // own best choice is to stop here (end of generation or, in a T-Prompt, a line/sentence end).
    spider_token sample(bool in_tprompt) {
        const float * logits = spider_get_logits_ith(ctx_, -1);
        if (!logits) return -1;
        std::vector<int> idx(n_vocab_);
        for (int i = 0; i < n_vocab_; ++i) idx[i] = i;
        const int K = std::min<int>(n_vocab_, std::max(p_.top_k * 8, 64));
        std::partial_sort(idx.begin(), idx.begin() + K, idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
        std::vector<int> cand;
        std::vector<double> w;
        bool first = true;
        for (int r = 0; r < K && static_cast<int>(cand.size()) < std::max(1, p_.top_k); ++r) {
            const spider_token t = idx[r];
            const bool eog = spider_token_is_eog(model_, t);
            std::string pc = eog ? std::string() : piece_of(t);
            const bool stop =
                eog || (in_tprompt && (pc.find('\n') != std::string::npos || pc.find('.') != std::string::npos));
            if (first && stop) return -1;
            first = false;
            if (eog || pc.empty() || spider_token_is_control(model_, t)) continue;
            if (pc.find('<') != std::string::npos || pc.find('[') != std::string::npos) continue;
            if (in_tprompt && pc.find_first_of("\n:.") != std::string::npos) continue;
            if (gm_ && !gm_->is_allowed(t)) continue;
            cand.push_back(t);
            w.push_back(logits[t]);
        }
        if (cand.empty()) return -1;
        if (p_.temperature <= 0) return cand[0];
        const double mx = w[0];
        for (auto & x : w) x = std::exp((x - mx) / p_.temperature);
        std::discrete_distribution<int> d(w.begin(), w.end());
        return cand[d(rng_)];
    }

    void open_or_end(std::string * err) {
        if (!plan_.empty()) {
            cur_ = plan_.front();
            plan_.erase(plan_.begin());
            force(tag_open(cur_), err);
            state_ = ST_TPROMPT;
            tp_count_ = 0;
        } else {
            force(TOKEN_END, err);
            state_ = ST_DONE;
        }
    }

    void close_group(std::string * err) {
        std::string s;
        for (int k = 0; k < std::max(1, cfg_.n_signal[cur_]); ++k) s += signal_token(cur_, k);
        s += tag_close(cur_);
        force(s, err);
        state_ = ST_TEXT;
        budget_ = p_.text_budget_next;
    }

    // Decides the next token (forced markers or a constrained sample); leaves it in forced_ or pending_.
    bool plan_step(std::string * err) {
        err->clear();
        if (!p_.grammar) return free_step(err);
        const int written = static_cast<int>(states_.size());
        if (written >= p_.max_tokens - 16 && state_ != ST_DONE) {
            // out of room: close what is open and end
            if (state_ == ST_TPROMPT) {
                if (tp_count_ == 0) force("item", err);
                close_group(err);
            }
            plan_.clear();
            force(TOKEN_END, err);
            state_ = ST_DONE;
            return err->empty();
        }
        if (model_driven_ && state_ != ST_START) return driven_step(err);
        switch (state_) {
            case ST_START:
                force(TOKEN_OUTPUT, err);
                state_ = ST_TEXT;
                break;
            case ST_TEXT: {
                if (budget_ <= 0) {
                    open_or_end(err);
                    break;
                }
                const spider_token t = sample(false);
                if (t < 0) {
                    open_or_end(err);
                    break;
                }
                --budget_;
                forced_.push_back(t);
                break;
            }
            case ST_TPROMPT: {
                if (tp_count_ >= p_.tprompt_max) {
                    close_group(err);
                    break;
                }
                spider_token t = sample(true);
                if (t < 0 && tp_count_ >= p_.tprompt_min) {
                    close_group(err);
                    break;
                }
                if (t < 0) {
                    // the model wants to stop before a usable T-Prompt: take its best allowed token instead
                    t = fallback_token();
                    if (t < 0) {
                        force("item", err);
                        ++tp_count_;
                        break;
                    }
                }
                ++tp_count_;
                forced_.push_back(t);
                break;
            }
            case ST_DONE:
                break;
        }
        return err->empty();
    }

    std::string special_piece(spider_token t) {
        char buf[256];
        int32_t n = spider_token_to_piece(model_, t, buf, sizeof buf, true);
        return n > 0 ? std::string(buf, n) : std::string();
    }

    // Model-driven decoding: the model's own choice among the tokens the grammar allows (markers included); the
    // state follows the markers it writes. Requested groups it has not written yet are opened before [END], and a
    // T-Prompt longer than tprompt_max * 4 tokens is closed for it.
    bool driven_step(std::string * err) {
        if (state_ == ST_DONE) return true;
        if (state_ == ST_TPROMPT && tp_count_ >= 4 * std::max(1, p_.tprompt_max)) {
            close_group(err);
            return err->empty();
        }
        const float * logits = spider_get_logits_ith(ctx_, -1);
        if (!logits) {
            *err = "[llm] no logits";
            return false;
        }
        std::vector<int> idx(n_vocab_);
        for (int i = 0; i < n_vocab_; ++i) idx[i] = i;
        const int K = std::min<int>(n_vocab_, 256);
        std::partial_sort(idx.begin(), idx.begin() + K, idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
        std::vector<int> cand;
        std::vector<double> w;
        for (int r = 0; r < K && static_cast<int>(cand.size()) < std::max(1, p_.top_k); ++r) {
            const spider_token t = idx[r];
            if (gm_ && !gm_->is_allowed(t)) continue;
            cand.push_back(t);
            w.push_back(logits[t]);
        }
        if (cand.empty()) {  // nothing allowed near the top: let the budgeted path decide
            if (state_ == ST_TPROMPT) {
                if (tp_count_ == 0) force("item", err);
                close_group(err);
            } else {
                open_or_end(err);
            }
            return err->empty();
        }
        spider_token t = cand[0];
        if (p_.temperature > 0) {
            const double mx = w[0];
            for (auto & x : w) x = std::exp((x - mx) / p_.temperature);
            std::discrete_distribution<int> d(w.begin(), w.end());
            t = cand[d(rng_)];
        }
        const std::string pc = special_piece(t);
        if (state_ == ST_TPROMPT && tp_count_ >= p_.tprompt_min && pc.find_first_of(".\n") != std::string::npos) {
            close_group(err);  // T-Prompts are one phrase: a sentence end means the model has drifted past it
            return err->empty();
        }
        if (pc == TOKEN_END && !plan_.empty()) {
            open_or_end(err);  // a requested modality is still missing: open its group instead of ending
            return err->empty();
        }
        if (pc == TOKEN_END) {
            state_ = ST_DONE;
        } else if (state_ == ST_TEXT) {
            for (modality m : {MODALITY_IMAGE, MODALITY_VIDEO, MODALITY_AUDIO, MODALITY_BOX, MODALITY_MASK}) {
                if (pc == tag_open(m)) {
                    cur_ = m;
                    state_ = ST_TPROMPT;
                    tp_count_ = 0;
                    auto it = std::find(plan_.begin(), plan_.end(), m);
                    if (it != plan_.end()) plan_.erase(it);
                }
            }
        } else if (state_ == ST_TPROMPT) {
            if (pc == tag_close(cur_)) {
                state_ = ST_TEXT;
            } else {
                ++tp_count_;
            }
        }
        forced_.push_back(t);
        return true;
    }

    // Without the grammar: the model's own choice among its top-k tokens, nothing masked or forced. The answer ends
    // at [END] or an end-of-generation token (which is not emitted); the pipeline's token limit ends a runaway one.
    bool free_step(std::string * err) {
        if (state_ == ST_DONE) return true;
        const float * logits = spider_get_logits_ith(ctx_, -1);
        if (!logits) {
            *err = "[llm] no logits";
            return false;
        }
        const int K = std::min(n_vocab_, std::max(1, p_.top_k));
        std::vector<int> idx(n_vocab_);
        for (int i = 0; i < n_vocab_; ++i) idx[i] = i;
        std::partial_sort(idx.begin(), idx.begin() + K, idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
        spider_token t = idx[0];
        if (p_.temperature > 0) {
            std::vector<double> w(K);
            for (int r = 0; r < K; ++r) w[r] = std::exp((logits[idx[r]] - logits[idx[0]]) / p_.temperature);
            std::discrete_distribution<int> d(w.begin(), w.end());
            t = idx[d(rng_)];
        }
        if (spider_token_is_eog(model_, t)) {
            state_ = ST_DONE;
            return true;
        }
        if (special_piece(t) == TOKEN_END) state_ = ST_DONE;
        forced_.push_back(t);
        return true;
    }

    spider_token fallback_token() {
        const float * logits = spider_get_logits_ith(ctx_, -1);
        if (!logits) return -1;
        spider_token best = -1;
        for (int t = 0; t < n_vocab_; ++t) {
            if (best >= 0 && logits[t] <= logits[best]) continue;
            if (spider_token_is_eog(model_, t) || spider_token_is_control(model_, t)) continue;
            const std::string pc = piece_of(t);
            if (pc.empty() || pc.find_first_of("<[\n.:") != std::string::npos) continue;
            best = t;
        }
        return best;
    }

    bool emit(spider_token tok, gen_token * out, std::string * err) {
        if (gm_ && !gm_->accept_token(tok, err)) {
            *err = "[llm] the template grammar rejected token " + std::to_string(tok) + " (" + piece_of(tok) +
                   "): " + *err;
            return false;
        }
        if (spider_decode(ctx_, spider_batch_tokens(&tok, 1)) != SPIDER_STATUS_OK) {
            *err = std::string("[llm] decode failed: ") + spider_last_error();
            return false;
        }
        const int E = n_embd();
        int32_t rows = 0;
        const float * h = spider_get_hidden(ctx_, -1, &rows);
        std::vector<float> st(E);
        if (spider_token_embeddings(model_, &tok, 1, st.data()) != SPIDER_STATUS_OK || !h || rows < 1) {
            *err = std::string("[llm] hidden state / embedding unavailable: ") + spider_last_error();
            return false;
        }
        for (int i = 0; i < E; ++i) st[i] += h[static_cast<size_t>(rows - 1) * E + i];
        states_.push_back(std::move(st));
        out->pos = static_cast<int>(states_.size()) - 1;
        char buf[256];
        int32_t n = spider_token_to_piece(model_, tok, buf, sizeof buf, true);
        out->piece = n > 0 ? std::string(buf, n) : std::string();
        return true;
    }

    ::spider_model * model_;
    llm_gen_params p_;
    template_config cfg_;
    spider_context * ctx_ = nullptr;
    int n_vocab_ = 0;
    std::vector<std::vector<float>> states_;
    std::deque<spider_token> forced_;
    spider_token pending_ = -1;
    std::vector<modality> plan_;
    modality cur_ = MODALITY_IMAGE;
    state_t state_ = ST_START;
    bool model_driven_ = false;
    int budget_ = 0, tp_count_ = 0;
    std::mt19937_64 rng_;
    std::shared_ptr<const grammar_vocab> gv_;
    std::unique_ptr<grammar> g_;
    std::unique_ptr<grammar_matcher> gm_;
};

}  // namespace

std::unique_ptr<text_generator> make_llm_generator(::spider_model * model, const llm_gen_params & params,
                                                   const template_config & cfg, std::string * err) {
    if (!model) {
        if (err) *err = "[llm] no model";
        return nullptr;
    }
    std::unique_ptr<llm_generator> g(new llm_generator(model, params, cfg));
    std::string e;
    if (!g->init(&e)) {
        if (err) *err = e;
        return nullptr;
    }
    return g;
}

}  // namespace spider
