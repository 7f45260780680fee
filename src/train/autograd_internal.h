// Helpers shared by the files that define autograd ops (autograd.cpp, autograd_conv.cpp, autograd_llm.cpp,
// losses.cpp). Not for use outside src/train.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "train/autograd.h"

namespace spider::train::detail {

// Shape errors are programming errors of model code, not bad user input: they throw with the op named, and the
// training loop (which validates configs and data before building graphs) turns them into a reported error.
[[noreturn]] inline void fail(const char * op, const std::string & what) {
    throw std::invalid_argument(std::string("[") + op + "] " + what);
}

inline std::string shape_str(const std::vector<int64_t> & s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

inline int64_t numel_of(const std::vector<int64_t> & s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

// A new tape node of this shape (zero data); it needs a gradient when any input does (null inputs are allowed for
// optional operands such as a missing bias).
inline value make(const char * op, std::vector<int64_t> shape, std::vector<value> inputs) {
    auto n = std::make_shared<node>();
    n->op = op;
    n->shape = std::move(shape);
    n->data.assign(static_cast<size_t>(n->numel()), 0.0f);
    for (const auto & in : inputs)
        if (in) n->requires_grad = n->requires_grad || in->requires_grad;
    n->inputs = std::move(inputs);
    if (n->requires_grad) n->grad.assign(n->data.size(), 0.0f);
    return n;
}

// Gradient buffer of an input, or nullptr if it does not need one.
inline float * gbuf(const value & v) {
    if (!v || !v->requires_grad) return nullptr;
    if (v->grad.size() != v->data.size()) v->grad.assign(v->data.size(), 0.0f);
    return v->grad.data();
}

}  // namespace spider::train::detail
