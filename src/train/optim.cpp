// AdamW, SGD with momentum, schedules, clipping.
#include "train/optim.h"

#include <cmath>

namespace spider::train {

static size_t total_size(const std::vector<value> & ps) {
    size_t n = 0;
    for (const auto & p : ps) n += p->data.size();
    return n;
}

adamw::adamw(std::vector<value> params, adamw_params p) : params_(std::move(params)), p_(p) {
    m_.assign(total_size(params_), 0.0f);
    v_.assign(m_.size(), 0.0f);
}

void adamw::step(float lr) {
    ++t_;
    const double bc1 = 1.0 - std::pow(static_cast<double>(p_.beta1), static_cast<double>(t_));
    const double bc2 = 1.0 - std::pow(static_cast<double>(p_.beta2), static_cast<double>(t_));
    // PyTorch's float formulation: denom = sqrt(v) / sqrt(bc2) + eps; p -= (lr / bc1) * m / denom. Plain float
    // loops without calls, so the compiler vectorises them.
    const float step_size = static_cast<float>(lr / bc1), sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
    const float b1 = p_.beta1, b2 = p_.beta2, eps = p_.eps, decay = 1.0f - lr * p_.weight_decay;
    const bool has_decay = p_.weight_decay != 0.0f;
    size_t off = 0;
    for (const auto & prm : params_) {
        if (prm->grad.size() != prm->data.size()) prm->grad.assign(prm->data.size(), 0.0f);
        const size_t n = prm->data.size();
        float * pd = prm->data.data();
        const float * g = prm->grad.data();
        float * m = m_.data() + off;
        float * v = v_.data() + off;
        if (has_decay)
            for (size_t i = 0; i < n; ++i) pd[i] *= decay;
        for (size_t i = 0; i < n; ++i) {
            m[i] = b1 * m[i] + (1.0f - b1) * g[i];
            v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
            pd[i] -= step_size * m[i] / (std::sqrt(v[i]) / sqrt_bc2 + eps);
        }
        off += n;
    }
}

void adamw::zero_grad() {
    for (const auto & p : params_) p->zero_grad();
}

sgd::sgd(std::vector<value> params, sgd_params p) : params_(std::move(params)), p_(p) {
    buf_.assign(total_size(params_), 0.0f);
}

void sgd::step(float lr) {
    size_t off = 0;
    for (const auto & prm : params_) {
        if (prm->grad.size() != prm->data.size()) prm->grad.assign(prm->data.size(), 0.0f);
        for (size_t i = 0; i < prm->data.size(); ++i, ++off) {
            float g = prm->grad[i] + p_.weight_decay * prm->data[i];
            if (p_.momentum != 0.0f) {  // PyTorch: the first step initialises the buffer with g
                buf_[off] = first_ ? g : p_.momentum * buf_[off] + g;
                g = p_.nesterov ? g + p_.momentum * buf_[off] : buf_[off];
            }
            prm->data[i] -= lr * g;
        }
    }
    first_ = false;
}

void sgd::zero_grad() {
    for (const auto & p : params_) p->zero_grad();
}

float lr_schedule::at(int64_t step) const {
    if (warmup > 0 && step < warmup) return base_lr * static_cast<float>(step + 1) / static_cast<float>(warmup);
    if (kind == SCHEDULE_CONSTANT) return base_lr;
    const int64_t span = total - warmup;
    if (span <= 0) return base_lr;
    double frac = static_cast<double>(step - warmup) / static_cast<double>(span);
    if (frac > 1) frac = 1;
    if (kind == SCHEDULE_LINEAR) return static_cast<float>(min_lr + (base_lr - min_lr) * (1.0 - frac));
    return static_cast<float>(min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * frac)));
}

bool parse_schedule_kind(const std::string & s, schedule_kind * out) {
    if (s == "constant")
        *out = SCHEDULE_CONSTANT;
    else if (s == "cosine")
        *out = SCHEDULE_COSINE;
    else if (s == "linear")
        *out = SCHEDULE_LINEAR;
    else
        return false;
    return true;
}

float clip_grad_norm(const std::vector<value> & params, float max_norm) {
    double ss = 0;
    for (const auto & p : params)
        for (float g : p->grad) ss += static_cast<double>(g) * g;
    const float norm = static_cast<float>(std::sqrt(ss));
    if (norm > max_norm && norm > 0) scale_grads(params, max_norm / (norm + 1e-6f));
    return norm;
}

void scale_grads(const std::vector<value> & params, float f) {
    for (const auto & p : params)
        for (float & g : p->grad) g *= f;
}

bool grads_non_finite(const std::vector<value> & params) {
    for (const auto & p : params)
        for (float g : p->grad)
            if (!std::isfinite(g)) return true;
    return false;
}

}  // namespace spider::train
