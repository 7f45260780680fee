// Stage `encoder_align` (Spider stage 1, encoder-side alignment, X -> text captioning): the input projector
// Linear(emb_dim -> d_model) is trained so that the projected encoder embedding, placed at the placeholder (the
// first position), makes the frozen LLM produce the caption. Loss: cross-entropy on the caption tokens only; the
// gradient flows through the frozen LLM to the projector. Exports `<checkpoint.dir>/proj.gguf`
// (spider.proj.weight / spider.proj.bias), which the pipeline's input_projector loads.
//
// The frozen LLM is either a GGUF LLM on the tape (train/llm_tape.h: llama / gemma3, any dtype; the caption is
// tokenized by the model's tokenizer) or a byte-level tiny_lm (the `lm_scratch` architecture: random from the
// seed, or the weights of an lm_scratch checkpoint; the caption's UTF-8 bytes are its tokens).
// Data: JSON Lines {"embedding": [emb_dim floats], "caption": "text"}, or {"image": "a.png", "caption": "text"}: the
// image (PNG or JPEG; a relative path is relative to the data file) goes through the pipeline's built-in encoder
// (make_builtin_encoder(projector.emb_dim, data.encoder_seed)), so the projector is trained on what `spider run`
// feeds it.
#include <cmath>
#include <filesystem>
#include <map>

#include "encoders/encoder.h"
#include "io/gguf.h"
#include "io/media.h"
#include "llm/model.h"
#include "spider.h"
#include "train/autograd_conv.h"
#include "train/checkpoint.h"
#include "train/data_records.h"
#include "train/llm_tape.h"
#include "train/stage.h"
#include "train/tiny_lm.h"

namespace spider::train {

namespace {

struct caption_pair {
    std::vector<float> emb;
    std::vector<int32_t> ids;
};

class encoder_align_stage final : public stage {
public:
    bool parse(const nlohmann::json & sections, train_config * cfg, std::string * err) override {
        (void)cfg;
        config_reader top{sections, "", err};
        top.require("llm");
        top.require("projector");
        top.require("data");
        if (const nlohmann::json * l = top.object("llm")) {
            config_reader r{*l, "llm.", err};
            r.get("checkpoint", &llm_ckpt_);
            r.get("gguf", &llm_gguf_);
            r.get("n_threads", &n_threads_);
            if (!llm_gguf_.empty() && (l->contains("checkpoint") || l->contains("model"))) {
                *err = "config: 'llm.gguf' and 'llm.checkpoint' / 'llm.model' exclude each other";
                return false;
            }
            if (const nlohmann::json * m = r.object("model")) {
                config_reader mr{*m, "llm.model.", err};
                mr.get("vocab", &lm_.vocab);
                mr.get("n_embd", &lm_.n_embd);
                mr.get("n_ff", &lm_.n_ff);
                mr.get("n_layer", &lm_.n_layer);
                mr.get("n_head", &lm_.n_head);
                mr.get("n_head_kv", &lm_.n_head_kv);
                mr.get("rms_eps", &lm_.eps);
                mr.get("rope_theta", &lm_.rope_theta);
                mr.get("init_std", &lm_init_std_);
                if (!mr.finish()) return false;
            }
            if (!r.finish()) return false;
        }
        if (const nlohmann::json * p = top.object("projector")) {
            config_reader r{*p, "projector.", err};
            r.require("emb_dim");
            r.get("emb_dim", &emb_dim_);
            r.get("init_std", &proj_init_std_);
            if (!r.finish()) return false;
        }
        if (const nlohmann::json * d = top.object("data")) {
            config_reader r{*d, "data.", err};
            r.require("path");
            r.get("path", &data_path_);
            r.get("max_caption", &max_caption_);
            r.get("encoder_seed", &encoder_seed_);
            if (!r.finish()) return false;
        }
        if (!top.finish()) return false;
        if (!config_positive(emb_dim_, "projector.emb_dim", err) ||
            !config_positive(max_caption_, "data.max_caption", err) ||
            !config_positive(n_threads_, "llm.n_threads", err) ||
            !config_positive(lm_.n_embd, "llm.model.n_embd", err) ||
            !config_positive(lm_.n_layer, "llm.model.n_layer", err) ||
            !config_positive(lm_.n_head, "llm.model.n_head", err) ||
            !config_positive(lm_.n_head_kv, "llm.model.n_head_kv", err) ||
            !config_positive(lm_.n_ff, "llm.model.n_ff", err))
            return false;
        if (lm_.vocab != 256) {
            *err = "config: 'llm.model.vocab' must be 256 (byte tokens)";
            return false;
        }
        if (lm_.n_embd % lm_.n_head != 0 || lm_.n_head % lm_.n_head_kv != 0 || (lm_.n_embd / lm_.n_head) % 2 != 0) {
            *err = "config: llm.model.n_embd must split into n_head heads of even size, n_head a multiple of n_head_kv";
            return false;
        }
        return true;
    }

    ~encoder_align_stage() override {
        tape_.reset();
        if (smodel_) spider_model_free(smodel_);
    }

