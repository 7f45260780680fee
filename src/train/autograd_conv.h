// More autograd ops (issue 5): convolutions, GroupNorm, resampling, pooling, and the shape / attention pieces the
// UDP and the decoders need on the tape. Same conventions as train/autograd.h (row-major, last dimension
// innermost); image-like tensors are channel-first with a batch dimension, as in PyTorch:
//   conv1d    x [N, C, L]          W [C_out, C/groups, K]
//   conv2d    x [N, C, H, W]       W [C_out, C/groups, KH, KW]
//   conv3d    x [N, C, D, H, W]    W [C_out, C/groups, KD, KH, KW]
//   conv_transpose2d x [N, C, H, W]  W [C, C_out/groups, KH, KW]   (PyTorch's ConvTranspose2d layout)
// Biases are [C_out] or nullptr. Every backward is checked against finite differences in
// tests/test_autograd_conv.cpp.
#pragma once
#include <cstdint>
#include <vector>

#include "train/autograd.h"

namespace spider::train {

struct conv_opts {
    int64_t stride = 1;
    int64_t padding = 0;
    int64_t dilation = 1;
    int64_t groups = 1;
    int64_t output_padding = 0;  // transposed convolutions only
};

value conv1d(const value & x, const value & W, const value & b, const conv_opts & o = {});
value conv2d(const value & x, const value & W, const value & b, const conv_opts & o = {});
value conv3d(const value & x, const value & W, const value & b, const conv_opts & o = {});
value conv_transpose2d(const value & x, const value & W, const value & b, const conv_opts & o = {});
// (2+1)-D convolution as video UNets factor it: a spatial conv2d per frame, then a temporal conv1d per pixel.
// x [N, C, T, H, W]; Ws [C_mid, C, KH, KW]; Wt [C_out, C_mid, KT]; padding keeps sizes with odd kernels.
value conv2plus1d(const value & x, const value & Ws, const value & bs, const value & Wt, const value & bt);

// GroupNorm over x [N, C, ...]: statistics per (sample, group of C/groups channels); affine w, b [C] (or nullptr).
value group_norm(const value & x, int64_t groups, const value & w, const value & b, float eps);

// Resampling and pooling of x [N, C, H, W].
value upsample_nearest2d(const value & x, int64_t factor);
value avg_pool2d(const value & x, int64_t kernel, int64_t stride);
value max_pool2d(const value & x, int64_t kernel, int64_t stride);

// Shapes.
value reshape(const value & x, std::vector<int64_t> shape);     // same number of elements
value permute(const value & x, const std::vector<int> & perm);  // y.shape[i] = x.shape[perm[i]]
value concat(const std::vector<value> & xs, int axis);          // same shapes except along axis
value slice(const value & x, int axis, int64_t start, int64_t len);
value mean_rows(const value & x);  // x [n, d] -> [1, d]

// Elementwise extras.
value sigmoid(const value & x);
value exponential(const value & x);
value reciprocal(const value & x);
value scale_by(const value & x, const value & s);  // x * s for a one-element s (gradient to both)

// Multi-head attention of nq queries over nk keys/values (no mask), e.g. cross-attention of a decoder over an
// encoder memory: q [nq, n_head*hd], k and v [nk, n_head*hd] -> [nq, n_head*hd].
value cross_attention(const value & q, const value & k, const value & v, int64_t n_head, float scale);

}  // namespace spider::train
