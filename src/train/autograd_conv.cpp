// Convolutions, GroupNorm, resampling, pooling, shape ops and cross-attention on the autograd tape. Forward and
// backward are direct loops; every backward is checked against finite differences (tests/test_autograd_conv.cpp).
#include "train/autograd_conv.h"
#include "train/autograd_internal.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>

namespace spider::train {

using detail::fail;
using detail::gbuf;
using detail::make;
using detail::numel_of;
using detail::shape_str;

namespace {

// Geometry of a convolution over up to three spatial dimensions (1-D and 2-D use leading size-1 dims).
struct conv_geom {
    int64_t N = 0, C = 0, Co = 0, G = 1;
    int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, out[3] = {1, 1, 1};
    int64_t s = 1, d = 1;
    int64_t p[3] = {0, 0, 0};  // padding of the used spatial dimensions only
    bool transposed = false;
};

// Calls f(x_index, w_index, y_index) for every product x * w that contributes to y (y += x * w).
template <typename F>
void conv_visit(const conv_geom & g, F && f) {
    const int64_t cig = g.C / g.G, cog = g.Co / g.G;
    const int64_t in_sp = g.in[0] * g.in[1] * g.in[2], out_sp = g.out[0] * g.out[1] * g.out[2];
    const int64_t k_sp = g.k[0] * g.k[1] * g.k[2];
    for (int64_t n = 0; n < g.N; ++n)
        for (int64_t grp = 0; grp < g.G; ++grp)
            for (int64_t cl = 0; cl < cig; ++cl)
                for (int64_t ol = 0; ol < cog; ++ol) {
                    const int64_t ci = grp * cig + cl, co = grp * cog + ol;
                    const int64_t xbase = (n * g.C + ci) * in_sp, ybase = (n * g.Co + co) * out_sp;
                    // Weight layout: conv [Co, C/G, k..]; transposed [C, Co/G, k..].
                    const int64_t wbase = g.transposed ? (ci * cog + ol) * k_sp : (co * cig + cl) * k_sp;
                    for (int64_t a0 = 0; a0 < g.k[0]; ++a0)
                        for (int64_t a1 = 0; a1 < g.k[1]; ++a1)
                            for (int64_t a2 = 0; a2 < g.k[2]; ++a2) {
                                const int64_t wi = wbase + (a0 * g.k[1] + a1) * g.k[2] + a2;
                                if (!g.transposed) {
                                    for (int64_t o0 = 0; o0 < g.out[0]; ++o0) {
                                        const int64_t i0 = o0 * g.s - g.p[0] + a0 * g.d;
                                        if (i0 < 0 || i0 >= g.in[0]) continue;
                                        for (int64_t o1 = 0; o1 < g.out[1]; ++o1) {
                                            const int64_t i1 = o1 * g.s - g.p[1] + a1 * g.d;
                                            if (i1 < 0 || i1 >= g.in[1]) continue;
                                            for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
                                                const int64_t i2 = o2 * g.s - g.p[2] + a2 * g.d;
                                                if (i2 < 0 || i2 >= g.in[2]) continue;
                                                f(xbase + (i0 * g.in[1] + i1) * g.in[2] + i2, wi,
                                                  ybase + (o0 * g.out[1] + o1) * g.out[2] + o2);
                                            }
                                        }
                                    }
                                } else {
                                    for (int64_t i0 = 0; i0 < g.in[0]; ++i0) {
                                        const int64_t o0 = i0 * g.s - g.p[0] + a0 * g.d;
                                        if (o0 < 0 || o0 >= g.out[0]) continue;
                                        for (int64_t i1 = 0; i1 < g.in[1]; ++i1) {
                                            const int64_t o1 = i1 * g.s - g.p[1] + a1 * g.d;
                                            if (o1 < 0 || o1 >= g.out[1]) continue;
                                            for (int64_t i2 = 0; i2 < g.in[2]; ++i2) {
                                                const int64_t o2 = i2 * g.s - g.p[2] + a2 * g.d;
                                                if (o2 < 0 || o2 >= g.out[2]) continue;
                                                f(xbase + (i0 * g.in[1] + i1) * g.in[2] + i2, wi,
                                                  ybase + (o0 * g.out[1] + o1) * g.out[2] + o2);
                                            }
                                        }
                                    }
                                }
                            }
                }
}

// im2col of a (non-transposed) convolution: [N * P, C * K] rows of the input patches read by each output position
// (zero where the patch leaves the padded input). The gather map is built once; backward scatters back (col2im).
value im2col(const conv_geom & g, const value & x) {
    const int64_t in_sp = g.in[0] * g.in[1] * g.in[2], P = g.out[0] * g.out[1] * g.out[2];
    const int64_t K = g.k[0] * g.k[1] * g.k[2], CK = g.C * K;
    auto map = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(g.N * P * CK), -1);
    for (int64_t n = 0; n < g.N; ++n)
        for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
            for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
                for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
                    const int64_t row = n * P + (o0 * g.out[1] + o1) * g.out[2] + o2;
                    int64_t * m = map->data() + row * CK;
                    for (int64_t c = 0; c < g.C; ++c)
                        for (int64_t a0 = 0; a0 < g.k[0]; ++a0) {
                            const int64_t i0 = o0 * g.s - g.p[0] + a0 * g.d;
                            for (int64_t a1 = 0; a1 < g.k[1]; ++a1) {
                                const int64_t i1 = o1 * g.s - g.p[1] + a1 * g.d;
                                for (int64_t a2 = 0; a2 < g.k[2]; ++a2) {
                                    const int64_t i2 = o2 * g.s - g.p[2] + a2 * g.d;
                                    const int64_t col = (c * g.k[0] + a0) * g.k[1] * g.k[2] + a1 * g.k[2] + a2;
                                    if (i0 < 0 || i0 >= g.in[0] || i1 < 0 || i1 >= g.in[1] || i2 < 0 || i2 >= g.in[2])
                                        continue;
                                    m[col] = (n * g.C + c) * in_sp + (i0 * g.in[1] + i1) * g.in[2] + i2;
                                }
                            }
                        }
                }
    value y = make("im2col", {g.N * P, CK}, {x});
    for (size_t i = 0; i < map->size(); ++i)
        if ((*map)[i] >= 0) y->data[i] = x->data[(*map)[i]];
    y->backward_fn = [map](node & s) {
        if (float * gx = gbuf(s.inputs[0]))
            for (size_t i = 0; i < map->size(); ++i)
                if ((*map)[i] >= 0) gx[(*map)[i]] += s.grad[i];
    };
    return y;
}

