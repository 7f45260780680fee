// `spider test-ops [--op NAME] [--perf] [-t N]`: the op harness from the command line. Check mode runs every
// optimised op (spider::X) against its reference (spider::ref::X) on random shapes, odd sizes included, and
// matmul / get_rows for every weight dtype; perf mode prints, per op and shape, the time, GFLOP/s and GB/s of
// the reference and the optimised op at -t threads (matmul in decode shape, n_tok 1, and prompt shape, n_tok 512).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "command.h"
#include "core/cpu_features.h"
#include "core/ops.h"
#include "core/quants.h"
#include "core/threadpool.h"

using namespace spider;

namespace {

std::vector<float> rand_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto & x : v) x = d(g);
    return v;
}

double rel_err(const std::vector<float> & a, const std::vector<float> & b) {
    double mb = 1.0, e = 0.0;
    for (float v : b) mb = std::max(mb, static_cast<double>(std::fabs(v)));
    for (size_t i = 0; i < a.size(); ++i) {
        const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
        if (!(d <= e)) e = std::isnan(d) ? INFINITY : d;
    }
    return e / mb;
}

// A quantized weight matrix that owns its bytes: n_out rows of n_in values of type t.
struct weight {
    std::vector<uint8_t> bytes;
    tensor t;
};

bool make_weight(dtype type, int64_t n_in, int64_t n_out, uint32_t seed, weight & w, std::string * err) {
    const size_t rb = dtype_row_bytes(type, n_in);
    if (rb == 0) {
        *err = std::string("row of ") + std::to_string(n_in) + " not valid for " + dtype_name(type);
        return false;
    }
    w.bytes.assign(rb * static_cast<size_t>(n_out), 0);
    const std::vector<float> src = rand_vec(static_cast<size_t>(n_in * n_out), seed);
    for (int64_t r = 0; r < n_out; ++r) {
        if (!quantize_row(type, src.data() + r * n_in, w.bytes.data() + r * rb, n_in)) {
            *err = std::string("quantize_row failed for ") + dtype_name(type);
            return false;
        }
    }
    w.t = make_tensor(type, w.bytes.data(), n_in, n_out);
    return true;
}

const dtype WEIGHT_TYPES[] = {DTYPE_F32,  DTYPE_F16,  DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0,
                              DTYPE_Q5_0, DTYPE_Q4_K, DTYPE_Q5_K, DTYPE_Q6_K};

// ---- check mode

struct check_case {
    std::string op, shape;
    double tol;
    std::function<double(thread_pool *)> run;  // returns the error of optimised vs reference
};

