// Reference implementations of every op except matmul / get_rows (those live with the matmul kernels): the
// obvious loops of each definition, in double where a reduction is involved, so the optimised kernels in
// ops.cpp have something trustworthy to be compared against. Speed is not a goal here.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/ops.h"

namespace spider {
namespace ref {

void add(const float * a, const float * b, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void mul(const float * a, const float * b, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

void scale(const float * x, float s, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s;
}

void mul_row(const float * x, const float * w, float * y, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) y[r * n + i] = x[r * n + i] * w[i];
}

void add_row(const float * x, const float * b, float * y, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) y[r * n + i] = x[r * n + i] + b[i];
}

static float act_one(act_type a, float x) {
    const double v = x;
    switch (a) {
        case ACT_GELU_TANH: {
            const double c = std::sqrt(2.0 / M_PI);
            return static_cast<float>(0.5 * v * (1.0 + std::tanh(c * (v + 0.044715 * v * v * v))));
        }
        case ACT_GELU_ERF:
            return static_cast<float>(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
        case ACT_SILU:
            return static_cast<float>(v / (1.0 + std::exp(-v)));
        case ACT_RELU:
            return x > 0.0f ? x : 0.0f;
    }
    return x;
}

void activation(act_type a, const float * x, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = act_one(a, x[i]);
}

void glu(act_type a, const float * gate, const float * up, float * y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = act_one(a, gate[i]) * up[i];
}

void softmax_rows(const float * x, float * y, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; ++r) {
        const float * xr = x + r * n;
        float * yr = y + r * n;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < n; ++i) mx = std::max(mx, xr[i]);
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(xr[i]) - mx);
        for (int64_t i = 0; i < n; ++i) yr[i] = static_cast<float>(std::exp(static_cast<double>(xr[i]) - mx) / sum);
    }
}

void rms_norm(const float * x, const float * w, float * y, int64_t rows, int64_t n, float eps) {
    for (int64_t r = 0; r < rows; ++r) {
        const float * xr = x + r * n;
        double ss = 0.0;
        for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
        const double inv = 1.0 / std::sqrt(ss / n + eps);
        for (int64_t i = 0; i < n; ++i) y[r * n + i] = static_cast<float>(xr[i] * inv * (w ? w[i] : 1.0f));
    }
}

void layer_norm(const float * x, const float * w, const float * b, float * y, int64_t rows, int64_t n, float eps) {
    for (int64_t r = 0; r < rows; ++r) {
        const float * xr = x + r * n;
        double mean = 0.0;
        for (int64_t i = 0; i < n; ++i) mean += xr[i];
        mean /= n;
        double var = 0.0;
        for (int64_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        var /= n;
        const double inv = 1.0 / std::sqrt(var + eps);
        for (int64_t i = 0; i < n; ++i) {
            double v = (xr[i] - mean) * inv;
            if (w) v *= w[i];
            if (b) v += b[i];
            y[r * n + i] = static_cast<float>(v);
        }
    }
}

void group_norm(const float * x, const float * w, const float * b, float * y, int64_t C, int64_t HW, int64_t n_groups,
                float eps) {
    const int64_t cg = C / n_groups;
    for (int64_t g = 0; g < n_groups; ++g) {
        const float * xg = x + g * cg * HW;
        const int64_t m = cg * HW;
        double mean = 0.0;
        for (int64_t i = 0; i < m; ++i) mean += xg[i];
        mean /= m;
        double var = 0.0;
        for (int64_t i = 0; i < m; ++i) var += (xg[i] - mean) * (xg[i] - mean);
        var /= m;
        const double inv = 1.0 / std::sqrt(var + eps);
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
            for (int64_t i = 0; i < HW; ++i) {
                double v = (x[c * HW + i] - mean) * inv;
                if (w) v *= w[c];
                if (b) v += b[c];
                y[c * HW + i] = static_cast<float>(v);
            }
        }
    }
}