value conv_nd(const char * op, int nsp, bool transposed, const value & x, const value & W, const value & b,
              const conv_opts & o) {
    const size_t rank = static_cast<size_t>(nsp) + 2;
    if (x->shape.size() != rank || W->shape.size() != rank)
        fail(op, "input " + shape_str(x->shape) + " and weight " + shape_str(W->shape) + " must both be " +
                     std::to_string(rank) + "-D");
    if (o.stride < 1 || o.dilation < 1 || o.groups < 1 || o.padding < 0 || o.output_padding < 0)
        fail(op, "stride, dilation and groups must be >= 1, padding >= 0");
    conv_geom g;
    g.transposed = transposed;
    g.N = x->shape[0];
    g.C = x->shape[1];
    g.G = o.groups;
    g.s = o.stride;
    g.d = o.dilation;
    if (g.C % g.G != 0) fail(op, std::to_string(g.C) + " input channels for " + std::to_string(g.G) + " groups");
    if (!transposed) {
        g.Co = W->shape[0];
        if (W->shape[1] != g.C / g.G || g.Co % g.G != 0)
            fail(op, "weight " + shape_str(W->shape) + " for " + std::to_string(g.C) + " input channels, " +
                         std::to_string(g.G) + " groups");
    } else {
        if (W->shape[0] != g.C) fail(op, "weight " + shape_str(W->shape) + " for " + std::to_string(g.C) + " inputs");
        g.Co = W->shape[1] * g.G;
    }
    std::vector<int64_t> yshape = {g.N, g.Co};
    for (int i = 0; i < nsp; ++i) {
        const int slot = 3 - nsp + i;
        g.in[slot] = x->shape[2 + i];
        g.k[slot] = W->shape[2 + i];
        g.p[slot] = o.padding;
        const int64_t span = g.d * (g.k[slot] - 1) + 1;
        g.out[slot] = transposed ? (g.in[slot] - 1) * g.s - 2 * g.p[slot] + span + o.output_padding
                                 : (g.in[slot] + 2 * g.p[slot] - span) / g.s + 1;
        if (g.out[slot] <= 0 || (!transposed && g.in[slot] + 2 * g.p[slot] < span))
            fail(op, "input " + shape_str(x->shape) + " too small for kernel " + shape_str(W->shape));
        yshape.push_back(g.out[slot]);
    }
    if (b && b->numel() != g.Co) fail(op, "bias " + shape_str(b->shape) + " for " + std::to_string(g.Co) + " outputs");
    if (!transposed && g.G == 1) {
        // The usual case through the optimised matmul: y[n, :, p] = W [Co, C*K] x patch(n, p) + b.
        const int64_t P = g.out[0] * g.out[1] * g.out[2], CK = g.C * g.k[0] * g.k[1] * g.k[2];
        value rows = linear(im2col(g, x), reshape(W, {g.Co, CK}), b);  // [N * P, Co]
        return reshape(permute(reshape(rows, {g.N, P, g.Co}), {0, 2, 1}), yshape);
    }
    value y = make(op, yshape, {x, W, b});
    const float * xd = x->data.data();
    const float * wd = W->data.data();
    float * yd = y->data.data();
    conv_visit(g, [&](int64_t xi, int64_t wi, int64_t yi) { yd[yi] += xd[xi] * wd[wi]; });
    const int64_t sp = g.out[0] * g.out[1] * g.out[2];
    if (b)
        for (int64_t n = 0; n < g.N; ++n)
            for (int64_t c = 0; c < g.Co; ++c)
                for (int64_t i = 0; i < sp; ++i) yd[(n * g.Co + c) * sp + i] += b->data[c];
    y->backward_fn = [g, sp](node & s) {
        const float * xd = s.inputs[0]->data.data();
        const float * wd = s.inputs[1]->data.data();
        const float * gy = s.grad.data();
        float * gx = gbuf(s.inputs[0]);
        float * gw = gbuf(s.inputs[1]);
        if (gx && gw)
            conv_visit(g, [&](int64_t xi, int64_t wi, int64_t yi) {
                gx[xi] += gy[yi] * wd[wi];
                gw[wi] += gy[yi] * xd[xi];
            });
        else if (gx)
            conv_visit(g, [&](int64_t xi, int64_t wi, int64_t yi) { gx[xi] += gy[yi] * wd[wi]; });
        else if (gw)
            conv_visit(g, [&](int64_t xi, int64_t wi, int64_t yi) { gw[wi] += gy[yi] * xd[xi]; });
        if (float * gb = gbuf(s.inputs[2]))
            for (int64_t n = 0; n < g.N; ++n)
                for (int64_t c = 0; c < g.Co; ++c)
                    for (int64_t i = 0; i < sp; ++i) gb[c] += gy[(n * g.Co + c) * sp + i];
    };
    return y;
}

}  // namespace