    bool setup(const train_config & cfg, std::string * err) override {
        if (!llm_gguf_.empty()) {
            if (!setup_gguf(cfg, err)) return false;
        } else if (!setup_tiny(cfg, err)) {
            return false;
        }
        rng64 r{cfg.seed ^ 0x70726f6aull};
        std::vector<float> w(static_cast<size_t>(d_model_ * emb_dim_));
        for (auto & x : w) x = proj_init_std_ * r.normal();
        proj_w_ = parameter({d_model_, emb_dim_}, std::move(w));
        proj_b_ = parameter({d_model_}, std::vector<float>(static_cast<size_t>(d_model_), 0.0f));
        seed_ = cfg.seed;
        return load_data(err);
    }

    bool setup_gguf(const train_config & cfg, std::string * err) {
        spider_model_params mp = spider_model_default_params();
        mp.n_threads = n_threads_;
        if (spider_model_load(llm_gguf_.c_str(), mp, &smodel_) != SPIDER_STATUS_OK) {
            *err = "llm: " + llm_gguf_ + ": " + spider_last_error();
            return false;
        }
        llm_tape_config tc;
        tc.lora_targets.clear();  // frozen: only the projector trains
        tc.seed = cfg.seed;
        tc.n_threads = n_threads_;
        tape_ = llm_tape::create(*llm_model_of(smodel_), tc, err);
        if (!tape_) return false;
        d_model_ = spider_model_n_embd(smodel_);
        return true;
    }

    bool setup_tiny(const train_config & cfg, std::string * err) {
        d_model_ = lm_.n_embd;
        llm_ = std::make_unique<tiny_lm>(lm_);
        llm_->init_random(cfg.seed, lm_init_std_);
        if (!llm_ckpt_.empty()) {
            checkpoint_meta meta;
            std::string e;
            if (!checkpoint_load(llm_ckpt_, llm_->named_params(), nullptr, &meta, &e)) {
                *err = "llm: " + llm_ckpt_ + ": " + e;
                return false;
            }
        }
        for (auto & [name, v] : llm_->named_params()) {  // frozen: no gradient kept for the LLM's weights
            v->requires_grad = false;
            v->grad.clear();
            w_[name] = v;
        }
        return true;
    }

    bool load_data(std::string * err) {
        return read_jsonl_records(
            data_path_, {"embedding", "caption", "image"},
            [&](const nlohmann::json & j, const std::string & where, std::string * e) { return add_pair(j, where, e); },
            err);
    }

    // One data record (already checked for unknown fields): validates it, encodes its image or reads its embedding,
    // tokenizes its caption, appends it.
    bool add_pair(const nlohmann::json & j, const std::string & where, std::string * err) {
        caption_pair p;
        if (j.contains("image") == j.contains("embedding")) {
            *err = where + "needs exactly one of 'embedding' and 'image'";
            return false;
        }
        if (j.contains("image")) {
            if (!j["image"].is_string()) {
                *err = where + "'image' must be a path";
                return false;
            }
            std::filesystem::path ip = j["image"].get<std::string>();
            if (ip.is_relative()) ip = std::filesystem::path(data_path_).parent_path() / ip;
            if (!encoder_) encoder_ = make_builtin_encoder(static_cast<int>(emb_dim_), encoder_seed_);
            image_u8 img;
            std::string e;
            if (!image_read(ip.string(), &img, &e) || !encoder_->encode_image(img, &p.emb, &e)) {
                *err = where + "'image' " + ip.string() + ": " + e;
                return false;
            }
        } else if (!j["embedding"].is_array() || static_cast<int64_t>(j["embedding"].size()) != emb_dim_) {
            *err =
                where + "'embedding' must be an array of projector.emb_dim = " + std::to_string(emb_dim_) + " numbers";
            return false;
        }
        for (const auto & v : j.contains("embedding") ? j["embedding"] : nlohmann::json::array()) {
            if (!v.is_number() || !std::isfinite(v.get<double>())) {
                *err = where + "'embedding' holds a non-number";
                return false;
            }
            p.emb.push_back(v.get<float>());
        }
        if (!j.contains("caption") || !j["caption"].is_string() || j["caption"].get<std::string>().empty()) {
            *err = where + "'caption' must be a non-empty string";
            return false;
        }
        const std::string cap = j["caption"];
        if (static_cast<int64_t>(cap.size()) > max_caption_) {
            *err = where + "caption of " + std::to_string(cap.size()) + " bytes is longer than data.max_caption " +
                   std::to_string(max_caption_);
            return false;
        }
        if (smodel_) {
            std::vector<int32_t> buf(cap.size() + 8);
            const int32_t n = spider_tokenize(smodel_, cap.data(), static_cast<int32_t>(cap.size()), buf.data(),
                                              static_cast<int32_t>(buf.size()), false, false);
            if (n <= 0) {
                *err = where + "cannot tokenize the caption: " + spider_last_error();
                return false;
            }
            p.ids.assign(buf.begin(), buf.begin() + n);
        } else {
            for (unsigned char ch : cap) p.ids.push_back(ch);
        }
        pairs_.push_back(std::move(p));
        return true;
    }

