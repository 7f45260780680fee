// Stage `instruct` (Spider stage 3, instruction tuning): LoRA on a frozen GGUF LLM (gemma3 or llama, weights kept in
// their GGUF dtype) plus trainable rows for the template's added tokens, trained on TMM records
// (docs/TMM_FORMAT.md) with the causal-LM loss on the answer tokens only. The prompt is
// `<bos>[INPUT]{Question}{TaskPrompt}`, the target `{Answer}` = `[OUTPUT] ... [END]`. Exports `adapter.gguf`
// (train/llm_tape.h format), which `spider generate/run --lora` merge into the base model at load.
//
// Records with media inputs (data.media = "encode") run as `spider run` runs them: each input file goes through the
// pipeline's frozen encoder (the one load_components gives `spider run` for this model), a trainable input
// projector Linear(emb_dim -> d_model) maps it to one LLM row, and that row replaces the placeholder token's
// (scaled) embedding at its position, as generator_llm.cpp feeds projected rows unscaled next to scaled text
// embeddings. The gradient reaches the projector through the frozen LLM and its LoRA. The projector starts from
// projector.init (a stage-1 proj.gguf) or else from the projector the pipeline would load for this model, and is
// exported as `proj.gguf` next to `adapter.gguf`, with a `spider.model.json` manifest naming both for `spider run -m`.
//
// With a `udp` section, stage 3's decoder-side term (SPIDER.md §5) joins the loss: for records whose groups are all
// of one modality among image / video / audio, the M-Prompt at each group's signal tokens (the tape's last hidden
// state after the final norm + the input embedding, llm_tape::loss_with_mprompt) goes through the trainable UDP
// (train/udp_tape.h) and is pulled to the pipeline decoder's text encoding of the group's caption (Targets[g]) with
// per-token L2 and a symmetric InfoNCE (learnable logit scale) over the global micro-batch (gathered across MPI
// ranks as in udp_align). Its gradient reaches the UDP and, through the M-Prompt, LoRA, the new rows and the
// projector. Exports `udp.gguf` (named in the manifest).
#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "controller/template.h"
#include "encoders/encoder.h"
#include "io/gguf.h"
#include "io/media.h"
#include "llm/default_model.h"
#include "llm/model.h"
#include "pipeline/pipeline.h"
#include "spider.h"
#include "train/autograd_conv.h"
#include "train/autograd_dist.h"
#include "train/autograd_llm.h"
#include "train/llm_tape.h"
#include "train/losses.h"
#include "train/stage.h"
#include "train/tiny_lm.h"
#include "train/udp_tape.h"

namespace spider::train {

namespace {

struct instruct_example {
    std::vector<int32_t> ids;      // prompt + answer
    std::vector<int32_t> targets;  // next token on answer positions, -1 elsewhere
    int64_t n_answer = 0;
    std::vector<int32_t> media_pos;  // placeholder positions, in order of the record's Inputs
    std::vector<float> media_emb;    // their frozen encoder embeddings, [media_pos.size(), emb_dim]
    // UDP term (single-modality answers): the signal-token positions of every group, and per group the decoder's
    // text encoding of its caption.
    modality udp_m = MODALITY_IMAGE;
    std::vector<int32_t> signal_pos;             // all groups, in order (n_signal per group)
    std::vector<std::vector<float>> udp_target;  // per group [t_out, d_out]
};

// A media placeholder found in a prompt: its token position and modality.
struct media_slot {
    int32_t pos = 0;
    modality m = MODALITY_IMAGE;
};

class instruct_stage final : public stage {
public:
    ~instruct_stage() override {
        tape_.reset();
        model_.reset();
        if (smodel_) spider_model_free(smodel_);
    }