value conv1d(const value & x, const value & W, const value & b, const conv_opts & o) {
    return conv_nd("conv1d", 1, false, x, W, b, o);
}
value conv2d(const value & x, const value & W, const value & b, const conv_opts & o) {
    return conv_nd("conv2d", 2, false, x, W, b, o);
}
value conv3d(const value & x, const value & W, const value & b, const conv_opts & o) {
    return conv_nd("conv3d", 3, false, x, W, b, o);
}
value conv_transpose2d(const value & x, const value & W, const value & b, const conv_opts & o) {
    return conv_nd("conv_transpose2d", 2, true, x, W, b, o);
}

value conv2plus1d(const value & x, const value & Ws, const value & bs, const value & Wt, const value & bt) {
    if (x->shape.size() != 5 || Ws->shape.size() != 4 || Wt->shape.size() != 3)
        fail("conv2plus1d", "x [N, C, T, H, W], Ws [Cm, C, KH, KW], Wt [Co, Cm, KT]; got " + shape_str(x->shape) +
                                ", " + shape_str(Ws->shape) + ", " + shape_str(Wt->shape));
    const int64_t N = x->shape[0], C = x->shape[1], T = x->shape[2], H = x->shape[3], Wd = x->shape[4];
    const int64_t Cm = Ws->shape[0], Co = Wt->shape[0];
    conv_opts sp;
    sp.padding = Ws->shape[2] / 2;
    if (Ws->shape[2] != Ws->shape[3]) fail("conv2plus1d", "the spatial kernel must be square");
    value frames = reshape(permute(x, {0, 2, 1, 3, 4}), {N * T, C, H, Wd});
    value s = conv2d(frames, Ws, bs, sp);  // [N*T, Cm, H', W']
    const int64_t H2 = s->shape[2], W2 = s->shape[3];
    value pix = reshape(permute(reshape(s, {N, T, Cm, H2, W2}), {0, 3, 4, 2, 1}), {N * H2 * W2, Cm, T});
    conv_opts tp;
    tp.padding = Wt->shape[2] / 2;
    value t = conv1d(pix, Wt, bt, tp);  // [N*H'*W', Co, T']
    const int64_t T2 = t->shape[2];
    return permute(reshape(t, {N, H2, W2, Co, T2}), {0, 3, 4, 1, 2});
}

