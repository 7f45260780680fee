// Stage `udp_align` (Spider stage 2, decoder-side alignment): the UDP (train/udp_tape.h) learns to map M-Prompts
// (LLM hidden state + input embedding at the signal tokens) to each decoder's text-encoder embedding of the
// caption (decoder::encode_text(T-Prompt)). Loss per example: l2 * per-token L2; per micro-batch and modality:
// info_nce * (members) * symmetric InfoNCE between the token-means of the UDP outputs and of the targets, with a
// learnable log logit scale (CLIP). The micro-batch is the global one: on N MPI ranks the token-means of all ranks
// are gathered (train/autograd_dist.h), so the loss and gradients are one process's. Exports
// `<checkpoint.dir>/udp.gguf`, which the pipeline loads (udp_model).
//
// Data: JSON Lines, one pair per line:
//   {"modality": "image", "mprompt": [[d_model floats], ...n_tok rows], "target": [[d_out floats], ...t_out rows]}
// or, with the `features` section, built at setup instead of precomputed:
//   "text": the LLM input ending with the signal tokens -> M-Prompt = the GGUF LLM's last-layer hidden state +
//           input embedding at the last `features.n_signal` tokens (what the pipeline feeds the UDP);
//   "caption": the T-Prompt -> target = the built-in decoders' text encoding (builtin_text_encode, [t_out, d_out]).
#include <cmath>
#include <map>

#include "decoders/decoder.h"
#include "spider.h"
#include "train/autograd_conv.h"
#include "train/autograd_dist.h"
#include "train/data_records.h"
#include "train/losses.h"
#include "train/stage.h"
#include "train/tiny_lm.h"
#include "train/udp_tape.h"

