// Reverse-mode autodiff: forward through core ops, hand-written backward formulas (checked by finite differences).
#include "train/autograd.h"
#include "train/autograd_internal.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <unordered_set>

#include "core/quants.h"
#include "train/train_gemm.h"

namespace spider::train {

using detail::fail;
using detail::gbuf;
using detail::make;
using detail::numel_of;
using detail::shape_str;

int64_t node::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

void node::zero_grad() {
    std::fill(grad.begin(), grad.end(), 0.0f);
}

namespace {

std::unique_ptr<thread_pool> g_pool;  // nullptr = one thread
int g_threads = 1;

// The pool for a product of this many multiply-adds: a hand-off to the workers costs microseconds (much more on a
// loaded machine, when a worker has to be scheduled), so small products stay on the calling thread.
thread_pool * tpool_for(int64_t macs) {
    return macs >= (int64_t{1} << 18) ? g_pool.get() : nullptr;
}

// Elementwise work of at least this many floats is split between threads (a few microseconds of work per thread
// at least, against a hand-off of about one microsecond).
constexpr int64_t PAR_MIN_ELEMS = int64_t{1} << 15;

// min_split for parallel_for over `items` items of `per_item` floats each: split only when the whole is large.
int64_t split_if_large(int64_t items, int64_t per_item) {
    return items * per_item >= PAR_MIN_ELEMS ? 2 : std::numeric_limits<int64_t>::max();
}

// Rows per partial sum of a per-feature gradient summed over rows (norm weights): partials over fixed blocks of
// rows, added in block order, so the sum does not depend on the thread count.
constexpr int64_t ROW_BLOCK = 64;

// sum_i a[i] * b[i] (float products) in double, in four interleaved partial sums: one chain of dependent adds would
// cost an add latency per element.
double dot_double(const float * a, const float * b, int64_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; ++i) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

// sum_i x[i]^2 in double (products in double), four partial sums.
double sum_sq_double(const float * x, int64_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += static_cast<double>(x[i]) * x[i];
        s1 += static_cast<double>(x[i + 1]) * x[i + 1];
        s2 += static_cast<double>(x[i + 2]) * x[i + 2];
        s3 += static_cast<double>(x[i + 3]) * x[i + 3];
    }
    for (; i < n; ++i) s0 += static_cast<double>(x[i]) * x[i];
    return (s0 + s1) + (s2 + s3);
}

void check_same(const char * op, const value & a, const value & b) {
    if (a->shape != b->shape) fail(op, "shape mismatch " + shape_str(a->shape) + " vs " + shape_str(b->shape));
}

int64_t rows_of(const value & x) {
    return x->shape.empty() ? 1 : x->numel() / x->shape.back();
}

float gelu_tanh(float x) {
    const float c = 0.7978845608028654f;
    return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}
float gelu_tanh_grad(float x) {
    const float c = 0.7978845608028654f;
    const float u = c * (x + 0.044715f * x * x * x);
    const float t = std::tanh(u);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 3.0f * 0.044715f * x * x);
}
float act_fwd(act_type a, float x) {
    switch (a) {
        case ACT_GELU_TANH:
            return gelu_tanh(x);
        case ACT_GELU_ERF:
            return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
        case ACT_SILU:
            return x / (1.0f + std::exp(-x));
        case ACT_RELU:
            return x > 0 ? x : 0.0f;
    }
    return x;
}
float act_grad(act_type a, float x) {
    switch (a) {
        case ACT_GELU_TANH:
            return gelu_tanh_grad(x);
        case ACT_GELU_ERF: {
            const float cdf = 0.5f * (1.0f + std::erf(x * 0.7071067811865476f));
            const float pdf = 0.3989422804014327f * std::exp(-0.5f * x * x);
            return cdf + x * pdf;
        }
        case ACT_SILU: {
            const float s = 1.0f / (1.0f + std::exp(-x));
            return s * (1.0f + x * (1.0f - s));
        }
        case ACT_RELU:
            return x > 0 ? 1.0f : 0.0f;
    }
    return 1.0f;
}

}  // namespace

void set_threads(int n) {
    n = std::max(1, n);
    if (n == g_threads) return;
    g_pool.reset();
    if (n > 1) g_pool = std::make_unique<thread_pool>(n);
    g_threads = n;
}

int get_threads() {
    return g_threads;
}

void parallel_for(int64_t n, int64_t min_split, const std::function<void(int64_t, int64_t)> & fn) {
    if (n <= 0) return;
    thread_pool * tp = g_pool.get();
    if (!tp || n < min_split || n < 2) {
        fn(0, n);
        return;
    }
    // About four chunks per thread taken from a shared counter: a thread the machine has not scheduled yet does not
    // hold the others up (fn's result does not depend on the split).
    const int64_t n_chunks = std::min<int64_t>(n, 4 * tp->size());
    std::atomic<int64_t> next{0};
    tp->run_any([&](int, int) {
        for (;;) {
            const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
            if (c >= n_chunks) break;
            long long b, e;
            split_range(n, static_cast<int>(c), static_cast<int>(n_chunks), b, e);
            if (b < e) fn(b, e);
        }
    });
}

namespace {

// Elementwise work over n floats, split in multiples of 64 elements: a SIMD kernel then treats every element the
// same way (vector body or masked tail) as one call over all n would.
void parallel_elems(int64_t n, const std::function<void(int64_t, int64_t)> & fn) {
    constexpr int64_t ALIGN = 64;
    if (n < PAR_MIN_ELEMS || !g_pool) {
        if (n > 0) fn(0, n);
        return;
    }
    parallel_for((n + ALIGN - 1) / ALIGN, 2, [&](int64_t b, int64_t e) { fn(b * ALIGN, std::min(n, e * ALIGN)); });
}

}  // namespace

