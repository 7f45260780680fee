// A small computation graph: model code appends nodes (op, inputs, parameters, a name, an output shape), then a
// backend executes them in order. The CPU backend calls the optimised ops (spider::X) with a thread pool; the
// reference backend calls spider::ref::X single-threaded, so a model can be checked layer by layer against its
// own reference. Every node keeps its output buffer, named, so intermediate tensors can be dumped and compared.
//
// Shapes are ggml-ordered (ne[0] innermost). Activations are contiguous F32: a token sequence [n_tok, n_embd] is
// ne = {n_embd, n_tok}; attention heads {head_dim, n_head, n_tok}; an image / feature map {W, H, C}. Weights are
// `constant` nodes that view external tensors (any dtype for matmul / get_rows, F32 for everything else).
//
// Usage:
//   graph g;
//   int x  = g.input("x", {n_embd, n_tok});
//   int h  = g.rms_norm(x, g.constant(norm_w), 1e-6f, "attn_norm");
//   int q  = g.matmul(g.constant(wq), h, "q");
//   ...
//   if (!g.ok()) report(g.error());                  // shapes are checked while building
//   std::copy(src, src + n, g.data(x));             // fill the inputs
//   graph_compute(g, {&pool, GRAPH_BACKEND_CPU}, &err);
//   const float * out = g.data(g.find("out"));
//
// Builder calls never throw or abort: the first error is kept (naming the op, the node and the bad value), every
// later call returns -1, and graph_compute refuses a graph with an error.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/tensor.h"
#include "core/threadpool.h"

