// AdamW, SGD with momentum, schedules, clipping.
#include "train/optim.h"

#include <algorithm>
#include <cmath>

#include "core/cpu_features.h"

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

namespace detail {

void adamw_update_plain(float * p, const float * g, float * m, float * v, int64_t n, const adamw_scalars & s) {
    // PyTorch's float formulation: denom = sqrt(v) / sqrt(bc2) + eps; p -= (lr / bc1) * m / denom.
    const float b1 = s.beta1, b2 = s.beta2, eps = s.eps, step_size = s.step_size, sqrt_bc2 = s.sqrt_bc2;
    for (int64_t i = 0; i < n; ++i) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] -= step_size * m[i] / (std::sqrt(v[i]) / sqrt_bc2 + eps);
    }
}

}  // namespace detail

namespace {

// Calls fn(param, begin, end, flat) for the part [begin, end) of each parameter's elements that falls into the flat
// range [b, e) of all parameters laid end to end (flat: the flat index of begin).
template <class F>
void for_flat_range(const std::vector<value> & ps, size_t b, size_t e, F fn) {
    size_t off = 0;
    for (const auto & p : ps) {
        const size_t n = p->data.size();
        const size_t lo = std::max(b, off), hi = std::min(e, off + n);
        if (lo < hi) fn(*p, lo - off, hi - off, lo);
        off += n;
        if (off >= e) break;
    }
}

// Elementwise work over all parameters as one flat range, split between the tape's threads in multiples of 64.
template <class F>
void parallel_params(const std::vector<value> & ps, F fn) {
    const size_t total = total_size(ps);
    constexpr int64_t ALIGN = 64;
    const int64_t units = static_cast<int64_t>((total + ALIGN - 1) / ALIGN);
    parallel_for(units, int64_t{1} << 10, [&](int64_t u0, int64_t u1) {
        for_flat_range(ps, static_cast<size_t>(u0 * ALIGN), std::min(total, static_cast<size_t>(u1 * ALIGN)), fn);
    });
}

}  // namespace

void adamw::step(float lr) {
    ++t_;
    const double bc1 = 1.0 - std::pow(static_cast<double>(p_.beta1), static_cast<double>(t_));
    const double bc2 = 1.0 - std::pow(static_cast<double>(p_.beta2), static_cast<double>(t_));
    const detail::adamw_scalars sc{p_.beta1, p_.beta2, p_.eps, static_cast<float>(lr / bc1),
                                   static_cast<float>(std::sqrt(bc2))};
    const float decay = 1.0f - lr * p_.weight_decay;
    const bool has_decay = p_.weight_decay != 0.0f;
    for (const auto & prm : params_)
        if (prm->grad.size() != prm->data.size()) prm->grad.assign(prm->data.size(), 0.0f);
    const auto update = cpu_level_active() >= CPU_LEVEL_AVX2 ? detail::adamw_update_avx2 : detail::adamw_update_plain;
    parallel_params(params_, [&](node & prm, size_t b, size_t e, size_t flat) {
        float * pd = prm.data.data() + b;
        const int64_t n = static_cast<int64_t>(e - b);
        if (has_decay)
            for (int64_t i = 0; i < n; ++i) pd[i] *= decay;
        update(pd, prm.grad.data() + b, m_.data() + flat, v_.data() + flat, n, sc);
    });
}

void adamw::zero_grad() {
    parallel_params(params_, [](node & p, size_t b, size_t e, size_t) {
        if (p.grad.size() == p.data.size()) std::fill(p.grad.begin() + b, p.grad.begin() + e, 0.0f);
    });
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
    // Sum of squares in double over fixed blocks of the flat gradient (8 interleaved partial sums each), the blocks'
    // sums added in order: the same value for any thread count.
    constexpr size_t BLOCK = size_t{1} << 14;
    const size_t total = total_size(params);
    const int64_t n_blocks = static_cast<int64_t>((total + BLOCK - 1) / BLOCK);
    std::vector<double> block_ss(static_cast<size_t>(n_blocks), 0.0);
    parallel_for(n_blocks, 4, [&](int64_t b0, int64_t b1) {
        for (int64_t blk = b0; blk < b1; ++blk) {
            double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for_flat_range(params, blk * BLOCK, std::min(total, (blk + 1) * BLOCK),
                           [&](node & p, size_t b, size_t e, size_t flat) {
                               if (p.grad.size() != p.data.size()) return;  // no gradient: zeros
                               const float * g = p.grad.data();
                               for (size_t i = b; i < e; ++i, ++flat) acc[flat % 8] += static_cast<double>(g[i]) * g[i];
                           });
            block_ss[blk] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        }
    });
    double ss = 0;
    for (double b : block_ss) ss += b;
    const float norm = static_cast<float>(std::sqrt(ss));
    if (norm > max_norm && norm > 0) scale_grads(params, max_norm / (norm + 1e-6f));
    return norm;
}

void scale_grads(const std::vector<value> & params, float f) {
    parallel_params(params, [f](node & p, size_t b, size_t e, size_t) {
        if (p.grad.size() != p.data.size()) return;  // no gradient yet
        float * g = p.grad.data();
        for (size_t i = b; i < e; ++i) g[i] *= f;
    });
}

bool grads_non_finite(const std::vector<value> & params) {
    for (const auto & p : params)
        for (float g : p->grad)
            if (!std::isfinite(g)) return true;
    return false;
}

}  // namespace spider::train
