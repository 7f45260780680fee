// The computation graph: a Llama-style attention + SwiGLU MLP block and a small UNet-style conv block built as
// graphs, run on the CPU backend (optimised ops, threads) and the reference backend; every named intermediate
// must agree, the reference backend must equal the same block written by hand with spider::ref ops, and bad
// graphs must be refused with errors naming the op and the node.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/graph.h"
#include "core/ops.h"
#include "core/quants.h"

using namespace spider;

namespace {

std::vector<float> rand_vec(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(-scale, scale);
    std::vector<float> v(n);
    for (auto & x : v) x = d(g);
    return v;
}

// Weights kept alive for the graph's constants (F32, or converted to another dtype for matmul weights).
struct weights {
    std::vector<std::unique_ptr<std::vector<uint8_t>>> store;
    tensor make(const std::string & name, dtype type, const std::vector<float> & v, int64_t ne0, int64_t ne1 = 1,
                int64_t ne2 = 1, int64_t ne3 = 1) {
        const int64_t rows = ne1 * ne2 * ne3;
        const size_t rb = dtype_row_bytes(type, ne0);
        store.push_back(std::make_unique<std::vector<uint8_t>>(rb * rows));
        uint8_t * dst = store.back()->data();
        for (int64_t r = 0; r < rows; ++r) EXPECT_TRUE(quantize_row(type, v.data() + r * ne0, dst + r * rb, ne0));
        tensor t = make_tensor(type, dst, ne0, ne1, ne2, ne3);
        t.name = name;
        return t;
    }
};

constexpr int64_t N_EMBD = 64, N_TOK = 7, N_HEAD = 4, N_HEAD_KV = 2, HD = 16, N_FF = 96;

struct block_weights {
    std::vector<float> attn_norm, wq, wk, wv, wo, ffn_norm, wg, wu, wd;
    block_weights() {
        attn_norm = rand_vec(N_EMBD, 1);
        for (auto & v : attn_norm) v += 1.0f;
        wq = rand_vec(N_EMBD * N_EMBD, 2, 0.2f);
        wk = rand_vec(N_EMBD * N_HEAD_KV * HD, 3, 0.2f);
        wv = rand_vec(N_EMBD * N_HEAD_KV * HD, 4, 0.2f);
        wo = rand_vec(N_EMBD * N_EMBD, 5, 0.2f);
        ffn_norm = rand_vec(N_EMBD, 6);
        wg = rand_vec(N_EMBD * N_FF, 7, 0.2f);
        wu = rand_vec(N_EMBD * N_FF, 8, 0.2f);
        wd = rand_vec(N_FF * N_EMBD, 9, 0.2f);
    }
};

std::vector<int32_t> positions() {
    std::vector<int32_t> pos(N_TOK);
    for (int64_t t = 0; t < N_TOK; ++t) pos[t] = static_cast<int32_t>(t + 3);
    return pos;
}

// Llama block: attention (RMSNorm, q/k/v, RoPE NEOX, causal GQA attention at position offset 3, output projection,
// residual) then SwiGLU MLP with residual. Returns the graph's output id.
int build_block(graph & g, weights & W, const block_weights & bw, dtype wtype) {
    const int x = g.input("x", {N_EMBD, N_TOK});
    const int h = g.rms_norm(x, g.constant(W.make("attn_norm", DTYPE_F32, bw.attn_norm, N_EMBD)), 1e-5f, "attn_in");
    int q = g.matmul(g.constant(W.make("wq", wtype, bw.wq, N_EMBD, N_EMBD)), h, "q");
    int k = g.matmul(g.constant(W.make("wk", wtype, bw.wk, N_EMBD, N_HEAD_KV * HD)), h, "k");
    int v = g.matmul(g.constant(W.make("wv", wtype, bw.wv, N_EMBD, N_HEAD_KV * HD)), h, "v");
    q = g.rope(g.reshape(q, {HD, N_HEAD, N_TOK}), positions(), HD, 10000.0f, 1.0f, ROPE_MODE_NEOX, "q_rope");
    k = g.rope(g.reshape(k, {HD, N_HEAD_KV, N_TOK}), positions(), HD, 10000.0f, 1.0f, ROPE_MODE_NEOX, "k_rope");
    v = g.reshape(v, {HD, N_HEAD_KV, N_TOK}, "v_heads");
    const int a = g.attention(q, k, v, 1.0f / std::sqrt(static_cast<float>(HD)), true, 3, 0, "attn");
    const int o =
        g.matmul(g.constant(W.make("wo", wtype, bw.wo, N_EMBD, N_EMBD)), g.reshape(a, {N_EMBD, N_TOK}), "attn_out");
    const int x2 = g.add(x, o, "attn_res");
    const int f = g.rms_norm(x2, g.constant(W.make("ffn_norm", DTYPE_F32, bw.ffn_norm, N_EMBD)), 1e-5f, "ffn_in");
    const int gt = g.matmul(g.constant(W.make("wg", wtype, bw.wg, N_EMBD, N_FF)), f, "ffn_gate");
    const int up = g.matmul(g.constant(W.make("wu", wtype, bw.wu, N_EMBD, N_FF)), f, "ffn_up");
    const int m = g.glu(gt, up, ACT_SILU, "ffn_act");
    const int d = g.matmul(g.constant(W.make("wd", wtype, bw.wd, N_FF, N_EMBD)), m, "ffn_out");
    return g.add(x2, d, "out");
}

double max_err(const float * a, const float * b, int64_t n) {
    double e = 0.0;
    for (int64_t i = 0; i < n; ++i) e = std::max(e, std::fabs(static_cast<double>(a[i]) - b[i]));
    return e;
}

TEST(graph, cpu_and_reference_backends_agree_on_every_named_node) {
    for (dtype wtype : {DTYPE_F32, DTYPE_F16}) {
        const block_weights bw;
        weights W;
        graph g;
        const int out = build_block(g, W, bw, wtype);
        ASSERT_TRUE(g.ok()) << g.error();
        ASSERT_GE(out, 0);
        const std::vector<float> x = rand_vec(N_EMBD * N_TOK, 10);
        std::copy(x.begin(), x.end(), g.data(g.find("x")));

        std::string err;
        std::map<std::string, std::vector<float>> ref_out;
        graph_compute_params rp;
        rp.backend = GRAPH_BACKEND_REFERENCE;
        rp.on_node = [&](const graph & gg, int id) {
            const graph_node & n = gg.node(id);
            ref_out[n.name] = n.out;
        };
        ASSERT_TRUE(graph_compute(g, rp, &err)) << err;

        thread_pool pool(3);
        graph_compute_params cp;
        cp.pool = &pool;
        int n_seen = 0;
        cp.on_node = [&](const graph & gg, int id) {
            const graph_node & n = gg.node(id);
            ASSERT_TRUE(ref_out.count(n.name)) << n.name;
            const std::vector<float> & r = ref_out[n.name];
            ASSERT_EQ(r.size(), n.out.size()) << n.name;
            EXPECT_LE(max_err(n.out.data(), r.data(), r.size()), 1e-4) << "node " << n.name << " " << dtype_name(wtype);
            ++n_seen;
        };
        ASSERT_TRUE(graph_compute(g, cp, &err)) << err;
        EXPECT_EQ(n_seen, static_cast<int>(ref_out.size()));
        EXPECT_GE(n_seen, 15);
        for (const char * name : {"attn_in", "q_rope", "k_rope", "attn", "attn_res", "ffn_act", "out"})
            EXPECT_GE(g.find(name), 0) << name;
    }
}

TEST(graph, reference_backend_equals_the_block_written_by_hand) {
    const block_weights bw;
    weights W;
    graph g;
    const int out = build_block(g, W, bw, DTYPE_F32);
    ASSERT_TRUE(g.ok()) << g.error();
    const std::vector<float> x = rand_vec(N_EMBD * N_TOK, 11);
    std::copy(x.begin(), x.end(), g.data(g.find("x")));
    std::string err;
    graph_compute_params rp;
    rp.backend = GRAPH_BACKEND_REFERENCE;
    ASSERT_TRUE(graph_compute(g, rp, &err)) << err;

    // The same block with spider::ref calls on plain buffers.
    auto mm = [&](const std::vector<float> & w, int64_t n_in, int64_t n_out, const std::vector<float> & in) {
        std::vector<float> w_copy = w, y(n_out * N_TOK);
        tensor t = make_tensor(DTYPE_F32, w_copy.data(), n_in, n_out);
        ref::matmul(t, in.data(), y.data(), N_TOK, nullptr);
        return y;
    };
    std::vector<float> h(N_EMBD * N_TOK);
    ref::rms_norm(x.data(), bw.attn_norm.data(), h.data(), N_TOK, N_EMBD, 1e-5f);
    std::vector<float> q = mm(bw.wq, N_EMBD, N_EMBD, h), k = mm(bw.wk, N_EMBD, N_HEAD_KV * HD, h),
                       v = mm(bw.wv, N_EMBD, N_HEAD_KV * HD, h);
    const std::vector<int32_t> pos = positions();
    ref::rope(q.data(), pos.data(), N_TOK, N_HEAD, HD, HD, 10000.0f, 1.0f, ROPE_MODE_NEOX);
    ref::rope(k.data(), pos.data(), N_TOK, N_HEAD_KV, HD, HD, 10000.0f, 1.0f, ROPE_MODE_NEOX);
    std::vector<float> a(N_EMBD * N_TOK);
    ref::attention(q.data(), k.data(), v.data(), a.data(), N_TOK, N_TOK, N_HEAD, N_HEAD_KV, HD,
                   1.0f / std::sqrt(static_cast<float>(HD)), true, 3, 0, nullptr);
    std::vector<float> o = mm(bw.wo, N_EMBD, N_EMBD, a), x2(N_EMBD * N_TOK), f(N_EMBD * N_TOK);
    ref::add(x.data(), o.data(), x2.data(), x2.size());
    ref::rms_norm(x2.data(), bw.ffn_norm.data(), f.data(), N_TOK, N_EMBD, 1e-5f);
    std::vector<float> gt = mm(bw.wg, N_EMBD, N_FF, f), up = mm(bw.wu, N_EMBD, N_FF, f), m(N_FF * N_TOK);
    ref::glu(ACT_SILU, gt.data(), up.data(), m.data(), m.size());
    std::vector<float> d = mm(bw.wd, N_FF, N_EMBD, m), y(N_EMBD * N_TOK);
    ref::add(x2.data(), d.data(), y.data(), y.size());

    const float * got = g.data(out);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(max_err(got, y.data(), y.size()), 0.0);
    // And the block really did something: the output is not the input.
    EXPECT_GT(max_err(got, x.data(), x.size()), 1e-3);
}

TEST(graph, conv_block_backends_agree) {
    // GroupNorm -> SiLU -> conv3x3 -> avg-pool -> upsample -> concat with the input -> transposed conv, plus a
    // temporal conv and a permute: the decoder-side ops.
    const int64_t C = 8, H = 10, Wd = 12;
    weights W;
    graph g;
    const int x = g.input("x", {Wd, H, C});
    const int gn = g.group_norm(x, g.constant(W.make("gn_w", DTYPE_F32, rand_vec(C, 1), C)),
                                g.constant(W.make("gn_b", DTYPE_F32, rand_vec(C, 2), C)), 4, 1e-6f, "gn");
    const int s = g.act(gn, ACT_SILU, "silu");
    const int cv = g.conv2d(s, g.constant(W.make("conv_w", DTYPE_F32, rand_vec(9 * C * C, 3, 0.3f), 3, 3, C, C)),
                            g.constant(W.make("conv_b", DTYPE_F32, rand_vec(C, 4), C)), 1, 1, "conv");
    const int pooled = g.avg_pool2d(cv, 2, "pool");
    const int up = g.upsample_nearest2d(pooled, 2, "up");
    const int cat = g.concat(up, x, 2, "cat");
    const int ct = g.conv_transpose2d(
        cat, g.constant(W.make("convt_w", DTYPE_F32, rand_vec(16 * C * 2 * C, 5, 0.3f), 4, 4, C, 2 * C)), -1, 2, 1,
        "convt");
    const int tm =
        g.conv_temporal(g.reshape(ct, {2 * Wd, 2 * H, C}),
                        g.constant(W.make("tw", DTYPE_F32, rand_vec(3 * C * C, 6), 3, C, C)), -1, "temporal");
    const int perm[4] = {1, 0, 2, 3};
    const int pt = g.permute(tm, perm, "transpose");
    const int sm = g.softmax(pt, "softmax");
    ASSERT_TRUE(g.ok()) << g.error();
    ASSERT_GE(sm, 0);
    EXPECT_EQ(g.node(ct).ne[0], 2 * Wd);
    EXPECT_EQ(g.node(ct).ne[2], C);
    const std::vector<float> xv = rand_vec(C * H * Wd, 7);
    std::copy(xv.begin(), xv.end(), g.data(x));
    std::string err;
    graph_compute_params rp;
    rp.backend = GRAPH_BACKEND_REFERENCE;
    ASSERT_TRUE(graph_compute(g, rp, &err)) << err;
    std::vector<std::vector<float>> ref_out;
    for (int id = 0; id < g.size(); ++id) ref_out.push_back(g.node(id).out);
    thread_pool pool(2);
    graph_compute_params cp;
    cp.pool = &pool;
    ASSERT_TRUE(graph_compute(g, cp, &err)) << err;
    for (int id = 0; id < g.size(); ++id) {
        const graph_node & n = g.node(id);
        if (n.op == GRAPH_OP_CONSTANT || n.op == GRAPH_OP_INPUT) continue;
        EXPECT_LE(max_err(n.out.data(), ref_out[id].data(), n.out.size()), 1e-4) << n.name;
    }
}

TEST(graph, bad_graphs_are_refused_with_errors_naming_op_and_node) {
    {
        graph g;
        const int a = g.input("a", {4, 3});
        const int b = g.input("b", {5, 3});
        EXPECT_EQ(g.add(a, b, "sum"), -1);
        EXPECT_FALSE(g.ok());
        EXPECT_NE(g.error().find("[add]"), std::string::npos) << g.error();
        EXPECT_NE(g.error().find("sum"), std::string::npos) << g.error();
        // Later calls are refused too, and compute reports the error.
        EXPECT_EQ(g.scale(a, 2.0f), -1);
        std::string err;
        EXPECT_FALSE(graph_compute(g, {}, &err));
        EXPECT_NE(err.find("[add]"), std::string::npos) << err;
    }
    {
        graph g;
        weights W;
        const int x = g.input("x", {8, 2});
        const int w = g.constant(W.make("w", DTYPE_F32, rand_vec(6 * 5, 1), 6, 5));
        EXPECT_EQ(g.matmul(w, x, "proj"), -1);
        EXPECT_NE(g.error().find("[matmul] node 'proj'"), std::string::npos) << g.error();
        EXPECT_NE(g.error().find("8"), std::string::npos) << g.error();
    }
    {
        graph g;
        weights W;
        const int t = g.constant(W.make("emb", DTYPE_F32, rand_vec(4 * 10, 1), 4, 10));
        EXPECT_EQ(g.get_rows(t, {1, 10}, "tok"), -1);
        EXPECT_NE(g.error().find("id 10"), std::string::npos) << g.error();
    }
    {
        graph g;
        const int q = g.input("q", {16, 6, 3});
        const int k = g.input("k", {16, 4, 3});
        EXPECT_EQ(g.attention(q, k, k, 0.25f, true, 0, 0, "attn"), -1);
        EXPECT_NE(g.error().find("n_head 6"), std::string::npos) << g.error();
    }
    {
        graph g;
        weights W;
        const int x = g.input("x", {32, 2});
        // A quantized tensor cannot feed an F32-only op.
        const int w = g.constant(W.make("w8", DTYPE_Q8_0, rand_vec(32, 1), 32));
        EXPECT_EQ(g.mul_row(x, w, "scale_rows"), -1);
        EXPECT_NE(g.error().find("q8_0"), std::string::npos) << g.error();
    }
    {
        graph g;
        const int x = g.input("x", {16, 2, 3});
        EXPECT_EQ(g.rope(x, {0, 1}, 16, 10000.0f, 1.0f, ROPE_MODE_NORMAL, "r"), -1);  // 2 positions, 3 tokens
        graph g2;
        const int x2 = g2.input("x", {16, 2, 2});
        EXPECT_EQ(g2.rope(x2, {0, 1}, 17, 10000.0f, 1.0f, ROPE_MODE_NORMAL, "r"), -1);  // odd n_rot
        graph g3;
        const int x3 = g3.input("x", {5, 5, 6});
        EXPECT_EQ(g3.group_norm(x3, -1, -1, 4, 1e-6f, "gn"), -1);  // 6 channels, 4 groups
        graph g4;
        const int x4 = g4.input("x", {4, 4});
        EXPECT_EQ(g4.reshape(x4, {3, 5}, "rs"), -1);
        EXPECT_EQ(g4.size(), 1);
        graph g5;
        EXPECT_EQ(g5.add(0, 1), -1);  // ids that do not exist
        EXPECT_NE(g5.error().find("does not exist"), std::string::npos);
    }
}

}  // namespace

