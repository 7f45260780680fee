// Finite-difference gradient checking shared by the training tests.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "train/autograd.h"

namespace spider::train {

inline std::vector<float> randv(size_t n, std::mt19937 & rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto & x : v) x = d(rng);
    return v;
}

// Builds loss = sum(f(params) * r) for a fixed random r, so every output element's gradient path is exercised.
// Compares d loss / d p for every element of every parameter with (L(p + h) - L(p - h)) / 2h.
inline void grad_check(const std::string & what, std::vector<value> params, const std::function<value()> & f,
                       float h = 1e-2f, float rtol = 2e-2f, float atol = 2e-3f) {
    std::mt19937 rng(123);
    value y0 = f();
    const auto r = randv(static_cast<size_t>(y0->numel()), rng);
    auto loss_of = [&](value y) { return sum(mul(y, constant(y->shape, r))); };
    for (auto & p : params) p->zero_grad();
    value L = loss_of(f());
    backward(L);
    for (size_t pi = 0; pi < params.size(); ++pi) {
        value p = params[pi];
        for (size_t i = 0; i < p->data.size(); ++i) {
            const float orig = p->data[i];
            p->data[i] = orig + h;
            const double lp = loss_of(f())->data[0];
            p->data[i] = orig - h;
            const double lm = loss_of(f())->data[0];
            p->data[i] = orig;
            const double num = (lp - lm) / (2.0 * h);
            const double ana = p->grad[i];
            ASSERT_NEAR(ana, num, atol + rtol * std::max(std::fabs(ana), std::fabs(num)))
                << what << ": parameter " << pi << " element " << i;
        }
    }
}

}  // namespace spider::train