    bool parse(const nlohmann::json & sections, train_config * c, std::string * err) override {
        (void)c;
        config_reader top{sections, "", err};
        if (const nlohmann::json * m = top.object("model")) {
            config_reader r{*m, "model.", err};
            r.get("path", &model_path_);
            r.get("n_threads", &n_threads_);
            if (!r.finish()) return false;
        }
        if (const nlohmann::json * l = top.object("lora")) {
            config_reader r{*l, "lora.", err};
            r.get("rank", &tc_.lora_rank);
            r.get("alpha", &tc_.lora_alpha);
            r.get("targets", &tc_.lora_targets);
            r.get("new_tokens", &new_tokens_);
            if (!r.finish()) return false;
        }
        if (const nlohmann::json * d = top.object("data")) {
            config_reader r{*d, "data.", err};
            r.get("paths", &data_paths_);
            r.get("max_tokens", &max_tokens_);
            r.get("families", &families_);
            r.get("media", &media_);
            r.get("limit", &limit_);
            r.get("dump_tokens", &dump_tokens_);
            if (!r.finish()) return false;
        }
        if (const nlohmann::json * p = top.object("projector")) {
            config_reader r{*p, "projector.", err};
            r.get("init", &proj_init_);
            if (!r.finish()) return false;
        }
        if (const nlohmann::json * u = top.object("udp")) {
            config_reader r{*u, "udp.", err};
            use_udp_ = true;
            r.get("init", &udp_init_);
            r.get("l2", &udp_l2_);
            r.get("info_nce", &udp_nce_);
            if (!r.finish()) return false;
            if (udp_l2_ < 0 || udp_nce_ < 0 || udp_l2_ + udp_nce_ <= 0) {
                *err = "config: 'udp.l2' and 'udp.info_nce' must be >= 0 and not both 0";
                return false;
            }
            if (!new_tokens_) {
                *err = "config: the 'udp' term needs lora.new_tokens (the signal tokens are added tokens)";
                return false;
            }
        }
        if (!top.finish()) return false;
        if (!config_positive(tc_.lora_rank, "lora.rank", err) ||
            !config_positive(max_tokens_, "data.max_tokens", err) ||
            !config_positive(n_threads_, "model.n_threads", err))
            return false;
        if (data_paths_.empty()) {
            *err = "config: 'data.paths' is required (TMM JSONL files)";
            return false;
        }
        if (media_ != "encode" && media_ != "skip" && media_ != "placeholder") {
            *err = "config: 'data.media' must be \"encode\", \"skip\" or \"placeholder\" (got \"" + media_ + "\")";
            return false;
        }
        if (!proj_init_.empty() && media_ != "encode") {
            *err = "config: 'projector.init' needs data.media \"encode\" (got \"" + media_ + "\")";
            return false;
        }
        return true;
    }

    bool setup(const train_config & cfg, std::string * err) override {
        seed_ = cfg.seed;
        std::string path = model_path_;
        if (path.empty() && !find_default_model(&path, err)) return false;
        spider_model_params mp = spider_model_default_params();
        mp.n_threads = n_threads_;
        if (spider_model_load(path.c_str(), mp, &smodel_) != SPIDER_STATUS_OK) {
            *err = std::string("model: ") + spider_last_error();
            return false;
        }
        const llm_model * m = llm_model_of(smodel_);
        n_vocab_ = m->hparams.n_vocab;
        added_ = new_tokens_ ? template_added_tokens(template_config()) : std::vector<std::string>{};
        by_len_ = added_;
        std::stable_sort(by_len_.begin(), by_len_.end(),
                         [](const std::string & a, const std::string & b) { return a.size() > b.size(); });
        // New rows start at the mean embedding of each token's own text pieces.
        tc_.added_tokens = added_;
        tc_.embed_init_ids.clear();
        for (const auto & t : added_) {
            std::vector<int32_t> ids;
            if (!base_tokenize(t, &ids, err)) return false;
            tc_.embed_init_ids.push_back(ids);
        }
        tc_.seed = cfg.seed;
        tc_.n_threads = n_threads_;
        model_path_ = path;
        if ((media_ == "encode" || use_udp_) && !setup_media(err)) return false;
        if (use_udp_ && !setup_udp(err)) return false;
        if (!load_data(err)) return false;
        if (n_media_examples_ > 0 && !setup_projector(err)) return false;
        tape_ = llm_tape::create(*m, tc_, err);
        return tape_ != nullptr;
    }