value constant(std::vector<int64_t> shape, std::vector<float> data) {
    auto n = std::make_shared<node>();
    n->op = "leaf";
    n->shape = std::move(shape);
    if (static_cast<int64_t>(data.size()) != n->numel()) fail("constant", "data size does not match shape");
    n->data = std::move(data);
    return n;
}

value parameter(std::vector<int64_t> shape, std::vector<float> data) {
    value n = constant(std::move(shape), std::move(data));
    n->requires_grad = true;
    n->grad.assign(n->data.size(), 0.0f);
    return n;
}

value zeros(std::vector<int64_t> shape, bool requires_grad) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    value n = constant(std::move(shape), std::vector<float>(static_cast<size_t>(numel), 0.0f));
    n->requires_grad = requires_grad;
    if (requires_grad) n->grad.assign(n->data.size(), 0.0f);
    return n;
}

value add(const value & a, const value & b) {
    check_same("add", a, b);
    value y = make("add", a->shape, {a, b});
    const float *ad = a->data.data(), *bd = b->data.data();
    float * yd = y->data.data();
    parallel_elems(y->numel(), [&](int64_t i0, int64_t i1) { spider::add(ad + i0, bd + i0, yd + i0, i1 - i0); });
    y->backward_fn = [](node & s) {
        float * ga = gbuf(s.inputs[0]);
        float * gb = gbuf(s.inputs[1]);
        const float * gy = s.grad.data();
        parallel_elems(static_cast<int64_t>(s.grad.size()), [&](int64_t i0, int64_t i1) {
            if (ga)
                for (int64_t i = i0; i < i1; ++i) ga[i] += gy[i];
            if (gb)
                for (int64_t i = i0; i < i1; ++i) gb[i] += gy[i];
        });
    };
    return y;
}

value sub(const value & a, const value & b) {
    check_same("sub", a, b);
    value y = make("sub", a->shape, {a, b});
    for (size_t i = 0; i < y->data.size(); ++i) y->data[i] = a->data[i] - b->data[i];
    y->backward_fn = [](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += s.grad[i];
        if (float * g = gbuf(s.inputs[1]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] -= s.grad[i];
    };
    return y;
}

value mul(const value & a, const value & b) {
    check_same("mul", a, b);
    value y = make("mul", a->shape, {a, b});
    spider::mul(a->data.data(), b->data.data(), y->data.data(), y->numel());
    y->backward_fn = [](node & s) {
        const auto & a = s.inputs[0]->data;
        const auto & b = s.inputs[1]->data;
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += s.grad[i] * b[i];
        if (float * g = gbuf(s.inputs[1]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += s.grad[i] * a[i];
    };
    return y;
}

value scale(const value & a, float f) {
    value y = make("scale", a->shape, {a});
    spider::scale(a->data.data(), f, y->data.data(), y->numel());
    y->backward_fn = [f](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += f * s.grad[i];
    };
    return y;
}

value square(const value & a) {
    return mul(a, a);
}

value add_row(const value & x, const value & b) {
    const int64_t n = x->shape.back();
    if (b->numel() != n) fail("add_row", "bias of " + shape_str(b->shape) + " for rows of " + std::to_string(n));
    value y = make("add_row", x->shape, {x, b});
    spider::add_row(x->data.data(), b->data.data(), y->data.data(), rows_of(x), n);
    y->backward_fn = [n](node & s) {
        const int64_t rows = static_cast<int64_t>(s.grad.size()) / n;
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += s.grad[i];
        if (float * g = gbuf(s.inputs[1]))
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t i = 0; i < n; ++i) g[i] += s.grad[r * n + i];
    };
    return y;
}

value mul_row(const value & x, const value & w) {
    const int64_t n = x->shape.back();
    if (w->numel() != n) fail("mul_row", "weight of " + shape_str(w->shape) + " for rows of " + std::to_string(n));
    value y = make("mul_row", x->shape, {x, w});
    spider::mul_row(x->data.data(), w->data.data(), y->data.data(), rows_of(x), n);
    y->backward_fn = [n](node & s) {
        const int64_t rows = static_cast<int64_t>(s.grad.size()) / n;
        const auto & xd = s.inputs[0]->data;
        const auto & wd = s.inputs[1]->data;
        if (float * g = gbuf(s.inputs[0]))
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t i = 0; i < n; ++i) g[r * n + i] += s.grad[r * n + i] * wd[i];
        if (float * g = gbuf(s.inputs[1]))
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t i = 0; i < n; ++i) g[i] += s.grad[r * n + i] * xd[r * n + i];
    };
    return y;
}

value sum(const value & a) {
    value y = make("sum", {1}, {a});
    double acc = 0;
    for (float v : a->data) acc += v;
    y->data[0] = static_cast<float>(acc);
    y->backward_fn = [](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.inputs[0]->data.size(); ++i) g[i] += s.grad[0];
    };
    return y;
}

value mean(const value & a) {
    return scale(sum(a), 1.0f / static_cast<float>(a->numel()));
}

value linear(const value & x, const value & W, const value & b) {
    if (W->shape.size() != 2) fail("linear", "weight must be 2-D [out, in], got " + shape_str(W->shape));
    const int64_t out = W->shape[0], in = W->shape[1];
    if (x->shape.back() != in) fail("linear", "input " + shape_str(x->shape) + " vs weight " + shape_str(W->shape));
    if (b && b->numel() != out)
        fail("linear", "bias " + shape_str(b->shape) + " vs " + std::to_string(out) + " outputs");
    const int64_t n = rows_of(x);
    std::vector<int64_t> shape = x->shape;
    shape.back() = out;
    std::vector<value> inputs = {x, W};
    if (b) inputs.push_back(b);
    value y = make("linear", shape, inputs);
    // y [n, out] = x [n, in] W^T: the training GEMM reads W [out, in] as B through its strides (packed panels), the
    // same kernel as the backward products.
    gemm_acc_strided(n, out, in, x->data.data(), in, 1, W->data.data(), 1, in, y->data.data(), out,
                     tpool_for(n * in * out));
    if (b) spider::add_row(y->data.data(), b->data.data(), y->data.data(), n, out);
    y->backward_fn = [n, in, out](node & s) {
        const float * xd = s.inputs[0]->data.data();
        const float * wd = s.inputs[1]->data.data();
        const float * gy = s.grad.data();
        // gx [n, in] += gy [n, out] W [out, in]
        thread_pool * tp = tpool_for(n * in * out);
        if (float * gx = gbuf(s.inputs[0])) gemm_acc(n, in, out, gy, out, 1, wd, in, gx, in, tp);
        // gW [out, in] += gy^T [out, n] x [n, in]
        if (float * gw = gbuf(s.inputs[1])) gemm_acc(out, in, n, gy, 1, out, xd, in, gw, in, tp);
        if (s.inputs.size() > 2)
            if (float * gb = gbuf(s.inputs[2]))
                for (int64_t t = 0; t < n; ++t)
                    for (int64_t o = 0; o < out; ++o) gb[o] += gy[t * out + o];
    };
    return y;
}

