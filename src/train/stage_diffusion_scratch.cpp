// Stage `diffusion_scratch`: a tiny convolutional denoiser (a two-level UNet: conv / GroupNorm / SiLU blocks,
// average-pool down, nearest up, a skip connection, a sinusoidal timestep embedding fed as the first conv's
// per-channel bias) trained from scratch with the diffusion denoising loss (train/losses.h, epsilon- or
// v-prediction) on ToyWorld images, generated on the fly from (world_seed, index) and box-downsampled to
// `model.image_size`, pixels scaled to [-1, 1]. Unconditional. Exports `<checkpoint.dir>/diffusion.gguf` (the
// weights under their names, F32, and the sizes / schedule as spider.diffusion.* keys).
#include <cmath>
#include <map>

#include "io/gguf.h"
#include "train/autograd_conv.h"
#include "train/diffusion_tape.h"
#include "train/losses.h"
#include "train/stage.h"
#include "train/tiny_lm.h"
#include "world/world.h"

namespace spider::train {

value diffusion_tiny_tape_forward(const std::map<std::string, value> & params, int64_t channels, int64_t t_embed,
                                  int64_t groups, const value & x, int64_t t) {
    auto p = [&](const std::string & n) -> const value & { return params.at(n); };
    const int64_t C = channels, half = t_embed / 2;
    std::vector<float> te(static_cast<size_t>(t_embed), 0.0f);
    for (int64_t i = 0; i < half; ++i) {
        const double f = std::exp(-std::log(10000.0) * static_cast<double>(i) / static_cast<double>(half));
        te[i] = static_cast<float>(std::sin(static_cast<double>(t) * f));
        te[half + i] = static_cast<float>(std::cos(static_cast<double>(t) * f));
    }
    value temb =
        linear(activation(linear(constant({1, t_embed}, te), p("time.fc1.weight"), p("time.fc1.bias")), ACT_SILU),
               p("time.fc2.weight"), p("time.fc2.bias"));  // [1, C]: the first conv's bias
    conv_opts same;
    same.padding = 1;
    auto block = [&](const value & in, const char * name, const value & bias) {
        const std::string n(name);
        value h = conv2d(in, p(n + ".conv.weight"), bias, same);
        return activation(group_norm(h, groups, p(n + ".norm.weight"), p(n + ".norm.bias"), 1e-5f), ACT_SILU);
    };
    value h1 = block(x, "down", reshape(temb, {C}));                    // [1, C, S, S]
    value h2 = block(avg_pool2d(h1, 2, 2), "mid", p("mid.conv.bias"));  // [1, 2C, S/2, S/2]
    value h3 = concat({upsample_nearest2d(h2, 2), h1}, 1);              // [1, 3C, S, S]
    value h4 = block(h3, "up", p("up.conv.bias"));                      // [1, C, S, S]
    return conv2d(h4, p("out.conv.weight"), p("out.conv.bias"), same);  // [1, 3, S, S]
}

namespace {

class diffusion_scratch_stage final : public stage {
public:
    bool parse(const nlohmann::json & sections, train_config * cfg, std::string * err) override {
        (void)cfg;
        config_reader top{sections, "", err};
        if (const nlohmann::json * m = top.object("model")) {
            config_reader r{*m, "model.", err};
            r.get("channels", &ch_);
            r.get("image_size", &size_);
            r.get("t_embed", &t_embed_);
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
        std::string pred = "epsilon";
        if (const nlohmann::json * f = top.object("diffusion")) {
            config_reader r{*f, "diffusion.", err};
            r.get("prediction", &pred);
            r.get("schedule", &sched_.kind);
            r.get("n_steps", &sched_.n_steps);
            r.get("beta_start", &sched_.beta_start);
            r.get("beta_end", &sched_.beta_end);
            if (!r.finish()) return false;
        }
        if (!top.finish()) return false;
        if (!parse_prediction(pred, &pred_)) {
            *err = "config: 'diffusion.prediction' must be epsilon or v (got '" + pred + "')";
            return false;
        }
        std::string e;
        if (!sched_.build(&e)) {
            *err = "config: 'diffusion': " + e;
            return false;
        }
        if (!config_positive(ch_, "model.channels", err) || !config_positive(size_, "model.image_size", err) ||
            !config_positive(t_embed_, "model.t_embed", err) || !config_positive(groups_, "model.groups", err) ||
            !config_positive(n_images_, "data.n_images", err))
            return false;
        if (ch_ % groups_ != 0) {
            *err = "config: 'model.channels' must be a multiple of 'model.groups'";
            return false;
        }
        if (size_ % 2 != 0 || world_size_ < 48 || world_size_ % size_ != 0) {
            *err = "config: 'model.image_size' must be even and divide 'data.world_size' (>= 48); got " +
                   std::to_string(size_) + " and " + std::to_string(world_size_);
            return false;
        }
        return true;
    }

    bool setup(const train_config & cfg, std::string * err) override {
        seed_ = cfg.seed;
        world_params wp;
        wp.image_size = static_cast<int>(world_size_);
        wp.n_captions = 1;
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
        }
        rng64 r{cfg.seed ^ 0x646966667573ull};
        auto conv_w = [&](int64_t co, int64_t ci) {
            std::vector<float> w(static_cast<size_t>(co * ci * 9));
            const float sc = 1.0f / std::sqrt(static_cast<float>(ci * 9));
            for (auto & x : w) x = sc * r.normal();
            return parameter({co, ci, 3, 3}, std::move(w));
        };
        auto lin_w = [&](int64_t o, int64_t in) {
            std::vector<float> w(static_cast<size_t>(o * in));
            const float sc = 1.0f / std::sqrt(static_cast<float>(in));
            for (auto & x : w) x = sc * r.normal();
            return parameter({o, in}, std::move(w));
        };
        auto vec = [&](int64_t n, float v) { return parameter({n}, std::vector<float>(static_cast<size_t>(n), v)); };
        const int64_t C = ch_;
        p_["time.fc1.weight"] = lin_w(C, t_embed_);
        p_["time.fc1.bias"] = vec(C, 0);
        p_["time.fc2.weight"] = lin_w(C, C);
        p_["time.fc2.bias"] = vec(C, 0);
        p_["down.conv.weight"] = conv_w(C, 3);
        p_["down.norm.weight"] = vec(C, 1);
        p_["down.norm.bias"] = vec(C, 0);
        p_["mid.conv.weight"] = conv_w(2 * C, C);
        p_["mid.conv.bias"] = vec(2 * C, 0);
        p_["mid.norm.weight"] = vec(2 * C, 1);
        p_["mid.norm.bias"] = vec(2 * C, 0);
        p_["up.conv.weight"] = conv_w(C, 3 * C);
        p_["up.conv.bias"] = vec(C, 0);
        p_["up.norm.weight"] = vec(C, 1);
        p_["up.norm.bias"] = vec(C, 0);
        p_["out.conv.weight"] = conv_w(3, C);
        p_["out.conv.bias"] = vec(3, 0);
        return true;
    }

