// The spider-diffusion-tiny runtime (decoders/diffusion_tiny.h): DDIM / DDPM against diffusers' schedulers
// (tests/data/diffusion/scheduler_goldens.json from tests/reference/make_scheduler_goldens.py), the runtime
// forward against the training tape's forward of the same checkpoint (exported by `diffusion_scratch`), the
// loader's errors, and seeded sampling.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "decoders/diffusion_tiny.h"
#include "io/gguf.h"
#include "train/comm.h"
#include "train/diffusion_tape.h"
#include "train/trainer.h"
#include "world/world.h"

using namespace spider;
namespace fs = std::filesystem;

namespace {

nlohmann::json goldens() {
    std::ifstream f(std::string(SPIDER_SOURCE_DIR) + "/tests/data/diffusion/scheduler_goldens.json");
    EXPECT_TRUE(f.good()) << "missing scheduler_goldens.json";
    return nlohmann::json::parse(f);
}

std::string tmpdir(const std::string & name) {
    fs::path p = fs::temp_directory_path() / ("spider_test_diffusion_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

noise_schedule schedule_of(const nlohmann::json & j) {
    noise_schedule s;
    s.kind = j["kind"];
    s.n_steps = j["n_steps"];
    s.beta_start = j["beta_start"].get<float>();
    s.beta_end = j["beta_end"].get<float>();
    std::string err;
    EXPECT_TRUE(s.build(&err)) << err;
    return s;
}

// A two-step diffusion_scratch run: a real exported diffusion.gguf with trained (non-initial) weights.
std::string train_tiny(const std::string & dir, const std::string & pred, int t_embed) {
    const std::string cfg_text = R"({"stage": "diffusion_scratch", "steps": 3, "batch": 2, "seed": 5,
      "model": {"channels": 8, "image_size": 16, "t_embed": )" +
                                 std::to_string(t_embed) + R"(, "groups": 4},
      "data": {"world_seed": 1, "n_images": 4, "world_size": 48},
      "diffusion": {"prediction": ")" +
                                 pred +
                                 R"(", "schedule": "linear", "n_steps": 1000},
      "optimizer": {"kind": "adamw", "lr": 0.01},
      "checkpoint": {"dir": ")" + dir +
                                 R"(", "every": 100}})";
    train::train_config cfg;
    std::string err;
    EXPECT_TRUE(train::train_config_parse(cfg_text, &cfg, &err)) << err;
    auto c = train::comm_create(nullptr, nullptr);
    EXPECT_TRUE(train::train_run(cfg, *c, false, true, nullptr, &err)) << err;
    return dir + "/diffusion.gguf";
}

}  // namespace