value linear_frozen(const value & x, const tensor & W, thread_pool * pool) {
    const int64_t in = W.ne[0], out = W.ne[1];
    if (x->shape.back() != in)
        fail("linear_frozen", "input " + shape_str(x->shape) + " vs weight of " + std::to_string(in) + " inputs");
    const int64_t n = rows_of(x);
    std::vector<int64_t> shape = x->shape;
    shape.back() = out;
    value y = make("linear_frozen", shape, {x});
    spider::matmul(W, x->data.data(), y->data.data(), n, pool ? pool : tpool_for(n * in * out));
    y->backward_fn = [W, n, in, out, pool](node & s) {
        float * gx = gbuf(s.inputs[0]);
        if (!gx) return;
        thread_pool * tp = pool ? pool : tpool_for(n * in * out);
        // gx [n, in] += gy [n, out] W [out, in]. A float weight is used in place; any other dtype is dequantized
        // in blocks of rows (never the whole matrix: a 262k-row LM head would need 0.7 GB as F32).
        if (W.type == DTYPE_F32 && W.nb[1] % sizeof(float) == 0) {
            gemm_acc(n, in, out, s.grad.data(), out, 1, static_cast<const float *>(W.data),
                     static_cast<int64_t>(W.nb[1] / sizeof(float)), gx, in, tp);
            return;
        }
        // Blocks of 256 weight rows are grouped into at most 16 chunks; each chunk (one thread) dequantizes its
        // blocks and accumulates gy[:, block] W[block, :] into its own [n, in] partial; the partials are then added
        // in chunk order. The chunking depends only on the shapes, so the result does not depend on the threads,
        // and one hand-off covers the whole product.
        const int64_t block = 256, n_blocks = (out + block - 1) / block;
        const int64_t n_chunks = std::min<int64_t>(16, n_blocks);
        std::vector<float> partial(static_cast<size_t>(n_chunks * n * in), 0.0f);
        const float * gy = s.grad.data();
        auto run_chunks = [&](int ith, int nth) {
            long long cb, ce;
            split_range(n_chunks, ith, nth, cb, ce);
            std::vector<float> wb(static_cast<size_t>(std::min(block, out) * in));
            std::vector<int32_t> ids(static_cast<size_t>(block));
            for (long long c = cb; c < ce; ++c) {
                long long bb, be;
                split_range(n_blocks, static_cast<int>(c), static_cast<int>(n_chunks), bb, be);
                for (long long bk = bb; bk < be; ++bk) {
                    const int64_t o0 = bk * block, nb = std::min(block, out - o0);
                    for (int64_t o = 0; o < nb; ++o) ids[o] = static_cast<int32_t>(o0 + o);
                    spider::get_rows(W, ids.data(), nb, wb.data());
                    gemm_acc(n, in, nb, gy + o0, out, 1, wb.data(), in, partial.data() + c * n * in, in, nullptr);
                }
            }
        };
        if (tp && tp->size() > 1)
            tp->run(run_chunks);
        else
            run_chunks(0, 1);
        for (int64_t c = 0; c < n_chunks; ++c) {
            const float * pc = partial.data() + c * n * in;
            for (int64_t i = 0; i < n * in; ++i) gx[i] += pc[i];
        }
    };
    return y;
}

value transpose(const value & a) {
    if (a->shape.size() != 2) fail("transpose", "needs 2-D, got " + shape_str(a->shape));
    const int64_t r = a->shape[0], c = a->shape[1];
    value y = make("transpose", {c, r}, {a});
    for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < c; ++j) y->data[j * r + i] = a->data[i * c + j];
    y->backward_fn = [r, c](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (int64_t i = 0; i < r; ++i)
                for (int64_t j = 0; j < c; ++j) g[i * c + j] += s.grad[j * r + i];
    };
    return y;
}

value matmul(const value & a, const value & b) {
    if (a->shape.size() != 2 || b->shape.size() != 2 || a->shape[1] != b->shape[0])
        fail("matmul", "shapes " + shape_str(a->shape) + " x " + shape_str(b->shape));
    // a [n, k] x b [k, m] = linear(a, b^T)
    return linear(a, transpose(b), nullptr);
}

value activation(const value & x, act_type a) {
    value y = make("activation", x->shape, {x});
    for (size_t i = 0; i < y->data.size(); ++i) y->data[i] = act_fwd(a, x->data[i]);
    y->backward_fn = [a](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += s.grad[i] * act_grad(a, s.inputs[0]->data[i]);
    };
    return y;
}

