// AdamW, SGD with momentum, schedules, clipping.
#include "train/optim.h"

#include <cmath>

namespace spider::train {

static size_t total_size(const std::vector<value>& ps) {
    size_t n = 0;
    for (const auto& p : ps) n += p->data.size();
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
    size_t off = 0;
    for (const auto& prm : params_) {
        if (prm->grad.size() != prm->data.size()) prm->grad.assign(prm->data.size(), 0.0f);
        for (size_t i = 0; i < prm->data.size(); ++i, ++off) {
            const float g = prm->grad[i];
            prm->data[i] -= lr * p_.weight_decay * prm->data[i];
            m_[off] = p_.beta1 * m_[off] + (1.0f - p_.beta1) * g;
            v_[off] = p_.beta2 * v_[off] + (1.0f - p_.beta2) * g * g;
            const double mhat = m_[off] / bc1;
            const double denom = std::sqrt(v_[off] / bc2) + p_.eps;
            prm->data[i] -= static_cast<float>(lr * mhat / denom);
        }
    }
}

void adamw::zero_grad() {
    for (const auto& p : params_) p->zero_grad();
}

sgd::sgd(std::vector<value> params, sgd_params p) : params_(std::move(params)), p_(p) {
    buf_.assign(total_size(params_), 0.0f);
}

void sgd::step(float lr) {
    size_t off = 0;
    for (const auto& prm : params_) {
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
    for (const auto& p : params_) p->zero_grad();
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

bool parse_schedule_kind(const std::string& s, schedule_kind* out) {
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

float clip_grad_norm(const std::vector<value>& params, float max_norm) {
    double ss = 0;
    for (const auto& p : params)
        for (float g : p->grad) ss += static_cast<double>(g) * g;
    const float norm = static_cast<float>(std::sqrt(ss));
    if (norm > max_norm && norm > 0) scale_grads(params, max_norm / (norm + 1e-6f));
    return norm;
}

void scale_grads(const std::vector<value>& params, float f) {
    for (const auto& p : params)
        for (float& g : p->grad) g *= f;
}

bool grads_non_finite(const std::vector<value>& params) {
    for (const auto& p : params)
        for (float g : p->grad)
            if (!std::isfinite(g)) return true;
    return false;
}

}  // namespace spider::train