value group_norm(const value & x, int64_t groups, const value & w, const value & b, float eps) {
    if (x->shape.size() < 2) fail("group_norm", "needs [N, C, ...], got " + shape_str(x->shape));
    const int64_t N = x->shape[0], C = x->shape[1];
    if (groups < 1 || C % groups != 0)
        fail("group_norm", std::to_string(C) + " channels in " + std::to_string(groups) + " groups");
    if ((w && w->numel() != C) || (b && b->numel() != C)) fail("group_norm", "affine parameters must be [C]");
    const int64_t S = x->numel() / (N * C), cpg = C / groups, M = cpg * S;
    value y = make("group_norm", x->shape, {x, w, b});
    auto xhat = std::make_shared<std::vector<float>>(x->data.size());
    auto rstd = std::make_shared<std::vector<float>>(static_cast<size_t>(N * groups));
    for (int64_t n = 0; n < N; ++n)
        for (int64_t g = 0; g < groups; ++g) {
            const int64_t base = (n * C + g * cpg) * S;
            double m = 0, v = 0;
            for (int64_t i = 0; i < M; ++i) m += x->data[base + i];
            m /= M;
            for (int64_t i = 0; i < M; ++i) v += (x->data[base + i] - m) * (x->data[base + i] - m);
            v /= M;
            const float r = static_cast<float>(1.0 / std::sqrt(v + eps));
            (*rstd)[n * groups + g] = r;
            for (int64_t i = 0; i < M; ++i) {
                const int64_t c = g * cpg + i / S;
                const float h = static_cast<float>(x->data[base + i] - m) * r;
                (*xhat)[base + i] = h;
                y->data[base + i] = h * (w ? w->data[c] : 1.0f) + (b ? b->data[c] : 0.0f);
            }
        }
    y->backward_fn = [N, C, S, groups, cpg, M, xhat, rstd](node & s) {
        const value & w = s.inputs[1];
        if (float * gw = gbuf(w))
            for (int64_t i = 0; i < N * C * S; ++i) gw[(i / S) % C] += s.grad[i] * (*xhat)[i];
        if (float * gb = gbuf(s.inputs[2]))
            for (int64_t i = 0; i < N * C * S; ++i) gb[(i / S) % C] += s.grad[i];
        float * gx = gbuf(s.inputs[0]);
        if (!gx) return;
        for (int64_t n = 0; n < N; ++n)
            for (int64_t g = 0; g < groups; ++g) {
                const int64_t base = (n * C + g * cpg) * S;
                double mg = 0, mgx = 0;
                for (int64_t i = 0; i < M; ++i) {
                    const float gh = s.grad[base + i] * (w ? w->data[g * cpg + i / S] : 1.0f);
                    mg += gh;
                    mgx += gh * (*xhat)[base + i];
                }
                mg /= M;
                mgx /= M;
                const float r = (*rstd)[n * groups + g];
                for (int64_t i = 0; i < M; ++i) {
                    const float gh = s.grad[base + i] * (w ? w->data[g * cpg + i / S] : 1.0f);
                    gx[base + i] += r * static_cast<float>(gh - mg - (*xhat)[base + i] * mgx);
                }
            }
    };
    return y;
}