value glu(const value & gate, const value & up, act_type a) {
    check_same("glu", gate, up);
    // One node: act(gate) is kept for backward (up's gradient; SiLU's derivative from it), computed by the
    // optimised kernel.
    value y = make("glu", gate->shape, {gate, up});
    const int64_t n = gate->numel();
    std::shared_ptr<float[]> act(new float[static_cast<size_t>(n)]);  // every element written below: no zeroing
    const float *gd = gate->data.data(), *ud = up->data.data();
    float *fd = act.get(), *yd = y->data.data();
    parallel_elems(n, [&](int64_t i0, int64_t i1) {
        spider::activation(a, gd + i0, fd + i0, i1 - i0);
        spider::mul(fd + i0, ud + i0, yd + i0, i1 - i0);
    });
    y->backward_fn = [a, n, act](node & s) {
        const float * g = s.inputs[0]->data.data();
        const float * u = s.inputs[1]->data.data();
        const float * gy = s.grad.data();
        const float * f = act.get();
        float * gu = gbuf(s.inputs[1]);
        float * gg = gbuf(s.inputs[0]);
        parallel_elems(n, [&](int64_t i0, int64_t i1) {
            if (gu)
                for (int64_t i = i0; i < i1; ++i) gu[i] += gy[i] * f[i];
            if (!gg) return;
            if (a == ACT_SILU) {
                for (int64_t i = i0; i < i1; ++i) {  // silu' = sig (1 + x (1 - sig)), sig = silu(x) / x
                    const float sg = g[i] != 0.0f ? f[i] / g[i] : 0.5f;
                    gg[i] += gy[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
                }
            } else {
                for (int64_t i = i0; i < i1; ++i) gg[i] += gy[i] * u[i] * act_grad(a, g[i]);
            }
        });
    };
    return y;
}

value softmax(const value & x) {
    const int64_t n = x->shape.back(), rows = rows_of(x);
    value y = make("softmax", x->shape, {x});
    spider::ref::softmax_rows(x->data.data(), y->data.data(), rows, n);
    y->backward_fn = [n, rows](node & s) {
        float * g = gbuf(s.inputs[0]);
        if (!g) return;
        for (int64_t r = 0; r < rows; ++r) {  // gx = y * (gy - sum(gy * y))
            const float * yr = s.data.data() + r * n;
            const float * gr = s.grad.data() + r * n;
            double dot = 0;
            for (int64_t i = 0; i < n; ++i) dot += gr[i] * yr[i];
            for (int64_t i = 0; i < n; ++i) g[r * n + i] += yr[i] * (gr[i] - static_cast<float>(dot));
        }
    };
    return y;
}

value log_softmax(const value & x) {
    const int64_t n = x->shape.back(), rows = rows_of(x);
    value y = make("log_softmax", x->shape, {x});
    for (int64_t r = 0; r < rows; ++r) {
        const float * xr = x->data.data() + r * n;
        float mx = *std::max_element(xr, xr + n);
        double se = 0;
        for (int64_t i = 0; i < n; ++i) se += std::exp(static_cast<double>(xr[i] - mx));
        const float lse = mx + static_cast<float>(std::log(se));
        for (int64_t i = 0; i < n; ++i) y->data[r * n + i] = xr[i] - lse;
    }
    y->backward_fn = [n, rows](node & s) {
        float * g = gbuf(s.inputs[0]);
        if (!g) return;
        for (int64_t r = 0; r < rows; ++r) {  // gx = gy - softmax * sum(gy)
            double gs = 0;
            for (int64_t i = 0; i < n; ++i) gs += s.grad[r * n + i];
            for (int64_t i = 0; i < n; ++i)
                g[r * n + i] += s.grad[r * n + i] - std::exp(s.data[r * n + i]) * static_cast<float>(gs);
        }
    };
    return y;
}

value rms_norm(const value & x, const value & w, float eps) {
    const int64_t n = x->shape.back(), rows = rows_of(x);
    if (w && w->numel() != n) fail("rms_norm", "weight " + shape_str(w->shape) + " for rows of " + std::to_string(n));
    std::vector<value> inputs = {x};
    if (w) inputs.push_back(w);
    value y = make("rms_norm", x->shape, inputs);
    auto inv = std::make_shared<std::vector<float>>(static_cast<size_t>(rows));
    const float * xd = x->data.data();
    const float * wd = w ? w->data.data() : nullptr;
    float * yd = y->data.data();
    parallel_for(rows, split_if_large(rows, n), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float * xr = xd + r * n;
            const double ss = sum_sq_double(xr, n);
            const float iv = 1.0f / std::sqrt(static_cast<float>(ss / n) + eps);
            (*inv)[r] = iv;
            float * yr = yd + r * n;
            if (wd)
                for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * iv * wd[i];
            else
                for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * iv;
        }
    });
    y->backward_fn = [n, rows, inv](node & s) {
        const value & x = s.inputs[0];
        const value w = s.inputs.size() > 1 ? s.inputs[1] : nullptr;
        float * gx = gbuf(x);
        float * gw = w ? gbuf(w) : nullptr;
        const float * xd = x->data.data();
        const float * wd = w ? w->data.data() : nullptr;
        // The weight's gradient sums over rows: per block of ROW_BLOCK rows into its own partial, then the partials
        // in block order.
        const int64_t n_blocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
        std::vector<float> part(gw ? static_cast<size_t>(n_blocks * n) : 0, 0.0f);
        parallel_for(n_blocks, split_if_large(rows, n), [&](int64_t b0, int64_t b1) {
            std::vector<float> gxh(static_cast<size_t>(n));
            for (int64_t r = b0 * ROW_BLOCK; r < std::min(rows, b1 * ROW_BLOCK); ++r) {
                const float * xr = xd + r * n;
                const float * gy = s.grad.data() + r * n;
                const float iv = (*inv)[r];
                // xhat = x * iv; gxhat = gy * w; gx = iv * (gxhat - xhat * mean(gxhat * xhat))
                for (int64_t i = 0; i < n; ++i) gxh[i] = wd ? gy[i] * wd[i] : gy[i];
                const float m = static_cast<float>(dot_double(gxh.data(), xr, n) * iv / n);
                if (gx)
                    for (int64_t i = 0; i < n; ++i) gx[r * n + i] += iv * (gxh[i] - xr[i] * iv * m);
                if (gw) {
                    float * pb = part.data() + (r / ROW_BLOCK) * n;
                    for (int64_t i = 0; i < n; ++i) pb[i] += gy[i] * (xr[i] * iv);
                }
            }
        });
        if (gw)
            for (int64_t b = 0; b < n_blocks; ++b)
                for (int64_t i = 0; i < n; ++i) gw[i] += part[b * n + i];
    };
    return y;
}