    std::vector<std::pair<std::string, value>> trainable() override {
        std::vector<std::pair<std::string, value>> v = tape_->named_params();
        if (proj_w_) {
            v.push_back({"spider.proj.bias", proj_b_});
            v.push_back({"spider.proj.weight", proj_w_});
        }
        if (udp_) {
            for (auto & kv : udp_->named_params()) v.push_back(kv);
            v.push_back({"spider.train.logit_scale", logit_scale_});
        }
        return v;
    }

    value loss(const micro_batch & mb) override {
        value total;
        struct pooled_rows {
            std::vector<value> outputs, targets;  // token means, [1, d_out] each
            std::vector<int64_t> keys;            // global example index x 1024 + group
        };
        std::map<int, pooled_rows> pooled;  // by modality
        for (int64_t b : mb.examples) {
            rng64 r{seed_ ^ (0x9e37ull * static_cast<uint64_t>(mb.step + 1)) ^
                    (0xc2b2ae35ull * static_cast<uint64_t>(b + 1))};
            r.next();
            const instruct_example & e = examples_[r.next() % examples_.size()];
            value rows;
            if (!e.media_pos.empty()) {
                const int64_t n_media = static_cast<int64_t>(e.media_pos.size());
                rows = linear(constant({n_media, emb_dim_}, e.media_emb), proj_w_, proj_b_);
            }
            if (!udp_ || e.udp_target.empty()) {
                value l = tape_->loss(e.ids, e.targets, e.media_pos, rows);
                total = total ? add(total, l) : l;
                continue;
            }
            value mprompt;
            value l = tape_->loss_with_mprompt(e.ids, e.targets, e.media_pos, rows, e.signal_pos, &mprompt);
            total = total ? add(total, l) : l;
            const udp_hparams & hp = udp_->hparams();
            const int32_t n_sig = static_cast<int32_t>(e.signal_pos.size() / e.udp_target.size());
            for (size_t g = 0; g < e.udp_target.size(); ++g) {
                std::vector<int32_t> idx(static_cast<size_t>(n_sig));
                for (int32_t k = 0; k < n_sig; ++k) idx[k] = static_cast<int32_t>(g) * n_sig + k;
                value y = udp_->forward(e.udp_m, gather_rows(mprompt, idx));
                value t = constant({hp.t_out[e.udp_m], hp.d_out[e.udp_m]}, e.udp_target[g]);
                if (udp_l2_ > 0) total = add(total, scale(token_l2(y, t), udp_l2_));
                pooled_rows & pr = pooled[e.udp_m];
                pr.outputs.push_back(mean_rows(y));
                pr.targets.push_back(mean_rows(t));
                pr.keys.push_back(b * 1024 + static_cast<int64_t>(g));
            }
        }
        // InfoNCE per modality over the GLOBAL micro-batch (as udp_align): every rank walks the same modalities in the
        // same order, since the gathers are collective and a rank may hold no member; each rank counts 1 / n_ranks of
        // the replicated term, once per member (the loop divides by the batch).
        if (udp_ && udp_nce_ > 0) {
            comm & c = mb.dist ? *mb.dist : comm_single();
            const udp_hparams & hp = udp_->hparams();
            for (modality m : {MODALITY_IMAGE, MODALITY_VIDEO, MODALITY_AUDIO}) {
                if (!udp_->has(m)) continue;
                const pooled_rows & pr = pooled[m];
                value ys = gather_rows(c, pr.outputs, pr.keys, hp.d_out[m]);
                value ts = gather_rows(c, pr.targets, pr.keys, hp.d_out[m]);
                const int64_t n = ys->shape[0];
                if (n < 2) continue;  // a contrastive loss needs at least two pairs
                value nce = info_nce(ys, ts, logit_scale_);
                value term = scale(nce, udp_nce_ * static_cast<float>(n) / static_cast<float>(c.size()));
                total = total ? add(total, term) : term;
            }
        }
        if (!total && logit_scale_) total = scale(logit_scale_, 0.0f);  // nothing here: still a loss to backprop
        return total;
    }