TEST(diffusion_sampler, matches_diffusers_schedulers) {
    const auto g = goldens();
    ASSERT_EQ(g["diffusers"], "0.42.1");
    ASSERT_GE(g["cases"].size(), 8u);
    for (const auto & cs : g["cases"]) {
        const std::string name = cs["name"];
        SCOPED_TRACE(name);
        // Our schedule (double) equals diffusers' alphas_cumprod (float32) to float32 rounding. The sampler is then
        // run over diffusers' values: near t = 0, 1 - alpha_bar ~ 1e-4 turns float32 rounding of alpha_bar into
        // relative differences of 1e-5 in the DDPM coefficients, which are the schedule's, not the sampler's.
        noise_schedule s = schedule_of(cs["schedule"]);
        const auto ac = cs["alphas_cumprod"].get<std::vector<double>>();
        ASSERT_EQ(ac.size(), s.alpha_bar.size());
        double worst_ab = 0;
        for (size_t t = 0; t < ac.size(); ++t) worst_ab = std::max(worst_ab, std::fabs(s.alpha_bar[t] - ac[t]));
        EXPECT_LT(worst_ab, 1e-6);
        s.alpha_bar = ac;
        diffusion_prediction pred;
        ASSERT_TRUE(parse_prediction(cs["prediction"], &pred));
        diffusion_sampler_config c;
        ASSERT_TRUE(parse_sampler_kind(cs["sampler"], &c.kind));
        ASSERT_TRUE(parse_spacing(cs["spacing"], &c.spacing));
        c.steps = cs["steps"];
        c.clip_sample = cs["clip_sample"];
        std::vector<int64_t> ts;
        std::string err;
        ASSERT_TRUE(diffusion_timesteps(s, c.steps, c.spacing, &ts, &err)) << err;
        EXPECT_EQ(ts, cs["timesteps"].get<std::vector<int64_t>>());

        const auto mos = cs["model_outputs"].get<std::vector<std::vector<float>>>();
        const auto noises = cs["noises"].get<std::vector<std::vector<float>>>();
        const auto latents = cs["latents"].get<std::vector<std::vector<double>>>();
        std::vector<float> x = cs["x_T"].get<std::vector<float>>();
        size_t calls = 0;
        double worst = 0;
        auto model = [&](const std::vector<float> & xt, int64_t t, std::vector<float> * out) {
            ASSERT_LT(calls, mos.size());
            EXPECT_EQ(t, ts[calls]);
            *out = mos[calls++];
        };
        auto noise = [&](std::vector<float> * z) { *z = noises[calls - 1]; };
        int64_t steps_seen = 0;
        auto after = [&](int64_t k, int64_t t, const std::vector<float> & xk) {
            ++steps_seen;
            for (size_t i = 0; i < xk.size(); ++i) {
                const double ref = latents[k][i];
                const double rel = std::fabs(xk[i] - ref) / std::max(1.0, std::fabs(ref));
                worst = std::max(worst, rel);
                ASSERT_LT(rel, 1e-5) << "step " << k << " (t " << t << ") element " << i << ": " << xk[i] << " vs "
                                     << ref;
            }
        };
        ASSERT_TRUE(diffusion_sample(s, pred, c, &x, model, noise, after, nullptr, &err)) << err;
        EXPECT_EQ(steps_seen, static_cast<int64_t>(latents.size()));
        std::printf("%-34s %3zu steps, largest relative difference %.2e (alpha_bar vs diffusers: max abs %.2e)\n",
                    name.c_str(), latents.size(), worst, worst_ab);
    }
}

TEST(diffusion_sampler, bad_input_is_rejected) {
    noise_schedule s;
    std::string err;
    ASSERT_TRUE(s.build(&err)) << err;
    std::vector<int64_t> ts;
    EXPECT_FALSE(diffusion_timesteps(s, 0, SPACING_LEADING, &ts, &err));
    EXPECT_NE(err.find("steps must be between 1 and"), std::string::npos) << err;
    // diffusers rejects more inference steps than training timesteps too (recorded in the goldens).
    const auto g = goldens();
    ASSERT_TRUE(g["rejected_steps"][0]["rejected"].get<bool>());
    EXPECT_FALSE(diffusion_timesteps(s, g["rejected_steps"][0]["steps"].get<int64_t>(), SPACING_TRAILING, &ts, &err));
    EXPECT_NE(err.find("1000 timesteps (got 1001)"), std::string::npos) << err;
    EXPECT_TRUE(diffusion_timesteps(s, 1000, SPACING_TRAILING, &ts, &err)) << err;

    diffusion_prediction p;
    EXPECT_FALSE(parse_prediction("x0", &p));
    EXPECT_FALSE(parse_prediction("", &p));
    diffusion_sampler_kind k;
    EXPECT_FALSE(parse_sampler_kind("euler", &k));
    diffusion_spacing sp;
    EXPECT_FALSE(parse_spacing("linspace", &sp));

    std::vector<float> x(12, 0.5f);
    auto model = [](const std::vector<float> & xt, int64_t, std::vector<float> * out) { *out = xt; };
    auto noise = [](std::vector<float> * z) { std::fill(z->begin(), z->end(), 0.0f); };
    diffusion_sampler_config c;
    EXPECT_FALSE(diffusion_sample(s, static_cast<diffusion_prediction>(7), c, &x, model, noise, {}, nullptr, &err));
    EXPECT_NE(err.find("unknown prediction"), std::string::npos) << err;
    c.steps = 0;
    EXPECT_FALSE(diffusion_sample(s, PREDICT_EPSILON, c, &x, model, noise, {}, nullptr, &err));
    c.steps = 5;
    noise_schedule unbuilt;
    EXPECT_FALSE(diffusion_sample(unbuilt, PREDICT_EPSILON, c, &x, model, noise, {}, nullptr, &err));
    EXPECT_NE(err.find("not built"), std::string::npos) << err;
    auto short_model = [](const std::vector<float> &, int64_t, std::vector<float> * out) { out->resize(3); };
    EXPECT_FALSE(diffusion_sample(s, PREDICT_EPSILON, c, &x, short_model, noise, {}, nullptr, &err));
    EXPECT_NE(err.find("returned 3 values"), std::string::npos) << err;
    std::atomic<bool> cancel{true};
    EXPECT_FALSE(diffusion_sample(s, PREDICT_EPSILON, c, &x, model, noise, {}, &cancel, &err));
    EXPECT_NE(err.find("cancelled"), std::string::npos) << err;
}