value layer_norm(const value & x, const value & w, const value & b, float eps) {
    const int64_t n = x->shape.back(), rows = rows_of(x);
    if ((w && w->numel() != n) || (b && b->numel() != n)) fail("layer_norm", "affine size does not match rows");
    std::vector<value> inputs = {x, w, b};
    inputs.erase(std::remove(inputs.begin(), inputs.end(), nullptr), inputs.end());
    value y = make("layer_norm", x->shape, inputs);
    auto stats = std::make_shared<std::vector<float>>(static_cast<size_t>(2 * rows));  // mean, inv std
    for (int64_t r = 0; r < rows; ++r) {
        const float * xr = x->data.data() + r * n;
        double mu = 0, var = 0;
        for (int64_t i = 0; i < n; ++i) mu += xr[i];
        mu /= n;
        for (int64_t i = 0; i < n; ++i) var += (xr[i] - mu) * (xr[i] - mu);
        const float iv = 1.0f / std::sqrt(static_cast<float>(var / n) + eps);
        (*stats)[2 * r] = static_cast<float>(mu);
        (*stats)[2 * r + 1] = iv;
        for (int64_t i = 0; i < n; ++i)
            y->data[r * n + i] =
                (xr[i] - static_cast<float>(mu)) * iv * (w ? w->data[i] : 1.0f) + (b ? b->data[i] : 0.0f);
    }
    const bool has_w = static_cast<bool>(w), has_b = static_cast<bool>(b);
    y->backward_fn = [n, rows, stats, has_w, has_b](node & s) {
        const value & x = s.inputs[0];
        const value w = has_w ? s.inputs[1] : nullptr;
        const value b = has_b ? s.inputs[has_w ? 2 : 1] : nullptr;
        float * gx = gbuf(x);
        float * gw = w ? gbuf(w) : nullptr;
        float * gb = b ? gbuf(b) : nullptr;
        for (int64_t r = 0; r < rows; ++r) {
            const float * xr = x->data.data() + r * n;
            const float * gy = s.grad.data() + r * n;
            const float mu = (*stats)[2 * r], iv = (*stats)[2 * r + 1];
            double sg = 0, sgx = 0;
            for (int64_t i = 0; i < n; ++i) {
                const float gxh = gy[i] * (w ? w->data[i] : 1.0f);
                sg += gxh;
                sgx += gxh * (xr[i] - mu) * iv;
            }
            for (int64_t i = 0; i < n; ++i) {
                const float xhat = (xr[i] - mu) * iv;
                const float gxh = gy[i] * (w ? w->data[i] : 1.0f);
                if (gx) gx[r * n + i] += iv * (gxh - static_cast<float>(sg / n) - xhat * static_cast<float>(sgx / n));
                if (gw) gw[i] += gy[i] * xhat;
                if (gb) gb[i] += gy[i];
            }
        }
    };
    return y;
}

value embedding(const value & table, const std::vector<int32_t> & ids) {
    if (table->shape.size() != 2) fail("embedding", "table must be [V, d], got " + shape_str(table->shape));
    const int64_t V = table->shape[0], d = table->shape[1];
    for (int32_t id : ids)
        if (id < 0 || id >= V)
            fail("embedding", "token id " + std::to_string(id) + " outside vocab of " + std::to_string(V));
    value y = make("embedding", {static_cast<int64_t>(ids.size()), d}, {table});
    for (size_t t = 0; t < ids.size(); ++t) std::copy_n(table->data.data() + ids[t] * d, d, y->data.data() + t * d);
    y->backward_fn = [ids, d](node & s) {
        float * g = gbuf(s.inputs[0]);
        if (!g) return;
        // Columns are split between threads, so each element still sums its tokens in order.
        const int64_t n_ids = static_cast<int64_t>(ids.size());
        parallel_for(d, split_if_large(n_ids, d), [&](int64_t c0, int64_t c1) {
            for (int64_t t = 0; t < n_ids; ++t)
                for (int64_t i = c0; i < c1; ++i) g[ids[t] * d + i] += s.grad[t * d + i];
        });
    };
    return y;
}

namespace {

// The [token][pair] (cos, sin) table of rope(). Every layer's q and k of one batch use the same positions: the last
// table is kept and reused while positions, head size and base stay the same.
std::shared_ptr<const std::vector<double>> rope_table(const std::vector<int32_t> & pos, int64_t head_dim,
                                                      float freq_base) {
    static std::mutex mu;
    static std::vector<int32_t> last_pos;
    static int64_t last_head_dim = 0;
    static float last_base = 0;
    static std::shared_ptr<const std::vector<double>> last;
    {
        std::lock_guard<std::mutex> lock(mu);
        if (last && last_head_dim == head_dim && last_base == freq_base && last_pos == pos) return last;
    }
    const int64_t half = head_dim / 2, n_tok = static_cast<int64_t>(pos.size());
    auto cs = std::make_shared<std::vector<double>>(static_cast<size_t>(2 * n_tok * half));
    std::vector<double> inv_freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i)
        inv_freq[i] = std::pow(static_cast<double>(freq_base), -2.0 * i / static_cast<double>(head_dim));
    parallel_for(n_tok, split_if_large(n_tok, 8 * half), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
            for (int64_t i = 0; i < half; ++i) {
                const double theta = static_cast<double>(pos[t]) * inv_freq[i];
                (*cs)[(t * half + i) * 2] = std::cos(theta);
                (*cs)[(t * half + i) * 2 + 1] = std::sin(theta);
            }
    });
    std::lock_guard<std::mutex> lock(mu);
    last_pos = pos;
    last_head_dim = head_dim;
    last_base = freq_base;
    last = cs;
    return cs;
}

}  // namespace