    double work_per_example() const override { return mean_tokens_; }
    const char * work_unit() const override { return "tokens"; }

    bool export_artifacts(const std::string & dir, int64_t step, std::string * err) override {
        (void)step;
        if (!tape_->save_adapter(dir + "/adapter.gguf", err)) return false;
        nlohmann::json manifest = {{"format", "spider.model"},
                                   {"version", 1},
                                   {"llm", std::filesystem::absolute(model_path_).string()},
                                   {"lora", "adapter.gguf"}};
        if (udp_) {
            if (!udp_->save(dir + "/udp.gguf", err)) return false;
            manifest["udp"] = "udp.gguf";
        }
        if (proj_w_) {
            gguf_writer g;
            g.set_string("general.architecture", "spider-projector");
            const int64_t ne_w[2] = {emb_dim_, d_model_}, ne_b[1] = {d_model_};
            if (!g.add_tensor("spider.proj.weight", DTYPE_F32, ne_w, 2, proj_w_->data.data(), err) ||
                !g.add_tensor("spider.proj.bias", DTYPE_F32, ne_b, 1, proj_b_->data.data(), err) ||
                !g.write(dir + "/proj.gguf", err))
                return false;
            manifest["projector"] = "proj.gguf";
        }
        const std::string text = manifest.dump(2) + "\n";
        return file_write_atomic(dir + "/spider.model.json", text.data(), text.size(), err);
    }

private:
    // The encoder `spider run` uses for this model, and the projector it would load (the starting point unless
    // projector.init names a stage-1 file).
    bool setup_media(std::string * err) {
        model_bundle bundle;
        bundle.llm_path = model_path_;
        d_model_ = spider_model_n_embd(smodel_);
        if (!load_components(bundle, static_cast<int>(d_model_), &components_, err)) return false;
        if (!components_.enc) {
            *err = "instruct: the pipeline has no input encoder for this model";
            return false;
        }
        emb_dim_ = components_.enc->dim();
        for (modality m : {MODALITY_IMAGE, MODALITY_VIDEO, MODALITY_AUDIO})
            placeholders_.push_back({placeholder_token(m), m});
        return true;
    }

    // The UDP starts from udp.init (a stage-2 udp.gguf) or else from the UDP the pipeline loads for this model.
    bool setup_udp(std::string * err) {
        std::string path = udp_init_;
        std::string tmp;
        if (path.empty()) {
            // udp_tape reads files only: hand it the pipeline's UDP through a temporary copy.
            tmp = (std::filesystem::temp_directory_path() /
                   ("spider-instruct-udp-" + std::to_string(static_cast<long long>(::getpid())) + ".gguf"))
                      .string();
            if (!components_.udp || !components_.udp->save(tmp, err)) {
                if (components_.udp)
                    *err = "instruct: the pipeline's UDP: " + *err;
                else
                    *err = "instruct: the pipeline has no UDP for this model";
                return false;
            }
            path = tmp;
        }
        udp_ = udp_tape::load(path, err);
        if (!tmp.empty()) std::filesystem::remove(tmp);
        if (!udp_) {
            *err = (udp_init_.empty() ? "udp: " : "udp.init: " + udp_init_ + ": ") + *err;
            return false;
        }
        if (udp_->hparams().d_model != d_model_) {
            *err = "udp: d_model " + std::to_string(udp_->hparams().d_model) + " is not the LLM's width " +
                   std::to_string(d_model_);
            return false;
        }
        logit_scale_ = parameter({1}, {kClipLogScaleInit});
        for (modality m : {MODALITY_IMAGE, MODALITY_VIDEO, MODALITY_AUDIO})
            for (int k = 0; k < template_config().n_signal[m]; ++k) {
                const auto it = std::find(added_.begin(), added_.end(), signal_token(m, k));
                if (it != added_.end()) signal_ids_[static_cast<int32_t>(n_vocab_ + (it - added_.begin()))] = {m, k};
            }
        return true;
    }