void rope(float * x, const int32_t * pos, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot,
          float freq_base, float freq_scale, rope_mode mode, const float * freq_factors) {
    const int64_t half = n_rot / 2;
    for (int64_t t = 0; t < n_tok; ++t) {
        for (int64_t h = 0; h < n_head; ++h) {
            float * v = x + (t * n_head + h) * head_dim;
            for (int64_t i = 0; i < half; ++i) {
                // theta_i = pos * base^(-2i/n_rot) * freq_scale / factor_i (llama.cpp's rope with ext_factor 0)
                const double theta = static_cast<double>(pos[t]) *
                                     std::pow(static_cast<double>(freq_base), -2.0 * i / n_rot) * freq_scale /
                                     (freq_factors ? static_cast<double>(freq_factors[i]) : 1.0);
                const double c = std::cos(theta), s = std::sin(theta);
                const int64_t i0 = mode == ROPE_MODE_NEOX ? i : 2 * i;
                const int64_t i1 = mode == ROPE_MODE_NEOX ? i + half : 2 * i + 1;
                const double a = v[i0], b = v[i1];
                v[i0] = static_cast<float>(a * c - b * s);
                v[i1] = static_cast<float>(a * s + b * c);
            }
        }
    }
}

void attention(const float * q, const float * k, const float * v, float * out, int64_t n_q, int64_t n_kv,
               int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, bool causal, int64_t q_pos0,
               int64_t window, thread_pool * pool) {
    const int64_t group = n_head / n_head_kv;
    std::vector<double> logit(static_cast<size_t>(n_kv));
    for (int64_t h = 0; h < n_head; ++h) {
        const int64_t hk = h / group;
        for (int64_t i = 0; i < n_q; ++i) {
            const float * qi = q + (i * n_head + h) * head_dim;
            float * oi = out + (i * n_head + h) * head_dim;
            const int64_t qpos = q_pos0 + i;
            double mx = -std::numeric_limits<double>::infinity();
            for (int64_t j = 0; j < n_kv; ++j) {
                const bool visible = (!causal || j <= qpos) && (window <= 0 || qpos - j < window);
                if (!visible) {
                    logit[j] = -std::numeric_limits<double>::infinity();
                    continue;
                }
                const float * kj = k + (j * n_head_kv + hk) * head_dim;
                double d = 0.0;
                for (int64_t e = 0; e < head_dim; ++e) d += static_cast<double>(qi[e]) * kj[e];
                logit[j] = d * scale;
                mx = std::max(mx, logit[j]);
            }
            for (int64_t e = 0; e < head_dim; ++e) oi[e] = 0.0f;
            if (mx == -std::numeric_limits<double>::infinity()) continue;  // no visible key: output zeros
            double sum = 0.0;
            std::vector<double> acc(static_cast<size_t>(head_dim), 0.0);
            for (int64_t j = 0; j < n_kv; ++j) {
                if (logit[j] == -std::numeric_limits<double>::infinity()) continue;
                const double p = std::exp(logit[j] - mx);
                sum += p;
                const float * vj = v + (j * n_head_kv + hk) * head_dim;
                for (int64_t e = 0; e < head_dim; ++e) acc[e] += p * vj[e];
            }
            for (int64_t e = 0; e < head_dim; ++e) oi[e] = static_cast<float>(acc[e] / sum);
        }
    }
}

void conv1d(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t L, int64_t C_out,
            int64_t K, int64_t stride, int64_t pad, thread_pool * pool) {
    const int64_t L_out = (L + 2 * pad - K) / stride + 1;
    for (int64_t o = 0; o < C_out; ++o) {
        for (int64_t l = 0; l < L_out; ++l) {
            double s = b ? b[o] : 0.0;
            for (int64_t c = 0; c < C_in; ++c) {
                for (int64_t kk = 0; kk < K; ++kk) {
                    const int64_t li = l * stride - pad + kk;
                    if (li < 0 || li >= L) continue;
                    s += static_cast<double>(w[(o * C_in + c) * K + kk]) * x[c * L + li];
                }
            }
            y[o * L_out + l] = static_cast<float>(s);
        }
    }
}