value rope(const value & x, const std::vector<int32_t> & pos, int64_t n_head, int64_t head_dim, float freq_base,
           rope_mode mode) {
    const int64_t n_tok = rows_of(x);
    if (x->shape.back() != n_head * head_dim || static_cast<int64_t>(pos.size()) != n_tok)
        fail("rope", "input " + shape_str(x->shape) + " vs " + std::to_string(n_head) + " heads of " +
                         std::to_string(head_dim) + " and " + std::to_string(pos.size()) + " positions");
    value y = make("rope", x->shape, {x});
    // cos / sin of every (token, pair) once, in double like ref::rope (theta = pos * base^(-2i/head_dim)); the
    // backward pass is the rotation by the opposite angle and reuses the table.
    const int64_t half = head_dim / 2;
    auto cs = rope_table(pos, head_dim, freq_base);
    // out = rotation of in by sign * theta for tokens [t0, t1); add: accumulate into out instead of writing it.
    auto rotate = [n_head, head_dim, half, mode, cs](const float * in, float * out, double sign, bool add, int64_t t0,
                                                     int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
            for (int64_t h = 0; h < n_head; ++h) {
                const float * v = in + (t * n_head + h) * head_dim;
                float * o = out + (t * n_head + h) * head_dim;
                for (int64_t i = 0; i < half; ++i) {
                    const double c = (*cs)[(t * half + i) * 2], sn = sign * (*cs)[(t * half + i) * 2 + 1];
                    const int64_t i0 = mode == ROPE_MODE_NEOX ? i : 2 * i;
                    const int64_t i1 = mode == ROPE_MODE_NEOX ? i + half : 2 * i + 1;
                    const double a = v[i0], b = v[i1];
                    const float r0 = static_cast<float>(a * c - b * sn), r1 = static_cast<float>(a * sn + b * c);
                    if (add) {
                        o[i0] += r0;
                        o[i1] += r1;
                    } else {
                        o[i0] = r0;
                        o[i1] = r1;
                    }
                }
            }
    };
    const int64_t min_split = split_if_large(n_tok, n_head * head_dim);
    parallel_for(n_tok, min_split,
                 [&](int64_t t0, int64_t t1) { rotate(x->data.data(), y->data.data(), 1.0, false, t0, t1); });
    y->backward_fn = [rotate, n_tok, min_split](node & s) {
        float * g = gbuf(s.inputs[0]);
        if (!g) return;
        parallel_for(n_tok, min_split, [&](int64_t t0, int64_t t1) { rotate(s.grad.data(), g, -1.0, true, t0, t1); });
    };
    return y;
}