    std::vector<std::pair<std::string, value>> trainable() override {
        return {{"spider.proj.bias", proj_b_}, {"spider.proj.weight", proj_w_}};
    }

    value loss(const micro_batch & mb) override {
        value total;
        for (int64_t b : mb.examples) {
            const caption_pair & p = pairs_[pick(mb.step, b)];
            value l = caption_loss(p.emb, p.ids);
            total = total ? add(total, l) : l;
        }
        return total;
    }

    double work_per_example() const override { return 1; }

    bool export_artifacts(const std::string & dir, int64_t step, std::string * err) override {
        (void)step;
        gguf_writer g;
        g.set_string("general.architecture", "spider-projector");
        int64_t ne_w[2] = {emb_dim_, d_model_}, ne_b[1] = {d_model_};
        if (!g.add_tensor("spider.proj.weight", DTYPE_F32, ne_w, 2, proj_w_->data.data(), err) ||
            !g.add_tensor("spider.proj.bias", DTYPE_F32, ne_b, 1, proj_b_->data.data(), err))
            return false;
        return g.write(dir + "/proj.gguf", err);
    }

private:
    // Mean cross-entropy of the caption given the projected embedding at position 0: position i predicts
    // caption[i] (the caption tokens are the only targets).
    value caption_loss(const std::vector<float> & emb, const std::vector<int32_t> & ids) const {
        const int64_t n = static_cast<int64_t>(ids.size());  // placeholder + n - 1 caption tokens as input
        value tok = linear(constant({1, emb_dim_}, emb), proj_w_, proj_b_);  // [1, d_model]
        if (tape_) {  // the placeholder id is replaced by the projected row
            std::vector<int32_t> in(static_cast<size_t>(n));
            in[0] = spider_token_bos(smodel_);
            for (int64_t i = 1; i < n; ++i) in[i] = ids[i - 1];
            return tape_->loss(in, ids, {0}, tok);
        }
        const int64_t hd = lm_.n_embd / lm_.n_head;
        value x = tok;
        if (n > 1) {
            std::vector<int32_t> in(ids.begin(), ids.end() - 1);
            x = concat({tok, embedding(w_.at("model.embed_tokens.weight"), in)}, 0);
        }
        std::vector<int32_t> pos(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(i);
        for (int64_t l = 0; l < lm_.n_layer; ++l) {
            const std::string p = "model.layers." + std::to_string(l) + ".";
            value h = rms_norm(x, w_.at(p + "input_layernorm.weight"), lm_.eps);
            value q = rope(linear(h, w_.at(p + "self_attn.q_proj.weight"), nullptr), pos, lm_.n_head, hd,
                           lm_.rope_theta, ROPE_MODE_NEOX);
            value k = rope(linear(h, w_.at(p + "self_attn.k_proj.weight"), nullptr), pos, lm_.n_head_kv, hd,
                           lm_.rope_theta, ROPE_MODE_NEOX);
            value v = linear(h, w_.at(p + "self_attn.v_proj.weight"), nullptr);
            value a = attention(q, k, v, lm_.n_head, lm_.n_head_kv, 1.0f / std::sqrt(static_cast<float>(hd)), true);
            x = add(x, linear(a, w_.at(p + "self_attn.o_proj.weight"), nullptr));
            h = rms_norm(x, w_.at(p + "post_attention_layernorm.weight"), lm_.eps);
            value g = glu(linear(h, w_.at(p + "mlp.gate_proj.weight"), nullptr),
                          linear(h, w_.at(p + "mlp.up_proj.weight"), nullptr), ACT_SILU);
            x = add(x, linear(g, w_.at(p + "mlp.down_proj.weight"), nullptr));
        }
        value logits = linear(rms_norm(x, w_.at("model.norm.weight"), lm_.eps), w_.at("lm_head.weight"), nullptr);
        return cross_entropy(logits, ids);
    }

    size_t pick(int64_t step, int64_t b) const {
        return static_cast<size_t>(example_rng(seed_, step, b).next() % pairs_.size());
    }

    tiny_lm_config lm_;
    float lm_init_std_ = 0.02f, proj_init_std_ = 0.02f;
    std::string llm_ckpt_, llm_gguf_, data_path_;
    uint64_t encoder_seed_ = 42;
    std::unique_ptr<encoder> encoder_;
    int n_threads_ = 2;
    int64_t d_model_ = 0;
    spider_model * smodel_ = nullptr;
    std::unique_ptr<llm_tape> tape_;
    int64_t emb_dim_ = 0, max_caption_ = 256;
    uint64_t seed_ = 0;
    std::unique_ptr<tiny_lm> llm_;
    std::map<std::string, value> w_;
    value proj_w_, proj_b_;
    std::vector<caption_pair> pairs_;
};

}  // namespace

std::unique_ptr<stage> make_stage_encoder_align() {
    return std::make_unique<encoder_align_stage>();
}

}  // namespace spider::train