TEST(diffusion_tiny, runtime_forward_equals_training_tape) {
    // t_embed 15 (odd) also checks the zero the embedding leaves in its last slot.
    for (int t_embed : {16, 15}) {
        const std::string d = tmpdir("tape" + std::to_string(t_embed));
        const std::string path = train_tiny(d, "v", t_embed);
        std::string err;
        auto m = diffusion_tiny::load(path, &err);
        ASSERT_TRUE(m) << err;
        EXPECT_EQ(m->config().prediction, PREDICT_V);
        EXPECT_EQ(m->config().t_embed, t_embed);
        // The same tensors as tape parameters.
        auto f = gguf_file::open(path, &err);
        ASSERT_TRUE(f) << err;
        std::map<std::string, train::value> params;
        for (const auto & ti : f->tensors()) {
            std::vector<int64_t> shape;
            for (int i = ti.n_dims - 1; i >= 0; --i) shape.push_back(ti.ne[i]);
            const tensor v = f->view(ti);
            const float * p = static_cast<const float *>(v.data);
            params[ti.name] = train::parameter(shape, std::vector<float>(p, p + v.nelements()));
        }
        diffusion_rng rng(77);
        std::vector<float> x(static_cast<size_t>(m->numel())), out(x.size());
        for (int64_t t : {0, 1, 137, 500, 999}) {
            rng.fill_normal(&x);
            m->forward(x.data(), t, out.data(), nullptr);
            const train::value ref =
                train::diffusion_tiny_tape_forward(params, 8, t_embed, 4, train::constant({1, 3, 16, 16}, x), t);
            ASSERT_EQ(ref->data.size(), out.size());
            double num = 0, den = 0, max_abs = 0;
            for (size_t i = 0; i < out.size(); ++i) {
                const double dlt = static_cast<double>(out[i]) - ref->data[i];
                num += dlt * dlt;
                den += static_cast<double>(ref->data[i]) * ref->data[i];
                max_abs = std::max(max_abs, std::fabs(dlt));
            }
            std::printf("t_embed %d, t %4lld: NMSE %.2e, max abs %.2e\n", t_embed, static_cast<long long>(t), num / den,
                        max_abs);
            EXPECT_TRUE(num / den < 1e-10 || max_abs < 1e-5) << "t " << t << ": NMSE " << num / den;
            EXPECT_GT(den, 0.0);
        }
        fs::remove_all(d);
    }
}