value attention(const value & q, const value & k, const value & v, int64_t n_head, int64_t n_head_kv, float scale,
                bool causal, int64_t n_seq) {
    const int64_t n_rows = rows_of(q);
    if (n_seq < 1 || n_rows % n_seq != 0) fail("attention", "bad sequence count " + std::to_string(n_seq));
    const int64_t n = n_rows / n_seq;  // tokens per sequence
    if (n_head % n_head_kv != 0 || q->shape.back() % n_head != 0) fail("attention", "bad head counts");
    const int64_t hd = q->shape.back() / n_head;
    if (k->shape.back() != n_head_kv * hd || v->shape.back() != n_head_kv * hd || rows_of(k) != n_rows ||
        rows_of(v) != n_rows)
        fail("attention", "q " + shape_str(q->shape) + ", k " + shape_str(k->shape) + ", v " + shape_str(v->shape));
    value y = make("attention", q->shape, {q, k, v});
    const int64_t group = n_head / n_head_kv;
    const int64_t ldq = n_head * hd, ldk = n_head_kv * hd;
    // probs[seq][h][i][j]: kept for backward (zero where masked). Products go through gemm_acc in row blocks of RB
    // queries; a causal block only touches the keys it can see. (sequence, head) units are split between threads
    // when there are enough of them, otherwise each product is.
    constexpr int64_t RB = 32;
    // Uninitialised: each unit zeroes its own n x n block on its thread (16 MB per layer at 8 x 128 tokens, which a
    // zero-filled vector would write on the calling thread alone).
    std::shared_ptr<float[]> probs(new float[static_cast<size_t>(n_seq * n_head * n * n)]);
    thread_pool * tp = tpool_for(n * n * hd * n_head * n_seq);
    const int nth_pool = tp ? tp->size() : 1;
    // Units [ub, ue); inner: the pool for each product when the units are not split between threads.
    auto fwd = [&](int64_t ub, int64_t ue, thread_pool * inner) {
        std::vector<float> kt(static_cast<size_t>(hd * n)), srow(static_cast<size_t>(n));
        int64_t kt_unit = -1;
        for (long long u = ub; u < ue; ++u) {
            const int64_t sq = u / n_head, h = u % n_head, hk = h / group;
            const float * qs = q->data.data() + sq * n * ldq + h * hd;
            const float * vs = v->data.data() + sq * n * ldk + hk * hd;
            float * ys = y->data.data() + sq * n * ldq + h * hd;
            if (sq * n_head_kv + hk != kt_unit) {  // K of this sequence and kv head transposed to [hd, n]
                const float * ks = k->data.data() + sq * n * ldk + hk * hd;
                for (int64_t j = 0; j < n; ++j)
                    for (int64_t c = 0; c < hd; ++c) kt[c * n + j] = ks[j * ldk + c];
                kt_unit = sq * n_head_kv + hk;
            }
            float * P = probs.get() + u * n * n;
            std::fill(P, P + n * n, 0.0f);
            for (int64_t i0 = 0; i0 < n; i0 += RB) {
                const int64_t i1 = std::min(n, i0 + RB), nj = causal ? i1 : n;
                gemm_acc(i1 - i0, nj, hd, qs + i0 * ldq, ldq, 1, kt.data(), n, P + i0 * n, n, inner);
            }
            for (int64_t i = 0; i < n; ++i) {  // softmax of the scaled row over the visible keys (SIMD kernel)
                float * p = P + i * n;
                const int64_t nj = causal ? i + 1 : n;
                spider::scale(p, scale, srow.data(), nj);
                spider::softmax_rows(srow.data(), p, 1, nj);
                std::fill(p + nj, p + n, 0.0f);
            }
            for (int64_t i0 = 0; i0 < n; i0 += RB) {
                const int64_t i1 = std::min(n, i0 + RB), nj = causal ? i1 : n;
                gemm_acc(i1 - i0, hd, nj, P + i0 * n, n, 1, vs, ldk, ys + i0 * ldq, ldq, inner);
            }
        }
    };
    if (tp && n_seq * n_head >= nth_pool)
        parallel_for(n_seq * n_head, 2, [&](int64_t ub, int64_t ue) { fwd(ub, ue, nullptr); });
    else
        fwd(0, n_seq * n_head, tp);
    y->backward_fn = [n, n_seq, n_head, n_head_kv, hd, group, ldq, ldk, scale, causal, probs](node & s) {
        float * gq = gbuf(s.inputs[0]);
        float * gk = gbuf(s.inputs[1]);
        float * gv = gbuf(s.inputs[2]);
        thread_pool * tp = tpool_for(n * n * hd * n_head * n_seq);
        const int nth_pool = tp ? tp->size() : 1;
        // Units of (sequence, kv head): the query heads of one group all add into the same gk / gv rows.
        auto bwd = [&](int64_t ub, int64_t ue, thread_pool * inner) {
            std::vector<float> vt(static_cast<size_t>(hd * n)), dp(static_cast<size_t>(n * n));
            for (long long u = ub; u < ue; ++u) {
                const int64_t sq = u / n_head_kv, hk = u % n_head_kv;
                const float * qs = s.inputs[0]->data.data() + sq * n * ldq;
                const float * ks = s.inputs[1]->data.data() + sq * n * ldk + hk * hd;
                const float * vs = s.inputs[2]->data.data() + sq * n * ldk + hk * hd;
                for (int64_t j = 0; j < n; ++j)
                    for (int64_t c = 0; c < hd; ++c) vt[c * n + j] = vs[j * ldk + c];
                for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
                    const float * P = probs.get() + (sq * n_head + h) * n * n;
                    const float * gy = s.grad.data() + sq * n * ldq + h * hd;
                    const float * qh = qs + h * hd;
                    // Key rows j0..j1 only receive from queries i >= j0 when causal.
                    if (gv)
                        for (int64_t j0 = 0; j0 < n; j0 += RB) {  // gv += P^T gy
                            const int64_t j1 = std::min(n, j0 + RB), i0 = causal ? j0 : 0;
                            gemm_acc(j1 - j0, hd, n - i0, P + i0 * n + j0, 1, n, gy + i0 * ldq, ldq,
                                     gv + (sq * n + j0) * ldk + hk * hd, ldk, inner);
                        }
                    if (!gq && !gk) continue;
                    std::fill(dp.begin(), dp.end(), 0.0f);
                    for (int64_t i0 = 0; i0 < n; i0 += RB) {  // dP = gy V^T
                        const int64_t i1 = std::min(n, i0 + RB), nj = causal ? i1 : n;
                        gemm_acc(i1 - i0, nj, hd, gy + i0 * ldq, ldq, 1, vt.data(), n, dp.data() + i0 * n, n, inner);
                    }
                    for (int64_t i = 0; i < n; ++i) {  // dS = P * (dP - sum(P * dP)) * scale
                        const float * p = P + i * n;
                        float * d = dp.data() + i * n;
                        const int64_t nj = causal ? i + 1 : n;
                        const double pdp = dot_double(p, d, nj);
                        for (int64_t j = 0; j < nj; ++j) d[j] = p[j] * (d[j] - static_cast<float>(pdp)) * scale;
                        for (int64_t j = nj; j < n; ++j) d[j] = 0.0f;
                    }
                    if (gq)
                        for (int64_t i0 = 0; i0 < n; i0 += RB) {  // gq += dS K
                            const int64_t i1 = std::min(n, i0 + RB), nj = causal ? i1 : n;
                            gemm_acc(i1 - i0, hd, nj, dp.data() + i0 * n, n, 1, ks, ldk,
                                     gq + (sq * n + i0) * ldq + h * hd, ldq, inner);
                        }
                    if (gk)
                        for (int64_t j0 = 0; j0 < n; j0 += RB) {  // gk += dS^T q
                            const int64_t j1 = std::min(n, j0 + RB), i0 = causal ? j0 : 0;
                            gemm_acc(j1 - j0, hd, n - i0, dp.data() + i0 * n + j0, 1, n, qh + i0 * ldq, ldq,
                                     gk + (sq * n + j0) * ldk + hk * hd, ldk, inner);
                        }
                }
            }
        };
        if (tp && n_seq * n_head_kv >= nth_pool)
            parallel_for(n_seq * n_head_kv, 2, [&](int64_t ub, int64_t ue) { bwd(ub, ue, nullptr); });
        else
            bwd(0, n_seq * n_head_kv, tp);
    };
    return y;
}

