// Tape ops for LoRA training of a frozen GGUF LLM (see autograd_llm.h). Forward through the core kernels where
// one exists; backward formulas hand-written and checked by finite differences (tests/test_llm_tape.cpp).
#include "train/autograd_llm.h"
#include "train/autograd_internal.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "core/dtype.h"

namespace spider::train {

using detail::fail;
using detail::gbuf;
using detail::make;
using detail::numel_of;
using detail::shape_str;

namespace {

int64_t rows_of(const value & x) {
    return x->shape.empty() ? 1 : x->numel() / x->shape.back();
}

void run_on(thread_pool * pool, const std::function<void(int, int)> & fn) {
    if (pool && pool->size() > 1) {
        pool->run(fn);
    } else {
        fn(0, 1);
    }
}

float act_value(act_type a, float x) {
    switch (a) {
        case ACT_GELU_TANH:
            return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
        case ACT_GELU_ERF:
            return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
        case ACT_SILU:
            return x / (1.0f + std::exp(-x));
        case ACT_RELU:
            return x > 0 ? x : 0.0f;
    }
    return x;
}

float act_derivative(act_type a, float x) {
    switch (a) {
        case ACT_GELU_TANH: {
            const float c = 0.7978845608028654f;
            const float t = std::tanh(c * (x + 0.044715f * x * x * x));
            return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 3.0f * 0.044715f * x * x);
        }
        case ACT_GELU_ERF:
            return 0.5f * (1.0f + std::erf(x * 0.7071067811865476f)) +
                   x * 0.3989422804014327f * std::exp(-0.5f * x * x);
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

value rms_norm_k(const value & x, const value & w, float eps) {
    const int64_t n = x->shape.back(), rows = rows_of(x);
    if (w && w->numel() != n) fail("rms_norm_k", "weight " + shape_str(w->shape) + " for rows of " + std::to_string(n));
    std::vector<value> inputs = {x};
    if (w) inputs.push_back(w);
    value y = make("rms_norm_k", x->shape, inputs);
    spider::rms_norm(x->data.data(), w ? w->data.data() : nullptr, y->data.data(), rows, n, eps);
    y->backward_fn = [n, rows, eps](node & s) {
        const value & x = s.inputs[0];
        const value w = s.inputs.size() > 1 ? s.inputs[1] : nullptr;
        float * gx = gbuf(x);
        float * gw = w ? gbuf(w) : nullptr;
        for (int64_t r = 0; r < rows; ++r) {
            const float * xr = x->data.data() + r * n;
            const float * gy = s.grad.data() + r * n;
            double ss = 0;
            for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
            const float iv = 1.0f / std::sqrt(static_cast<float>(ss / n) + eps);
            // xhat = x * iv; gxhat = gy * w; gx = iv * (gxhat - xhat * mean(gxhat * xhat))
            double dot = 0;
            for (int64_t i = 0; i < n; ++i) dot += gy[i] * (w ? w->data[i] : 1.0f) * xr[i] * iv;
            const float m = static_cast<float>(dot / n);
            for (int64_t i = 0; i < n; ++i) {
                const float xhat = xr[i] * iv;
                if (gx) gx[r * n + i] += iv * (gy[i] * (w ? w->data[i] : 1.0f) - xhat * m);
                if (gw) gw[i] += gy[i] * xhat;
            }
        }
    };
    return y;
}

value glu_k(const value & gate, const value & up, act_type a) {
    if (gate->shape != up->shape) fail("glu_k", "gate " + shape_str(gate->shape) + " vs up " + shape_str(up->shape));
    value y = make("glu_k", gate->shape, {gate, up});
    spider::glu(a, gate->data.data(), up->data.data(), y->data.data(), y->numel());
    y->backward_fn = [a](node & s) {
        const auto & g = s.inputs[0]->data;
        const auto & u = s.inputs[1]->data;
        float * gg = gbuf(s.inputs[0]);
        float * gu = gbuf(s.inputs[1]);
        for (size_t i = 0; i < s.grad.size(); ++i) {
            if (gg) gg[i] += s.grad[i] * u[i] * act_derivative(a, g[i]);
            if (gu) gu[i] += s.grad[i] * act_value(a, g[i]);
        }
    };
    return y;
}

value cross_entropy_k(const value & logits, const std::vector<int32_t> & targets, thread_pool * pool) {
    const int64_t V = logits->shape.back(), n = rows_of(logits);
    if (static_cast<int64_t>(targets.size()) != n)
        fail("cross_entropy_k", std::to_string(targets.size()) + " targets for " + std::to_string(n) + " rows");
    for (int32_t t : targets)
        if (t >= V)
            fail("cross_entropy_k", "target " + std::to_string(t) + " outside " + std::to_string(V) + " classes");
    value y = make("cross_entropy_k", {1}, {logits});
    auto probs = std::make_shared<std::vector<float>>(logits->data.size());
    std::vector<double> row_loss(static_cast<size_t>(n), 0.0);
    run_on(pool, [&](int ith, int nth) {
        long long b = 0, e = 0;
        split_range(n, ith, nth, b, e);
        for (long long r = b; r < e; ++r) {
            const float * lr = logits->data.data() + r * V;
            float * pr = probs->data() + r * V;
            const float mx = *std::max_element(lr, lr + V);
            double se = 0;
            for (int64_t i = 0; i < V; ++i) se += (pr[i] = std::exp(lr[i] - mx));
            const float inv = static_cast<float>(1.0 / se);
            for (int64_t i = 0; i < V; ++i) pr[i] *= inv;
            if (targets[r] >= 0) row_loss[r] = mx + std::log(se) - lr[targets[r]];
        }
    });
    int64_t n_valid = 0;
    double loss = 0;
    for (int64_t r = 0; r < n; ++r)
        if (targets[r] >= 0) {
            loss += row_loss[r];
            ++n_valid;
        }
    y->data[0] = n_valid ? static_cast<float>(loss / n_valid) : 0.0f;
    y->backward_fn = [targets, V, n, n_valid, probs](node & s) {
        float * g = gbuf(s.inputs[0]);
        if (!g || n_valid == 0) return;
        const float f = s.grad[0] / static_cast<float>(n_valid);
        for (int64_t r = 0; r < n; ++r) {
            if (targets[r] < 0) continue;
            const float * pr = probs->data() + r * V;
            float * gr = g + r * V;
            for (int64_t i = 0; i < V; ++i) gr[i] += f * pr[i];
            gr[targets[r]] -= f;
        }
    };
    return y;
}

value view_shape(const value & x, std::vector<int64_t> shape) {
    if (numel_of(shape) != x->numel()) fail("view_shape", shape_str(x->shape) + " cannot become " + shape_str(shape));
    value y = make("view_shape", std::move(shape), {x});
    y->data = x->data;
    y->backward_fn = [](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += s.grad[i];
    };
    return y;
}

value gather_rows(const value & x, const std::vector<int32_t> & idx) {
    const int64_t d = x->shape.back(), n = rows_of(x);
    for (int32_t r : idx)
        if (r < 0 || r >= n) fail("gather_rows", "row " + std::to_string(r) + " outside " + std::to_string(n));
    value y = make("gather_rows", {static_cast<int64_t>(idx.size()), d}, {x});
    for (size_t t = 0; t < idx.size(); ++t) std::copy_n(x->data.data() + idx[t] * d, d, y->data.data() + t * d);
    y->backward_fn = [idx, d](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t t = 0; t < idx.size(); ++t)
                for (int64_t i = 0; i < d; ++i) g[idx[t] * d + i] += s.grad[t * d + i];
    };
    return y;
}

value replace_rows(const value & x, const std::vector<int32_t> & pos, const value & rows) {
    const int64_t d = x->shape.back(), n = rows_of(x);
    if (rows->shape.back() != d || rows_of(rows) != static_cast<int64_t>(pos.size()))
        fail("replace_rows", "rows " + shape_str(rows->shape) + " for " + std::to_string(pos.size()) +
                                 " positions of width " + std::to_string(d));
    std::vector<char> replaced(static_cast<size_t>(n), 0);
    for (int32_t p : pos) {
        if (p < 0 || p >= n) fail("replace_rows", "position " + std::to_string(p) + " outside " + std::to_string(n));
        if (replaced[p]) fail("replace_rows", "position " + std::to_string(p) + " given twice");
        replaced[p] = 1;
    }
    value y = make("replace_rows", x->shape, {x, rows});
    y->data = x->data;
    for (size_t t = 0; t < pos.size(); ++t) std::copy_n(rows->data.data() + t * d, d, y->data.data() + pos[t] * d);
    y->backward_fn = [pos, replaced, d, n](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (int64_t r = 0; r < n; ++r)
                if (!replaced[r])
                    for (int64_t i = 0; i < d; ++i) g[r * d + i] += s.grad[r * d + i];
        if (float * g = gbuf(s.inputs[1]))
            for (size_t t = 0; t < pos.size(); ++t)
                for (int64_t i = 0; i < d; ++i) g[t * d + i] += s.grad[pos[t] * d + i];
    };
    return y;
}

value concat_cols(const value & a, const value & b) {
    const int64_t n = rows_of(a), wa = a->shape.back(), wb = b->shape.back();
    if (rows_of(b) != n) fail("concat_cols", shape_str(a->shape) + " | " + shape_str(b->shape));
    value y = make("concat_cols", {n, wa + wb}, {a, b});
    for (int64_t t = 0; t < n; ++t) {
        std::copy_n(a->data.data() + t * wa, wa, y->data.data() + t * (wa + wb));
        std::copy_n(b->data.data() + t * wb, wb, y->data.data() + t * (wa + wb) + wa);
    }
    y->backward_fn = [n, wa, wb](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (int64_t t = 0; t < n; ++t)
                for (int64_t i = 0; i < wa; ++i) g[t * wa + i] += s.grad[t * (wa + wb) + i];
        if (float * g = gbuf(s.inputs[1]))
            for (int64_t t = 0; t < n; ++t)
                for (int64_t i = 0; i < wb; ++i) g[t * wb + i] += s.grad[t * (wa + wb) + wa + i];
    };
    return y;
}

value rope_ext(const value & x, const std::vector<int32_t> & pos, int64_t n_head, int64_t head_dim, int64_t n_rot,
               float freq_base, float freq_scale, rope_mode mode, const float * freq_factors) {
    const int64_t n_tok = rows_of(x);
    if (x->shape.back() != n_head * head_dim || static_cast<int64_t>(pos.size()) != n_tok || n_rot > head_dim ||
        n_rot <= 0 || n_rot % 2)
        fail("rope_ext", "input " + shape_str(x->shape) + " vs " + std::to_string(n_head) + " heads of " +
                             std::to_string(head_dim) + " (n_rot " + std::to_string(n_rot) + ") and " +
                             std::to_string(pos.size()) + " positions");
    value y = make("rope_ext", x->shape, {x});
    y->data = x->data;
    spider::rope(y->data.data(), pos.data(), n_tok, n_head, head_dim, n_rot, freq_base, freq_scale, mode, freq_factors);
    y->backward_fn = [pos, n_tok, n_head, head_dim, n_rot, freq_base, freq_scale, mode, freq_factors](node & s) {
        float * g = gbuf(s.inputs[0]);
        if (!g) return;
        // A rotation: its transpose rotates by the opposite angle (negated positions).
        std::vector<int32_t> neg(pos.size());
        for (size_t i = 0; i < pos.size(); ++i) neg[i] = -pos[i];
        std::vector<float> tmp = s.grad;
        spider::rope(tmp.data(), neg.data(), n_tok, n_head, head_dim, n_rot, freq_base, freq_scale, mode, freq_factors);
        for (size_t i = 0; i < tmp.size(); ++i) g[i] += tmp[i];
    };
    return y;
}

value attention_window(const value & q, const value & k, const value & v, int64_t n_head, int64_t n_head_kv,
                       float scale, int64_t window, thread_pool * pool) {
    const int64_t n = rows_of(q);
    if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0 || q->shape.back() % n_head != 0)
        fail("attention_window", "bad head counts");
    const int64_t hd = q->shape.back() / n_head, kvd = n_head_kv * hd;
    if (k->shape.back() != kvd || v->shape.back() != kvd || rows_of(k) != n || rows_of(v) != n)
        fail("attention_window",
             "q " + shape_str(q->shape) + ", k " + shape_str(k->shape) + ", v " + shape_str(v->shape));
    value y = make("attention_window", q->shape, {q, k, v});
    const int64_t group = n_head / n_head_kv;
    auto probs = std::make_shared<std::vector<float>>(static_cast<size_t>(n_head * n * n), 0.0f);
    auto first = [window](int64_t i) { return window > 0 ? std::max<int64_t>(0, i - window + 1) : 0; };
    run_on(pool, [&](int ith, int nth) {
        for (int64_t h = ith; h < n_head; h += nth) {
            const int64_t hk = h / group;
            for (int64_t i = 0; i < n; ++i) {
                float * p = probs->data() + (h * n + i) * n;
                const float * qi = q->data.data() + (i * n_head + h) * hd;
                const int64_t j0 = first(i);
                float mx = -INFINITY;
                for (int64_t j = j0; j <= i; ++j) {
                    const float * kj = k->data.data() + j * kvd + hk * hd;
                    float d = 0;
                    for (int64_t c = 0; c < hd; ++c) d += qi[c] * kj[c];
                    p[j] = d * scale;
                    mx = std::max(mx, p[j]);
                }
                double se = 0;
                for (int64_t j = j0; j <= i; ++j) se += (p[j] = std::exp(p[j] - mx));
                for (int64_t j = j0; j <= i; ++j) p[j] = static_cast<float>(p[j] / se);
            }
        }
    });
    spider::attention(q->data.data(), k->data.data(), v->data.data(), y->data.data(), n, n, n_head, n_head_kv, hd,
                      scale, true, 0, window, pool);
    y->backward_fn = [n, n_head, hd, kvd, group, scale, probs, first, pool](node & s) {
        const auto & qd = s.inputs[0]->data;
        const auto & kd = s.inputs[1]->data;
        const auto & vd = s.inputs[2]->data;
        float * gq = gbuf(s.inputs[0]);
        float * gk = gbuf(s.inputs[1]);
        float * gv = gbuf(s.inputs[2]);
        const int nth_max = pool ? pool->size() : 1;
        // K/V gradients are shared by the heads of a group: each thread sums into its own buffer.
        std::vector<std::vector<float>> pk(nth_max), pv(nth_max);
        run_on(pool, [&](int ith, int nth) {
            std::vector<float> &lk = pk[ith], &lv = pv[ith];
            if (gk) lk.assign(static_cast<size_t>(n * kvd), 0.0f);
            if (gv) lv.assign(static_cast<size_t>(n * kvd), 0.0f);
            std::vector<float> dp(static_cast<size_t>(n));
            for (int64_t h = ith; h < n_head; h += nth) {
                const int64_t hk = h / group;
                for (int64_t i = 0; i < n; ++i) {
                    const float * p = probs->data() + (h * n + i) * n;
                    const float * gy = s.grad.data() + (i * n_head + h) * hd;
                    const int64_t j0 = first(i);
                    double pdp = 0;
                    for (int64_t j = j0; j <= i; ++j) {
                        const float * vj = vd.data() + j * kvd + hk * hd;
                        float d = 0;
                        for (int64_t c = 0; c < hd; ++c) d += gy[c] * vj[c];
                        dp[j] = d;
                        pdp += p[j] * d;
                        if (gv)
                            for (int64_t c = 0; c < hd; ++c) lv[j * kvd + hk * hd + c] += p[j] * gy[c];
                    }
                    for (int64_t j = j0; j <= i; ++j) {
                        const float ds = p[j] * (dp[j] - static_cast<float>(pdp)) * scale;
                        if (ds == 0.0f) continue;
                        const float * kj = kd.data() + j * kvd + hk * hd;
                        const float * qi = qd.data() + (i * n_head + h) * hd;
                        if (gq)
                            for (int64_t c = 0; c < hd; ++c) gq[(i * n_head + h) * hd + c] += ds * kj[c];
                        if (gk)
                            for (int64_t c = 0; c < hd; ++c) lk[j * kvd + hk * hd + c] += ds * qi[c];
                    }
                }
            }
        });
        for (int t = 0; t < nth_max; ++t) {
            if (gk && !pk[t].empty())
                for (size_t i = 0; i < pk[t].size(); ++i) gk[i] += pk[t][i];
            if (gv && !pv[t].empty())
                for (size_t i = 0; i < pv[t].size(); ++i) gv[i] += pv[t][i];
        }
    };
    return y;
}

value linear_frozen_t(const value & x, const tensor & W, const tensor & Wt, thread_pool * pool) {
    const int64_t in = W.ne[0], out = W.ne[1];
    if (x->shape.back() != in)
        fail("linear_frozen_t", "input " + shape_str(x->shape) + " vs weight of " + std::to_string(in) + " inputs");
    if (Wt.ne[0] != out || Wt.ne[1] != in)
        fail("linear_frozen_t",
             "transposed weight is not [" + std::to_string(in) + " rows of " + std::to_string(out) + "]");
    const int64_t n = rows_of(x);
    std::vector<int64_t> shape = x->shape;
    shape.back() = out;
    value y = make("linear_frozen_t", shape, {x});
    spider::matmul(W, x->data.data(), y->data.data(), n, pool);
    y->backward_fn = [Wt, n, in, pool](node & s) {
        float * gx = gbuf(s.inputs[0]);
        if (!gx) return;
        std::vector<float> tmp(static_cast<size_t>(n * in));
        spider::matmul(Wt, s.grad.data(), tmp.data(), n, pool);
        for (size_t i = 0; i < tmp.size(); ++i) gx[i] += tmp[i];
    };
    return y;
}

tensor transpose_to_f16(const tensor & W, std::vector<uint16_t> * buf, thread_pool * pool) {
    const int64_t in = W.ne[0], out = W.ne[1];
    buf->assign(static_cast<size_t>(in * out), 0);
    uint16_t * dst = buf->data();
    run_on(pool, [&](int ith, int nth) {
        long long b = 0, e = 0;
        split_range(out, ith, nth, b, e);
        const int64_t blk = 32;
        std::vector<float> rows(static_cast<size_t>(blk * in));
        std::vector<int32_t> ids(static_cast<size_t>(blk));
        for (int64_t o0 = b; o0 < e; o0 += blk) {
            const int64_t m = std::min<int64_t>(blk, e - o0);
            for (int64_t r = 0; r < m; ++r) ids[r] = static_cast<int32_t>(o0 + r);
            spider::get_rows(W, ids.data(), m, rows.data());
            for (int64_t j = 0; j < in; ++j)
                for (int64_t r = 0; r < m; ++r) dst[j * out + o0 + r] = fp32_to_fp16(rows[r * in + j]);
        }
    });
    return make_tensor(DTYPE_F16, buf->data(), out, in);
}

}  // namespace spider::train
