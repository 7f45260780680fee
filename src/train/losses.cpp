// InfoNCE, per-token L2 and the diffusion denoising loss (train/losses.h).
#include "train/losses.h"
#include "train/autograd_internal.h"

#include <cmath>
#include <memory>
#include <stdexcept>

#include "train/autograd_conv.h"

namespace spider::train {

using detail::fail;
using detail::gbuf;
using detail::make;
using detail::numel_of;
using detail::shape_str;

value l2_normalize(const value & x) {
    const int64_t d = x->shape.back(), n = x->numel() / d;
    value y = make("l2_normalize", x->shape, {x});
    auto inv = std::make_shared<std::vector<float>>(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(x->data[r * d + i]) * x->data[r * d + i];
        const float iv = static_cast<float>(1.0 / std::max(std::sqrt(ss), 1e-12));
        (*inv)[r] = iv;
        for (int64_t i = 0; i < d; ++i) y->data[r * d + i] = x->data[r * d + i] * iv;
    }
    y->backward_fn = [n, d, inv](node & s) {
        float * g = gbuf(s.inputs[0]);
        if (!g) return;
        for (int64_t r = 0; r < n; ++r) {  // gx = (gy - y (y . gy)) / |x|
            double dot = 0;
            for (int64_t i = 0; i < d; ++i) dot += s.data[r * d + i] * s.grad[r * d + i];
            for (int64_t i = 0; i < d; ++i)
                g[r * d + i] += (*inv)[r] * (s.grad[r * d + i] - s.data[r * d + i] * static_cast<float>(dot));
        }
    };
    return y;
}

value clamp(const value & x, float lo, float hi) {
    value y = make("clamp", x->shape, {x});
    for (size_t i = 0; i < y->data.size(); ++i) y->data[i] = std::min(std::max(x->data[i], lo), hi);
    y->backward_fn = [lo, hi](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) {
                const float v = s.inputs[0]->data[i];
                if (v >= lo && v <= hi) g[i] += s.grad[i];
            }
    };
    return y;
}

value info_nce(const value & a, const value & b, const value & log_scale) {
    if (a->shape.size() != 2 || a->shape != b->shape) fail("info_nce", "a and b must be the same [B, d]");
    if (log_scale->numel() != 1) fail("info_nce", "log_scale must have one element");
    const int64_t B = a->shape[0];
    value s = exponential(clamp(log_scale, 0.0f, kClipLogScaleMax));
    value logits = scale_by(matmul(l2_normalize(a), transpose(l2_normalize(b))), s);  // [B, B]
    std::vector<int32_t> diag(static_cast<size_t>(B));
    for (int64_t i = 0; i < B; ++i) diag[i] = static_cast<int32_t>(i);
    return scale(add(cross_entropy(logits, diag), cross_entropy(transpose(logits), diag)), 0.5f);
}

value token_l2(const value & x, const value & y) {
    if (x->shape != y->shape) fail("token_l2", "shapes differ");
    const int64_t T = x->numel() / x->shape.back();
    value d = sub(x, y);
    return scale(sum(mul(d, d)), 1.0f / static_cast<float>(T));
}

std::vector<float> diffusion_noisy(const std::vector<float> & x0, const std::vector<float> & eps, double alpha_bar) {
    const double a = std::sqrt(alpha_bar), s = std::sqrt(1.0 - alpha_bar);
    std::vector<float> xt(x0.size());
    for (size_t i = 0; i < x0.size(); ++i) xt[i] = static_cast<float>(a * x0[i] + s * eps[i]);
    return xt;
}

std::vector<float> diffusion_target(const std::vector<float> & x0, const std::vector<float> & eps, double alpha_bar,
                                    diffusion_prediction kind) {
    if (kind == PREDICT_EPSILON) return eps;
    const double a = std::sqrt(alpha_bar), s = std::sqrt(1.0 - alpha_bar);
    std::vector<float> v(x0.size());
    for (size_t i = 0; i < x0.size(); ++i) v[i] = static_cast<float>(a * eps[i] - s * x0[i]);
    return v;
}

value diffusion_loss(const value & pred, const std::vector<float> & x0, const std::vector<float> & eps,
                     double alpha_bar, diffusion_prediction kind) {
    if (static_cast<size_t>(pred->numel()) != x0.size() || x0.size() != eps.size())
        fail("diffusion_loss", "prediction, x0 and noise sizes differ");
    return mse(pred, constant(pred->shape, diffusion_target(x0, eps, alpha_bar, kind)));
}

}  // namespace spider::train