value upsample_nearest2d(const value & x, int64_t f) {
    if (x->shape.size() != 4 || f < 1) fail("upsample_nearest2d", "needs [N, C, H, W] and factor >= 1");
    const int64_t NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    value y = make("upsample_nearest2d", {x->shape[0], x->shape[1], H * f, W * f}, {x});
    for (int64_t c = 0; c < NC; ++c)
        for (int64_t i = 0; i < H * f; ++i)
            for (int64_t j = 0; j < W * f; ++j)
                y->data[(c * H * f + i) * W * f + j] = x->data[(c * H + i / f) * W + j / f];
    y->backward_fn = [NC, H, W, f](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (int64_t c = 0; c < NC; ++c)
                for (int64_t i = 0; i < H * f; ++i)
                    for (int64_t j = 0; j < W * f; ++j)
                        g[(c * H + i / f) * W + j / f] += s.grad[(c * H * f + i) * W * f + j];
    };
    return y;
}

namespace {

value pool2d(const char * op, const value & x, int64_t k, int64_t st, bool is_max) {
    if (x->shape.size() != 4 || k < 1 || st < 1 || x->shape[2] < k || x->shape[3] < k)
        fail(op, "needs [N, C, H, W] at least kernel-sized, kernel and stride >= 1; got " + shape_str(x->shape));
    const int64_t NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Ho = (H - k) / st + 1, Wo = (W - k) / st + 1;
    value y = make(op, {x->shape[0], x->shape[1], Ho, Wo}, {x});
    // For each output, the input indices it reads (max: only the arg-max).
    auto arg = std::make_shared<std::vector<int64_t>>(is_max ? static_cast<size_t>(NC * Ho * Wo) : 0);
    for (int64_t c = 0; c < NC; ++c)
        for (int64_t i = 0; i < Ho; ++i)
            for (int64_t j = 0; j < Wo; ++j) {
                float acc = is_max ? -INFINITY : 0.0f;
                int64_t best = -1;
                for (int64_t a = 0; a < k; ++a)
                    for (int64_t b = 0; b < k; ++b) {
                        const int64_t xi = (c * H + i * st + a) * W + j * st + b;
                        if (!is_max)
                            acc += x->data[xi];
                        else if (x->data[xi] > acc || best < 0) {
                            acc = x->data[xi];
                            best = xi;
                        }
                    }
                const int64_t yi = (c * Ho + i) * Wo + j;
                y->data[yi] = is_max ? acc : acc / static_cast<float>(k * k);
                if (is_max) (*arg)[yi] = best;
            }
    y->backward_fn = [NC, H, W, Ho, Wo, k, st, is_max, arg](node & s) {
        float * g = gbuf(s.inputs[0]);
        if (!g) return;
        for (int64_t c = 0; c < NC; ++c)
            for (int64_t i = 0; i < Ho; ++i)
                for (int64_t j = 0; j < Wo; ++j) {
                    const int64_t yi = (c * Ho + i) * Wo + j;
                    if (is_max) {
                        g[(*arg)[yi]] += s.grad[yi];
                        continue;
                    }
                    const float gv = s.grad[yi] / static_cast<float>(k * k);
                    for (int64_t a = 0; a < k; ++a)
                        for (int64_t b = 0; b < k; ++b) g[(c * H + i * st + a) * W + j * st + b] += gv;
                }
    };
    return y;
}

}  // namespace