    // UDP targets of a record whose answer groups are all of one modality among image / video / audio: the signal
    // positions of each group and the pipeline decoder's text encoding of Targets[g].caption. Other records (text
    // answers, mixed modalities, no Targets captions) train without the UDP term.
    bool udp_targets(const nlohmann::json & j, size_t n_prompt, const std::string & where, instruct_example * e,
                     std::string * err) {
        std::vector<std::pair<modality, int>> sig;
        std::vector<int32_t> pos;
        for (size_t i = n_prompt; i < e->ids.size(); ++i) {
            const auto it = signal_ids_.find(e->ids[i]);
            if (it == signal_ids_.end()) continue;
            sig.push_back(it->second);
            pos.push_back(static_cast<int32_t>(i));
        }
        if (sig.empty()) return true;
        const modality m = sig[0].first;
        const int n_sig = template_config().n_signal[m];
        for (size_t k = 0; k < sig.size(); ++k)
            if (sig[k].first != m || sig[k].second != static_cast<int>(k % n_sig)) return true;  // mixed
        if (sig.size() % n_sig != 0 || !udp_->has(m)) return true;
        const size_t n_groups = sig.size() / n_sig;
        if (!j.contains("Targets") || !j["Targets"].is_array() || j["Targets"].size() != n_groups) return true;
        std::vector<std::vector<float>> targets;
        for (const auto & t : j["Targets"]) {
            modality tm;
            if (!t.is_object() || !t.contains("caption") || !t["caption"].is_string() || !t.contains("modality") ||
                !t["modality"].is_string() || !modality_from_name(t["modality"].get<std::string>(), &tm) || tm != m)
                return true;
            std::string e2;
            std::shared_ptr<decoder> dec = components_.decoders.get(m, &e2);
            std::vector<float> enc;
            int T = 0, D = 0;
            if (!dec || !dec->encode_text(t["caption"].get<std::string>(), &enc, &T, &D, &e2)) {
                *err = "data: " + where + ": the " + modality_name_lower(m) + " decoder's text encoder: " + e2;
                return false;
            }
            const udp_hparams & hp = udp_->hparams();
            if (T != hp.t_out[m] || D != hp.d_out[m]) {
                *err = "udp: the " + std::string(modality_name_lower(m)) + " decoder encodes text as [" +
                       std::to_string(T) + ", " + std::to_string(D) + "], the UDP head gives [" +
                       std::to_string(hp.t_out[m]) + ", " + std::to_string(hp.d_out[m]) + "]";
                return false;
            }
            targets.push_back(std::move(enc));
        }
        e->udp_m = m;
        e->signal_pos = std::move(pos);
        e->udp_target = std::move(targets);
        return true;
    }

    bool setup_projector(std::string * err) {
        const input_projector * init = components_.proj.get();
        std::unique_ptr<input_projector> loaded;
        std::string e;
        if (!proj_init_.empty()) {
            std::unique_ptr<gguf_file> f = gguf_file::open(proj_init_, &e);
            if (f) loaded = input_projector::from_gguf(std::shared_ptr<gguf_file>(std::move(f)), &e);
            if (!loaded) {
                *err = "projector.init: " + proj_init_ + ": " + e;
                return false;
            }
            init = loaded.get();
        }
        if (!init) {
            *err = "instruct: the pipeline has no input projector for this model";
            return false;
        }
        if (init->emb_dim() != emb_dim_ || init->d_model() != d_model_) {
            *err = std::string(proj_init_.empty() ? "the pipeline's projector" : "projector.init " + proj_init_) +
                   " is " + std::to_string(init->emb_dim()) + " -> " + std::to_string(init->d_model()) +
                   ", the encoder and LLM need " + std::to_string(emb_dim_) + " -> " + std::to_string(d_model_);
            return false;
        }
        std::vector<float> w, b;
        if (!init->weights_f32(&w, &b, err)) return false;
        proj_w_ = parameter({d_model_, emb_dim_}, std::move(w));
        proj_b_ = parameter({d_model_}, std::move(b));
        return true;
    }