void conv2d(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t H, int64_t W,
            int64_t C_out, int64_t KH, int64_t KW, int64_t stride, int64_t pad, thread_pool * pool) {
    const int64_t H_out = (H + 2 * pad - KH) / stride + 1;
    const int64_t W_out = (W + 2 * pad - KW) / stride + 1;
    for (int64_t o = 0; o < C_out; ++o) {
        for (int64_t oy = 0; oy < H_out; ++oy) {
            for (int64_t ox = 0; ox < W_out; ++ox) {
                double s = b ? b[o] : 0.0;
                for (int64_t c = 0; c < C_in; ++c) {
                    for (int64_t ky = 0; ky < KH; ++ky) {
                        const int64_t iy = oy * stride - pad + ky;
                        if (iy < 0 || iy >= H) continue;
                        for (int64_t kx = 0; kx < KW; ++kx) {
                            const int64_t ix = ox * stride - pad + kx;
                            if (ix < 0 || ix >= W) continue;
                            s +=
                                static_cast<double>(w[((o * C_in + c) * KH + ky) * KW + kx]) * x[(c * H + iy) * W + ix];
                        }
                    }
                }
                y[(o * H_out + oy) * W_out + ox] = static_cast<float>(s);
            }
        }
    }
}

void conv_transpose2d(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t H, int64_t W,
                      int64_t C_out, int64_t KH, int64_t KW, int64_t stride, int64_t pad, thread_pool * pool) {
    // Output size as in PyTorch with output_padding 0 and dilation 1.
    const int64_t H_out = (H - 1) * stride - 2 * pad + KH;
    const int64_t W_out = (W - 1) * stride - 2 * pad + KW;
    // Gather form: y[o, oy, ox] = b[o] + sum over (c, iy, ix, ky, kx) with oy = iy*stride - pad + ky.
    for (int64_t o = 0; o < C_out; ++o) {
        for (int64_t oy = 0; oy < H_out; ++oy) {
            for (int64_t ox = 0; ox < W_out; ++ox) {
                double s = b ? b[o] : 0.0;
                for (int64_t c = 0; c < C_in; ++c) {
                    for (int64_t ky = 0; ky < KH; ++ky) {
                        const int64_t ny = oy + pad - ky;
                        if (ny < 0 || ny % stride != 0 || ny / stride >= H) continue;
                        for (int64_t kx = 0; kx < KW; ++kx) {
                            const int64_t nx = ox + pad - kx;
                            if (nx < 0 || nx % stride != 0 || nx / stride >= W) continue;
                            s += static_cast<double>(w[((c * C_out + o) * KH + ky) * KW + kx]) *
                                 x[(c * H + ny / stride) * W + nx / stride];
                        }
                    }
                }
                y[(o * H_out + oy) * W_out + ox] = static_cast<float>(s);
            }
        }
    }
}

void conv_temporal(const float * x, const float * w, const float * b, float * y, int64_t C_in, int64_t T, int64_t HW,
                   int64_t C_out, int64_t KT, thread_pool * pool) {
    const int64_t pad = (KT - 1) / 2;  // "same" padding for odd KT, as the (2+1)-D video UNets use
    for (int64_t o = 0; o < C_out; ++o) {
        for (int64_t t = 0; t < T; ++t) {
            for (int64_t p = 0; p < HW; ++p) {
                double s = b ? b[o] : 0.0;
                for (int64_t c = 0; c < C_in; ++c) {
                    for (int64_t kt = 0; kt < KT; ++kt) {
                        const int64_t ti = t - pad + kt;
                        if (ti < 0 || ti >= T) continue;
                        s += static_cast<double>(w[(o * C_in + c) * KT + kt]) * x[(c * T + ti) * HW + p];
                    }
                }
                y[(o * T + t) * HW + p] = static_cast<float>(s);
            }
        }
    }
}

