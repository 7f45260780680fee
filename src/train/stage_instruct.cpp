// Stage `instruct` (Spider stage 3, instruction tuning): LoRA on a frozen GGUF LLM (gemma3 or llama, weights kept in
// their GGUF dtype) plus trainable rows for the template's added tokens, trained on TMM records
// (docs/TMM_FORMAT.md) with the causal-LM loss on the answer tokens only. The prompt is
// `<bos>[INPUT]{Question}{TaskPrompt}`, the target `{Answer}` = `[OUTPUT] ... [END]`. Exports `adapter.gguf`
// (train/llm_tape.h format), which `spider generate/run --lora` merge into the base model at load.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "controller/template.h"
#include "llm/default_model.h"
#include "llm/model.h"
#include "spider.h"
#include "train/llm_tape.h"
#include "train/stage.h"
#include "train/tiny_lm.h"

namespace spider::train {

namespace {

struct instruct_example {
    std::vector<int32_t> ids;      // prompt + answer
    std::vector<int32_t> targets;  // next token on answer positions, -1 elsewhere
    int64_t n_answer = 0;
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
        if (!top.finish()) return false;
        if (!config_positive(tc_.lora_rank, "lora.rank", err) ||
            !config_positive(max_tokens_, "data.max_tokens", err) ||
            !config_positive(n_threads_, "model.n_threads", err))
            return false;
        if (data_paths_.empty()) {
            *err = "config: 'data.paths' is required (TMM JSONL files)";
            return false;
        }
        if (media_ != "skip" && media_ != "placeholder") {
            *err = "config: 'data.media' must be \"skip\" or \"placeholder\" (got \"" + media_ + "\")";
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
        if (!load_data(err)) return false;
        tape_ = llm_tape::create(*m, tc_, err);
        return tape_ != nullptr;
    }

    std::vector<std::pair<std::string, value>> trainable() override { return tape_->named_params(); }

    value loss(const micro_batch & mb) override {
        value total;
        for (int64_t b : mb.examples) {
            rng64 r{seed_ ^ (0x9e37ull * static_cast<uint64_t>(mb.step + 1)) ^
                    (0xc2b2ae35ull * static_cast<uint64_t>(b + 1))};
            r.next();
            const instruct_example & e = examples_[r.next() % examples_.size()];
            value l = tape_->loss(e.ids, e.targets);
            total = total ? add(total, l) : l;
        }
        return total;
    }

    double work_per_example() const override { return mean_tokens_; }
    const char * work_unit() const override { return "tokens"; }

    bool export_artifacts(const std::string & dir, int64_t step, std::string * err) override {
        (void)step;
        return tape_->save_adapter(dir + "/adapter.gguf", err);
    }

private:
    // Tokens of text with the added tokens cut out first (longest match) and the pieces between through the base
    // tokenizer: the same split spider_tokenize makes once the adapter's tokens are in the model.
    bool tokenize(const std::string & s, std::vector<int32_t> * out, std::string * err) {
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
                if (bos >= 0) e.ids.push_back(bos);
                if (!tokenize("[INPUT]" + j["Question"].get<std::string>() + j["TaskPrompt"].get<std::string>(), &e.ids,
                              err))
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
                n_tokens += static_cast<int64_t>(e.ids.size());
                if (dump.is_open()) dump << nlohmann::json{{"ids", e.ids}, {"targets", e.targets}}.dump() << "\n";
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
                     "instruct: %zu examples, %.1f tokens on average (skipped: %lld too long, %lld with media, %lld "
                     "other families)\n",
                     examples_.size(), mean_tokens_, static_cast<long long>(n_long), static_cast<long long>(n_media),
                     static_cast<long long>(n_family));
        return true;
    }

    std::string model_path_;
    int64_t n_threads_ = 2;
    llm_tape_config tc_;
    bool new_tokens_ = true;
    std::vector<std::string> data_paths_;
    int64_t max_tokens_ = 128;
    std::vector<std::string> families_;
    std::string media_ = "skip";
    int64_t limit_ = 0;
    std::string dump_tokens_;

    uint64_t seed_ = 0;
    ::spider_model * smodel_ = nullptr;
    std::unique_ptr<llm_model> model_;
    int64_t n_vocab_ = 0;
    std::vector<std::string> added_, by_len_;
    std::vector<instruct_example> examples_;
    double mean_tokens_ = 0;
    std::unique_ptr<llm_tape> tape_;
};

}  // namespace

std::unique_ptr<stage> make_stage_instruct() {
    return std::make_unique<instruct_stage>();
}

}  // namespace spider::train