    // Tokens of text with the added tokens cut out first (longest match) and the pieces between through the base
    // tokenizer: the same split spider_tokenize makes once the adapter's tokens are in the model. With slots, the
    // media placeholders are cut out too (even without new token rows) and become one position each, recorded in
    // *slots: the pipeline feeds one projected row per media item between the texts around it.
    bool tokenize(const std::string & s, std::vector<int32_t> * out, std::string * err,
                  std::vector<media_slot> * slots = nullptr) {
        size_t seg = 0, i = 0;
        auto flush = [&](size_t end) {
            if (end > seg) {
                std::vector<int32_t> part;
                if (!base_tokenize(s.substr(seg, end - seg), &part, err)) return false;
                out->insert(out->end(), part.begin(), part.end());
            }
            return true;
        };
        while (i < s.size()) {
            bool hit = false;
            for (size_t k = 0; slots && k < placeholders_.size() && !hit; ++k) {
                const std::string & t = placeholders_[k].first;
                if (s.compare(i, t.size(), t) != 0) continue;
                if (!flush(i)) return false;
                slots->push_back({static_cast<int32_t>(out->size()), placeholders_[k].second});
                // The id only matters for the tape's shape: its row is replaced by the projected embedding.
                const auto it = std::find(added_.begin(), added_.end(), t);
                out->push_back(it == added_.end() ? 0 : static_cast<int32_t>(n_vocab_ + (it - added_.begin())));
                i += t.size();
                seg = i;
                hit = true;
            }
            for (size_t k = 0; k < by_len_.size() && !hit; ++k) {
                const std::string & t = by_len_[k];
                if (s.compare(i, t.size(), t) != 0) continue;
                if (!flush(i)) return false;
                const auto it = std::find(added_.begin(), added_.end(), t);
                out->push_back(static_cast<int32_t>(n_vocab_ + (it - added_.begin())));
                i += t.size();
                seg = i;
                hit = true;
            }
            if (!hit) i++;
        }
        return flush(s.size());
    }

    // The frozen embedding of each input of a record, in order, checked against the placeholders of its prompt.
    bool encode_inputs(const nlohmann::json & j, const std::vector<media_slot> & slots, const std::string & path,
                       const std::string & where, instruct_example * e, std::string * err) {
        const nlohmann::json inputs = j.contains("Inputs") ? j["Inputs"] : nlohmann::json::array();
        if (!inputs.is_array()) {
            *err = "data: " + where + ": 'Inputs' must be an array";
            return false;
        }
        if (inputs.size() != slots.size()) {
            *err = "data: " + where + ": " + std::to_string(inputs.size()) + " Inputs for " +
                   std::to_string(slots.size()) + " media placeholders in Question + TaskPrompt";
            return false;
        }
        for (size_t k = 0; k < inputs.size(); ++k) {
            const nlohmann::json & in = inputs[k];
            const std::string at = "data: " + where + ": Inputs[" + std::to_string(k) + "]";
            modality m = MODALITY_IMAGE;
            if (!in.is_object() || !in.contains("modality") || !in["modality"].is_string() || !in.contains("file") ||
                !in["file"].is_string() || !modality_from_name(in["modality"].get<std::string>(), &m)) {
                *err = at + ": needs string 'modality' (IMAGE, VIDEO, AUDIO) and 'file'";
                return false;
            }
            if (m != slots[k].m) {
                *err = at + " is " + modality_name(m) + " but placeholder " + std::to_string(k + 1) + " is " +
                       placeholder_token(slots[k].m);
                return false;
            }
            std::filesystem::path fp = in["file"].get<std::string>();
            if (fp.is_relative()) fp = std::filesystem::path(path).parent_path() / fp;
            // Builder sets reuse each file in many records; the frozen encoder gives the same embedding each time.
            const std::string key = std::string(modality_name(m)) + "|" + fp.lexically_normal().string();
            if (const auto hit = emb_cache_.find(key); hit != emb_cache_.end()) {
                e->media_pos.push_back(slots[k].pos);
                e->media_emb.insert(e->media_emb.end(), hit->second.begin(), hit->second.end());
                continue;
            }
            std::vector<float> emb;
            std::string e2;
            bool ok = false;
            if (m == MODALITY_IMAGE) {
                image_u8 img;
                ok = image_read(fp.string(), &img, &e2) && components_.enc->encode_image(img, &emb, &e2);
            } else if (m == MODALITY_AUDIO) {
                audio_f32 a;
                ok = audio_read(fp.string(), &a, &e2) && components_.enc->encode_audio(a, &emb, &e2);
            } else if (m == MODALITY_VIDEO) {
                video_u8 v;
                ok = video_read(fp.string(), &v, &e2) && components_.enc->encode_video(v, &emb, &e2);
            } else {
                e2 = std::string(modality_name(m)) + " is not an input modality";
            }
            if (ok && static_cast<int64_t>(emb.size()) != emb_dim_) {
                e2 = "the encoder gave " + std::to_string(emb.size()) + " values, expected " + std::to_string(emb_dim_);
                ok = false;
            }
            if (!ok) {
                *err = at + " " + fp.string() + ": " + e2;
                return false;
            }
            e->media_pos.push_back(slots[k].pos);
            e->media_emb.insert(e->media_emb.end(), emb.begin(), emb.end());
            emb_cache_[key] = std::move(emb);
        }
        return true;
    }