void upsample_nearest2d(const float * x, float * y, int64_t C, int64_t H, int64_t W, int64_t f) {
    const int64_t Ho = H * f, Wo = W * f;
    for (int64_t c = 0; c < C; ++c)
        for (int64_t oy = 0; oy < Ho; ++oy)
            for (int64_t ox = 0; ox < Wo; ++ox) y[(c * Ho + oy) * Wo + ox] = x[(c * H + oy / f) * W + ox / f];
}

void avg_pool2d(const float * x, float * y, int64_t C, int64_t H, int64_t W, int64_t k) {
    const int64_t Ho = H / k, Wo = W / k;
    for (int64_t c = 0; c < C; ++c)
        for (int64_t oy = 0; oy < Ho; ++oy)
            for (int64_t ox = 0; ox < Wo; ++ox) {
                double s = 0.0;
                for (int64_t ky = 0; ky < k; ++ky)
                    for (int64_t kx = 0; kx < k; ++kx) s += x[(c * H + oy * k + ky) * W + ox * k + kx];
                y[(c * Ho + oy) * Wo + ox] = static_cast<float>(s / (k * k));
            }
}

void max_pool2d(const float * x, float * y, int64_t C, int64_t H, int64_t W, int64_t k) {
    const int64_t Ho = H / k, Wo = W / k;
    for (int64_t c = 0; c < C; ++c)
        for (int64_t oy = 0; oy < Ho; ++oy)
            for (int64_t ox = 0; ox < Wo; ++ox) {
                float m = -std::numeric_limits<float>::infinity();
                for (int64_t ky = 0; ky < k; ++ky)
                    for (int64_t kx = 0; kx < k; ++kx) m = std::max(m, x[(c * H + oy * k + ky) * W + ox * k + kx]);
                y[(c * Ho + oy) * Wo + ox] = m;
            }
}

void permute(const float * x, float * y, const int64_t ne[4], const int perm[4]) {
    int64_t one[4];  // output shape
    for (int d = 0; d < 4; ++d) one[d] = ne[perm[d]];
    int64_t in_stride[4] = {1, ne[0], ne[0] * ne[1], ne[0] * ne[1] * ne[2]};
    int64_t idx = 0;
    for (int64_t i3 = 0; i3 < one[3]; ++i3)
        for (int64_t i2 = 0; i2 < one[2]; ++i2)
            for (int64_t i1 = 0; i1 < one[1]; ++i1)
                for (int64_t i0 = 0; i0 < one[0]; ++i0) {
                    const int64_t oi[4] = {i0, i1, i2, i3};
                    int64_t src = 0;
                    for (int d = 0; d < 4; ++d) src += oi[d] * in_stride[perm[d]];
                    y[idx++] = x[src];
                }
}

void concat(const float * a, const int64_t ne_a[4], const float * b, const int64_t ne_b[4], int dim, float * y) {
    int64_t ne_y[4];
    for (int d = 0; d < 4; ++d) ne_y[d] = d == dim ? ne_a[d] + ne_b[d] : ne_a[d];
    int64_t idx = 0;
    for (int64_t i3 = 0; i3 < ne_y[3]; ++i3)
        for (int64_t i2 = 0; i2 < ne_y[2]; ++i2)
            for (int64_t i1 = 0; i1 < ne_y[1]; ++i1)
                for (int64_t i0 = 0; i0 < ne_y[0]; ++i0) {
                    int64_t i[4] = {i0, i1, i2, i3};
                    if (i[dim] < ne_a[dim]) {
                        y[idx++] = a[((i[3] * ne_a[2] + i[2]) * ne_a[1] + i[1]) * ne_a[0] + i[0]];
                    } else {
                        i[dim] -= ne_a[dim];
                        y[idx++] = b[((i[3] * ne_b[2] + i[2]) * ne_b[1] + i[1]) * ne_b[0] + i[0]];
                    }
                }
}

}  // namespace ref
}  // namespace spider