namespace spider::train {

namespace {

struct udp_pair {
    modality m = MODALITY_IMAGE;
    int64_t n_tok = 0;
    std::vector<float> mprompt;  // [n_tok, d_model]
    std::vector<float> target;   // [t_out, d_out]
};

// Reads a JSON array of equal-length number rows into a flat vector; false with a message on any defect.
bool read_rows(const nlohmann::json & j, int64_t width, int64_t want_rows, std::vector<float> * out, int64_t * rows,
               std::string * why) {
    if (!j.is_array() || j.empty()) {
        *why = "must be a non-empty array of rows";
        return false;
    }
    if (want_rows > 0 && static_cast<int64_t>(j.size()) != want_rows) {
        *why = "has " + std::to_string(j.size()) + " rows, expected " + std::to_string(want_rows);
        return false;
    }
    for (size_t r = 0; r < j.size(); ++r) {
        const auto & row = j[r];
        if (!row.is_array() || static_cast<int64_t>(row.size()) != width) {
            *why = "row " + std::to_string(r) + " must be an array of " + std::to_string(width) + " numbers";
            return false;
        }
        for (const auto & v : row) {
            if (!v.is_number()) {
                *why = "row " + std::to_string(r) + " holds a non-number";
                return false;
            }
            const float f = v.get<float>();
            if (!std::isfinite(f)) {
                *why = "row " + std::to_string(r) + " holds a non-finite number";
                return false;
            }
            out->push_back(f);
        }
    }
    *rows = static_cast<int64_t>(j.size());
    return true;
}

class udp_align_stage final : public stage {
public:
    bool parse(const nlohmann::json & sections, train_config * cfg, std::string * err) override {
        (void)cfg;
        config_reader top{sections, "", err};
        top.require("udp");
        top.require("data");
        if (const nlohmann::json * u = top.object("udp")) {
            config_reader r{*u, "udp.", err};
            r.get("d_model", &hp_.d_model);
            r.get("d_hidden", &hp_.d_hidden);
            r.get("n_expert", &hp_.n_expert);
            r.get("n_enc_layer", &hp_.n_enc_layer);
            r.get("n_dec_layer", &hp_.n_dec_layer);
            r.get("n_head", &hp_.n_head);
            r.get("d_ff", &hp_.d_ff);
            r.get("eps", &hp_.eps);
            r.get("init", &init_);
            std::map<std::string, std::vector<int>> heads;
            r.get("heads", &heads);
            if (!r.finish()) return false;
            for (const auto & [name, shape] : heads) {
                modality m;
                if (!modality_from_name(name, &m) || m == MODALITY_BOX) {
                    *err = "config: 'udp.heads." + name + "': not a UDP modality (image, video, audio, mask)";
                    return false;
                }
                if (shape.size() != 2 || shape[0] <= 0 || shape[1] <= 0) {
                    *err = "config: 'udp.heads." + name + "' must be [t_out, d_out] with positive sizes";
                    return false;
                }
                hp_.t_out[m] = shape[0];
                hp_.d_out[m] = shape[1];
            }
        }
        if (const nlohmann::json * d = top.object("data")) {
            config_reader r{*d, "data.", err};
            r.require("path");
            r.get("path", &data_path_);
            if (!r.finish()) return false;
        }
        if (const nlohmann::json * fe = top.object("features")) {
            config_reader r{*fe, "features.", err};
            r.get("llm", &feat_llm_);
            r.get("n_signal", &n_signal_);
            r.get("targets", &feat_targets_);
            r.get("n_threads", &n_threads_);
            if (!r.finish()) return false;
            if (!feat_targets_.empty() && feat_targets_ != "builtin") {
                *err = "config: 'features.targets' must be \"builtin\" (the built-in decoders' text encoder)";
                return false;
            }
            if (!config_positive(n_signal_, "features.n_signal", err) ||
                !config_positive(n_threads_, "features.n_threads", err))
                return false;
        }
        if (const nlohmann::json * l = top.object("loss")) {
            config_reader r{*l, "loss.", err};
            r.get("l2", &w_l2_);
            r.get("info_nce", &w_nce_);
            r.get("logit_scale", &logit_scale_init_);
            if (!r.finish()) return false;
        }
        if (!top.finish()) return false;
        if (init_.empty()) {
            if (!config_positive(hp_.d_model, "udp.d_model", err) ||
                !config_positive(hp_.d_hidden, "udp.d_hidden", err) ||
                !config_positive(hp_.n_expert, "udp.n_expert", err) ||
                !config_positive(hp_.n_head, "udp.n_head", err) || !config_positive(hp_.d_ff, "udp.d_ff", err))
                return false;
            if (hp_.d_hidden % hp_.n_head != 0) {
                *err = "config: 'udp.d_hidden' must be a multiple of 'udp.n_head'";
                return false;
            }
            bool any = false;
            for (int i = 0; i < MODALITY_COUNT; ++i) any = any || hp_.t_out[i] > 0;
            if (!any) {
                *err = "config: 'udp.heads' must name at least one modality (e.g. {\"image\": [77, 768]})";
                return false;
            }
        }
        if (w_l2_ < 0 || w_nce_ < 0 || w_l2_ + w_nce_ <= 0) {
            *err = "config: 'loss.l2' and 'loss.info_nce' must be >= 0 and not both 0";
            return false;
        }
        return true;
    }

    ~udp_align_stage() override {
        if (ctx_) spider_context_free(ctx_);
        if (smodel_) spider_model_free(smodel_);
    }

    bool setup(const train_config & cfg, std::string * err) override {
        if (!feat_llm_.empty()) {
            spider_model_params mp = spider_model_default_params();
            mp.n_threads = n_threads_;
            if (spider_model_load(feat_llm_.c_str(), mp, &smodel_) != SPIDER_STATUS_OK) {
                *err = "features.llm: " + feat_llm_ + ": " + spider_last_error();
                return false;
            }
            spider_context_params cp = spider_context_default_params();
            cp.n_threads = n_threads_;
            const int32_t last = -1;
            if (spider_context_create(smodel_, cp, &ctx_) != SPIDER_STATUS_OK ||
                spider_set_capture_layers(ctx_, &last, 1) != SPIDER_STATUS_OK) {
                *err = std::string("features.llm: ") + spider_last_error();
                return false;
            }
        }
        seed_ = cfg.seed;
        if (!init_.empty()) {
            udp_ = udp_tape::load(init_, err);
            if (!udp_) return false;
        } else {
            udp_ = udp_tape::create(hp_, cfg.seed, err);
            if (!udp_) return false;
        }
        logit_scale_ = parameter({1}, {logit_scale_init_});
        return read_jsonl_records(
            data_path_, {"modality", "mprompt", "target", "text", "caption"},
            [&](const nlohmann::json & j, const std::string & where, std::string * e) { return add_pair(j, where, e); },
            err);
    }