TEST(diffusion_tiny, bad_files_are_named_errors) {
    const std::string d = tmpdir("bad");
    const std::string path = train_tiny(d, "epsilon", 16);
    std::string err;
    ASSERT_TRUE(diffusion_tiny::load(path, &err)) << err;
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(file_read_all(path, &bytes, &err)) << err;
    // Truncated anywhere: an error, never a crash.
    for (size_t cut : {size_t(0), size_t(7), size_t(100), bytes.size() / 3, bytes.size() / 2, bytes.size() - 1}) {
        const std::string p = d + "/cut.gguf";
        ASSERT_TRUE(file_write_atomic(p, bytes.data(), cut, &err)) << err;
        EXPECT_FALSE(diffusion_tiny::load(p, &err)) << "cut at " << cut;
        EXPECT_NE(err.find("cut.gguf"), std::string::npos) << err;
    }
    // Rewritten with one change each: the message names the key or tensor.
    auto f = gguf_file::open(path, &err);
    ASSERT_TRUE(f) << err;
    auto rewrite = [&](const std::string & drop_tensor, const std::string & reshape_tensor,
                       const std::function<void(gguf_writer &)> & edit) {
        gguf_writer w;
        w.set_string("general.architecture", "spider-diffusion-tiny");
        w.set_u32("spider.diffusion.channels", 8);
        w.set_u32("spider.diffusion.image_size", 16);
        w.set_u32("spider.diffusion.t_embed", 16);
        w.set_u32("spider.diffusion.groups", 4);
        w.set_string("spider.diffusion.prediction", "epsilon");
        w.set_string("spider.diffusion.schedule", "linear");
        w.set_u32("spider.diffusion.n_steps", 1000);
        w.set_f32("spider.diffusion.beta_start", 1e-4f);
        w.set_f32("spider.diffusion.beta_end", 0.02f);
        edit(w);
        std::string e;
        for (const auto & ti : f->tensors()) {
            if (ti.name == drop_tensor) continue;
            int64_t ne[4] = {ti.ne[0], ti.ne[1], ti.ne[2], ti.ne[3]};
            int nd = ti.n_dims;
            if (ti.name == reshape_tensor) {  // same bytes, another shape
                ne[0] = ti.ne[0] * ti.ne[1];
                ne[1] = 1;
                nd = std::max(ti.n_dims - 1, 1);
                for (int i = 1; i + 1 < 4; ++i) ne[i] = ti.ne[i + 1];
                ne[3] = 1;
            }
            EXPECT_TRUE(w.add_tensor(ti.name, DTYPE_F32, ne, nd, f->view(ti).data, &e)) << e;
        }
        const std::string p = d + "/edit.gguf";
        EXPECT_TRUE(w.write(p, &e)) << e;
        return p;
    };
    auto load_error = [&](const std::string & p) {
        std::string e;
        EXPECT_FALSE(diffusion_tiny::load(p, &e)) << p;
        return e;
    };
    EXPECT_TRUE(diffusion_tiny::load(rewrite("", "", [](gguf_writer &) {}), &err)) << err;  // the control
    EXPECT_NE(load_error(rewrite("mid.conv.bias", "", [](gguf_writer &) {})).find("missing tensor 'mid.conv.bias'"),
              std::string::npos);
    EXPECT_NE(load_error(rewrite("", "up.conv.weight", [](gguf_writer &) {}))
                  .find("tensor 'up.conv.weight' has shape [8, 24, 9], expected [8, 24, 3, 3]"),
              std::string::npos)
        << load_error(rewrite("", "up.conv.weight", [](gguf_writer &) {}));
    EXPECT_NE(load_error(rewrite("", "", [](gguf_writer & w) { w.set_u32("spider.diffusion.channels", 16); }))
                  .find("has shape"),
              std::string::npos);
    EXPECT_NE(load_error(rewrite("", "", [](gguf_writer & w) { w.set_string("general.architecture", "llama"); }))
                  .find("general.architecture is 'llama'"),
              std::string::npos);
    EXPECT_NE(load_error(rewrite("", "", [](gguf_writer & w) { w.remove("spider.diffusion.groups"); }))
                  .find("missing integer key spider.diffusion.groups"),
              std::string::npos);
    EXPECT_NE(load_error(rewrite("", "", [](gguf_writer & w) { w.set_string("spider.diffusion.prediction", "x0"); }))
                  .find("spider.diffusion.prediction is 'x0'"),
              std::string::npos);
    EXPECT_NE(load_error(rewrite("", "", [](gguf_writer & w) { w.set_string("spider.diffusion.schedule", "sigmoid"); }))
                  .find("kind must be linear"),
              std::string::npos);
    EXPECT_NE(load_error(rewrite("", "", [](gguf_writer & w) { w.set_u32("spider.diffusion.image_size", 0); }))
                  .find("image_size = 0 is outside"),
              std::string::npos);
    EXPECT_NE(load_error(rewrite("", "", [](gguf_writer & w) { w.set_u32("spider.diffusion.groups", 3); }))
                  .find("not a multiple"),
              std::string::npos);
    fs::remove_all(d);
}