value avg_pool2d(const value & x, int64_t kernel, int64_t stride) {
    return pool2d("avg_pool2d", x, kernel, stride, false);
}
value max_pool2d(const value & x, int64_t kernel, int64_t stride) {
    return pool2d("max_pool2d", x, kernel, stride, true);
}

value reshape(const value & x, std::vector<int64_t> shape) {
    if (numel_of(shape) != x->numel())
        fail("reshape", shape_str(x->shape) + " to " + shape_str(shape) + ": element counts differ");
    value y = make("reshape", std::move(shape), {x});
    y->data = x->data;
    y->backward_fn = [](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += s.grad[i];
    };
    return y;
}

value permute(const value & x, const std::vector<int> & perm) {
    const size_t r = x->shape.size();
    std::vector<int> check(perm);
    std::sort(check.begin(), check.end());
    for (size_t i = 0; i < check.size(); ++i)
        if (check.size() != r || check[i] != static_cast<int>(i)) fail("permute", "not a permutation of the axes");
    std::vector<int64_t> shape(r), xstride(r), ystride(r);
    for (size_t i = 0; i < r; ++i) shape[i] = x->shape[perm[i]];
    int64_t acc = 1;
    for (size_t i = r; i-- > 0;) {
        xstride[i] = acc;
        acc *= x->shape[i];
    }
    // map[y index] = x index
    auto map = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(x->numel()));
    std::vector<int64_t> idx(r, 0);
    for (int64_t yi = 0; yi < x->numel(); ++yi) {
        int64_t xi = 0;
        for (size_t i = 0; i < r; ++i) xi += idx[i] * xstride[perm[i]];
        (*map)[yi] = xi;
        for (size_t i = r; i-- > 0;) {
            if (++idx[i] < shape[i]) break;
            idx[i] = 0;
        }
    }
    value y = make("permute", shape, {x});
    for (int64_t yi = 0; yi < x->numel(); ++yi) y->data[yi] = x->data[(*map)[yi]];
    y->backward_fn = [map](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t yi = 0; yi < s.grad.size(); ++yi) g[(*map)[yi]] += s.grad[yi];
    };
    return y;
}

value concat(const std::vector<value> & xs, int axis) {
    if (xs.empty()) fail("concat", "no inputs");
    const auto & s0 = xs[0]->shape;
    const int r = static_cast<int>(s0.size());
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r) fail("concat", "axis out of range for " + shape_str(s0));
    int64_t outer = 1, inner = 1, total = 0;
    for (int i = 0; i < axis; ++i) outer *= s0[i];
    for (int i = axis + 1; i < r; ++i) inner *= s0[i];
    std::vector<int64_t> lens;
    for (const auto & x : xs) {
        if (x->shape.size() != s0.size()) fail("concat", shape_str(x->shape) + " vs " + shape_str(s0));
        for (int i = 0; i < r; ++i)
            if (i != axis && x->shape[i] != s0[i]) fail("concat", shape_str(x->shape) + " vs " + shape_str(s0));
        lens.push_back(x->shape[axis]);
        total += x->shape[axis];
    }
    std::vector<int64_t> shape = s0;
    shape[axis] = total;
    value y = make("concat", shape, xs);
    int64_t off = 0;
    for (size_t k = 0; k < xs.size(); ++k) {
        for (int64_t o = 0; o < outer; ++o)
            std::copy_n(xs[k]->data.data() + o * lens[k] * inner, lens[k] * inner,
                        y->data.data() + (o * total + off) * inner);
        off += lens[k];
    }
    y->backward_fn = [outer, inner, total, lens](node & s) {
        int64_t off = 0;
        for (size_t k = 0; k < lens.size(); ++k) {
            if (float * g = gbuf(s.inputs[k]))
                for (int64_t o = 0; o < outer; ++o)
                    for (int64_t i = 0; i < lens[k] * inner; ++i)
                        g[o * lens[k] * inner + i] += s.grad[(o * total + off) * inner + i];
            off += lens[k];
        }
    };
    return y;
}

