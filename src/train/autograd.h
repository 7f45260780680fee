// Reverse-mode automatic differentiation over Spider's ops, for training (issue 5).
//
// A `value` is a node of a dynamically built tape: its F32 data, its gradient, the values it was computed from and a
// backward function that adds its gradient contribution to theirs. Forward passes call the same optimised kernels as
// inference (core/ops.h); backward formulas are written here and every one is checked against central finite
// differences in tests/test_autograd.cpp.
//
//   value W = parameter({4, 3}, init);          // [out, in]
//   value x = constant({2, 3}, data);           // [n, in]
//   value loss = mean(square(linear(x, W, nullptr)));
//   backward(loss);                             // W->grad now holds d loss / d W
//
// Shapes are row-major with the LAST dimension innermost (PyTorch order), e.g. activations [n_tok, n_embd].
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/tensor.h"

namespace spider::train {

struct node;
using value = std::shared_ptr<node>;

struct node {
    std::vector<int64_t> shape;
    std::vector<float> data;
    std::vector<float> grad;  // same size as data once needed; empty for constants
    bool requires_grad = false;
    std::string op;  // name of the op that made it ("leaf" for inputs and parameters)
    std::vector<value> inputs;
    std::function<void(node & self)> backward_fn;  // adds self.grad's contribution into inputs' grads

    int64_t numel() const;
    int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
    void zero_grad();
};

// Threads the ops use in forward and backward (default 1; the pool is shared by the whole tape, so build and run
// one tape at a time). Results do not depend on the count: every sum runs in the same order whatever the split.
void set_threads(int n);
int get_threads();
// Runs fn(begin, end) on consecutive ranges covering [0, n): split between the tape's threads when n >= min_split,
// otherwise one call on this thread. Only for work whose result does not depend on the split (elementwise work, or
// reductions over fixed blocks summed in block order), so results stay the same for any thread count.
void parallel_for(int64_t n, int64_t min_split, const std::function<void(int64_t begin, int64_t end)> & fn);

// Leaves.
value constant(std::vector<int64_t> shape, std::vector<float> data);
value parameter(std::vector<int64_t> shape, std::vector<float> data);
value zeros(std::vector<int64_t> shape, bool requires_grad = false);

// Elementwise (same shapes) and broadcasting of a row vector over the last dimension.
value add(const value & a, const value & b);
value sub(const value & a, const value & b);
value mul(const value & a, const value & b);
value scale(const value & a, float s);
value add_row(const value & x, const value & b);  // x [.., n] + b [n]
value mul_row(const value & x, const value & w);  // x [.., n] * w [n]
value square(const value & a);

// Reductions to a scalar (shape {1}).
value sum(const value & a);
value mean(const value & a);

// Linear algebra. x [n, in]; W [out, in]; b [out] or nullptr -> [n, out].
value linear(const value & x, const value & W, const value & b);
// A frozen weight of any dtype (quantized base model): gradient flows to x only.
value linear_frozen(const value & x, const tensor & W, thread_pool * pool = nullptr);
// a [n, k] x b [k, m] -> [n, m] (both differentiable).
value matmul(const value & a, const value & b);
value transpose(const value & a);  // [n, m] -> [m, n]

// Activations and norms (over the last dimension).
value activation(const value & x, act_type a);
value glu(const value & gate, const value & up, act_type a);
value softmax(const value & x);
value log_softmax(const value & x);
value rms_norm(const value & x, const value & w, float eps);  // w [n] or nullptr
value layer_norm(const value & x, const value & w, const value & b, float eps);

// Embedding rows: table [V, d], ids -> [n, d]. Gradient accumulates into the used rows only.
value embedding(const value & table, const std::vector<int32_t> & ids);

// Transformer pieces. x [n_tok, n_head * head_dim] viewed as [n_tok, n_head, head_dim].
value rope(const value & x, const std::vector<int32_t> & pos, int64_t n_head, int64_t head_dim, float freq_base,
           rope_mode mode);
// q [n, n_head*hd], k/v [n, n_head_kv*hd] -> [n, n_head*hd]; causal self-attention with GQA. n_seq > 1: the rows
// are n_seq independent sequences of n / n_seq tokens each (a batch), attending only within their own sequence.
value attention(const value & q, const value & k, const value & v, int64_t n_head, int64_t n_head_kv, float scale,
                bool causal, int64_t n_seq = 1);

// Losses (scalar).
// Mean cross-entropy of logits [n, V] against targets (target < 0 = ignored, e.g. prompt tokens).
value cross_entropy(const value & logits, const std::vector<int32_t> & targets);
value mse(const value & a, const value & b);
value bce_with_logits(const value & logits, const value & targets);                 // mean
value dice_loss(const value & logits, const value & targets, float smooth = 1.0f);  // 1 - dice(sigmoid(logits))

// Runs backward from a scalar: seeds its gradient with 1 and visits the tape in reverse topological order.
void backward(const value & root);

}  // namespace spider::train