TEST(diffusion_tiny, seeded_sampling_is_deterministic) {
    const std::string d = tmpdir("seed");
    const std::string path = train_tiny(d, "epsilon", 16);
    std::string err;
    auto m = diffusion_tiny::load(path, &err);
    ASSERT_TRUE(m) << err;
    for (diffusion_sampler_kind k : {SAMPLER_DDIM, SAMPLER_DDPM}) {
        diffusion_sampler_config c;
        c.kind = k;
        c.steps = 8;
        image_u8 a, b, other;
        int last_step = 0;
        ASSERT_TRUE(diffusion_tiny_sample_image(
            *m, c, 42, &a, nullptr, nullptr, [&](int s, int n) { last_step = s * 100 + n; }, &err))
            << err;
        EXPECT_EQ(last_step, 808);
        ASSERT_TRUE(diffusion_tiny_sample_image(*m, c, 42, &b, nullptr, nullptr, {}, &err)) << err;
        ASSERT_TRUE(diffusion_tiny_sample_image(*m, c, 43, &other, nullptr, nullptr, {}, &err)) << err;
        EXPECT_EQ(a.width, 16);
        EXPECT_EQ(a.channels, 3);
        EXPECT_EQ(a.pixels, b.pixels);
        EXPECT_NE(a.pixels, other.pixels);
    }
    // The pipeline decoder: unconditional, resized to the request.
    auto dec = make_diffusion_tiny_decoder(path, diffusion_sampler_config{}, 7, 24, &err);
    ASSERT_TRUE(dec) << err;
    std::vector<float> cond;
    int T = 0, D = 0;
    ASSERT_TRUE(dec->encode_text("a red ball", &cond, &T, &D, &err)) << err;
    EXPECT_EQ(T, 7);
    EXPECT_EQ(D, 24);
    EXPECT_EQ(cond.size(), 7u * 24u);
    decode_request rq;
    rq.seed = 9;
    rq.width = 40;
    rq.height = 24;
    decode_result r;
    ASSERT_TRUE(dec->decode(rq, &r, &err)) << err;
    EXPECT_EQ(r.image.width, 40);
    EXPECT_EQ(r.image.height, 24);
    // Unconditional: another prompt's condition gives the same image for the same seed.
    decode_result r2;
    rq.cond = builtin_text_encode("a blue cube", 7, 24);
    ASSERT_TRUE(dec->decode(rq, &r2, &err)) << err;
    EXPECT_EQ(r.image.pixels, r2.image.pixels);
    rq.m = MODALITY_AUDIO;
    EXPECT_FALSE(dec->decode(rq, &r, &err));
    diffusion_sampler_config too_many;
    too_many.steps = 5000;
    EXPECT_FALSE(make_diffusion_tiny_decoder(path, too_many, 7, 24, &err));
    EXPECT_NE(err.find("got 5000"), std::string::npos) << err;
    fs::remove_all(d);
}

