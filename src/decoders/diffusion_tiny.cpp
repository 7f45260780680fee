// spider-diffusion-tiny: loader, forward on the core ops, DDIM / DDPM samplers and the IMAGE decoder
// (decoders/diffusion_tiny.h).
#include "decoders/diffusion_tiny.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/ops.h"
#include "io/gguf.h"

namespace spider {

// ---- samplers ----

bool parse_sampler_kind(const std::string & s, diffusion_sampler_kind * out) {
    if (s == "ddim") {
        *out = SAMPLER_DDIM;
        return true;
    }
    if (s == "ddpm") {
        *out = SAMPLER_DDPM;
        return true;
    }
    return false;
}

bool parse_spacing(const std::string & s, diffusion_spacing * out) {
    if (s == "leading") {
        *out = SPACING_LEADING;
        return true;
    }
    if (s == "trailing") {
        *out = SPACING_TRAILING;
        return true;
    }
    return false;
}

bool diffusion_timesteps(const noise_schedule & s, int64_t steps, diffusion_spacing spacing, std::vector<int64_t> * out,
                         std::string * err) {
    const int64_t T = static_cast<int64_t>(s.alpha_bar.size());
    if (T < 1) {
        *err = "sampler: the noise schedule is empty (not built)";
        return false;
    }
    if (steps < 1 || steps > T) {
        *err = "sampler: steps must be between 1 and the schedule's " + std::to_string(T) + " timesteps (got " +
               std::to_string(steps) + ")";
        return false;
    }
    out->clear();
    if (spacing == SPACING_LEADING) {
        const int64_t ratio = T / steps;
        for (int64_t i = steps - 1; i >= 0; --i) out->push_back(i * ratio);
    } else {
        // np.round(np.arange(T, 0, -T/S)) - 1: the arange values are T - k * (T/S) in double, rounded half to even.
        const double ratio = static_cast<double>(T) / static_cast<double>(steps);
        for (int64_t k = 0;; ++k) {
            const double v = static_cast<double>(T) - static_cast<double>(k) * ratio;
            if (!(v > 0)) break;
            out->push_back(static_cast<int64_t>(std::nearbyint(v)) - 1);
        }
    }
    return true;
}

namespace {

// diffusers' pred_original_sample and pred_epsilon for both prediction kinds.
inline void predict_x0_eps(diffusion_prediction pred, double ab, double sample, double mo, double * x0, double * eps) {
    const double sa = std::sqrt(ab), sb = std::sqrt(1.0 - ab);
    if (pred == PREDICT_EPSILON) {
        *x0 = (sample - sb * mo) / sa;
        *eps = mo;
    } else {
        *x0 = sa * sample - sb * mo;
        *eps = sa * mo + sb * sample;
    }
}

}  // namespace

void ddim_step(const noise_schedule & s, diffusion_prediction pred, const diffusion_sampler_config & c, int64_t t,
               int64_t prev_t, const float * sample, const float * mo, float * out, int64_t n) {
    const double ab = s.alpha_bar[t];
    const double ab_prev = prev_t >= 0 ? s.alpha_bar[prev_t] : 1.0;
    const double r = c.clip_range;
    for (int64_t i = 0; i < n; ++i) {
        double x0, eps;
        predict_x0_eps(pred, ab, sample[i], mo[i], &x0, &eps);
        if (c.clip_sample) x0 = std::min(std::max(x0, -r), r);
        out[i] = static_cast<float>(std::sqrt(ab_prev) * x0 + std::sqrt(1.0 - ab_prev) * eps);
    }
}

void ddpm_step(const noise_schedule & s, diffusion_prediction pred, const diffusion_sampler_config & c, int64_t t,
               int64_t prev_t, const float * sample, const float * mo, const float * noise, float * out, int64_t n) {
    const double ab = s.alpha_bar[t];
    const double ab_prev = prev_t >= 0 ? s.alpha_bar[prev_t] : 1.0;
    const double alpha_t = ab / ab_prev, beta_t = 1.0 - alpha_t;
    const double coeff_x0 = std::sqrt(ab_prev) * beta_t / (1.0 - ab);
    const double coeff_xt = std::sqrt(alpha_t) * (1.0 - ab_prev) / (1.0 - ab);
    const double sigma = t > 0 ? std::sqrt(std::max((1.0 - ab_prev) / (1.0 - ab) * beta_t, 1e-20)) : 0.0;
    const double r = c.clip_range;
    for (int64_t i = 0; i < n; ++i) {
        double x0, eps;
        predict_x0_eps(pred, ab, sample[i], mo[i], &x0, &eps);
        if (c.clip_sample) x0 = std::min(std::max(x0, -r), r);
        double v = coeff_x0 * x0 + coeff_xt * sample[i];
        if (t > 0) v += sigma * noise[i];
        out[i] = static_cast<float>(v);
    }
}

bool diffusion_sample(const noise_schedule & s, diffusion_prediction pred, const diffusion_sampler_config & c,
                      std::vector<float> * x, const diffusion_model_fn & model, const diffusion_noise_fn & noise,
                      const std::function<void(int64_t k, int64_t t, const std::vector<float> & x)> & after_step,
                      const std::atomic<bool> * cancel, std::string * err) {
    if (pred != PREDICT_EPSILON && pred != PREDICT_V) {
        *err = "sampler: unknown prediction kind " + std::to_string(static_cast<int>(pred));
        return false;
    }
    if (c.kind != SAMPLER_DDIM && c.kind != SAMPLER_DDPM) {
        *err = "sampler: unknown sampler kind " + std::to_string(static_cast<int>(c.kind));
        return false;
    }
    std::vector<int64_t> ts;
    if (!diffusion_timesteps(s, c.steps, c.spacing, &ts, err)) return false;
    const int64_t T = static_cast<int64_t>(s.alpha_bar.size());
    const int64_t n = static_cast<int64_t>(x->size());
    std::vector<float> mo(x->size()), z(x->size()), next(x->size());
    for (size_t k = 0; k < ts.size(); ++k) {
        if (cancel && cancel->load()) {
            *err = "sampler: cancelled at step " + std::to_string(k);
            return false;
        }
        const int64_t t = ts[k];
        model(*x, t, &mo);
        if (mo.size() != x->size()) {
            *err = "sampler: the model returned " + std::to_string(mo.size()) + " values for a sample of " +
                   std::to_string(x->size());
            return false;
        }
        if (c.kind == SAMPLER_DDIM) {
            // diffusers' DDIMScheduler: the previous timestep is t - T // S for both spacings.
            ddim_step(s, pred, c, t, t - T / c.steps, x->data(), mo.data(), next.data(), n);
        } else {
            // DDPMScheduler with set_timesteps: the next timestep of the list, -1 after the last.
            const int64_t prev_t = k + 1 < ts.size() ? ts[k + 1] : -1;
            if (t > 0) noise(&z);
            ddpm_step(s, pred, c, t, prev_t, x->data(), mo.data(), z.data(), next.data(), n);
        }
        x->swap(next);
        if (after_step) after_step(static_cast<int64_t>(k), t, *x);
    }
    return true;
}

uint64_t diffusion_rng::next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double diffusion_rng::uniform() {
    return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

void diffusion_rng::fill_normal(std::vector<float> * out) {
    for (size_t i = 0; i < out->size(); i += 2) {
        const double r = std::sqrt(-2.0 * std::log(uniform())), a = 2.0 * M_PI * uniform();
        (*out)[i] = static_cast<float>(r * std::cos(a));
        if (i + 1 < out->size()) (*out)[i + 1] = static_cast<float>(r * std::sin(a));
    }
}

// ---- the model ----

std::map<std::string, std::vector<int64_t>> diffusion_tiny::expected_tensors(int64_t C, int64_t E) {
    return {
        {"time.fc1.weight", {C, E}},
        {"time.fc1.bias", {C}},
        {"time.fc2.weight", {C, C}},
        {"time.fc2.bias", {C}},
        {"down.conv.weight", {C, 3, 3, 3}},
        {"down.norm.weight", {C}},
        {"down.norm.bias", {C}},
        {"mid.conv.weight", {2 * C, C, 3, 3}},
        {"mid.conv.bias", {2 * C}},
        {"mid.norm.weight", {2 * C}},
        {"mid.norm.bias", {2 * C}},
        {"up.conv.weight", {C, 3 * C, 3, 3}},
        {"up.conv.bias", {C}},
        {"up.norm.weight", {C}},
        {"up.norm.bias", {C}},
        {"out.conv.weight", {3, C, 3, 3}},
        {"out.conv.bias", {3}},
    };
}

namespace {

std::string shape_text(const std::vector<int64_t> & s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

}  // namespace

std::unique_ptr<diffusion_tiny> diffusion_tiny::load(const std::string & path, std::string * err) {
    std::string e;
    auto f = gguf_file::open(path, &e);
    if (!f) {
        *err = path + ": " + e;
        return nullptr;
    }
    auto fail = [&](const std::string & what) {
        *err = path + ": " + what;
        return nullptr;
    };
    std::string arch;
    if (!f->get_string("general.architecture", &arch)) return fail("missing string key general.architecture");
    if (arch != "spider-diffusion-tiny")
        return fail("general.architecture is '" + arch + "', expected 'spider-diffusion-tiny'");
    std::unique_ptr<diffusion_tiny> m(new diffusion_tiny);
    diffusion_tiny_config & c = m->cfg_;
    // Sizes: positive and small enough that a hostile header cannot make us allocate gigabytes.
    auto get_size = [&](const char * key, int64_t max, int64_t * out) {
        const std::string k = std::string("spider.diffusion.") + key;
        if (!f->get_int(k, out)) {
            e = "missing integer key " + k;
            return false;
        }
        if (*out < 1 || *out > max) {
            e = k + " = " + std::to_string(*out) + " is outside 1.." + std::to_string(max);
            return false;
        }
        return true;
    };
    int64_t n_steps = 0;
    if (!get_size("channels", 1024, &c.channels) || !get_size("image_size", 1024, &c.image_size) ||
        !get_size("t_embed", 4096, &c.t_embed) || !get_size("groups", 1024, &c.groups) ||
        !get_size("n_steps", 100000, &n_steps))
        return fail(e);
    if (c.channels % c.groups != 0)
        return fail("spider.diffusion.channels (" + std::to_string(c.channels) +
                    ") is not a multiple of spider.diffusion.groups (" + std::to_string(c.groups) + ")");
    if (c.image_size % 2 != 0)
        return fail("spider.diffusion.image_size (" + std::to_string(c.image_size) + ") must be even");
    std::string pred, kind;
    if (!f->get_string("spider.diffusion.prediction", &pred))
        return fail("missing string key spider.diffusion.prediction");
    if (!parse_prediction(pred, &c.prediction))
        return fail("spider.diffusion.prediction is '" + pred + "', expected epsilon or v");
    if (!f->get_string("spider.diffusion.schedule", &kind)) return fail("missing string key spider.diffusion.schedule");
    double b0 = 0, b1 = 0;
    if (!f->get_float("spider.diffusion.beta_start", &b0)) return fail("missing float key spider.diffusion.beta_start");
    if (!f->get_float("spider.diffusion.beta_end", &b1)) return fail("missing float key spider.diffusion.beta_end");
    c.schedule.kind = kind;
    c.schedule.n_steps = n_steps;
    c.schedule.beta_start = static_cast<float>(b0);
    c.schedule.beta_end = static_cast<float>(b1);
    if (!c.schedule.build(&e)) return fail("spider.diffusion.*: " + e);

    const auto want = expected_tensors(c.channels, c.t_embed);
    for (const auto & ti : f->tensors()) {
        auto it = want.find(ti.name);
        if (it == want.end()) return fail("unexpected tensor '" + ti.name + "'");
        std::vector<int64_t> shape;
        for (int d = ti.n_dims - 1; d >= 0; --d) shape.push_back(ti.ne[d]);
        if (shape != it->second)
            return fail("tensor '" + ti.name + "' has shape " + shape_text(shape) + ", expected " +
                        shape_text(it->second));
        if (ti.type != DTYPE_F32) return fail("tensor '" + ti.name + "' is not F32");
        const tensor v = f->view(ti);
        std::vector<float> data(static_cast<size_t>(v.nelements()));
        std::memcpy(data.data(), v.data, data.size() * sizeof(float));
        for (float x : data)
            if (!std::isfinite(x)) return fail("tensor '" + ti.name + "' holds a non-finite value");
        m->w_[ti.name] = std::move(data);
    }
    for (const auto & [name, shape] : want)
        if (!m->w_.count(name)) return fail("missing tensor '" + name + "' " + shape_text(shape));
    return m;
}

void diffusion_tiny::forward(const float * x, int64_t t, float * out, thread_pool * pool) const {
    const int64_t C = cfg_.channels, S = cfg_.image_size, E = cfg_.t_embed, half = E / 2, H = S / 2;
    const int64_t G = cfg_.groups;
    // Sinusoidal timestep embedding: sin(t f_i) then cos(t f_i), f_i = 10000^(-i / half).
    std::vector<float> te(static_cast<size_t>(E), 0.0f), h(static_cast<size_t>(C)), temb(static_cast<size_t>(C));
    for (int64_t i = 0; i < half; ++i) {
        const double f = std::exp(-std::log(10000.0) * static_cast<double>(i) / static_cast<double>(half));
        te[i] = static_cast<float>(std::sin(static_cast<double>(t) * f));
        te[half + i] = static_cast<float>(std::cos(static_cast<double>(t) * f));
    }
    auto linear = [&](const char * wn, const char * bn, const float * in, int64_t n_in, float * o, int64_t n_out) {
        const tensor W = make_tensor(DTYPE_F32, const_cast<float *>(w(wn)), n_in, n_out);
        matmul(W, in, o, 1, pool);
        add(o, w(bn), o, n_out);
    };
    linear("time.fc1.weight", "time.fc1.bias", te.data(), E, h.data(), C);
    activation(ACT_SILU, h.data(), h.data(), C);
    linear("time.fc2.weight", "time.fc2.bias", h.data(), C, temb.data(), C);  // the first conv's bias

    // conv 3x3 (padding 1) -> GroupNorm -> SiLU
    auto block = [&](const float * in, int64_t c_in, int64_t c_out, int64_t side, const char * name, const float * bias,
                     float * o) {
        const std::string n(name);
        std::vector<float> tmp(static_cast<size_t>(c_out * side * side));
        conv2d(in, w((n + ".conv.weight").c_str()), bias, tmp.data(), c_in, side, side, c_out, 3, 3, 1, 1, pool);
        group_norm(tmp.data(), w((n + ".norm.weight").c_str()), w((n + ".norm.bias").c_str()), o, c_out, side * side, G,
                   1e-5f);
        activation(ACT_SILU, o, o, c_out * side * side);
    };
    std::vector<float> h1(static_cast<size_t>(C * S * S)), pooled(static_cast<size_t>(C * H * H));
    std::vector<float> h2(static_cast<size_t>(2 * C * H * H)), h3(static_cast<size_t>(3 * C * S * S));
    std::vector<float> h4(static_cast<size_t>(C * S * S));
    block(x, 3, C, S, "down", temb.data(), h1.data());  // [C, S, S]
    avg_pool2d(h1.data(), pooled.data(), C, S, S, 2);
    block(pooled.data(), C, 2 * C, H, "mid", w("mid.conv.bias"), h2.data());  // [2C, S/2, S/2]
    // Channel concat of channel-major arrays: the upsampled mid block, then the skip.
    upsample_nearest2d(h2.data(), h3.data(), 2 * C, H, H, 2);
    std::memcpy(h3.data() + 2 * C * S * S, h1.data(), h1.size() * sizeof(float));  // [3C, S, S]
    block(h3.data(), 3 * C, C, S, "up", w("up.conv.bias"), h4.data());             // [C, S, S]
    conv2d(h4.data(), w("out.conv.weight"), w("out.conv.bias"), out, C, S, S, 3, 3, 3, 1, 1, pool);
}

bool diffusion_tiny_sample_image(const diffusion_tiny & m, const diffusion_sampler_config & c, uint64_t seed,
                                 image_u8 * out, thread_pool * pool, const std::atomic<bool> * cancel,
                                 const std::function<void(int step, int n_steps)> & progress, std::string * err) {
    const int64_t S = m.config().image_size;
    diffusion_rng rng(seed);
    std::vector<float> x(static_cast<size_t>(m.numel()));
    rng.fill_normal(&x);
    auto model = [&](const std::vector<float> & xt, int64_t t, std::vector<float> * o) {
        m.forward(xt.data(), t, o->data(), pool);
    };
    auto noise = [&](std::vector<float> * z) { rng.fill_normal(z); };
    std::vector<int64_t> ts;
    if (!diffusion_timesteps(m.config().schedule, c.steps, c.spacing, &ts, err)) return false;
    const int n_steps = static_cast<int>(ts.size());
    auto after = [&](int64_t k, int64_t, const std::vector<float> &) {
        if (progress) progress(static_cast<int>(k) + 1, n_steps);
    };
    if (!diffusion_sample(m.config().schedule, m.config().prediction, c, &x, model, noise, after, cancel, err))
        return false;
    out->width = out->height = static_cast<int>(S);
    out->channels = 3;
    out->pixels.assign(static_cast<size_t>(S * S * 3), 0);
    for (int ch = 0; ch < 3; ++ch)
        for (int64_t y = 0; y < S; ++y)
            for (int64_t xx = 0; xx < S; ++xx) {
                const double v = (static_cast<double>(x[(ch * S + y) * S + xx]) + 1.0) * 127.5;
                out->pixels[(y * S + xx) * 3 + ch] =
                    static_cast<uint8_t>(std::lround(std::min(std::max(v, 0.0), 255.0)));
            }
    return true;
}

namespace {

class diffusion_tiny_decoder final : public decoder {
public:
    diffusion_tiny_decoder(std::unique_ptr<diffusion_tiny> m, std::string path, diffusion_sampler_config c,
                           int cond_tokens, int cond_dim)
        : m_(std::move(m)), path_(std::move(path)), c_(c), cond_tokens_(cond_tokens), cond_dim_(cond_dim) {}
    modality kind() const override { return MODALITY_IMAGE; }
    std::string name() const override { return "diffusion-tiny (unconditional) " + path_; }
    bool encode_text(const std::string & t_prompt, std::vector<float> * out, int * n_tok, int * dim,
                     std::string * err) override {
        *out = builtin_text_encode(t_prompt, cond_tokens_, cond_dim_);
        *n_tok = cond_tokens_;
        *dim = cond_dim_;
        return true;
    }
    bool decode(const decode_request & req, decode_result * out, std::string * err) override {
        if (req.m != MODALITY_IMAGE) {
            *err = "[" + name() + "] decodes images only";
            return false;
        }
        if (req.width < 1 || req.height < 1 || req.width > MEDIA_MAX_DIM || req.height > MEDIA_MAX_DIM) {
            *err = "[" + name() + "] bad image size " + std::to_string(req.width) + "x" + std::to_string(req.height);
            return false;
        }
        image_u8 img;
        if (!diffusion_tiny_sample_image(*m_, c_, req.seed, &img, nullptr, req.cancel, req.progress, err)) {
            *err = "[" + name() + "] " + *err;
            return false;
        }
        out->m = MODALITY_IMAGE;
        out->steps = static_cast<int>(c_.steps);
        image_u8 & o = out->image;
        o.width = req.width;
        o.height = req.height;
        o.channels = 3;
        o.pixels.resize(static_cast<size_t>(o.width) * o.height * 3);
        for (int y = 0; y < o.height; ++y)
            for (int x = 0; x < o.width; ++x) {
                const int sy = static_cast<int>(static_cast<int64_t>(y) * img.height / o.height);
                const int sx = static_cast<int>(static_cast<int64_t>(x) * img.width / o.width);
                for (int ch = 0; ch < 3; ++ch)
                    o.pixels[(static_cast<size_t>(y) * o.width + x) * 3 + ch] =
                        img.pixels[(static_cast<size_t>(sy) * img.width + sx) * 3 + ch];
            }
        return true;
    }

private:
    std::unique_ptr<diffusion_tiny> m_;
    std::string path_;
    diffusion_sampler_config c_;
    int cond_tokens_, cond_dim_;
};

}  // namespace

std::unique_ptr<decoder> make_diffusion_tiny_decoder(const std::string & path, const diffusion_sampler_config & c,
                                                     int cond_tokens, int cond_dim, std::string * err) {
    if (cond_tokens < 1 || cond_dim < 1) {
        *err = path + ": the condition shape must be positive (got " + std::to_string(cond_tokens) + "x" +
               std::to_string(cond_dim) + ")";
        return nullptr;
    }
    auto m = diffusion_tiny::load(path, err);
    if (!m) return nullptr;
    std::vector<int64_t> ts;
    if (!diffusion_timesteps(m->config().schedule, c.steps, c.spacing, &ts, err)) {
        *err = path + ": " + *err;
        return nullptr;
    }
    return std::make_unique<diffusion_tiny_decoder>(std::move(m), path, c, cond_tokens, cond_dim);
}

}  // namespace spider
