// Stage `encoder_scratch`: a tiny convolutional image encoder trained from scratch, CLIP-style, on ToyWorld images
// and their captions: symmetric InfoNCE (train/losses.h, learnable log logit scale) between the image embeddings of
// a micro-batch and the text embeddings of their captions. The micro-batch is the global one: on N MPI ranks every
// rank's embeddings are gathered (train/autograd_dist.h), so the loss and gradients are one process's. The text side
// is the built-in decoders' frozen text encoder (builtin_text_encode, one unit-norm row of `model.emb_dim`), so the
// encoder learns to put an image where the pipeline's tiny text encoder puts its description. Architecture: three
// conv 3x3 / GroupNorm / SiLU blocks (C, 2C, 2C channels, 2x2 average pooling after the first two), global average
// pooling, Linear(2C -> emb_dim). Exports `<checkpoint.dir>/encoder.gguf` (weights under their names, F32;
// spider.encoder.* sizes).
#include <cmath>
#include <map>
#include <stdexcept>

#include "decoders/decoder.h"
#include "io/gguf.h"
#include "train/autograd_conv.h"
#include "train/autograd_dist.h"
#include "train/data_records.h"
#include "train/losses.h"
#include "train/stage.h"
#include "train/tiny_lm.h"
#include "world/world.h"

namespace spider::train {

namespace {

class encoder_scratch_stage final : public stage {
public:
    bool parse(const nlohmann::json & sections, train_config * cfg, std::string * err) override {
        (void)cfg;
        config_reader top{sections, "", err};
        if (const nlohmann::json * m = top.object("model")) {
            config_reader r{*m, "model.", err};
            r.get("channels", &ch_);
            r.get("image_size", &size_);
            r.get("emb_dim", &emb_dim_);
            r.get("groups", &groups_);
            if (!r.finish()) return false;
        }
        if (const nlohmann::json * d = top.object("data")) {
            config_reader r{*d, "data.", err};
            r.get("world_seed", &world_seed_);
            r.get("n_images", &n_images_);
            r.get("world_size", &world_size_);
            if (!r.finish()) return false;
        }
        if (const nlohmann::json * l = top.object("loss")) {
            config_reader r{*l, "loss.", err};
            r.get("logit_scale", &logit_scale_init_);
            if (!r.finish()) return false;
        }
        if (!top.finish()) return false;
        if (!config_positive(ch_, "model.channels", err) || !config_positive(size_, "model.image_size", err) ||
            !config_positive(emb_dim_, "model.emb_dim", err) || !config_positive(groups_, "model.groups", err) ||
            !config_positive(n_images_, "data.n_images", err))
            return false;
        if (ch_ % groups_ != 0) {
            *err = "config: 'model.channels' must be a multiple of 'model.groups'";
            return false;
        }
        if (size_ % 4 != 0 || world_size_ < 48 || world_size_ % size_ != 0) {
            *err = "config: 'model.image_size' must be a multiple of 4 dividing 'data.world_size' (>= 48); got " +
                   std::to_string(size_) + " and " + std::to_string(world_size_);
            return false;
        }
        return true;
    }

    bool setup(const train_config & cfg, std::string * err) override {
        seed_ = cfg.seed;
        world_params wp;
        wp.image_size = static_cast<int>(world_size_);
        std::string e;
        if (!world_params_check(wp, &e)) {
            *err = "data: " + e;
            return false;
        }
        const int64_t f = world_size_ / size_;
        for (int64_t i = 0; i < n_images_; ++i) {
            image_item it;
            world_make_image(world_seed_, static_cast<uint64_t>(i), wp, &it);
            std::vector<float> img(static_cast<size_t>(3 * size_ * size_));
            for (int c = 0; c < 3; ++c)
                for (int64_t y = 0; y < size_; ++y)
                    for (int64_t x = 0; x < size_; ++x) {
                        float acc = 0;
                        for (int64_t a = 0; a < f; ++a)
                            for (int64_t b = 0; b < f; ++b)
                                acc += it.image.pixels[((y * f + a) * world_size_ + x * f + b) * 3 + c];
                        img[(c * size_ + y) * size_ + x] = acc / (f * f) / 127.5f - 1.0f;
                    }
            images_.push_back(std::move(img));
            std::vector<std::vector<float>> texts;
            for (const auto & cap : it.captions)
                texts.push_back(builtin_text_encode(cap, 1, static_cast<int>(emb_dim_)));
            if (texts.empty()) {
                *err = "data: ToyWorld image " + std::to_string(i) + " has no caption";
                return false;
            }
            texts_.push_back(std::move(texts));
        }
        rng64 r{cfg.seed ^ 0x656e636f646572ull};
        auto conv_w = [&](int64_t co, int64_t ci) {
            std::vector<float> w(static_cast<size_t>(co * ci * 9));
            const float sc = 1.0f / std::sqrt(static_cast<float>(ci * 9));
            for (auto & x : w) x = sc * r.normal();
            return parameter({co, ci, 3, 3}, std::move(w));
        };
        auto vec = [&](int64_t n, float v) { return parameter({n}, std::vector<float>(static_cast<size_t>(n), v)); };
        const int64_t C = ch_;
        const int64_t chans[3][2] = {{3, C}, {C, 2 * C}, {2 * C, 2 * C}};
        for (int k = 0; k < 3; ++k) {
            const std::string n = "block." + std::to_string(k);
            p_[n + ".conv.weight"] = conv_w(chans[k][1], chans[k][0]);
            p_[n + ".conv.bias"] = vec(chans[k][1], 0);
            p_[n + ".norm.weight"] = vec(chans[k][1], 1);
            p_[n + ".norm.bias"] = vec(chans[k][1], 0);
        }
        std::vector<float> w(static_cast<size_t>(emb_dim_ * 2 * C));
        for (auto & x : w) x = r.normal() / std::sqrt(static_cast<float>(2 * C));
        p_["out.weight"] = parameter({emb_dim_, 2 * C}, std::move(w));
        p_["out.bias"] = vec(emb_dim_, 0);
        logit_scale_ = parameter({1}, {logit_scale_init_});
        return true;
    }

