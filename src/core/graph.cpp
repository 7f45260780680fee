// graph: builder (shape inference + validation with errors that name the op, the node and the bad value) and the
// two backends (optimised ops with a thread pool, reference ops). Parameters per op, as stored in graph_node:
//   SCALE fp0 = s | ACT / GLU ip0 = act_type | RMS_NORM / LAYER_NORM fp0 = eps | GROUP_NORM ip0 = groups, fp0 = eps
//   ROPE ids = positions, ip0 = n_rot, ip1 = mode, fp0 = freq_base, fp1 = freq_scale
//   ATTENTION fp0 = scale, ip0 = causal, ip1 = q_pos0, ip2 = window | CONV* ip0 = stride, ip1 = pad
//   UPSAMPLE ip0 = factor | POOL ip0 = kernel (= stride) | PERMUTE ip0..3 = perm | CONCAT ip0 = dim
#include "core/graph.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

namespace spider {

const char * graph_op_name(graph_op op) {
    switch (op) {
        case GRAPH_OP_INPUT:
            return "input";
        case GRAPH_OP_CONSTANT:
            return "constant";
        case GRAPH_OP_MATMUL:
            return "matmul";
        case GRAPH_OP_GET_ROWS:
            return "get_rows";
        case GRAPH_OP_ADD:
            return "add";
        case GRAPH_OP_MUL:
            return "mul";
        case GRAPH_OP_SCALE:
            return "scale";
        case GRAPH_OP_MUL_ROW:
            return "mul_row";
        case GRAPH_OP_ADD_ROW:
            return "add_row";
        case GRAPH_OP_ACT:
            return "act";
        case GRAPH_OP_GLU:
            return "glu";
        case GRAPH_OP_SOFTMAX:
            return "softmax";
        case GRAPH_OP_RMS_NORM:
            return "rms_norm";
        case GRAPH_OP_LAYER_NORM:
            return "layer_norm";
        case GRAPH_OP_GROUP_NORM:
            return "group_norm";
        case GRAPH_OP_ROPE:
            return "rope";
        case GRAPH_OP_ATTENTION:
            return "attention";
        case GRAPH_OP_CONV1D:
            return "conv1d";
        case GRAPH_OP_CONV2D:
            return "conv2d";
        case GRAPH_OP_CONV_TRANSPOSE2D:
            return "conv_transpose2d";
        case GRAPH_OP_CONV_TEMPORAL:
            return "conv_temporal";
        case GRAPH_OP_UPSAMPLE_NEAREST2D:
            return "upsample_nearest2d";
        case GRAPH_OP_AVG_POOL2D:
            return "avg_pool2d";
        case GRAPH_OP_MAX_POOL2D:
            return "max_pool2d";
        case GRAPH_OP_PERMUTE:
            return "permute";
        case GRAPH_OP_CONCAT:
            return "concat";
        case GRAPH_OP_RESHAPE:
            return "reshape";
    }
    return "unknown";
}

namespace {

std::string shape_str(const int64_t ne[4]) {
    std::string s = "{";
    for (int d = 0; d < 4; ++d) s += std::to_string(ne[d]) + (d < 3 ? ", " : "}");
    return s;
}

bool same_shape(const graph_node & a, const graph_node & b) {
    return std::equal(a.ne, a.ne + 4, b.ne);
}

bool is_contiguous_f32(const tensor & t) {
    if (t.type != DTYPE_F32 || !t.data) return false;
    size_t expect = sizeof(float);
    for (int d = 0; d < MAX_DIMS; ++d) {
        if (t.ne[d] > 1 && t.nb[d] != expect) return false;
        expect *= static_cast<size_t>(t.ne[d]);
    }
    return true;
}

}  // namespace

// ---- builder plumbing

bool graph::fail(const std::string & op, const std::string & name, const std::string & msg) {
    if (err_.empty()) err_ = "[" + op + "] node '" + name + "': " + msg;
    return false;
}

bool graph::check_ids(const char * op, const std::string & name, std::initializer_list<int> ids) {
    if (!err_.empty()) return false;  // an earlier error: everything after it is refused
    for (int id : ids) {
        if (id < 0 || id >= size()) return fail(op, name, "input node id " + std::to_string(id) + " does not exist");
    }
    return true;
}

bool graph::check_f32(const char * op, const std::string & name, int id, const char * what) {
    const graph_node & n = nodes_[id];
    if (n.op == GRAPH_OP_CONSTANT && !is_contiguous_f32(n.weight))
        return fail(
            op, name,
            std::string(what) + " '" + n.name + "' must be a contiguous F32 tensor, got " + dtype_name(n.weight.type));
    return true;
}

int graph::add_node(graph_node n) {
    if (n.name.empty()) n.name = std::string(graph_op_name(n.op)) + "_" + std::to_string(nodes_.size());
    for (int d = 0; d < 4; ++d) {
        if (n.ne[d] <= 0) {
            fail(graph_op_name(n.op), n.name, "output shape " + shape_str(n.ne) + " has a non-positive dimension");
            return -1;
        }
    }
    nodes_.push_back(std::move(n));
    return size() - 1;
}

int graph::find(const std::string & name) const {
    for (int i = 0; i < size(); ++i)
        if (nodes_[i].name == name) return i;
    return -1;
}

float * graph::data(int id) {
    if (id < 0 || id >= size()) return nullptr;
    graph_node & n = nodes_[id];
    if (n.op == GRAPH_OP_CONSTANT) return is_contiguous_f32(n.weight) ? static_cast<float *>(n.weight.data) : nullptr;
    return n.out.empty() ? nullptr : n.out.data();
}

const float * graph::data(int id) const {
    return const_cast<graph *>(this)->data(id);
}

int graph::input(const std::string & name, std::vector<int64_t> ne) {
    if (!err_.empty()) return -1;
    graph_node n;
    n.op = GRAPH_OP_INPUT;
    n.name = name;
    if (ne.empty() || ne.size() > 4) {
        fail("input", name, "needs 1 to 4 dimensions, got " + std::to_string(ne.size()));
        return -1;
    }
    for (size_t d = 0; d < ne.size(); ++d) n.ne[d] = ne[d];
    const int id = add_node(std::move(n));
    if (id >= 0) nodes_[id].out.assign(static_cast<size_t>(nodes_[id].nelements()), 0.0f);
    return id;
}

int graph::constant(const tensor & t) {
    if (!err_.empty()) return -1;
    graph_node n;
    n.op = GRAPH_OP_CONSTANT;
    n.name = t.name;
    n.weight = t;
    std::copy(t.ne, t.ne + 4, n.ne);
    if (!t.data) {
        fail("constant", t.name, "tensor has no data");
        return -1;
    }
    return add_node(std::move(n));
}

// ---- ops

int graph::matmul(int w, int x, const std::string & name) {
    if (!check_ids("matmul", name, {w, x})) return -1;
    const graph_node & W = nodes_[w];
    const graph_node & X = nodes_[x];
    if (W.op != GRAPH_OP_CONSTANT) return fail("matmul", name, "weight '" + W.name + "' must be a constant"), -1;
    if (W.ne[2] != 1 || W.ne[3] != 1)
        return fail("matmul", name, "weight '" + W.name + "' must be 2-D, got " + shape_str(W.ne)), -1;
    if (!check_f32("matmul", name, x, "activation")) return -1;
    if (X.ne[0] != W.ne[0])
        return fail("matmul", name,
                    "input row length " + std::to_string(X.ne[0]) + " != weight n_in " + std::to_string(W.ne[0]) +
                        " ('" + W.name + "')"),
               -1;
    graph_node n;
    n.op = GRAPH_OP_MATMUL;
    n.name = name;
    n.src = {w, x};
    n.ne[0] = W.ne[1];
    n.ne[1] = X.ne[1];
    n.ne[2] = X.ne[2];
    n.ne[3] = X.ne[3];
    return add_node(std::move(n));
}

int graph::get_rows(int table, std::vector<int32_t> ids, const std::string & name) {
    if (!check_ids("get_rows", name, {table})) return -1;
    const graph_node & T = nodes_[table];
    if (T.op != GRAPH_OP_CONSTANT) return fail("get_rows", name, "table must be a constant"), -1;
    if (ids.empty()) return fail("get_rows", name, "no ids"), -1;
    for (int32_t id : ids)
        if (id < 0 || id >= T.ne[1])
            return fail("get_rows", name, "id " + std::to_string(id) + " outside [0, " + std::to_string(T.ne[1]) + ")"),
                   -1;
    graph_node n;
    n.op = GRAPH_OP_GET_ROWS;
    n.name = name;
    n.src = {table};
    n.ne[0] = T.ne[0];
    n.ne[1] = static_cast<int64_t>(ids.size());
    n.ids = std::move(ids);
    return add_node(std::move(n));
}

static graph_node like(const graph_node & x, graph_op op, const std::string & name, std::vector<int> src) {
    graph_node n;
    n.op = op;
    n.name = name;
    n.src = std::move(src);
    std::copy(x.ne, x.ne + 4, n.ne);
    return n;
}

int graph::add(int a, int b, const std::string & name) {
    if (!check_ids("add", name, {a, b}) || !check_f32("add", name, a, "a") || !check_f32("add", name, b, "b"))
        return -1;
    if (!same_shape(nodes_[a], nodes_[b]))
        return fail("add", name, "shapes differ: " + shape_str(nodes_[a].ne) + " vs " + shape_str(nodes_[b].ne)), -1;
    return add_node(like(nodes_[a], GRAPH_OP_ADD, name, {a, b}));
}

int graph::mul(int a, int b, const std::string & name) {
    if (!check_ids("mul", name, {a, b}) || !check_f32("mul", name, a, "a") || !check_f32("mul", name, b, "b"))
        return -1;
    if (!same_shape(nodes_[a], nodes_[b]))
        return fail("mul", name, "shapes differ: " + shape_str(nodes_[a].ne) + " vs " + shape_str(nodes_[b].ne)), -1;
    return add_node(like(nodes_[a], GRAPH_OP_MUL, name, {a, b}));
}

int graph::scale(int x, float s, const std::string & name) {
    if (!check_ids("scale", name, {x}) || !check_f32("scale", name, x, "x")) return -1;
    graph_node n = like(nodes_[x], GRAPH_OP_SCALE, name, {x});
    n.fp[0] = s;
    return add_node(std::move(n));
}

int graph::mul_row(int x, int w, const std::string & name) {
    if (!check_ids("mul_row", name, {x, w}) || !check_f32("mul_row", name, x, "x") ||
        !check_f32("mul_row", name, w, "row"))
        return -1;
    if (nodes_[w].nelements() != nodes_[x].ne[0])
        return fail("mul_row", name,
                    "row has " + std::to_string(nodes_[w].nelements()) + " values, rows are " +
                        std::to_string(nodes_[x].ne[0]) + " long"),
               -1;
    return add_node(like(nodes_[x], GRAPH_OP_MUL_ROW, name, {x, w}));
}

int graph::add_row(int x, int b, const std::string & name) {
    if (!check_ids("add_row", name, {x, b}) || !check_f32("add_row", name, x, "x") ||
        !check_f32("add_row", name, b, "row"))
        return -1;
    if (nodes_[b].nelements() != nodes_[x].ne[0])
        return fail("add_row", name,
                    "row has " + std::to_string(nodes_[b].nelements()) + " values, rows are " +
                        std::to_string(nodes_[x].ne[0]) + " long"),
               -1;
    return add_node(like(nodes_[x], GRAPH_OP_ADD_ROW, name, {x, b}));
}

static bool valid_act(act_type a) {
    return a == ACT_GELU_TANH || a == ACT_GELU_ERF || a == ACT_SILU || a == ACT_RELU;
}

int graph::act(int x, act_type a, const std::string & name) {
    if (!check_ids("act", name, {x}) || !check_f32("act", name, x, "x")) return -1;
    if (!valid_act(a)) return fail("act", name, "unknown activation " + std::to_string(a)), -1;
    graph_node n = like(nodes_[x], GRAPH_OP_ACT, name, {x});
    n.ip[0] = a;
    return add_node(std::move(n));
}

int graph::glu(int gate, int up, act_type a, const std::string & name) {
    if (!check_ids("glu", name, {gate, up}) || !check_f32("glu", name, gate, "gate") ||
        !check_f32("glu", name, up, "up"))
        return -1;
    if (!valid_act(a)) return fail("glu", name, "unknown activation " + std::to_string(a)), -1;
    if (!same_shape(nodes_[gate], nodes_[up]))
        return fail("glu", name,
                    "gate " + shape_str(nodes_[gate].ne) + " and up " + shape_str(nodes_[up].ne) + " differ"),
               -1;
    graph_node n = like(nodes_[gate], GRAPH_OP_GLU, name, {gate, up});
    n.ip[0] = a;
    return add_node(std::move(n));
}

int graph::softmax(int x, const std::string & name) {
    if (!check_ids("softmax", name, {x}) || !check_f32("softmax", name, x, "x")) return -1;
    return add_node(like(nodes_[x], GRAPH_OP_SOFTMAX, name, {x}));
}

int graph::rms_norm(int x, int w, float eps, const std::string & name) {
    if (!check_ids("rms_norm", name, {x}) || !check_f32("rms_norm", name, x, "x")) return -1;
    if (w >= 0) {
        if (!check_ids("rms_norm", name, {w}) || !check_f32("rms_norm", name, w, "weight")) return -1;
        if (nodes_[w].nelements() != nodes_[x].ne[0])
            return fail("rms_norm", name,
                        "weight has " + std::to_string(nodes_[w].nelements()) + " values, rows are " +
                            std::to_string(nodes_[x].ne[0]) + " long"),
                   -1;
    }
    if (!(eps >= 0.0f)) return fail("rms_norm", name, "eps must be >= 0"), -1;
    graph_node n = like(nodes_[x], GRAPH_OP_RMS_NORM, name, {x, w});
    n.fp[0] = eps;
    return add_node(std::move(n));
}

int graph::layer_norm(int x, int w, int b, float eps, const std::string & name) {
    if (!check_ids("layer_norm", name, {x}) || !check_f32("layer_norm", name, x, "x")) return -1;
    for (int p : {w, b}) {
        if (p < 0) continue;
        if (!check_ids("layer_norm", name, {p}) || !check_f32("layer_norm", name, p, "affine")) return -1;
        if (nodes_[p].nelements() != nodes_[x].ne[0])
            return fail("layer_norm", name,
                        "affine '" + nodes_[p].name + "' has " + std::to_string(nodes_[p].nelements()) +
                            " values, rows are " + std::to_string(nodes_[x].ne[0]) + " long"),
                   -1;
    }
    if (!(eps >= 0.0f)) return fail("layer_norm", name, "eps must be >= 0"), -1;
    graph_node n = like(nodes_[x], GRAPH_OP_LAYER_NORM, name, {x, w, b});
    n.fp[0] = eps;
    return add_node(std::move(n));
}

int graph::group_norm(int x, int w, int b, int64_t n_groups, float eps, const std::string & name) {
    if (!check_ids("group_norm", name, {x}) || !check_f32("group_norm", name, x, "x")) return -1;
    const graph_node & X = nodes_[x];
    const int64_t C = X.ne[2] * X.ne[3];  // {W, H, C} (or {HW, 1, C}): channels are the outer dims
    if (n_groups <= 0 || C % n_groups != 0)
        return fail("group_norm", name,
                    std::to_string(C) + " channels not divisible into " + std::to_string(n_groups) + " groups"),
               -1;
    for (int p : {w, b}) {
        if (p < 0) continue;
        if (!check_ids("group_norm", name, {p}) || !check_f32("group_norm", name, p, "affine")) return -1;
        if (nodes_[p].nelements() != C)
            return fail("group_norm", name,
                        "affine '" + nodes_[p].name + "' has " + std::to_string(nodes_[p].nelements()) +
                            " values for " + std::to_string(C) + " channels"),
                   -1;
    }
    graph_node n = like(X, GRAPH_OP_GROUP_NORM, name, {x, w, b});
    n.ip[0] = n_groups;
    n.fp[0] = eps;
    return add_node(std::move(n));
}

int graph::rope(int x, std::vector<int32_t> pos, int64_t n_rot, float freq_base, float freq_scale, rope_mode mode,
                const std::string & name) {
    if (!check_ids("rope", name, {x}) || !check_f32("rope", name, x, "x")) return -1;
    const graph_node & X = nodes_[x];
    if (static_cast<int64_t>(pos.size()) != X.ne[2] * X.ne[3])
        return fail("rope", name,
                    std::to_string(pos.size()) + " positions for " + std::to_string(X.ne[2] * X.ne[3]) + " tokens"),
               -1;
    if (n_rot <= 0 || n_rot % 2 != 0 || n_rot > X.ne[0])
        return fail("rope", name,
                    "n_rot " + std::to_string(n_rot) + " must be even and in (0, head_dim " + std::to_string(X.ne[0]) +
                        "]"),
               -1;
    if (mode != ROPE_MODE_NORMAL && mode != ROPE_MODE_NEOX)
        return fail("rope", name, "unknown mode " + std::to_string(mode)), -1;
    if (!(freq_base > 0.0f)) return fail("rope", name, "freq_base must be > 0"), -1;
    graph_node n = like(X, GRAPH_OP_ROPE, name, {x});
    n.ids = std::move(pos);
    n.ip[0] = n_rot;
    n.ip[1] = mode;
    n.fp[0] = freq_base;
    n.fp[1] = freq_scale;
    return add_node(std::move(n));
}

int graph::attention(int q, int k, int v, float scale, bool causal, int64_t q_pos0, int64_t window,
                     const std::string & name) {
    if (!check_ids("attention", name, {q, k, v})) return -1;
    for (int id : {q, k, v})
        if (!check_f32("attention", name, id, "q/k/v")) return -1;
    const graph_node & Q = nodes_[q];
    const graph_node & K = nodes_[k];
    const graph_node & V = nodes_[v];
    if (!same_shape(K, V))
        return fail("attention", name, "k " + shape_str(K.ne) + " and v " + shape_str(V.ne) + " differ"), -1;
    if (Q.ne[0] != K.ne[0] || Q.ne[3] != 1 || K.ne[3] != 1)
        return fail("attention", name,
                    "q " + shape_str(Q.ne) + " and k " + shape_str(K.ne) +
                        " must be {head_dim, heads, tokens, 1} with one head_dim"),
               -1;
    if (Q.ne[1] % K.ne[1] != 0)
        return fail("attention", name,
                    "n_head " + std::to_string(Q.ne[1]) + " is not a multiple of n_head_kv " + std::to_string(K.ne[1])),
               -1;
    if (window < 0) return fail("attention", name, "window must be >= 0"), -1;
    graph_node n = like(Q, GRAPH_OP_ATTENTION, name, {q, k, v});
    n.fp[0] = scale;
    n.ip[0] = causal ? 1 : 0;
    n.ip[1] = q_pos0;
    n.ip[2] = window;
    return add_node(std::move(n));
}

int graph::conv1d(int x, int w, int b, int64_t stride, int64_t pad, const std::string & name) {
    if (!check_ids("conv1d", name, {x, w}) || !check_f32("conv1d", name, x, "x") ||
        !check_f32("conv1d", name, w, "weight"))
        return -1;
    const graph_node & X = nodes_[x];
    const graph_node & W = nodes_[w];  // {K, C_in, C_out}
    if (X.ne[2] != 1 || X.ne[3] != 1) return fail("conv1d", name, "x must be {L, C_in}, got " + shape_str(X.ne)), -1;
    if (W.ne[1] != X.ne[1] || W.ne[3] != 1)
        return fail("conv1d", name, "weight " + shape_str(W.ne) + " does not match x " + shape_str(X.ne)), -1;
    if (stride < 1 || pad < 0) return fail("conv1d", name, "stride must be >= 1 and pad >= 0"), -1;
    if (b >= 0 && (!check_ids("conv1d", name, {b}) || !check_f32("conv1d", name, b, "bias"))) return -1;
    if (b >= 0 && nodes_[b].nelements() != W.ne[2]) return fail("conv1d", name, "bias size != C_out"), -1;
    const int64_t L_out = (X.ne[0] + 2 * pad - W.ne[0]) / stride + 1;
    if (X.ne[0] + 2 * pad < W.ne[0]) return fail("conv1d", name, "kernel longer than the padded input"), -1;
    graph_node n;
    n.op = GRAPH_OP_CONV1D;
    n.name = name;
    n.src = {x, w, b};
    n.ne[0] = L_out;
    n.ne[1] = W.ne[2];
    n.ip[0] = stride;
    n.ip[1] = pad;
    return add_node(std::move(n));
}

int graph::conv2d(int x, int w, int b, int64_t stride, int64_t pad, const std::string & name) {
    if (!check_ids("conv2d", name, {x, w}) || !check_f32("conv2d", name, x, "x") ||
        !check_f32("conv2d", name, w, "weight"))
        return -1;
    const graph_node & X = nodes_[x];
    const graph_node & W = nodes_[w];  // {KW, KH, C_in, C_out}
    if (X.ne[3] != 1) return fail("conv2d", name, "x must be {W, H, C_in}, got " + shape_str(X.ne)), -1;
    if (W.ne[2] != X.ne[2])
        return fail("conv2d", name,
                    "weight " + shape_str(W.ne) + " has C_in " + std::to_string(W.ne[2]) + ", x has " +
                        std::to_string(X.ne[2])),
               -1;
    if (stride < 1 || pad < 0) return fail("conv2d", name, "stride must be >= 1 and pad >= 0"), -1;
    if (X.ne[0] + 2 * pad < W.ne[0] || X.ne[1] + 2 * pad < W.ne[1])
        return fail("conv2d", name, "kernel larger than the padded input"), -1;
    if (b >= 0 && (!check_ids("conv2d", name, {b}) || !check_f32("conv2d", name, b, "bias"))) return -1;
    if (b >= 0 && nodes_[b].nelements() != W.ne[3]) return fail("conv2d", name, "bias size != C_out"), -1;
    graph_node n;
    n.op = GRAPH_OP_CONV2D;
    n.name = name;
    n.src = {x, w, b};
    n.ne[0] = (X.ne[0] + 2 * pad - W.ne[0]) / stride + 1;
    n.ne[1] = (X.ne[1] + 2 * pad - W.ne[1]) / stride + 1;
    n.ne[2] = W.ne[3];
    n.ip[0] = stride;
    n.ip[1] = pad;
    return add_node(std::move(n));
}

int graph::conv_transpose2d(int x, int w, int b, int64_t stride, int64_t pad, const std::string & name) {
    if (!check_ids("conv_transpose2d", name, {x, w}) || !check_f32("conv_transpose2d", name, x, "x") ||
        !check_f32("conv_transpose2d", name, w, "weight"))
        return -1;
    const graph_node & X = nodes_[x];
    const graph_node & W = nodes_[w];  // {KW, KH, C_out, C_in} (PyTorch [C_in, C_out, KH, KW])
    if (X.ne[3] != 1 || W.ne[3] != X.ne[2])
        return fail("conv_transpose2d", name, "weight " + shape_str(W.ne) + " does not match x " + shape_str(X.ne)), -1;
    if (stride < 1 || pad < 0) return fail("conv_transpose2d", name, "stride must be >= 1 and pad >= 0"), -1;
    if (b >= 0 && (!check_ids("conv_transpose2d", name, {b}) || !check_f32("conv_transpose2d", name, b, "bias")))
        return -1;
    if (b >= 0 && nodes_[b].nelements() != W.ne[2]) return fail("conv_transpose2d", name, "bias size != C_out"), -1;
    graph_node n;
    n.op = GRAPH_OP_CONV_TRANSPOSE2D;
    n.name = name;
    n.src = {x, w, b};
    n.ne[0] = (X.ne[0] - 1) * stride - 2 * pad + W.ne[0];
    n.ne[1] = (X.ne[1] - 1) * stride - 2 * pad + W.ne[1];
    n.ne[2] = W.ne[2];
    n.ip[0] = stride;
    n.ip[1] = pad;
    return add_node(std::move(n));
}

int graph::conv_temporal(int x, int w, int b, const std::string & name) {
    if (!check_ids("conv_temporal", name, {x, w}) || !check_f32("conv_temporal", name, x, "x") ||
        !check_f32("conv_temporal", name, w, "weight"))
        return -1;
    const graph_node & X = nodes_[x];  // {HW, T, C_in}
    const graph_node & W = nodes_[w];  // {KT, C_in, C_out}
    if (X.ne[3] != 1 || W.ne[1] != X.ne[2] || W.ne[3] != 1)
        return fail("conv_temporal", name, "weight " + shape_str(W.ne) + " does not match x " + shape_str(X.ne)), -1;
    if (b >= 0 && (!check_ids("conv_temporal", name, {b}) || !check_f32("conv_temporal", name, b, "bias"))) return -1;
    if (b >= 0 && nodes_[b].nelements() != W.ne[2]) return fail("conv_temporal", name, "bias size != C_out"), -1;
    graph_node n = like(X, GRAPH_OP_CONV_TEMPORAL, name, {x, w, b});
    n.ne[2] = W.ne[2];
    return add_node(std::move(n));
}

int graph::upsample_nearest2d(int x, int64_t f, const std::string & name) {
    if (!check_ids("upsample_nearest2d", name, {x}) || !check_f32("upsample_nearest2d", name, x, "x")) return -1;
    if (f < 1) return fail("upsample_nearest2d", name, "factor must be >= 1"), -1;
    graph_node n = like(nodes_[x], GRAPH_OP_UPSAMPLE_NEAREST2D, name, {x});
    n.ne[0] *= f;
    n.ne[1] *= f;
    n.ip[0] = f;
    return add_node(std::move(n));
}

int graph::avg_pool2d(int x, int64_t k, const std::string & name) {
    if (!check_ids("avg_pool2d", name, {x}) || !check_f32("avg_pool2d", name, x, "x")) return -1;
    if (k < 1 || k > nodes_[x].ne[0] || k > nodes_[x].ne[1])
        return fail("avg_pool2d", name, "kernel " + std::to_string(k) + " must be in [1, min(W, H)]"), -1;
    graph_node n = like(nodes_[x], GRAPH_OP_AVG_POOL2D, name, {x});
    n.ne[0] /= k;
    n.ne[1] /= k;
    n.ip[0] = k;
    return add_node(std::move(n));
}

int graph::max_pool2d(int x, int64_t k, const std::string & name) {
    if (!check_ids("max_pool2d", name, {x}) || !check_f32("max_pool2d", name, x, "x")) return -1;
    if (k < 1 || k > nodes_[x].ne[0] || k > nodes_[x].ne[1])
        return fail("max_pool2d", name, "kernel " + std::to_string(k) + " must be in [1, min(W, H)]"), -1;
    graph_node n = like(nodes_[x], GRAPH_OP_MAX_POOL2D, name, {x});
    n.ne[0] /= k;
    n.ne[1] /= k;
    n.ip[0] = k;
    return add_node(std::move(n));
}

int graph::permute(int x, const int perm[4], const std::string & name) {
    if (!check_ids("permute", name, {x}) || !check_f32("permute", name, x, "x")) return -1;
    bool seen[4] = {false, false, false, false};
    for (int d = 0; d < 4; ++d) {
        if (perm[d] < 0 || perm[d] > 3 || seen[perm[d]])
            return fail("permute", name, "perm is not a permutation of 0..3"), -1;
        seen[perm[d]] = true;
    }
    graph_node n = like(nodes_[x], GRAPH_OP_PERMUTE, name, {x});
    for (int d = 0; d < 4; ++d) {
        n.ne[d] = nodes_[x].ne[perm[d]];
        n.ip[d] = perm[d];
    }
    return add_node(std::move(n));
}

int graph::concat(int a, int b, int dim, const std::string & name) {
    if (!check_ids("concat", name, {a, b}) || !check_f32("concat", name, a, "a") || !check_f32("concat", name, b, "b"))
        return -1;
    if (dim < 0 || dim > 3) return fail("concat", name, "dim " + std::to_string(dim) + " outside [0, 3]"), -1;
    for (int d = 0; d < 4; ++d)
        if (d != dim && nodes_[a].ne[d] != nodes_[b].ne[d])
            return fail("concat", name,
                        "shapes " + shape_str(nodes_[a].ne) + " and " + shape_str(nodes_[b].ne) +
                            " differ outside dim " + std::to_string(dim)),
                   -1;
    graph_node n = like(nodes_[a], GRAPH_OP_CONCAT, name, {a, b});
    n.ne[dim] += nodes_[b].ne[dim];
    n.ip[0] = dim;
    return add_node(std::move(n));
}

int graph::reshape(int x, std::vector<int64_t> ne, const std::string & name) {
    if (!check_ids("reshape", name, {x}) || !check_f32("reshape", name, x, "x")) return -1;
    if (ne.empty() || ne.size() > 4) return fail("reshape", name, "needs 1 to 4 dimensions"), -1;
    graph_node n = like(nodes_[x], GRAPH_OP_RESHAPE, name, {x});
    int64_t total = 1;
    for (int d = 0; d < 4; ++d) {
        n.ne[d] = d < static_cast<int>(ne.size()) ? ne[d] : 1;
        total *= n.ne[d];
    }
    if (total != nodes_[x].nelements())
        return fail("reshape", name,
                    shape_str(n.ne) + " holds " + std::to_string(total) + " values, input has " +
                        std::to_string(nodes_[x].nelements())),
               -1;
    return add_node(std::move(n));
}

// ---- execution

namespace {

// Elementwise and row-wise ops take no pool (they are cheap next to the matmuls), but at prompt sizes they are not
// free: on the CPU backend the graph splits big ones into element / row ranges over the pool. Returns false for
// ops it does not split.
bool run_split(graph_node & n, const float * a, const float * b, const float * c, float * y, thread_pool * pool) {
    const int64_t len = n.ne[0], rows = n.nelements() / n.ne[0], total = n.nelements();
    const act_type act = static_cast<act_type>(n.ip[0]);
    const float f0 = n.fp[0];
    switch (n.op) {
        case GRAPH_OP_ADD:
        case GRAPH_OP_MUL:
        case GRAPH_OP_SCALE:
        case GRAPH_OP_ACT:
        case GRAPH_OP_GLU:
            pool->run([&](int ith, int nth) {
                // Ranges in multiples of 64 elements keep every thread's vector loop aligned with the others'.
                long long b0, b1;
                split_range((total + 63) / 64, ith, nth, b0, b1);
                const int64_t e0 = b0 * 64, e1 = std::min<int64_t>(b1 * 64, total), m = e1 - e0;
                if (m <= 0) return;
                if (n.op == GRAPH_OP_ADD) add(a + e0, b + e0, y + e0, m);
                if (n.op == GRAPH_OP_MUL) mul(a + e0, b + e0, y + e0, m);
                if (n.op == GRAPH_OP_SCALE) scale(a + e0, f0, y + e0, m);
                if (n.op == GRAPH_OP_ACT) activation(act, a + e0, y + e0, m);
                if (n.op == GRAPH_OP_GLU) glu(act, a + e0, b + e0, y + e0, m);
            });
            return true;
        case GRAPH_OP_MUL_ROW:
        case GRAPH_OP_ADD_ROW:
        case GRAPH_OP_SOFTMAX:
        case GRAPH_OP_RMS_NORM:
        case GRAPH_OP_LAYER_NORM:
            if (rows < 2) return false;
            pool->run([&](int ith, int nth) {
                long long r0, r1;
                split_range(rows, ith, nth, r0, r1);
                const int64_t nr = r1 - r0, o = r0 * len;
                if (nr <= 0) return;
                if (n.op == GRAPH_OP_MUL_ROW) mul_row(a + o, b, y + o, nr, len);
                if (n.op == GRAPH_OP_ADD_ROW) add_row(a + o, b, y + o, nr, len);
                if (n.op == GRAPH_OP_SOFTMAX) softmax_rows(a + o, y + o, nr, len);
                if (n.op == GRAPH_OP_RMS_NORM) rms_norm(a + o, b, y + o, nr, len, f0);
                if (n.op == GRAPH_OP_LAYER_NORM) layer_norm(a + o, b, c, y + o, nr, len, f0);
            });
            return true;
        default:
            return false;
    }
}

// One node on one backend; all shapes were validated when the node was added.
void run_node(graph & g, graph_node & n, bool use_ref, thread_pool * pool) {
    auto in = [&](int i) -> const float * {
        return i < static_cast<int>(n.src.size()) && n.src[i] >= 0 ? g.data(n.src[i]) : nullptr;
    };
    auto src = [&](int i) -> const graph_node & { return g.node(n.src[i]); };
    float * y = n.out.data();
    thread_pool * tp = use_ref ? nullptr : pool;
    constexpr int64_t SPLIT_MIN = 1 << 15;  // below this a parallel-for costs more than it saves
    if (tp && tp->size() > 1 && n.nelements() >= SPLIT_MIN && run_split(n, in(0), in(1), in(2), y, tp)) return;
#define OP(fn, ...)                       \
    do {                                  \
        if (use_ref)                      \
            spider::ref::fn(__VA_ARGS__); \
        else                              \
            spider::fn(__VA_ARGS__);      \
    } while (0)
    switch (n.op) {
        case GRAPH_OP_INPUT:
        case GRAPH_OP_CONSTANT:
            break;
        case GRAPH_OP_MATMUL: {
            const graph_node & x = src(1);
            OP(matmul, src(0).weight, in(1), y, x.ne[1] * x.ne[2] * x.ne[3], tp);
            break;
        }
        case GRAPH_OP_GET_ROWS:
            OP(get_rows, src(0).weight, n.ids.data(), static_cast<int64_t>(n.ids.size()), y);
            break;
        case GRAPH_OP_ADD:
            OP(add, in(0), in(1), y, n.nelements());
            break;
        case GRAPH_OP_MUL:
            OP(mul, in(0), in(1), y, n.nelements());
            break;
        case GRAPH_OP_SCALE:
            OP(scale, in(0), n.fp[0], y, n.nelements());
            break;
        case GRAPH_OP_MUL_ROW:
            OP(mul_row, in(0), in(1), y, n.nelements() / n.ne[0], n.ne[0]);
            break;
        case GRAPH_OP_ADD_ROW:
            OP(add_row, in(0), in(1), y, n.nelements() / n.ne[0], n.ne[0]);
            break;
        case GRAPH_OP_ACT:
            OP(activation, static_cast<act_type>(n.ip[0]), in(0), y, n.nelements());
            break;
        case GRAPH_OP_GLU:
            OP(glu, static_cast<act_type>(n.ip[0]), in(0), in(1), y, n.nelements());
            break;
        case GRAPH_OP_SOFTMAX:
            OP(softmax_rows, in(0), y, n.nelements() / n.ne[0], n.ne[0]);
            break;
        case GRAPH_OP_RMS_NORM:
            OP(rms_norm, in(0), in(1), y, n.nelements() / n.ne[0], n.ne[0], n.fp[0]);
            break;
        case GRAPH_OP_LAYER_NORM:
            OP(layer_norm, in(0), in(1), in(2), y, n.nelements() / n.ne[0], n.ne[0], n.fp[0]);
            break;
        case GRAPH_OP_GROUP_NORM: {
            const int64_t C = n.ne[2] * n.ne[3];
            OP(group_norm, in(0), in(1), in(2), y, C, n.ne[0] * n.ne[1], n.ip[0], n.fp[0]);
            break;
        }
        case GRAPH_OP_ROPE:
            std::memcpy(y, in(0), sizeof(float) * n.nelements());
            OP(rope, y, n.ids.data(), n.ne[2] * n.ne[3], n.ne[1], n.ne[0], n.ip[0], n.fp[0], n.fp[1],
               static_cast<rope_mode>(n.ip[1]));
            break;
        case GRAPH_OP_ATTENTION: {
            const graph_node & k = src(1);
            OP(attention, in(0), in(1), in(2), y, n.ne[2], k.ne[2], n.ne[1], k.ne[1], n.ne[0], n.fp[0], n.ip[0] != 0,
               n.ip[1], n.ip[2], tp);
            break;
        }
        case GRAPH_OP_CONV1D: {
            const graph_node & x = src(0);
            const graph_node & w = src(1);
            OP(conv1d, in(0), in(1), in(2), y, x.ne[1], x.ne[0], w.ne[2], w.ne[0], n.ip[0], n.ip[1], tp);
            break;
        }
        case GRAPH_OP_CONV2D: {
            const graph_node & x = src(0);
            const graph_node & w = src(1);
            OP(conv2d, in(0), in(1), in(2), y, x.ne[2], x.ne[1], x.ne[0], w.ne[3], w.ne[1], w.ne[0], n.ip[0], n.ip[1],
               tp);
            break;
        }
        case GRAPH_OP_CONV_TRANSPOSE2D: {
            const graph_node & x = src(0);
            const graph_node & w = src(1);
            OP(conv_transpose2d, in(0), in(1), in(2), y, x.ne[2], x.ne[1], x.ne[0], w.ne[2], w.ne[1], w.ne[0], n.ip[0],
               n.ip[1], tp);
            break;
        }
        case GRAPH_OP_CONV_TEMPORAL: {
            const graph_node & x = src(0);
            const graph_node & w = src(1);
            OP(conv_temporal, in(0), in(1), in(2), y, x.ne[2], x.ne[1], x.ne[0], w.ne[2], w.ne[0], tp);
            break;
        }
        case GRAPH_OP_UPSAMPLE_NEAREST2D: {
            const graph_node & x = src(0);
            OP(upsample_nearest2d, in(0), y, x.ne[2] * x.ne[3], x.ne[1], x.ne[0], n.ip[0]);
            break;
        }
        case GRAPH_OP_AVG_POOL2D:
        case GRAPH_OP_MAX_POOL2D: {
            const graph_node & x = src(0);
            if (n.op == GRAPH_OP_AVG_POOL2D)
                OP(avg_pool2d, in(0), y, x.ne[2] * x.ne[3], x.ne[1], x.ne[0], n.ip[0]);
            else
                OP(max_pool2d, in(0), y, x.ne[2] * x.ne[3], x.ne[1], x.ne[0], n.ip[0]);
            break;
        }
        case GRAPH_OP_PERMUTE: {
            const int perm[4] = {static_cast<int>(n.ip[0]), static_cast<int>(n.ip[1]), static_cast<int>(n.ip[2]),
                                 static_cast<int>(n.ip[3])};
            OP(permute, in(0), y, src(0).ne, perm);
            break;
        }
        case GRAPH_OP_CONCAT:
            OP(concat, in(0), src(0).ne, in(1), src(1).ne, static_cast<int>(n.ip[0]), y);
            break;
        case GRAPH_OP_RESHAPE:
            std::memcpy(y, in(0), sizeof(float) * n.nelements());
            break;
    }
#undef OP
}

}  // namespace

bool graph_compute(graph & g, const graph_compute_params & p, std::string * err) {
    if (!g.ok()) {
        if (err) *err = "graph_compute: graph has a build error: " + g.error();
        return false;
    }
    const bool use_ref = p.backend == GRAPH_BACKEND_REFERENCE;
    for (int id = 0; id < g.size(); ++id) {
        graph_node & n = g.nodes_[id];
        if (n.op == GRAPH_OP_INPUT || n.op == GRAPH_OP_CONSTANT) continue;
        n.out.resize(static_cast<size_t>(n.nelements()));
        run_node(g, n, use_ref, p.pool);
        if (p.on_node) p.on_node(g, id);
    }
    return true;
}

bool graph_dump_npy(const graph & g, int id, const std::string & dir, std::string * err) {
    auto fail_with = [&](const std::string & m) {
        if (err) *err = "graph_dump_npy: " + m;
        return false;
    };
    if (id < 0 || id >= g.size()) return fail_with("node id " + std::to_string(id) + " does not exist");
    const graph_node & n = g.node(id);
    const float * data = g.data(id);
    if (!data) return fail_with("node '" + n.name + "' has no F32 data (not computed yet, or a quantized constant)");
    std::string fname = n.name;
    for (char & c : fname)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
    if (fname.empty() || fname[0] == '.') fname = "_" + fname;
    // numpy shape: outermost first; drop leading (outer) 1-dims but keep at least one.
    int nd = 4;
    while (nd > 1 && n.ne[nd - 1] == 1) --nd;
    std::string shape = "(";
    for (int d = nd - 1; d >= 0; --d) shape += std::to_string(n.ne[d]) + (nd == 1 ? "," : (d > 0 ? ", " : ""));
    shape += ")";
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in \n.
    const size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    const std::string path = dir + "/" + fname + ".npy";
    FILE * f = std::fopen(path.c_str(), "wb");
    if (!f) return fail_with("cannot open '" + path + "' for writing");
    const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    const uint16_t hlen = static_cast<uint16_t>(header.size());
    const unsigned char hl[2] = {static_cast<unsigned char>(hlen & 0xff), static_cast<unsigned char>(hlen >> 8)};
    bool ok = std::fwrite(magic, 1, 8, f) == 8 && std::fwrite(hl, 1, 2, f) == 2 &&
              std::fwrite(header.data(), 1, header.size(), f) == header.size();
    // The data is written as the host stores it: x86-64 and every target we build for are little-endian.
    const size_t count = static_cast<size_t>(n.nelements());
    ok = ok && std::fwrite(data, sizeof(float), count, f) == count;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) return fail_with("write to '" + path + "' failed");
    return true;
}

}  // namespace spider