    bool base_tokenize(const std::string & s, std::vector<int32_t> * out, std::string * err) {
        std::vector<int32_t> buf(s.size() + 8);
        int32_t n = spider_tokenize(smodel_, s.data(), static_cast<int32_t>(s.size()), buf.data(),
                                    static_cast<int32_t>(buf.size()), false, true);
        if (n < 0) {
            *err = std::string("tokenize: ") + spider_last_error();
            return false;
        }
        out->assign(buf.begin(), buf.begin() + n);
        return true;
    }

    bool load_data(std::string * err) {
        const int32_t bos = spider_token_bos(smodel_);
        int64_t n_long = 0, n_media = 0, n_family = 0, n_tokens = 0;
        std::ofstream dump;
        if (!dump_tokens_.empty()) dump.open(dump_tokens_);
        for (const auto & path : data_paths_) {
            std::ifstream f(path);
            if (!f) {
                *err = "data: cannot open '" + path + "'";
                return false;
            }
            std::string line;
            int64_t lineno = 0;
            while (std::getline(f, line)) {
                ++lineno;
                if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
                const std::string where = path + ":" + std::to_string(lineno);
                nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
                if (j.is_discarded() || !j.is_object() || !j.contains("Question") || !j.contains("TaskPrompt") ||
                    !j.contains("Answer") || !j["Question"].is_string() || !j["TaskPrompt"].is_string() ||
                    !j["Answer"].is_string()) {
                    *err = "data: " + where + ": not a TMM record (needs string Question, TaskPrompt, Answer)";
                    return false;
                }
                if (!families_.empty()) {
                    const std::string fam = j.value("family", "");
                    if (std::find(families_.begin(), families_.end(), fam) == families_.end()) {
                        ++n_family;
                        continue;
                    }
                }
                if (j.contains("Inputs") && j["Inputs"].is_array() && !j["Inputs"].empty() && media_ == "skip") {
                    ++n_media;
                    continue;
                }
                instruct_example e;
                std::vector<media_slot> slots;
                if (bos >= 0) e.ids.push_back(bos);
                if (!tokenize("[INPUT]" + j["Question"].get<std::string>() + j["TaskPrompt"].get<std::string>(), &e.ids,
                              err, media_ == "encode" ? &slots : nullptr))
                    return false;
                const size_t n_prompt = e.ids.size();
                if (!tokenize(j["Answer"].get<std::string>(), &e.ids, err)) return false;
                if (static_cast<int64_t>(e.ids.size()) > max_tokens_) {
                    ++n_long;
                    continue;
                }
                e.targets.assign(e.ids.size(), -1);
                for (size_t i = n_prompt - 1; i + 1 < e.ids.size(); ++i) e.targets[i] = e.ids[i + 1];
                e.n_answer = static_cast<int64_t>(e.ids.size() - n_prompt);
                if (media_ == "encode" && !encode_inputs(j, slots, path, where, &e, err)) return false;
                if (!e.media_pos.empty()) ++n_media_examples_;
                if (udp_ && !udp_targets(j, n_prompt, where, &e, err)) return false;
                if (!e.udp_target.empty()) ++n_udp_examples_;
                n_tokens += static_cast<int64_t>(e.ids.size());
                if (dump.is_open()) {
                    nlohmann::json d = {{"ids", e.ids}, {"targets", e.targets}};
                    if (!e.media_pos.empty()) d["media_pos"] = e.media_pos;
                    if (!e.signal_pos.empty()) d["signal_pos"] = e.signal_pos;
                    dump << d.dump() << "\n";
                }
                examples_.push_back(std::move(e));
                if (limit_ > 0 && static_cast<int64_t>(examples_.size()) >= limit_) break;
            }
        }
        if (examples_.empty()) {
            *err = "data: no usable record in " + data_paths_[0] + (data_paths_.size() > 1 ? " ..." : "") + " (" +
                   std::to_string(n_long) + " longer than data.max_tokens, " + std::to_string(n_media) +
                   " with media inputs, " + std::to_string(n_family) + " of other families)";
            return false;
        }
        mean_tokens_ = static_cast<double>(n_tokens) / static_cast<double>(examples_.size());
        std::fprintf(stderr,
                     "instruct: %zu examples (%lld with encoded media inputs, %lld with UDP targets), %.1f tokens on "
                     "average (skipped: %lld too long, %lld with media, %lld other families)\n",
                     examples_.size(), static_cast<long long>(n_media_examples_),
                     static_cast<long long>(n_udp_examples_), mean_tokens_, static_cast<long long>(n_long),
                     static_cast<long long>(n_media), static_cast<long long>(n_family));
        return true;
    }