value cross_entropy(const value & logits, const std::vector<int32_t> & targets) {
    const int64_t V = logits->shape.back(), n = rows_of(logits);
    if (static_cast<int64_t>(targets.size()) != n)
        fail("cross_entropy", std::to_string(targets.size()) + " targets for " + std::to_string(n) + " rows");
    for (int32_t t : targets)
        if (t >= V) fail("cross_entropy", "target " + std::to_string(t) + " outside " + std::to_string(V) + " classes");
    value y = make("cross_entropy", {1}, {logits});
    // No [n, V] probability matrix is kept (at a 262k vocabulary it would be as large as the logits): backward
    // recomputes each row's softmax. Rows are split between threads; the loss is summed in row order.
    std::vector<double> row_loss(static_cast<size_t>(n), 0.0);
    thread_pool * tp = tpool_for(n * V * 8);  // ~8 multiply-adds' worth per exp
    auto fwd = [&](int ith, int nth) {
        long long b, e;
        split_range(n, ith, nth, b, e);
        std::vector<float> p(static_cast<size_t>(V));
        for (long long r = b; r < e; ++r) {
            const int32_t t = targets[r];
            if (t < 0) continue;
            const float * lr = logits->data.data() + r * V;
            spider::softmax_rows(lr, p.data(), 1, V);
            if (p[t] > 1e-30f) {
                row_loss[r] = -std::log(static_cast<double>(p[t]));
            } else {  // the probability underflows: the exact log-sum-exp instead
                const float mx = *std::max_element(lr, lr + V);
                double se = 0;
                for (int64_t i = 0; i < V; ++i) se += std::exp(static_cast<double>(lr[i] - mx));
                row_loss[r] = mx + std::log(se) - lr[t];
            }
        }
    };
    if (tp && n > 1)
        tp->run(fwd);
    else
        fwd(0, 1);
    int64_t n_valid = 0;
    double loss = 0;
    for (int64_t r = 0; r < n; ++r)
        if (targets[r] >= 0) {
            loss += row_loss[r];
            ++n_valid;
        }
    y->data[0] = n_valid ? static_cast<float>(loss / n_valid) : 0.0f;
    y->backward_fn = [targets, V, n, n_valid](node & s) {
        float * g = gbuf(s.inputs[0]);
        if (!g || n_valid == 0) return;
        const float f = s.grad[0] / static_cast<float>(n_valid);
        const float * ld = s.inputs[0]->data.data();
        auto bwd = [&](int ith, int nth) {
            long long b, e;
            split_range(n, ith, nth, b, e);
            std::vector<float> p(static_cast<size_t>(V));
            for (long long r = b; r < e; ++r) {
                if (targets[r] < 0) continue;
                spider::softmax_rows(ld + r * V, p.data(), 1, V);
                float * gr = g + r * V;
                for (int64_t i = 0; i < V; ++i) gr[i] += f * p[i];
                gr[targets[r]] -= f;
            }
        };
        thread_pool * tp = tpool_for(n * V * 8);
        if (tp && n > 1)
            tp->run(bwd);
        else
            bwd(0, 1);
    };
    return y;
}

value mse(const value & a, const value & b) {
    return mean(square(sub(a, b)));
}

value bce_with_logits(const value & logits, const value & targets) {
    check_same("bce_with_logits", logits, targets);
    value y = make("bce_with_logits", {1}, {logits, targets});
    double acc = 0;
    for (size_t i = 0; i < logits->data.size(); ++i) {  // max(x,0) - x*t + log(1 + exp(-|x|)): stable
        const float x = logits->data[i], t = targets->data[i];
        acc += std::max(x, 0.0f) - x * t + std::log1p(std::exp(-std::fabs(x)));
    }
    const float nn = static_cast<float>(logits->data.size());
    y->data[0] = static_cast<float>(acc / nn);
    y->backward_fn = [nn](node & s) {
        const auto & x = s.inputs[0]->data;
        const auto & t = s.inputs[1]->data;
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < x.size(); ++i) g[i] += s.grad[0] * (1.0f / (1.0f + std::exp(-x[i])) - t[i]) / nn;
        if (float * g = gbuf(s.inputs[1]))
            for (size_t i = 0; i < x.size(); ++i) g[i] += s.grad[0] * (-x[i]) / nn;
    };
    return y;
}

value dice_loss(const value & logits, const value & targets, float smooth) {
    check_same("dice_loss", logits, targets);
    value y = make("dice_loss", {1}, {logits});
    const size_t n = logits->data.size();
    auto sig = std::make_shared<std::vector<float>>(n);
    double inter = 0, ps = 0, ts = 0;
    for (size_t i = 0; i < n; ++i) {
        const float p = 1.0f / (1.0f + std::exp(-logits->data[i]));
        (*sig)[i] = p;
        inter += p * targets->data[i];
        ps += p;
        ts += targets->data[i];
    }
    const double num = 2 * inter + smooth, den = ps + ts + smooth;
    y->data[0] = static_cast<float>(1.0 - num / den);
    value tgt = targets;
    y->backward_fn = [sig, tgt, num, den](node & s) {
        float * g = gbuf(s.inputs[0]);
        if (!g) return;
        for (size_t i = 0; i < sig->size(); ++i) {
            const double p = (*sig)[i];
            const double dl_dp = -(2 * tgt->data[i] * den - num) / (den * den);
            g[i] += static_cast<float>(s.grad[0] * dl_dp * p * (1 - p));
        }
    };
    return y;
}

void backward(const value & root) {
    if (root->numel() != 1)
        throw std::invalid_argument("[backward] root must be a scalar, got " + shape_str(root->shape));
    // Reverse topological order by iterative DFS (graphs can be deep: no recursion).
    std::vector<node *> order;
    std::unordered_set<node *> seen;
    std::vector<std::pair<node *, size_t>> stack = {{root.get(), 0}};
    seen.insert(root.get());
    while (!stack.empty()) {
        auto & [nd, next] = stack.back();
        if (next < nd->inputs.size()) {
            node * c = nd->inputs[next++].get();
            if (c && c->requires_grad && seen.insert(c).second) stack.push_back({c, 0});
        } else {
            order.push_back(nd);
            stack.pop_back();
        }
    }
    if (root->grad.size() != 1) root->grad.assign(1, 0.0f);
    root->grad[0] = 1.0f;
    for (auto it = order.rbegin(); it != order.rend(); ++it)
        if ((*it)->backward_fn && (*it)->requires_grad) (*it)->backward_fn(**it);
}

}  // namespace spider::train
