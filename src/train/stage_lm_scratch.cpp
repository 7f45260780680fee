// Stage `lm_scratch`: a Llama-architecture model (tiny_lm) trained from scratch on the bytes of a text file.
// Its config sections are `model` and `data`; they are kept in train_config (model, init_std, data_path, seq_len).
#include <fstream>
#include <iterator>

#include "train/stage.h"
#include "train/tiny_lm.h"

namespace spider::train {

namespace {

// The sequence for global example b of step s: a window of the data chosen by a hash of (seed, s, b), so the data a
// rank sees depends neither on the number of ranks nor on whether the run was resumed.
std::vector<int32_t> sample(const std::string & data, uint64_t seed, int64_t step, int64_t b, int64_t len) {
    rng64 r{seed ^ (0x9e37ull * static_cast<uint64_t>(step + 1)) ^ (0xc2b2ae35ull * static_cast<uint64_t>(b + 1))};
    r.next();
    const uint64_t span = data.size() - static_cast<size_t>(len);
    const size_t start = static_cast<size_t>(r.next() % (span + 1));
    std::vector<int32_t> ids(static_cast<size_t>(len));
    for (int64_t i = 0; i < len; ++i) ids[i] = static_cast<unsigned char>(data[start + i]);
    return ids;
}

class lm_scratch_stage final : public stage {
public:
    bool parse(const nlohmann::json & sections, train_config * c, std::string * err) override {
        config_reader top{sections, "", err};
        if (const nlohmann::json * m = top.object("model")) {
            config_reader r{*m, "model.", err};
            r.get("vocab", &c->model.vocab);
            r.get("n_embd", &c->model.n_embd);
            r.get("n_ff", &c->model.n_ff);
            r.get("n_layer", &c->model.n_layer);
            r.get("n_head", &c->model.n_head);
            r.get("n_head_kv", &c->model.n_head_kv);
            r.get("rms_eps", &c->model.eps);
            r.get("rope_theta", &c->model.rope_theta);
            r.get("init_std", &c->init_std);
            if (!r.finish()) return false;
        }
        if (const nlohmann::json * d = top.object("data")) {
            config_reader r{*d, "data.", err};
            r.get("path", &c->data_path);
            r.get("seq_len", &c->seq_len);
            if (!r.finish()) return false;
        }
        if (!top.finish()) return false;
        if (!config_positive(c->seq_len, "data.seq_len", err) ||
            !config_positive(c->model.n_embd, "model.n_embd", err) ||
            !config_positive(c->model.n_layer, "model.n_layer", err) ||
            !config_positive(c->model.n_head, "model.n_head", err) ||
            !config_positive(c->model.n_head_kv, "model.n_head_kv", err) ||
            !config_positive(c->model.n_ff, "model.n_ff", err))
            return false;
        if (c->model.vocab != 256) {
            *err = "config: 'model.vocab' must be 256 for the byte-level lm_scratch stage (got " +
                   std::to_string(c->model.vocab) + ")";
            return false;
        }
        if (c->model.n_embd % c->model.n_head != 0 || c->model.n_head % c->model.n_head_kv != 0 ||
            (c->model.n_embd / c->model.n_head) % 2 != 0) {
            *err =
                "config: model.n_embd must split into n_head heads of even size, and n_head must be a multiple of "
                "n_head_kv";
            return false;
        }
        if (c->data_path.empty()) {
            *err = "config: 'data.path' is required";
            return false;
        }
        return true;
    }

    bool setup(const train_config & cfg, std::string * err) override {
        std::ifstream df(cfg.data_path, std::ios::binary);
        if (!df) {
            *err = "data: cannot open '" + cfg.data_path + "'";
            return false;
        }
        data_.assign(std::istreambuf_iterator<char>(df), std::istreambuf_iterator<char>());
        if (static_cast<int64_t>(data_.size()) < cfg.seq_len + 1) {
            *err = "data: '" + cfg.data_path + "' has " + std::to_string(data_.size()) +
                   " bytes, fewer than seq_len + 1 = " + std::to_string(cfg.seq_len + 1);
            return false;
        }
        seed_ = cfg.seed;
        seq_len_ = cfg.seq_len;
        model_ = std::make_unique<tiny_lm>(cfg.model);
        model_->init_random(cfg.seed, cfg.init_std);
        return true;
    }

    std::vector<std::pair<std::string, value>> trainable() override { return model_->named_params(); }

    value loss(const micro_batch & mb) override {
        if (mb.examples.empty()) return nullptr;
        // One tape for the whole micro-batch (larger products, fewer nodes than a tape per sequence): the sequences
        // have equal lengths, so the batch's mean over all predicted tokens times the count is the sum of the
        // per-sequence means.
        std::vector<std::vector<int32_t>> seqs;
        seqs.reserve(mb.examples.size());
        for (int64_t b : mb.examples) seqs.push_back(sample(data_, seed_, mb.step, b, seq_len_));
        return scale(model_->forward_loss_batch(seqs), static_cast<float>(seqs.size()));
    }

    double work_per_example() const override { return static_cast<double>(seq_len_); }
    const char * work_unit() const override { return "tokens"; }

private:
    std::string data_;
    uint64_t seed_ = 0;
    int64_t seq_len_ = 0;
    std::unique_ptr<tiny_lm> model_;
};

}  // namespace

std::unique_ptr<stage> make_stage_lm_scratch() {
    return std::make_unique<lm_scratch_stage>();
}

}  // namespace spider::train