    std::string model_path_;
    int64_t n_threads_ = 2;
    llm_tape_config tc_;
    bool new_tokens_ = true;
    std::vector<std::string> data_paths_;
    int64_t max_tokens_ = 128;
    std::vector<std::string> families_;
    std::string media_ = "encode";
    int64_t limit_ = 0;
    std::string dump_tokens_;
    std::string proj_init_;
    bool use_udp_ = false;
    std::string udp_init_;
    float udp_l2_ = 1.0f, udp_nce_ = 1.0f;

    uint64_t seed_ = 0;
    ::spider_model * smodel_ = nullptr;
    std::unique_ptr<llm_model> model_;
    int64_t n_vocab_ = 0;
    std::vector<std::string> added_, by_len_;
    std::vector<instruct_example> examples_;
    double mean_tokens_ = 0;
    std::unique_ptr<llm_tape> tape_;

    pipeline_components components_;  // the pipeline's encoder (and the projector it would load)
    std::vector<std::pair<std::string, modality>> placeholders_;
    std::map<std::string, std::vector<float>> emb_cache_;  // "MODALITY|path" -> encoder embedding
    int64_t emb_dim_ = 0, d_model_ = 0, n_media_examples_ = 0, n_udp_examples_ = 0;
    value proj_w_, proj_b_;  // [d_model, emb_dim], [d_model]
    std::unique_ptr<udp_tape> udp_;
    value logit_scale_;
    std::map<int32_t, std::pair<modality, int>> signal_ids_;  // added-token id -> (modality, signal index)
};

}  // namespace

std::unique_ptr<stage> make_stage_instruct() {
    return std::make_unique<instruct_stage>();
}

}  // namespace spider::train
