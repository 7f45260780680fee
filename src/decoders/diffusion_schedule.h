// Diffusion noise schedules and prediction kinds, shared by training (train/losses.h: the denoising loss) and the
// runtime samplers (decoders/diffusion_tiny.h), so a decoder samples over exactly the schedule it was trained on.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace spider {

// Diffusion noise schedules: betas over n_steps timesteps, alpha_bar[t] = prod_{s <= t} (1 - beta_s).
//   linear:        beta = linspace(beta_start, beta_end)                 (DDPM: 1e-4 .. 0.02, 1000 steps)
//   scaled_linear: beta = linspace(sqrt(beta_start), sqrt(beta_end))^2   (Stable Diffusion: 0.00085 .. 0.012)
//   cosine:        alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t+1)/T + 0.008) / 1.008 * pi/2), betas clipped at 0.999
//                  (Nichol & Dhariwal)
struct noise_schedule {
    std::string kind = "linear";
    int64_t n_steps = 1000;
    float beta_start = 1e-4f;
    float beta_end = 0.02f;
    std::vector<double> alpha_bar;  // filled by build()
    bool build(std::string * err);
};

enum diffusion_prediction { PREDICT_EPSILON, PREDICT_V };
bool parse_prediction(const std::string & s, diffusion_prediction * out);

}  // namespace spider