namespace {

// Per-image statistics of 16x16 RGB images, averaged over a set: contrast (standard deviation of the pixel values),
// roughness (mean absolute difference of horizontally and vertically adjacent pixels, per channel) and the flat
// fraction (pixels within 12 levels, in every channel, of the image's per-channel median colour: the background).
struct image_stats {
    double contrast = 0, roughness = 0, flat = 0;
};

image_stats stats_of(const std::vector<image_u8> & imgs) {
    image_stats s;
    for (const auto & im : imgs) {
        const int W = im.width, H = im.height;
        const auto & p = im.pixels;
        double sum = 0, sq = 0;
        for (uint8_t v : p) {
            sum += v;
            sq += static_cast<double>(v) * v;
        }
        const double n = static_cast<double>(p.size());
        s.contrast += std::sqrt(std::max(sq / n - (sum / n) * (sum / n), 0.0));
        double rough = 0;
        int64_t pairs = 0;
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x)
                for (int c = 0; c < 3; ++c) {
                    const int v = p[(y * W + x) * 3 + c];
                    if (x + 1 < W) rough += std::abs(v - p[(y * W + x + 1) * 3 + c]), ++pairs;
                    if (y + 1 < H) rough += std::abs(v - p[((y + 1) * W + x) * 3 + c]), ++pairs;
                }
        s.roughness += rough / static_cast<double>(pairs);
        int median[3];
        for (int c = 0; c < 3; ++c) {
            std::vector<uint8_t> ch;
            for (int i = 0; i < W * H; ++i) ch.push_back(p[i * 3 + c]);
            std::nth_element(ch.begin(), ch.begin() + ch.size() / 2, ch.end());
            median[c] = ch[ch.size() / 2];
        }
        int flat = 0;
        for (int i = 0; i < W * H; ++i) {
            bool near = true;
            for (int c = 0; c < 3; ++c) near = near && std::abs(p[i * 3 + c] - median[c]) <= 12;
            flat += near;
        }
        s.flat += static_cast<double>(flat) / (W * H);
    }
    const double k = static_cast<double>(imgs.size());
    s.contrast /= k;
    s.roughness /= k;
    s.flat /= k;
    return s;
}

// Sum over the three statistics of |model - data| / data.
double stats_distance(const image_stats & a, const image_stats & data) {
    return std::fabs(a.contrast - data.contrast) / data.contrast +
           std::fabs(a.roughness - data.roughness) / data.roughness + std::fabs(a.flat - data.flat) / data.flat;
}

std::vector<image_u8> sample_images(const diffusion_tiny & m, int n) {
    std::vector<image_u8> out(static_cast<size_t>(n));
    diffusion_sampler_config c;  // DDIM, 50 steps: what `spider run` uses
    std::string err;
    for (int i = 0; i < n; ++i)
        EXPECT_TRUE(diffusion_tiny_sample_image(m, c, 1000 + i, &out[i], nullptr, nullptr, {}, &err)) << err;
    return out;
}

}  // namespace

