// Spider's training losses beyond those in train/autograd.h (SPIDER.md §5, issue 5):
//  - symmetric InfoNCE with a learnable, log-parameterised logit scale (CLIP),
//  - per-token L2 (UDP output against the decoder's text-encoder embedding),
//  - the diffusion denoising loss with epsilon- or v-prediction over a documented noise schedule.
// Values are checked against PyTorch (tests/reference/make_loss_goldens.py) and gradients against finite
// differences (tests/test_losses.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "decoders/diffusion_schedule.h"
#include "train/autograd.h"

namespace spider::train {

// CLIP's initial log logit scale, ln(1 / 0.07), and its clamp range [0, ln 100].
constexpr float kClipLogScaleInit = 2.6592600369f;
constexpr float kClipLogScaleMax = 4.6051701860f;

// Rows of x [n, d] divided by their L2 norm (max(norm, 1e-12), as torch.nn.functional.normalize).
value l2_normalize(const value & x);
// Elementwise clamp to [lo, hi]; the gradient passes where lo <= x <= hi (torch.clamp).
value clamp(const value & x, float lo, float hi);

// Symmetric InfoNCE: row i of a [B, d] matches row i of b [B, d]. Rows are L2-normalised,
// logits = exp(clamp(log_scale, 0, ln 100)) * a_n b_n^T, loss = (CE(logits, i) + CE(logits^T, i)) / 2, each CE
// averaged over the B rows. log_scale is a one-element parameter (start: kClipLogScaleInit).
value info_nce(const value & a, const value & b, const value & log_scale);

// Per-token L2: x, y [T, d] -> mean over the T tokens of the squared Euclidean distance sum_i (x_ti - y_ti)^2.
value token_l2(const value & x, const value & y);

// Noise schedules and the prediction kinds live in decoders/diffusion_schedule.h, so the runtime samplers use the
// same ones.
using spider::diffusion_prediction;
using spider::noise_schedule;
using spider::parse_prediction;
using spider::PREDICT_EPSILON;
using spider::PREDICT_V;

// x_t = sqrt(ab) x0 + sqrt(1 - ab) eps.
std::vector<float> diffusion_noisy(const std::vector<float> & x0, const std::vector<float> & eps, double alpha_bar);
// The regression target: eps, or v = sqrt(ab) eps - sqrt(1 - ab) x0.
std::vector<float> diffusion_target(const std::vector<float> & x0, const std::vector<float> & eps, double alpha_bar,
                                    diffusion_prediction kind);
// The denoising loss: mean squared error between the model's prediction (any shape, numel = x0.size()) and the
// target above.
value diffusion_loss(const value & pred, const std::vector<float> & x0, const std::vector<float> & eps,
                     double alpha_bar, diffusion_prediction kind);

}  // namespace spider::train