value slice(const value & x, int axis, int64_t start, int64_t len) {
    const int r = static_cast<int>(x->shape.size());
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r || start < 0 || len < 1 || start + len > x->shape[axis])
        fail("slice", "axis " + std::to_string(axis) + " [" + std::to_string(start) + ", +" + std::to_string(len) +
                          ") of " + shape_str(x->shape));
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= x->shape[i];
    for (int i = axis + 1; i < r; ++i) inner *= x->shape[i];
    const int64_t full = x->shape[axis];
    std::vector<int64_t> shape = x->shape;
    shape[axis] = len;
    value y = make("slice", shape, {x});
    for (int64_t o = 0; o < outer; ++o)
        std::copy_n(x->data.data() + (o * full + start) * inner, len * inner, y->data.data() + o * len * inner);
    y->backward_fn = [outer, inner, full, start, len](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (int64_t o = 0; o < outer; ++o)
                for (int64_t i = 0; i < len * inner; ++i)
                    g[(o * full + start) * inner + i] += s.grad[o * len * inner + i];
    };
    return y;
}

value mean_rows(const value & x) {
    const int64_t d = x->shape.back(), n = x->numel() / d;
    value y = make("mean_rows", {1, d}, {x});
    for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < d; ++i) y->data[i] += x->data[t * d + i];
    for (auto & v : y->data) v /= static_cast<float>(n);
    y->backward_fn = [n, d](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (int64_t t = 0; t < n; ++t)
                for (int64_t i = 0; i < d; ++i) g[t * d + i] += s.grad[i] / static_cast<float>(n);
    };
    return y;
}

value sigmoid(const value & x) {
    value y = make("sigmoid", x->shape, {x});
    for (size_t i = 0; i < y->data.size(); ++i) y->data[i] = 1.0f / (1.0f + std::exp(-x->data[i]));
    y->backward_fn = [](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += s.grad[i] * s.data[i] * (1.0f - s.data[i]);
    };
    return y;
}

value exponential(const value & x) {
    value y = make("exponential", x->shape, {x});
    for (size_t i = 0; i < y->data.size(); ++i) y->data[i] = std::exp(x->data[i]);
    y->backward_fn = [](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += s.grad[i] * s.data[i];
    };
    return y;
}

value reciprocal(const value & x) {
    value y = make("reciprocal", x->shape, {x});
    for (size_t i = 0; i < y->data.size(); ++i) y->data[i] = 1.0f / x->data[i];
    y->backward_fn = [](node & s) {
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] -= s.grad[i] * s.data[i] * s.data[i];
    };
    return y;
}

value scale_by(const value & x, const value & sc) {
    if (sc->numel() != 1) fail("scale_by", "the scale must have one element, got " + shape_str(sc->shape));
    value y = make("scale_by", x->shape, {x, sc});
    const float f = sc->data[0];
    for (size_t i = 0; i < y->data.size(); ++i) y->data[i] = x->data[i] * f;
    y->backward_fn = [](node & s) {
        const auto & xd = s.inputs[0]->data;
        const float f = s.inputs[1]->data[0];
        if (float * g = gbuf(s.inputs[0]))
            for (size_t i = 0; i < s.grad.size(); ++i) g[i] += s.grad[i] * f;
        if (float * g = gbuf(s.inputs[1])) {
            double acc = 0;
            for (size_t i = 0; i < s.grad.size(); ++i) acc += s.grad[i] * xd[i];
            g[0] += static_cast<float>(acc);
        }
    };
    return y;
}