// The committed default decoder (models/diffusion-toyworld-16.gguf, scripts/train-diffusion-default.sh) samples
// images whose statistics are closer to ToyWorld's than those of the same architecture untrained.
TEST(diffusion_tiny, default_model_samples_look_like_toyworld) {
    const std::string path = std::string(SPIDER_SOURCE_DIR) + "/models/diffusion-toyworld-16.gguf";
    std::string err;
    auto trained = diffusion_tiny::load(path, &err);
    ASSERT_TRUE(trained) << err;
    const int n = 32;
    // ToyWorld images the decoder never saw (indices past its 512 training images), box-downsampled 48 -> 16 as
    // the stage does.
    std::vector<image_u8> data;
    world_params wp;
    wp.image_size = 48;
    wp.n_captions = 1;
    for (int i = 0; i < n; ++i) {
        image_item it;
        world_make_image(1, 100000 + i, wp, &it);
        image_u8 im;
        im.width = im.height = 16;
        im.channels = 3;
        im.pixels.resize(16 * 16 * 3);
        for (int y = 0; y < 16; ++y)
            for (int x = 0; x < 16; ++x)
                for (int c = 0; c < 3; ++c) {
                    float acc = 0;
                    for (int a = 0; a < 3; ++a)
                        for (int b = 0; b < 3; ++b) acc += it.image.pixels[((y * 3 + a) * 48 + x * 3 + b) * 3 + c];
                    const double v = (acc / 9 / 127.5f - 1.0f + 1.0) * 127.5;
                    im.pixels[(y * 16 + x) * 3 + c] =
                        static_cast<uint8_t>(std::lround(std::min(std::max(v, 0.0), 255.0)));
                }
        data.push_back(std::move(im));
    }
    // Pure noise: x_T itself as pixels.
    std::vector<image_u8> noise(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        diffusion_rng r(1000 + i);
        std::vector<float> x(16 * 16 * 3);
        r.fill_normal(&x);
        noise[i].width = noise[i].height = 16;
        noise[i].channels = 3;
        noise[i].pixels.resize(x.size());
        for (int c = 0; c < 3; ++c)
            for (int p = 0; p < 256; ++p)
                noise[i].pixels[p * 3 + c] =
                    static_cast<uint8_t>(std::lround(std::min(std::max((x[c * 256 + p] + 1.0) * 127.5, 0.0), 255.0)));
    }
    // The same architecture and schedule, untrained: one step at a negligible learning rate.
    const std::string d = tmpdir("untrained");
    const std::string cfg_text = R"({"stage": "diffusion_scratch", "steps": 1, "batch": 1, "seed": 1,
      "model": {"channels": 8, "image_size": 16, "t_embed": 16, "groups": 4},
      "data": {"world_seed": 1, "n_images": 1, "world_size": 48},
      "diffusion": {"prediction": "epsilon", "schedule": "linear", "n_steps": 1000},
      "optimizer": {"kind": "adamw", "lr": 1e-12}, "checkpoint": {"dir": ")" +
                                 d + R"(", "every": 100}})";
    train::train_config cfg;
    ASSERT_TRUE(train::train_config_parse(cfg_text, &cfg, &err)) << err;
    auto cm = train::comm_create(nullptr, nullptr);
    ASSERT_TRUE(train::train_run(cfg, *cm, false, true, nullptr, &err)) << err;
    auto untrained = diffusion_tiny::load(d + "/diffusion.gguf", &err);
    ASSERT_TRUE(untrained) << err;

    const image_stats sd = stats_of(data), sn = stats_of(noise);
    const image_stats st = stats_of(sample_images(*trained, n)), su = stats_of(sample_images(*untrained, n));
    auto show = [&](const char * what, const image_stats & s) {
        std::printf("%-10s contrast %6.2f  roughness %6.2f  flat %.3f  distance to data %.3f\n", what, s.contrast,
                    s.roughness, s.flat, stats_distance(s, sd));
    };
    show("toyworld", sd);
    show("noise", sn);
    show("untrained", su);
    show("trained", st);
    EXPECT_LT(stats_distance(st, sd), stats_distance(su, sd));
    EXPECT_LT(stats_distance(st, sd), stats_distance(sn, sd));
    EXPECT_LT(std::fabs(st.roughness - sd.roughness), std::fabs(su.roughness - sd.roughness));
    EXPECT_LT(std::fabs(st.flat - sd.flat), std::fabs(su.flat - sd.flat));
    fs::remove_all(d);
}