    std::vector<std::pair<std::string, value>> trainable() override {
        auto p = udp_->named_params();
        p.emplace_back("spider.train.logit_scale", logit_scale_);
        return p;
    }

    value loss(const micro_batch & mb) override {
        const udp_hparams & hp = udp_->hparams();
        comm & c = mb.dist ? *mb.dist : comm_single();
        value total;
        auto acc = [&](const value & v) { total = total ? add(total, v) : v; };
        struct pooled_rows {
            std::vector<value> outputs, targets;  // token means, [1, d_out] each
            std::vector<int64_t> examples;
        };
        std::map<int, pooled_rows> pooled;  // by modality
        for (int64_t b : mb.examples) {
            const udp_pair & p = pairs_[pick(mb.step, b)];
            value y = udp_->forward(p.m, constant({p.n_tok, hp.d_model}, p.mprompt));
            value t = constant({hp.t_out[p.m], hp.d_out[p.m]}, p.target);
            if (w_l2_ > 0) acc(scale(token_l2(y, t), w_l2_));
            pooled_rows & pr = pooled[p.m];
            pr.outputs.push_back(mean_rows(y));
            pr.targets.push_back(mean_rows(t));
            pr.examples.push_back(b);
        }
        // InfoNCE per modality over the GLOBAL micro-batch: every rank walks the same modalities in the same order
        // (the gathers are collective, and a rank may hold no example of a modality), and counts 1 / n_ranks of the
        // replicated term (train/autograd_dist.h).
        if (w_nce_ > 0)
            for (int m = 0; m < MODALITY_COUNT; ++m) {
                if (!udp_->has(static_cast<modality>(m))) continue;
                const pooled_rows & pr = pooled[m];
                value ys = gather_rows(c, pr.outputs, pr.examples, hp.d_out[m]);
                value ts = gather_rows(c, pr.targets, pr.examples, hp.d_out[m]);
                const int64_t n = ys->shape[0];
                if (n < 2) continue;  // a contrastive loss needs at least two pairs
                acc(scale(info_nce(ys, ts, logit_scale_),
                          w_nce_ * static_cast<float>(n) / static_cast<float>(c.size())));
            }
        // Nothing to contrast and no L2 term: a zero loss that still reaches a parameter, so backward runs.
        return total ? total : scale(logit_scale_, 0.0f);
    }

    bool export_artifacts(const std::string & dir, int64_t step, std::string * err) override {
        (void)step;
        return udp_->save(dir + "/udp.gguf", err);
    }

private:
    // The record for example b of step s: a hash of (seed, s, b), independent of ranks and resumes.
    size_t pick(int64_t step, int64_t b) const {
        return static_cast<size_t>(example_rng(seed_, step, b).next() % pairs_.size());
    }