namespace {

TEST(graph, dump_npy_writes_a_numpy_file_per_node) {
    graph g;
    const int x = g.input("x", {3, 2});
    const int y = g.scale(x, 2.0f, "blk.0/scaled");
    ASSERT_TRUE(g.ok()) << g.error();
    for (int i = 0; i < 6; ++i) g.data(x)[i] = static_cast<float>(i);
    std::string err;
    const std::string dir = std::string(SPIDER_BINARY_DIR);
    EXPECT_FALSE(graph_dump_npy(g, y, dir, &err));  // not computed yet
    EXPECT_NE(err.find("blk.0/scaled"), std::string::npos) << err;
    ASSERT_TRUE(graph_compute(g, {}, &err)) << err;
    ASSERT_TRUE(graph_dump_npy(g, y, dir, &err)) << err;
    FILE * f = std::fopen((dir + "/blk.0_scaled.npy").c_str(), "rb");
    ASSERT_NE(f, nullptr);
    std::vector<unsigned char> bytes(4096);
    bytes.resize(std::fread(bytes.data(), 1, bytes.size(), f));
    std::fclose(f);
    ASSERT_GE(bytes.size(), 10u);
    EXPECT_EQ(std::string(bytes.begin() + 1, bytes.begin() + 6), "NUMPY");
    const size_t hlen = bytes[8] | (bytes[9] << 8);
    EXPECT_EQ((10 + hlen) % 64, 0u);
    const std::string header(bytes.begin() + 10, bytes.begin() + 10 + hlen);
    EXPECT_NE(header.find("'shape': (2, 3)"), std::string::npos) << header;
    EXPECT_NE(header.find("'<f4'"), std::string::npos) << header;
    ASSERT_EQ(bytes.size(), 10 + hlen + 6 * sizeof(float));
    std::vector<float> back(6);
    std::memcpy(back.data(), bytes.data() + 10 + hlen, sizeof(float) * 6);
    EXPECT_EQ(back, (std::vector<float>{0, 2, 4, 6, 8, 10}));
    EXPECT_FALSE(graph_dump_npy(g, y, dir + "/no/such/dir", &err));
    EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
}

}  // namespace