std::vector<check_case> check_cases() {
    std::vector<check_case> cs;
    for (int64_t n : {7, 4099}) {
        for (int a = 0; a < 4; ++a) {
            cs.push_back({"activation", "act" + std::to_string(a) + " n" + std::to_string(n), 4e-6, [=](thread_pool *) {
                              auto x = rand_vec(n, 1, -8, 8);
                              std::vector<float> y0(n), y1(n);
                              ref::activation(static_cast<act_type>(a), x.data(), y0.data(), n);
                              activation(static_cast<act_type>(a), x.data(), y1.data(), n);
                              return rel_err(y1, y0);
                          }});
            cs.push_back({"glu", "act" + std::to_string(a) + " n" + std::to_string(n), 4e-6, [=](thread_pool *) {
                              auto g = rand_vec(n, 2, -8, 8), u = rand_vec(n, 3);
                              std::vector<float> y0(n), y1(n);
                              ref::glu(static_cast<act_type>(a), g.data(), u.data(), y0.data(), n);
                              glu(static_cast<act_type>(a), g.data(), u.data(), y1.data(), n);
                              return rel_err(y1, y0);
                          }});
        }
        cs.push_back({"elementwise", "n" + std::to_string(n), 0.0, [=](thread_pool *) {
                          auto a = rand_vec(n, 4), b = rand_vec(n, 5);
                          std::vector<float> y0(n), y1(n), z0(n), z1(n);
                          ref::add(a.data(), b.data(), y0.data(), n);
                          add(a.data(), b.data(), y1.data(), n);
                          ref::mul(a.data(), b.data(), z0.data(), n);
                          mul(a.data(), b.data(), z1.data(), n);
                          return std::max(rel_err(y1, y0), rel_err(z1, z0));
                      }});
    }
    for (int64_t n : {13, 2048, 4097}) {
        const int64_t rows = 3;
        cs.push_back({"softmax", "3x" + std::to_string(n), 1e-6, [=](thread_pool *) {
                          auto x = rand_vec(rows * n, 6, -8, 8);
                          std::vector<float> y0(rows * n), y1(rows * n);
                          ref::softmax_rows(x.data(), y0.data(), rows, n);
                          softmax_rows(x.data(), y1.data(), rows, n);
                          return rel_err(y1, y0);
                      }});
        cs.push_back({"rms_norm", "3x" + std::to_string(n), 1e-5, [=](thread_pool *) {
                          auto x = rand_vec(rows * n, 7), w = rand_vec(n, 8);
                          std::vector<float> y0(rows * n), y1(rows * n);
                          ref::rms_norm(x.data(), w.data(), y0.data(), rows, n, 1e-6f);
                          rms_norm(x.data(), w.data(), y1.data(), rows, n, 1e-6f);
                          return rel_err(y1, y0);
                      }});
        cs.push_back({"layer_norm", "3x" + std::to_string(n), 1e-5, [=](thread_pool *) {
                          auto x = rand_vec(rows * n, 9), w = rand_vec(n, 10), b = rand_vec(n, 11);
                          std::vector<float> y0(rows * n), y1(rows * n);
                          ref::layer_norm(x.data(), w.data(), b.data(), y0.data(), rows, n, 1e-5f);
                          layer_norm(x.data(), w.data(), b.data(), y1.data(), rows, n, 1e-5f);
                          return rel_err(y1, y0);
                      }});
    }
    cs.push_back({"group_norm", "64x100 g32", 1e-5, [](thread_pool *) {
                      auto x = rand_vec(6400, 12, -2, 3), w = rand_vec(64, 13), b = rand_vec(64, 14);
                      std::vector<float> y0(6400), y1(6400);
                      ref::group_norm(x.data(), w.data(), b.data(), y0.data(), 64, 100, 32, 1e-6f);
                      group_norm(x.data(), w.data(), b.data(), y1.data(), 64, 100, 32, 1e-6f);
                      return rel_err(y1, y0);
                  }});
    for (int mode : {0, 2}) {
        cs.push_back({"rope", std::string(mode ? "neox" : "normal") + " 5x4x80 rot64", 2e-6, [=](thread_pool *) {
                          auto x = rand_vec(5 * 4 * 80, 15);
                          std::vector<int32_t> pos = {0, 1, 77, 1000, 4095};
                          std::vector<float> y0 = x, y1 = x;
                          ref::rope(y0.data(), pos.data(), 5, 4, 80, 64, 10000.0f, 1.0f, static_cast<rope_mode>(mode));
                          rope(y1.data(), pos.data(), 5, 4, 80, 64, 10000.0f, 1.0f, static_cast<rope_mode>(mode));
                          return rel_err(y1, y0);
                      }});
    }
    struct attn_shape {
        int64_t nq, nkv, nh, nhkv, hd, pos0, win;
        bool causal;
    };
    for (attn_shape s : {attn_shape{1, 1000, 8, 2, 64, 999, 0, true}, attn_shape{37, 37, 4, 4, 17, 0, 0, true},
                         attn_shape{20, 60, 6, 3, 32, 40, 9, true}, attn_shape{9, 300, 2, 1, 16, 0, 0, false}}) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "q%lld kv%lld h%lld/%lld d%lld w%lld", (long long)s.nq, (long long)s.nkv,
                      (long long)s.nh, (long long)s.nhkv, (long long)s.hd, (long long)s.win);
        cs.push_back({"attention", buf, 2e-5, [=](thread_pool * pool) {
                          auto q = rand_vec(s.nq * s.nh * s.hd, 16), k = rand_vec(s.nkv * s.nhkv * s.hd, 17),
                               v = rand_vec(s.nkv * s.nhkv * s.hd, 18);
                          std::vector<float> y0(q.size()), y1(q.size());
                          const float sc = 1.0f / std::sqrt(static_cast<float>(s.hd));
                          ref::attention(q.data(), k.data(), v.data(), y0.data(), s.nq, s.nkv, s.nh, s.nhkv, s.hd, sc,
                                         s.causal, s.pos0, s.win, nullptr);
                          attention(q.data(), k.data(), v.data(), y1.data(), s.nq, s.nkv, s.nh, s.nhkv, s.hd, sc,
                                    s.causal, s.pos0, s.win, pool);
                          return rel_err(y1, y0);
                      }});
    }
    cs.push_back({"conv2d", "8x17x15 -> 11 k3 s1 p1", 1e-5, [](thread_pool * pool) {
                      auto x = rand_vec(8 * 17 * 15, 19), w = rand_vec(11 * 8 * 9, 20), b = rand_vec(11, 21);
                      std::vector<float> y0(11 * 17 * 15), y1(y0.size());
                      ref::conv2d(x.data(), w.data(), b.data(), y0.data(), 8, 17, 15, 11, 3, 3, 1, 1, nullptr);
                      conv2d(x.data(), w.data(), b.data(), y1.data(), 8, 17, 15, 11, 3, 3, 1, 1, pool);
                      return rel_err(y1, y0);
                  }});
    cs.push_back({"conv_transpose2d", "6x9x7 -> 5 k4 s2 p1", 1e-5, [](thread_pool * pool) {
                      auto x = rand_vec(6 * 9 * 7, 22), w = rand_vec(6 * 5 * 16, 23), b = rand_vec(5, 24);
                      std::vector<float> y0(5 * 18 * 14), y1(y0.size());
                      ref::conv_transpose2d(x.data(), w.data(), b.data(), y0.data(), 6, 9, 7, 5, 4, 4, 2, 1, nullptr);
                      conv_transpose2d(x.data(), w.data(), b.data(), y1.data(), 6, 9, 7, 5, 4, 4, 2, 1, pool);
                      return rel_err(y1, y0);
                  }});
    cs.push_back({"conv1d", "5x101 -> 7 k5 s2 p2", 1e-5, [](thread_pool * pool) {
                      auto x = rand_vec(5 * 101, 25), w = rand_vec(7 * 5 * 5, 26), b = rand_vec(7, 27);
                      std::vector<float> y0(7 * 51), y1(y0.size());
                      ref::conv1d(x.data(), w.data(), b.data(), y0.data(), 5, 101, 7, 5, 2, 2, nullptr);
                      conv1d(x.data(), w.data(), b.data(), y1.data(), 5, 101, 7, 5, 2, 2, pool);
                      return rel_err(y1, y0);
                  }});
    cs.push_back({"conv_temporal", "6x5x33 -> 4 k3", 1e-5, [](thread_pool * pool) {
                      auto x = rand_vec(6 * 5 * 33, 28), w = rand_vec(4 * 6 * 3, 29), b = rand_vec(4, 30);
                      std::vector<float> y0(4 * 5 * 33), y1(y0.size());
                      ref::conv_temporal(x.data(), w.data(), b.data(), y0.data(), 6, 5, 33, 4, 3, nullptr);
                      conv_temporal(x.data(), w.data(), b.data(), y1.data(), 6, 5, 33, 4, 3, pool);
                      return rel_err(y1, y0);
                  }});
    cs.push_back({"pool", "3x10x9 k2 avg/max/up", 1e-6, [](thread_pool *) {
                      auto x = rand_vec(3 * 10 * 9, 31);
                      std::vector<float> a0(3 * 5 * 4), a1(a0.size()), m0(a0.size()), m1(a0.size()), u0(3 * 20 * 18),
                          u1(u0.size());
                      ref::avg_pool2d(x.data(), a0.data(), 3, 10, 9, 2);
                      avg_pool2d(x.data(), a1.data(), 3, 10, 9, 2);
                      ref::max_pool2d(x.data(), m0.data(), 3, 10, 9, 2);
                      max_pool2d(x.data(), m1.data(), 3, 10, 9, 2);
                      ref::upsample_nearest2d(x.data(), u0.data(), 3, 10, 9, 2);
                      upsample_nearest2d(x.data(), u1.data(), 3, 10, 9, 2);
                      return std::max({rel_err(a1, a0), rel_err(m1, m0), rel_err(u1, u0)});
                  }});
    cs.push_back({"permute", "5x3x4x2 all perms + concat", 0.0, [](thread_pool *) {
                      const int64_t ne[4] = {5, 3, 4, 2};
                      auto x = rand_vec(120, 32);
                      int perm[4] = {0, 1, 2, 3};
                      double e = 0.0;
                      do {
                          std::vector<float> y0(120), y1(120);
                          ref::permute(x.data(), y0.data(), ne, perm);
                          permute(x.data(), y1.data(), ne, perm);
                          e = std::max(e, rel_err(y1, y0));
                      } while (std::next_permutation(perm, perm + 4));
                      for (int d = 0; d < 4; ++d) {
                          std::vector<float> y0(240), y1(240);
                          ref::concat(x.data(), ne, x.data(), ne, d, y0.data());
                          concat(x.data(), ne, x.data(), ne, d, y1.data());
                          e = std::max(e, rel_err(y1, y0));
                      }
                      return e;
                  }});
    // matmul / get_rows for every weight dtype against the reference on the same (quantized) weights. The
    // optimised kernels may quantize activations (Q8) for quantized weights, hence the looser tolerance there.
    for (dtype t : WEIGHT_TYPES) {
        for (int64_t n_tok : {1, 7}) {
            const double tol = (t == DTYPE_F32 || t == DTYPE_F16 || t == DTYPE_BF16) ? 1e-4 : 2e-2;
            cs.push_back({"matmul", std::string(dtype_name(t)) + " 512x67 tok" + std::to_string(n_tok), tol,
                          [=](thread_pool * pool) {
                              weight w;
                              std::string err;
                              if (!make_weight(t, 512, 67, 33, w, &err)) return static_cast<double>(INFINITY);
                              auto x = rand_vec(512 * n_tok, 34);
                              std::vector<float> y0(67 * n_tok), y1(y0.size());
                              ref::matmul(w.t, x.data(), y0.data(), n_tok, nullptr);
                              matmul(w.t, x.data(), y1.data(), n_tok, pool);
                              return rel_err(y1, y0);
                          }});
        }
        cs.push_back({"get_rows", dtype_name(t), 0.0, [=](thread_pool *) {
                          weight w;
                          std::string err;
                          if (!make_weight(t, 256, 40, 35, w, &err)) return static_cast<double>(INFINITY);
                          std::vector<int32_t> ids = {0, 39, 7, 7, 20};
                          std::vector<float> y0(256 * ids.size()), y1(y0.size());
                          ref::get_rows(w.t, ids.data(), ids.size(), y0.data());
                          get_rows(w.t, ids.data(), ids.size(), y1.data());
                          return rel_err(y1, y0);
                      }});
    }
    return cs;
}