namespace spider {

struct graph_compute_params;

enum graph_op : int32_t {
    GRAPH_OP_INPUT,
    GRAPH_OP_CONSTANT,
    GRAPH_OP_MATMUL,
    GRAPH_OP_GET_ROWS,
    GRAPH_OP_ADD,
    GRAPH_OP_MUL,
    GRAPH_OP_SCALE,
    GRAPH_OP_MUL_ROW,
    GRAPH_OP_ADD_ROW,
    GRAPH_OP_ACT,
    GRAPH_OP_GLU,
    GRAPH_OP_SOFTMAX,
    GRAPH_OP_RMS_NORM,
    GRAPH_OP_LAYER_NORM,
    GRAPH_OP_GROUP_NORM,
    GRAPH_OP_ROPE,
    GRAPH_OP_ATTENTION,
    GRAPH_OP_CONV1D,
    GRAPH_OP_CONV2D,
    GRAPH_OP_CONV_TRANSPOSE2D,
    GRAPH_OP_CONV_TEMPORAL,
    GRAPH_OP_UPSAMPLE_NEAREST2D,
    GRAPH_OP_AVG_POOL2D,
    GRAPH_OP_MAX_POOL2D,
    GRAPH_OP_PERMUTE,
    GRAPH_OP_CONCAT,
    GRAPH_OP_RESHAPE,
};

const char * graph_op_name(graph_op op);

struct graph_node {
    graph_op op = GRAPH_OP_INPUT;
    std::string name;
    int64_t ne[MAX_DIMS] = {1, 1, 1, 1};
    std::vector<int> src;                      // input node ids (-1 = absent optional input, e.g. no bias)
    int64_t ip[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // integer parameters, meaning per op (see graph.cpp)
    float fp[4] = {0, 0, 0, 0};                // float parameters (eps, scale, freq_base, ...)
    std::vector<int32_t> ids;                  // token ids (get_rows) or positions (rope)
    tensor weight;                             // GRAPH_OP_CONSTANT: the external tensor this node views
    std::vector<float> out;                    // output buffer (not used by constants)

    int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class graph {
public:
    // ---- leaves
    int input(const std::string & name, std::vector<int64_t> ne);
    int constant(const tensor & t);  // a view: t's memory must outlive the graph's computations

    // ---- ops (name may be empty: a name "<op>_<id>" is made up)
    int matmul(int w, int x, const std::string & name = "");  // w {n_in, n_out}, x {n_in, ...}
    int get_rows(int table, std::vector<int32_t> ids, const std::string & name = "");
    int add(int a, int b, const std::string & name = "");
    int mul(int a, int b, const std::string & name = "");
    int scale(int x, float s, const std::string & name = "");
    int mul_row(int x, int w, const std::string & name = "");  // w {ne0 of x}
    int add_row(int x, int b, const std::string & name = "");
    int act(int x, act_type a, const std::string & name = "");
    int glu(int gate, int up, act_type a, const std::string & name = "");
    int softmax(int x, const std::string & name = "");
    int rms_norm(int x, int w, float eps, const std::string & name = "");  // w may be -1
    int layer_norm(int x, int w, int b, float eps, const std::string & name = "");
    int group_norm(int x, int w, int b, int64_t n_groups, float eps, const std::string & name = "");  // x {.., .., C}
    // x {head_dim, n_head, n_tok}; pos has n_tok entries
    int rope(int x, std::vector<int32_t> pos, int64_t n_rot, float freq_base, float freq_scale, rope_mode mode,
             const std::string & name = "");
    // q {hd, n_head, n_q}, k / v {hd, n_head_kv, n_kv} -> {hd, n_head, n_q}
    int attention(int q, int k, int v, float scale, bool causal, int64_t q_pos0, int64_t window,
                  const std::string & name = "");
    int conv1d(int x, int w, int b, int64_t stride, int64_t pad, const std::string & name = "");  // x {L, C_in}
    int conv2d(int x, int w, int b, int64_t stride, int64_t pad, const std::string & name = "");  // x {W, H, C_in}
    int conv_transpose2d(int x, int w, int b, int64_t stride, int64_t pad, const std::string & name = "");
    int conv_temporal(int x, int w, int b, const std::string & name = "");  // x {HW, T, C_in}, w {KT, C_in, C_out}
    int upsample_nearest2d(int x, int64_t f, const std::string & name = "");
    int avg_pool2d(int x, int64_t k, const std::string & name = "");
    int max_pool2d(int x, int64_t k, const std::string & name = "");
    int permute(int x, const int perm[4], const std::string & name = "");  // output dim d = input dim perm[d]
    int concat(int a, int b, int dim, const std::string & name = "");
    int reshape(int x, std::vector<int64_t> ne, const std::string & name = "");  // same element count (a copy)

    // ---- state
    bool ok() const { return err_.empty(); }
    const std::string & error() const { return err_; }
    int size() const { return static_cast<int>(nodes_.size()); }
    const graph_node & node(int id) const { return nodes_[id]; }
    int find(const std::string & name) const;  // -1 if absent
    // The node's F32 data (inputs: write here before computing; others: valid after graph_compute). Constants
    // return their tensor's data when it is F32, else nullptr.
    float * data(int id);
    const float * data(int id) const;

private:
    friend bool graph_compute(graph & g, const graph_compute_params & p, std::string * err);
    int add_node(graph_node n);
    bool fail(const std::string & op, const std::string & name, const std::string & msg);
    bool check_ids(const char * op, const std::string & name, std::initializer_list<int> ids);
    bool check_f32(const char * op, const std::string & name, int id, const char * what);

    std::vector<graph_node> nodes_;
    std::string err_;
};

enum graph_backend : int32_t {
    GRAPH_BACKEND_CPU = 0,        // spider::X, threads from pool
    GRAPH_BACKEND_REFERENCE = 1,  // spider::ref::X, single-threaded
};

struct graph_compute_params {
    thread_pool * pool = nullptr;
    graph_backend backend = GRAPH_BACKEND_CPU;
    // Called after each computed node (not inputs / constants), e.g. to dump or compare intermediates.
    std::function<void(const graph & g, int id)> on_node;
};

// Runs every node in order. Returns false with *err set if the graph has a build error.
bool graph_compute(graph & g, const graph_compute_params & p, std::string * err);

// Writes node id's output as <dir>/<node name>.npy (little-endian float32, C order, numpy shape = ne reversed
// with leading 1-dims dropped), so intermediates can be loaded next to a PyTorch run and compared layer by
// layer. Call it from on_node or after graph_compute. Characters other than [A-Za-z0-9._-] in the name become '_'.
bool graph_dump_npy(const graph & g, int id, const std::string & dir, std::string * err);

}  // namespace spider