namespace {

TEST(graph, big_elementwise_and_row_ops_split_over_the_pool_give_the_same_result) {
    // 1001 x 37 values: above the size where the CPU backend splits these ops over the pool, and not a multiple of
    // the 64-element split unit. Each run gets a fresh graph, so no output can survive from an earlier run.
    const int64_t n = 1001, rows = 37;
    const std::vector<float> xv = rand_vec(n * rows, 3, 2.0f), uv = rand_vec(n * rows, 4);
    const std::vector<float> wv = rand_vec(n, 1), bv = rand_vec(n, 2);
    std::string err;
    std::vector<std::string> names;
    std::vector<graph_op> ops;
    auto outputs = [&](graph_backend be, thread_pool * pool) {
        weights W;
        graph g;
        const int x = g.input("x", {n, rows});
        const int u = g.input("u", {n, rows});
        const int w = g.constant(W.make("w", DTYPE_F32, wv, n));
        const int b = g.constant(W.make("b", DTYPE_F32, bv, n));
        int h = g.rms_norm(x, w, 1e-6f, "rms");
        h = g.layer_norm(h, w, b, 1e-5f, "ln");
        h = g.mul_row(h, w, "mul_row");
        h = g.add_row(h, b, "add_row");
        h = g.act(h, ACT_GELU_TANH, "gelu");
        h = g.glu(h, u, ACT_SILU, "glu");
        h = g.add(h, u, "add");
        h = g.mul(h, x, "mul");
        h = g.scale(h, 0.5f, "scale");
        h = g.softmax(h, "softmax");
        EXPECT_TRUE(g.ok()) << g.error();
        std::copy(xv.begin(), xv.end(), g.data(x));
        std::copy(uv.begin(), uv.end(), g.data(u));
        graph_compute_params p;
        p.backend = be;
        p.pool = pool;
        EXPECT_TRUE(graph_compute(g, p, &err)) << err;
        std::vector<std::vector<float>> o;
        names.clear();
        ops.clear();
        for (int id = 0; id < g.size(); ++id) {
            o.push_back(g.node(id).out);
            names.push_back(g.node(id).name);
            ops.push_back(g.node(id).op);
        }
        return o;
    };
    thread_pool pool(3);
    const auto ref = outputs(GRAPH_BACKEND_REFERENCE, nullptr);
    const auto one = outputs(GRAPH_BACKEND_CPU, nullptr);
    const auto three = outputs(GRAPH_BACKEND_CPU, &pool);
    ASSERT_EQ(ref.size(), names.size());
    for (size_t id = 0; id < names.size(); ++id) {
        if (ops[id] == GRAPH_OP_INPUT || ops[id] == GRAPH_OP_CONSTANT) continue;
        EXPECT_EQ(three[id], one[id]) << names[id] << ": split over 3 threads differs from 1 thread";
        double scale = 1.0;
        for (float v : ref[id]) scale = std::max(scale, static_cast<double>(std::fabs(v)));
        EXPECT_LE(max_err(three[id].data(), ref[id].data(), ref[id].size()) / scale, 2e-5) << names[id];
    }
}

}  // namespace