    // One data record (already checked for unknown fields): validates it, builds its M-Prompt / target, appends it.
    bool add_pair(const nlohmann::json & j, const std::string & where, std::string * err) {
        const udp_hparams & hp = udp_->hparams();
        udp_pair p;
        if (!j.contains("modality") || !j["modality"].is_string() ||
            !modality_from_name(j["modality"].get<std::string>(), &p.m)) {
            *err = where + "'modality' must be one of image, video, audio, mask";
            return false;
        }
        if (!udp_->has(p.m)) {
            *err = where + "the UDP has no head for modality " + modality_name_lower(p.m);
            return false;
        }
        std::string why;
        int64_t rows = 0;
        if (j.contains("text") == j.contains("mprompt")) {
            *err = where + "needs exactly one of 'mprompt' and 'text'";
            return false;
        }
        if (j.contains("caption") == j.contains("target")) {
            *err = where + "needs exactly one of 'target' and 'caption'";
            return false;
        }
        if (j.contains("text")) {
            if (!j["text"].is_string() || !mprompt_of_text(j["text"].get<std::string>(), &p, &why)) {
                *err = where + "'text': " + (why.empty() ? "must be a string" : why);
                return false;
            }
        } else if (!read_rows(j["mprompt"], hp.d_model, 0, &p.mprompt, &p.n_tok, &why)) {
            *err = where + "'mprompt' " + why;
            return false;
        }
        if (j.contains("caption")) {
            if (feat_targets_ != "builtin" || !j["caption"].is_string()) {
                *err = where + "'caption' needs features.targets = \"builtin\" and a string";
                return false;
            }
            p.target = builtin_text_encode(j["caption"].get<std::string>(), hp.t_out[p.m], hp.d_out[p.m]);
        } else if (!read_rows(j["target"], hp.d_out[p.m], hp.t_out[p.m], &p.target, &rows, &why)) {
            *err = where + "'target' " + why;
            return false;
        }
        pairs_.push_back(std::move(p));
        return true;
    }

    udp_hparams hp_;
    // M-Prompt of an LLM input: hidden state after the final norm + input embedding at its last n_signal tokens.
    bool mprompt_of_text(const std::string & text, udp_pair * p, std::string * why) {
        if (!smodel_) {
            *why = "needs features.llm (a GGUF LLM)";
            return false;
        }
        const int64_t d = udp_->hparams().d_model;
        if (spider_model_n_embd(smodel_) != d) {
            *why = "the LLM's width " + std::to_string(spider_model_n_embd(smodel_)) + " is not udp.d_model " +
                   std::to_string(d);
            return false;
        }
        std::vector<int32_t> ids(text.size() + 8);
        const int32_t n = spider_tokenize(smodel_, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                                          static_cast<int32_t>(ids.size()), true, true);
        if (n < n_signal_) {
            *why = "has " + std::to_string(n) + " tokens, fewer than features.n_signal";
            return false;
        }
        ids.resize(static_cast<size_t>(n));
        spider_kv_clear(ctx_);
        spider_batch b = spider_batch_tokens(ids.data(), n);
        b.output = SPIDER_OUTPUT_NONE;
        int32_t rows = 0;
        const float * h = nullptr;
        if (spider_decode(ctx_, b) != SPIDER_STATUS_OK || !(h = spider_get_hidden(ctx_, -1, &rows)) || rows != n) {
            *why = std::string("the LLM failed: ") + spider_last_error();
            return false;
        }
        std::vector<float> emb(static_cast<size_t>(n_signal_ * d));
        if (spider_token_embeddings(smodel_, ids.data() + n - n_signal_, n_signal_, emb.data()) != SPIDER_STATUS_OK) {
            *why = std::string("the LLM failed: ") + spider_last_error();
            return false;
        }
        p->n_tok = n_signal_;
        p->mprompt.resize(static_cast<size_t>(n_signal_ * d));
        for (int64_t t = 0; t < n_signal_; ++t)
            for (int64_t i = 0; i < d; ++i) p->mprompt[t * d + i] = h[(n - n_signal_ + t) * d + i] + emb[t * d + i];
        return true;
    }

    std::string init_, data_path_, feat_llm_, feat_targets_;
    int n_signal_ = 1, n_threads_ = 2;
    spider_model * smodel_ = nullptr;
    spider_context * ctx_ = nullptr;
    float w_l2_ = 1.0f, w_nce_ = 1.0f, logit_scale_init_ = kClipLogScaleInit;
    uint64_t seed_ = 0;
    std::unique_ptr<udp_tape> udp_;
    value logit_scale_;
    std::vector<udp_pair> pairs_;
};

}  // namespace

std::unique_ptr<stage> make_stage_udp_align() {
    return std::make_unique<udp_align_stage>();
}

}  // namespace spider::train