// ---- perf mode

struct perf_case {
    std::string op, shape;
    double flops, bytes;           // per call
    std::function<void()> ref_fn;  // empty: reference too slow for this shape, not timed
    std::function<void(thread_pool *)> opt_fn;
};

// Best-of time in seconds: repeats until ~0.3 s of work (at least 2 runs, one for a slow reference).
double cpu_seconds() {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Best-of wall time in seconds, and the best process CPU time per call in *cpu_s (all threads together; with
// one thread it is what the wall time would be on an idle machine, which a shared machine rarely is).
double time_best(const std::function<void()> & fn, double budget_s, double * cpu_s = nullptr) {
    using clk = std::chrono::steady_clock;
    double best = INFINITY, best_cpu = INFINITY, total = 0.0;
    for (int i = 0; i < 1000; ++i) {
        const double c0 = cpu_seconds();
        const auto t0 = clk::now();
        fn();
        const double dt = std::chrono::duration<double>(clk::now() - t0).count();
        best_cpu = std::min(best_cpu, cpu_seconds() - c0);
        best = std::min(best, dt);
        total += dt;
        if (total > budget_s && i >= 1) break;
        if (dt > budget_s) break;
    }
    if (cpu_s) *cpu_s = best_cpu;
    return best;
}

// Inputs shared by the perf cases (kept alive by shared_ptr captures).
using buf = std::shared_ptr<std::vector<float>>;
buf mk(size_t n, uint32_t seed) {
    return std::make_shared<std::vector<float>>(rand_vec(n, seed));
}

std::vector<perf_case> perf_cases() {
    std::vector<perf_case> ps;
    auto add_unary = [&](const std::string & op, const std::string & shape, int64_t n, double flops_per,
                         std::function<void(const float *, float *)> r, std::function<void(const float *, float *)> o) {
        buf x = mk(n, 1), y = mk(n, 2);
        ps.push_back({op, shape, flops_per * n, 8.0 * n, [=] { r(x->data(), y->data()); },
                      [=](thread_pool *) { o(x->data(), y->data()); }});
    };
    const int64_t T = 512, D = 2048, F = 5632;
    add_unary(
        "rms_norm", "512x2048", T * D, 3, [=](const float * x, float * y) { ref::rms_norm(x, x, y, T, D, 1e-6f); },
        [=](const float * x, float * y) { rms_norm(x, x, y, T, D, 1e-6f); });
    add_unary(
        "layer_norm", "512x2048", T * D, 5,
        [=](const float * x, float * y) { ref::layer_norm(x, x, x, y, T, D, 1e-5f); },
        [=](const float * x, float * y) { layer_norm(x, x, x, y, T, D, 1e-5f); });
    add_unary(
        "group_norm", "320x4096 g32", 320 * 4096, 5,
        [=](const float * x, float * y) { ref::group_norm(x, x, x, y, 320, 4096, 32, 1e-6f); },
        [=](const float * x, float * y) { group_norm(x, x, x, y, 320, 4096, 32, 1e-6f); });
    add_unary(
        "softmax", "32x2048", 32 * 2048, 4, [=](const float * x, float * y) { ref::softmax_rows(x, y, 32, 2048); },
        [=](const float * x, float * y) { softmax_rows(x, y, 32, 2048); });
    for (int a : {ACT_GELU_TANH, ACT_GELU_ERF, ACT_SILU}) {
        const char * nm[] = {"gelu_tanh", "gelu_erf", "silu"};
        add_unary(
            std::string("act ") + nm[a], "512x5632", T * F, 10,
            [=](const float * x, float * y) { ref::activation(static_cast<act_type>(a), x, y, T * F); },
            [=](const float * x, float * y) { activation(static_cast<act_type>(a), x, y, T * F); });
    }
    {
        buf g = mk(T * F, 3), u = mk(T * F, 4), y = mk(T * F, 5);
        ps.push_back({"glu silu", "512x5632", 12.0 * T * F, 12.0 * T * F,
                      [=] { ref::glu(ACT_SILU, g->data(), u->data(), y->data(), T * F); },
                      [=](thread_pool *) { glu(ACT_SILU, g->data(), u->data(), y->data(), T * F); }});
        ps.push_back({"add", "512x5632", 1.0 * T * F, 12.0 * T * F,
                      [=] { ref::add(g->data(), u->data(), y->data(), T * F); },
                      [=](thread_pool *) { add(g->data(), u->data(), y->data(), T * F); }});
    }
    {
        buf x = mk(T * 32 * 64, 6);
        std::shared_ptr<std::vector<int32_t>> pos = std::make_shared<std::vector<int32_t>>(T);
        for (int64_t i = 0; i < T; ++i) (*pos)[i] = static_cast<int32_t>(i);
        ps.push_back(
            {"rope neox", "512 tok x 32 heads x 64", 6.0 * T * 32 * 32, 8.0 * T * 32 * 64,
             [=] { ref::rope(x->data(), pos->data(), T, 32, 64, 64, 10000.0f, 1.0f, ROPE_MODE_NEOX); },
             [=](thread_pool *) { rope(x->data(), pos->data(), T, 32, 64, 64, 10000.0f, 1.0f, ROPE_MODE_NEOX); }});
    }
    // attention: decode (one query over 2048 keys) and a 512 x 512 causal prompt, TinyLlama heads (32 / 4 KV, 64).
    {
        const int64_t nh = 32, nkv = 4, hd = 64, L = 2048;
        buf q = mk(nh * hd, 7), k = mk(L * nkv * hd, 8), v = mk(L * nkv * hd, 9), o = mk(nh * hd, 10);
        const float sc = 0.125f;
        ps.push_back({"attention decode", "q1 kv2048 h32/4 d64", 4.0 * nh * L * hd, 8.0 * L * nkv * hd,
                      [=] {
                          ref::attention(q->data(), k->data(), v->data(), o->data(), 1, L, nh, nkv, hd, sc, true, L - 1,
                                         0, nullptr);
                      },
                      [=](thread_pool * pool) {
                          attention(q->data(), k->data(), v->data(), o->data(), 1, L, nh, nkv, hd, sc, true, L - 1, 0,
                                    pool);
                      }});
        buf qp = mk(T * nh * hd, 11), kp = mk(T * nkv * hd, 12), vp = mk(T * nkv * hd, 13), op = mk(T * nh * hd, 14);
        ps.push_back({"attention prompt", "q512 kv512 causal h32/4 d64", 4.0 * nh * hd * T * (T + 1) / 2,
                      4.0 * (2 * T * nh * hd + 2 * T * nkv * hd),
                      [=] {
                          ref::attention(qp->data(), kp->data(), vp->data(), op->data(), T, T, nh, nkv, hd, sc, true, 0,
                                         0, nullptr);
                      },
                      [=](thread_pool * pool) {
                          attention(qp->data(), kp->data(), vp->data(), op->data(), T, T, nh, nkv, hd, sc, true, 0, 0,
                                    pool);
                      }});
    }
    // convolutions (UNet / VAE-like blocks at small sizes)
    {
        const int64_t C = 64, H = 64, W = 64;
        buf x = mk(C * H * W, 15), w = mk(C * C * 9, 16), b = mk(C, 17), y = mk(C * H * W * 4, 18);
        ps.push_back({"conv2d", "64x64x64 -> 64 k3 p1", 2.0 * C * C * 9 * H * W, 4.0 * (2 * C * H * W + C * C * 9),
                      [=] { ref::conv2d(x->data(), w->data(), b->data(), y->data(), C, H, W, C, 3, 3, 1, 1, nullptr); },
                      [=](thread_pool * pool) {
                          conv2d(x->data(), w->data(), b->data(), y->data(), C, H, W, C, 3, 3, 1, 1, pool);
                      }});
        const int64_t Hs = 32;
        ps.push_back({"conv_transpose2d", "64x32x32 -> 64 k3 s2 p1", 2.0 * C * C * 9 * Hs * Hs,
                      4.0 * (C * Hs * Hs + C * 4 * Hs * Hs + C * C * 9),
                      [=] {
                          ref::conv_transpose2d(x->data(), w->data(), b->data(), y->data(), C, Hs, Hs, C, 3, 3, 2, 1,
                                                nullptr);
                      },
                      [=](thread_pool * pool) {
                          conv_transpose2d(x->data(), w->data(), b->data(), y->data(), C, Hs, Hs, C, 3, 3, 2, 1, pool);
                      }});
        ps.push_back(
            {"conv_temporal", "64x16x256 -> 64 k3", 2.0 * C * C * 3 * 16 * 256, 4.0 * (2 * C * 16 * 256),
             [=] { ref::conv_temporal(x->data(), w->data(), b->data(), y->data(), C, 16, 256, C, 3, nullptr); },
             [=](thread_pool * pool) {
                 conv_temporal(x->data(), w->data(), b->data(), y->data(), C, 16, 256, C, 3, pool);
             }});
        ps.push_back({"conv1d", "64x4096 -> 64 k3 p1", 2.0 * C * C * 3 * 4096, 4.0 * (2 * C * 4096),
                      [=] { ref::conv1d(x->data(), w->data(), b->data(), y->data(), C, 4096, C, 3, 1, 1, nullptr); },
                      [=](thread_pool * pool) {
                          conv1d(x->data(), w->data(), b->data(), y->data(), C, 4096, C, 3, 1, 1, pool);
                      }});
    }
    // matmul per weight dtype: TinyLlama's 2048 x 2048 projection, decode (1 token) and prompt (512 tokens).
    for (dtype t : WEIGHT_TYPES) {
        auto w = std::make_shared<weight>();
        std::string err;
        if (!make_weight(t, D, D, 19, *w, &err)) continue;
        for (int64_t n_tok : {int64_t(1), T}) {
            buf x = mk(D * n_tok, 20), y = mk(D * n_tok, 21);
            std::function<void()> rf;
            if (n_tok == 1) rf = [=] { ref::matmul(w->t, x->data(), y->data(), n_tok, nullptr); };
            ps.push_back({std::string("matmul ") + dtype_name(t), n_tok == 1 ? "2048x2048 tok1" : "2048x2048 tok512",
                          2.0 * D * D * n_tok, static_cast<double>(w->bytes.size()) + 8.0 * D * n_tok, rf,
                          [=](thread_pool * pool) { matmul(w->t, x->data(), y->data(), n_tok, pool); }});
        }
    }
    return ps;
}

bool op_selected(const std::string & filter, const std::string & op) {
    return filter.empty() || op == filter || op.rfind(filter + " ", 0) == 0;
}

int usage(int rc) {
    std::printf(
        "usage: spider test-ops [--op NAME] [--perf] [-t N]\n"
        "  check every optimised op against its reference (default), or time both (--perf)\n"
        "  --op NAME   only this op (e.g. attention, conv2d, matmul, rms_norm)\n"
        "  --perf      print time, GFLOP/s and GB/s per op and shape\n"
        "  -t N        threads for the optimised ops (default 1)\n");
    return rc;
}

int run_test_ops(int argc, char ** argv) {
    std::string filter;
    bool perf = false;
    int n_threads = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--op" && i + 1 < argc) {
            filter = argv[++i];
        } else if (a == "--perf") {
            perf = true;
        } else if ((a == "-t" || a == "--threads") && i + 1 < argc) {
            char * end = nullptr;
            const long v = std::strtol(argv[++i], &end, 10);
            if (!end || *end || v < 1 || v > 256) {
                std::fprintf(stderr, "test-ops: bad thread count '%s' (1..256)\n", argv[i]);
                return 2;
            }
            n_threads = static_cast<int>(v);
        } else if (a == "-h" || a == "--help") {
            return usage(0);
        } else {
            std::fprintf(stderr, "test-ops: unknown argument '%s'\n", a.c_str());
            return usage(2);
        }
    }
    thread_pool pool(n_threads);
    std::printf("kernels: ops %s, cpu level %s, threads %d\n", ops_kernel_name(), cpu_level_name(cpu_level_active()),
                n_threads);
    if (!perf) {
        int n_run = 0, n_fail = 0;
        for (const check_case & c : check_cases()) {
            if (!op_selected(filter, c.op)) continue;
            const double e = c.run(&pool);
            const bool ok = e <= c.tol;
            ++n_run;
            n_fail += ok ? 0 : 1;
            std::printf("  %-4s %-16s %-32s err %.3g (tol %.3g)\n", ok ? "ok" : "FAIL", c.op.c_str(), c.shape.c_str(),
                        e, c.tol);
        }
        if (n_run == 0) {
            std::fprintf(stderr, "test-ops: no op named '%s'\n", filter.c_str());
            return 2;
        }
        std::printf("%d passed, %d failed\n", n_run - n_fail, n_fail);
        return n_fail ? 1 : 0;
    }
    // Times are the best of several runs; a busy machine still inflates them, so say how busy it was.
    if (FILE * la = std::fopen("/proc/loadavg", "r")) {
        char line[128] = {0};
        if (std::fgets(line, sizeof line, la)) std::printf("load average: %s", line);
        std::fclose(la);
    }
    std::printf("| op | shape | ref ms | opt ms (t=%d) | opt cpu ms | speedup | opt GFLOP/s | opt GB/s |\n", n_threads);
    std::printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    int n_run = 0;
    for (const perf_case & c : perf_cases()) {
        if (!op_selected(filter, c.op)) continue;
        ++n_run;
        double to_cpu = 0.0;
        const double to = time_best([&] { c.opt_fn(&pool); }, 0.3, &to_cpu);
        double tr = NAN;
        if (c.ref_fn) tr = time_best(c.ref_fn, 0.3);
        char rs[32] = "-", sp[32] = "-";
        if (!std::isnan(tr)) {
            std::snprintf(rs, sizeof rs, "%.3f", tr * 1e3);
            std::snprintf(sp, sizeof sp, "%.1fx", tr / to);
        }
        std::printf("| %s | %s | %s | %.3f | %.3f | %s | %.1f | %.1f |\n", c.op.c_str(), c.shape.c_str(), rs, to * 1e3,
                    to_cpu * 1e3, sp, c.flops / to * 1e-9, c.bytes / to * 1e-9);
        std::fflush(stdout);
    }
    if (n_run == 0) {
        std::fprintf(stderr, "test-ops: no op named '%s'\n", filter.c_str());
        return 2;
    }
    return 0;
}

}  // namespace

static spider_cli::command_registrar reg({"test-ops", "check optimised ops against their references; --perf times them",
                                          run_test_ops});