    std::vector<std::pair<std::string, value>> trainable() override { return {p_.begin(), p_.end()}; }

    value loss(const micro_batch & mb) override {
        value total;
        for (int64_t b : mb.examples) {
            rng64 r{seed_ ^ (0x9e37ull * static_cast<uint64_t>(mb.step + 1)) ^
                    (0xc2b2ae35ull * static_cast<uint64_t>(b + 1))};
            r.next();
            const auto & x0 = images_[r.next() % images_.size()];
            const int64_t t = static_cast<int64_t>(r.next() % static_cast<uint64_t>(sched_.n_steps));
            std::vector<float> eps(x0.size());
            for (auto & v : eps) v = r.normal();
            const double ab = sched_.alpha_bar[t];
            value pred = forward(constant({1, 3, size_, size_}, diffusion_noisy(x0, eps, ab)), t);
            value l = diffusion_loss(pred, x0, eps, ab, pred_);
            total = total ? add(total, l) : l;
        }
        return total;
    }

    bool export_artifacts(const std::string & dir, int64_t step, std::string * err) override {
        (void)step;
        gguf_writer g;
        g.set_string("general.architecture", "spider-diffusion-tiny");
        g.set_u32("spider.diffusion.channels", static_cast<uint32_t>(ch_));
        g.set_u32("spider.diffusion.image_size", static_cast<uint32_t>(size_));
        g.set_u32("spider.diffusion.t_embed", static_cast<uint32_t>(t_embed_));
        g.set_u32("spider.diffusion.groups", static_cast<uint32_t>(groups_));
        g.set_string("spider.diffusion.prediction", pred_ == PREDICT_V ? "v" : "epsilon");
        g.set_string("spider.diffusion.schedule", sched_.kind);
        g.set_u32("spider.diffusion.n_steps", static_cast<uint32_t>(sched_.n_steps));
        g.set_f32("spider.diffusion.beta_start", sched_.beta_start);
        g.set_f32("spider.diffusion.beta_end", sched_.beta_end);
        for (const auto & [name, v] : p_) {
            int64_t ne[4] = {1, 1, 1, 1};
            const int nd = static_cast<int>(v->shape.size());
            for (int i = 0; i < nd; ++i) ne[i] = v->shape[nd - 1 - i];
            if (!g.add_tensor(name, DTYPE_F32, ne, nd, v->data.data(), err)) return false;
        }
        return g.write(dir + "/diffusion.gguf", err);
    }

private:
    value forward(const value & x, int64_t t) const {
        return diffusion_tiny_tape_forward(p_, ch_, t_embed_, groups_, x, t);
    }

    const value & p(const std::string & n) const { return p_.at(n); }

    int64_t ch_ = 8, size_ = 16, t_embed_ = 16, groups_ = 4;
    uint64_t world_seed_ = 1;
    int64_t n_images_ = 64, world_size_ = 48;
    noise_schedule sched_;
    diffusion_prediction pred_ = PREDICT_EPSILON;
    uint64_t seed_ = 0;
    std::map<std::string, value> p_;
    std::vector<std::vector<float>> images_;
};

}  // namespace

std::unique_ptr<stage> make_stage_diffusion_scratch() {
    return std::make_unique<diffusion_scratch_stage>();
}

}  // namespace spider::train