value cross_attention(const value & q, const value & k, const value & v, int64_t n_head, float scale) {
    const int64_t E = q->shape.back(), nq = q->numel() / E, nk = k->numel() / std::max<int64_t>(1, k->shape.back());
    if (n_head < 1 || E % n_head != 0 || k->shape.back() != E || v->shape != k->shape)
        fail("cross_attention", "q " + shape_str(q->shape) + ", k " + shape_str(k->shape) + ", v " +
                                    shape_str(v->shape) + ", heads " + std::to_string(n_head));
    const int64_t hd = E / n_head;
    value y = make("cross_attention", q->shape, {q, k, v});
    auto probs = std::make_shared<std::vector<float>>(static_cast<size_t>(n_head * nq * nk));
    for (int64_t h = 0; h < n_head; ++h)
        for (int64_t i = 0; i < nq; ++i) {
            float * p = probs->data() + (h * nq + i) * nk;
            const float * qi = q->data.data() + i * E + h * hd;
            float mx = -INFINITY;
            for (int64_t j = 0; j < nk; ++j) {
                const float * kj = k->data.data() + j * E + h * hd;
                float d = 0;
                for (int64_t c = 0; c < hd; ++c) d += qi[c] * kj[c];
                p[j] = d * scale;
                mx = std::max(mx, p[j]);
            }
            double se = 0;
            for (int64_t j = 0; j < nk; ++j) se += (p[j] = std::exp(p[j] - mx));
            for (int64_t j = 0; j < nk; ++j) p[j] = static_cast<float>(p[j] / se);
            float * yi = y->data.data() + i * E + h * hd;
            for (int64_t j = 0; j < nk; ++j) {
                const float * vj = v->data.data() + j * E + h * hd;
                for (int64_t c = 0; c < hd; ++c) yi[c] += p[j] * vj[c];
            }
        }
    y->backward_fn = [nq, nk, n_head, hd, E, scale, probs](node & s) {
        const auto & qd = s.inputs[0]->data;
        const auto & kd = s.inputs[1]->data;
        const auto & vd = s.inputs[2]->data;
        float * gq = gbuf(s.inputs[0]);
        float * gk = gbuf(s.inputs[1]);
        float * gv = gbuf(s.inputs[2]);
        std::vector<float> dp(static_cast<size_t>(nk));
        for (int64_t h = 0; h < n_head; ++h)
            for (int64_t i = 0; i < nq; ++i) {
                const float * p = probs->data() + (h * nq + i) * nk;
                const float * gy = s.grad.data() + i * E + h * hd;
                double pdp = 0;
                for (int64_t j = 0; j < nk; ++j) {
                    const float * vj = vd.data() + j * E + h * hd;
                    float d = 0;
                    for (int64_t c = 0; c < hd; ++c) d += gy[c] * vj[c];
                    dp[j] = d;
                    pdp += p[j] * d;
                    if (gv)
                        for (int64_t c = 0; c < hd; ++c) gv[j * E + h * hd + c] += p[j] * gy[c];
                }
                for (int64_t j = 0; j < nk; ++j) {
                    const float ds = p[j] * (dp[j] - static_cast<float>(pdp)) * scale;
                    if (ds == 0.0f) continue;
                    for (int64_t c = 0; c < hd; ++c) {
                        if (gq) gq[i * E + h * hd + c] += ds * kd[j * E + h * hd + c];
                        if (gk) gk[j * E + h * hd + c] += ds * qd[i * E + h * hd + c];
                    }
                }
            }
    };
    return y;
}

}  // namespace spider::train
