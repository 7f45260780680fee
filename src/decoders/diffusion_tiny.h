// The runtime of the tiny diffusion decoders that `spider train` stage `diffusion_scratch` exports
// (`diffusion.gguf`, general.architecture = spider-diffusion-tiny; docs/DECODERS.md): a loader that validates every
// key, tensor name, type and shape; the denoiser forward on the core ops (core/ops.h); DDIM (eta = 0) and DDPM
// (ancestral) samplers for epsilon- and v-prediction over the schedule the decoder was trained with, with
// diffusers' "leading" / "trailing" timestep spacing (checked against diffusers 0.42.1 goldens,
// tests/reference/make_scheduler_goldens.py); and an unconditional IMAGE decoder for the pipeline.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "decoders/decoder.h"
#include "decoders/diffusion_schedule.h"
#include "io/media.h"

namespace spider {

// ---- samplers (model-independent) ----

enum diffusion_sampler_kind { SAMPLER_DDIM, SAMPLER_DDPM };
// diffusers' timestep_spacing: leading = (0..S-1) * (T / S) reversed (integer division), trailing =
// round(T, T - T/S, ...) - 1.
enum diffusion_spacing { SPACING_LEADING, SPACING_TRAILING };

bool parse_sampler_kind(const std::string & s, diffusion_sampler_kind * out);  // "ddim" | "ddpm"
bool parse_spacing(const std::string & s, diffusion_spacing * out);            // "leading" | "trailing"

struct diffusion_sampler_config {
    diffusion_sampler_kind kind = SAMPLER_DDIM;
    int64_t steps = 50;  // inference steps, 1 .. schedule n_steps
    diffusion_spacing spacing = SPACING_LEADING;
    // Clamp the predicted x0 to [-clip_range, clip_range] every step (diffusers' clip_sample, its default on):
    // the decoders are trained on pixels in [-1, 1].
    bool clip_sample = true;
    float clip_range = 1.0f;
};

// The inference timesteps, descending (diffusers' set_timesteps). Errors: steps < 1 or > n_steps, or an empty
// schedule.
bool diffusion_timesteps(const noise_schedule & s, int64_t steps, diffusion_spacing spacing, std::vector<int64_t> * out,
                         std::string * err);

// One reverse step from x_t (sample) with model output mo at timestep t to the timestep prev_t (-1: the end).
// DDIM uses alpha_bar(prev_t) (1 when prev_t < 0); DDPM uses the fixed_small posterior variance and adds
// sqrt(variance) * noise when t > 0 (noise: standard normal, same size, ignored when t == 0).
void ddim_step(const noise_schedule & s, diffusion_prediction pred, const diffusion_sampler_config & c, int64_t t,
               int64_t prev_t, const float * sample, const float * mo, float * out, int64_t n);
void ddpm_step(const noise_schedule & s, diffusion_prediction pred, const diffusion_sampler_config & c, int64_t t,
               int64_t prev_t, const float * sample, const float * mo, const float * noise, float * out, int64_t n);

// The model: out = model(x_t, t) (same size as x).
using diffusion_model_fn = std::function<void(const std::vector<float> & x, int64_t t, std::vector<float> * out)>;
// Fills *out (already sized) with independent standard normal values.
using diffusion_noise_fn = std::function<void(std::vector<float> * out)>;

// Runs the whole reverse process from *x (x_T, the caller's initial noise) to x_0 in place. after_step (may be
// empty) sees each step's index, timestep and new sample; cancel (may be null) stops between steps with an
// error. Errors: bad steps (see diffusion_timesteps), a schedule that is not built.
bool diffusion_sample(const noise_schedule & s, diffusion_prediction pred, const diffusion_sampler_config & c,
                      std::vector<float> * x, const diffusion_model_fn & model, const diffusion_noise_fn & noise,
                      const std::function<void(int64_t k, int64_t t, const std::vector<float> & x)> & after_step,
                      const std::atomic<bool> * cancel, std::string * err);

// A deterministic standard normal stream (splitmix64 + Box-Muller in double), so a seed gives the same image on
// every machine.
struct diffusion_rng {
    uint64_t state;
    explicit diffusion_rng(uint64_t seed) : state(seed) {}
    uint64_t next();
    double uniform();  // (0, 1)
    void fill_normal(std::vector<float> * out);
};

// ---- the spider-diffusion-tiny model ----

struct diffusion_tiny_config {
    int64_t channels = 0, image_size = 0, t_embed = 0, groups = 0;
    diffusion_prediction prediction = PREDICT_EPSILON;
    noise_schedule schedule;  // built
};

class diffusion_tiny {
public:
    // Loads and validates a diffusion.gguf; nullptr and a message naming the file and the problem on failure.
    static std::unique_ptr<diffusion_tiny> load(const std::string & path, std::string * err);
    const diffusion_tiny_config & config() const { return cfg_; }
    int64_t numel() const { return 3 * cfg_.image_size * cfg_.image_size; }
    // The denoiser: x [3, S, S] (channel-major, pixels in [-1, 1] scale) at timestep t -> the epsilon or v
    // prediction [3, S, S]. Thread-safe (no state is written).
    void forward(const float * x, int64_t t, float * out, thread_pool * pool) const;
    // The names and shapes (PyTorch order, outermost first) every file must hold, for this configuration.
    static std::map<std::string, std::vector<int64_t>> expected_tensors(int64_t channels, int64_t t_embed);

private:
    diffusion_tiny_config cfg_;
    std::map<std::string, std::vector<float>> w_;
    const float * w(const char * name) const { return w_.at(name).data(); }
};

// Samples one image: x_T from diffusion_rng(seed), the sampler, pixels (x + 1) * 127.5 rounded and clamped to
// 0..255, RGB of image_size x image_size.
bool diffusion_tiny_sample_image(const diffusion_tiny & m, const diffusion_sampler_config & c, uint64_t seed,
                                 image_u8 * out, thread_pool * pool, const std::atomic<bool> * cancel,
                                 const std::function<void(int step, int n_steps)> & progress, std::string * err);

// The pipeline's IMAGE decoder over a diffusion.gguf. It is UNCONDITIONAL: the image depends on the request's seed
// only, never on the T-Prompt or the fused condition. So that the pipeline's TM-Fusion step runs unchanged, its
// encode_text returns the built-in decoders' hashed bag-of-words encoding at [cond_tokens, cond_dim] (the UDP's
// IMAGE head shape); decode() ignores the condition. The model's image_size x image_size sample is resized to the
// requested size by nearest-neighbour sampling.
std::unique_ptr<decoder> make_diffusion_tiny_decoder(const std::string & path, const diffusion_sampler_config & c,
                                                     int cond_tokens, int cond_dim, std::string * err);

}  // namespace spider