    std::vector<std::pair<std::string, value>> trainable() override {
        std::vector<std::pair<std::string, value>> v(p_.begin(), p_.end());
        v.emplace_back("spider.train.logit_scale", logit_scale_);
        return v;
    }

    value loss(const micro_batch & mb) override {
        std::vector<value> ims, txs;
        for (int64_t b : mb.examples) {
            rng64 r = example_rng(seed_, mb.step, b);
            const size_t i = static_cast<size_t>(r.next() % images_.size());
            const auto & caps = texts_[i];
            ims.push_back(forward(constant({1, 3, size_, size_}, images_[i])));
            txs.push_back(constant({1, emb_dim_}, caps[r.next() % caps.size()]));
        }
        // The contrast runs over the GLOBAL micro-batch: the embeddings of every rank, in example order; each rank
        // counts 1 / n_ranks of this replicated term (train/autograd_dist.h).
        comm & c = mb.dist ? *mb.dist : comm_single();
        value im = gather_rows(c, ims, mb.examples, emb_dim_);
        value tx = gather_rows(c, txs, mb.examples, emb_dim_);
        const int64_t n = im->shape[0];
        if (n < 2)  // the same n on every rank, so every rank stops here
            throw std::invalid_argument(
                "[encoder_scratch] a contrastive micro-batch needs at least 2 examples (batch / grad_accum), got " +
                std::to_string(n));
        return scale(info_nce(im, tx, logit_scale_), static_cast<float>(n) / static_cast<float>(c.size()));
    }

    bool export_artifacts(const std::string & dir, int64_t step, std::string * err) override {
        (void)step;
        gguf_writer g;
        g.set_string("general.architecture", "spider-encoder-tiny");
        g.set_u32("spider.encoder.channels", static_cast<uint32_t>(ch_));
        g.set_u32("spider.encoder.image_size", static_cast<uint32_t>(size_));
        g.set_u32("spider.encoder.emb_dim", static_cast<uint32_t>(emb_dim_));
        g.set_u32("spider.encoder.groups", static_cast<uint32_t>(groups_));
        for (const auto & [name, v] : p_) {
            int64_t ne[4] = {1, 1, 1, 1};
            const int nd = static_cast<int>(v->shape.size());
            for (int i = 0; i < nd; ++i) ne[i] = v->shape[nd - 1 - i];
            if (!g.add_tensor(name, DTYPE_F32, ne, nd, v->data.data(), err)) return false;
        }
        return g.write(dir + "/encoder.gguf", err);
    }

private:
    value forward(const value & x) const {
        conv_opts same;
        same.padding = 1;
        value h = x;
        for (int k = 0; k < 3; ++k) {
            const std::string n = "block." + std::to_string(k);
            h = conv2d(h, p(n + ".conv.weight"), p(n + ".conv.bias"), same);
            h = activation(group_norm(h, groups_, p(n + ".norm.weight"), p(n + ".norm.bias"), 1e-5f), ACT_SILU);
            if (k < 2) h = avg_pool2d(h, 2, 2);
        }
        const int64_t c = h->shape[1], s = h->shape[2] * h->shape[3];
        value pooled = mean_rows(transpose(reshape(h, {c, s})));  // [1, 2C]
        return linear(pooled, p("out.weight"), p("out.bias"));
    }

    const value & p(const std::string & n) const { return p_.at(n); }

    int64_t ch_ = 8, size_ = 16, emb_dim_ = 16, groups_ = 4;
    uint64_t world_seed_ = 1;
    int64_t n_images_ = 64, world_size_ = 48;
    float logit_scale_init_ = kClipLogScaleInit;
    uint64_t seed_ = 0;
    std::map<std::string, value> p_;
    value logit_scale_;
    std::vector<std::vector<float>> images_;
    std::vector<std::vector<std::vector<float>>> texts_;
};

}  // namespace

std::unique_ptr<stage> make_stage_encoder_scratch() {
    return std::make_unique<encoder_scratch_stage>();
}

}  // namespace spider::train
