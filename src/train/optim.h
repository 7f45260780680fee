// Optimisers, learning-rate schedules and gradient utilities for training (issue 5).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/autograd.h"

namespace spider::train {

struct adamw_params {
    float lr = 1e-4f;
    float beta1 = 0.9f;
    float beta2 = 0.95f;  // Spider's reference setting (SPIDER.md §5)
    float eps = 1e-8f;
    float weight_decay = 0.0f;  // decoupled (AdamW): p -= lr * wd * p
};

// AdamW with bias correction, PyTorch's update order. State is per parameter, in the order given at construction.
class adamw {
public:
    adamw(std::vector<value> params, adamw_params p);
    void step(float lr);  // uses each parameter's grad; lr overrides params.lr (schedules)
    void zero_grad();
    int64_t steps() const { return t_; }
    // Serialisable state for checkpoints: first and second moments, flattened in parameter order.
    std::vector<float> & m() { return m_; }
    std::vector<float> & v() { return v_; }
    const std::vector<float> & m() const { return m_; }
    const std::vector<float> & v() const { return v_; }
    void set_steps(int64_t t) { t_ = t; }
    const std::vector<value> & params() const { return params_; }

private:
    std::vector<value> params_;
    adamw_params p_;
    std::vector<float> m_, v_;
    int64_t t_ = 0;
};

struct sgd_params {
    float lr = 1e-2f;
    float momentum = 0.9f;
    float weight_decay = 0.0f;
    bool nesterov = false;
};

class sgd {
public:
    sgd(std::vector<value> params, sgd_params p);
    void step(float lr);
    void zero_grad();
    // Serialisable state for checkpoints: the momentum buffer (flattened in parameter order) and whether a step
    // has filled it (PyTorch's first step sets the buffer to the gradient instead of decaying it).
    std::vector<float> & momentum_buffer() { return buf_; }
    const std::vector<float> & momentum_buffer() const { return buf_; }
    bool started() const { return !first_; }
    void set_started(bool s) { first_ = !s; }

private:
    std::vector<value> params_;
    sgd_params p_;
    std::vector<float> buf_;
    bool first_ = true;
};

enum schedule_kind { SCHEDULE_CONSTANT, SCHEDULE_COSINE, SCHEDULE_LINEAR };

// Linear warm-up from 0 over `warmup` steps, then constant / cosine / linear decay to min_lr at `total` steps.
struct lr_schedule {
    schedule_kind kind = SCHEDULE_COSINE;
    float base_lr = 1e-4f;
    float min_lr = 0.0f;
    int64_t warmup = 0;
    int64_t total = 1;
    float at(int64_t step) const;  // step counts from 0
};
bool parse_schedule_kind(const std::string & s, schedule_kind * out);

namespace detail {
// One AdamW update of n parameters (p, their gradients g, moments m and v), the constants of this step precomputed:
// the plain loop and its AVX2 twin (bit-identical; tests/test_train_kernels.cpp).
struct adamw_scalars {
    float beta1, beta2, eps, step_size, sqrt_bc2;
};
void adamw_update_plain(float * p, const float * g, float * m, float * v, int64_t n, const adamw_scalars & s);
void adamw_update_avx2(float * p, const float * g, float * m, float * v, int64_t n, const adamw_scalars & s);
}  // namespace detail

// Scales all gradients so their global L2 norm is at most max_norm; returns the norm before clipping.
float clip_grad_norm(const std::vector<value> & params, float max_norm);
// Multiplies every gradient by f (gradient accumulation: average over micro-batches).
void scale_grads(const std::vector<value> & params, float f);
// True if any gradient is NaN or Inf.
bool grads_non_finite(const std::vector<value> & params);

}  // namespace spider::train
