// Reference matmul and get_rows (spider::ref, declared in ops.h) and the argument checks shared with the optimised
// versions. The reference dequantizes each weight row to float and accumulates the dot product in double, so it is
// the "exact" answer the optimised kernels (which also quantize the activations) are measured against.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/quants.h"

namespace spider {

namespace {

bool is_float_or_quant(dtype t) {
    return t != DTYPE_I8 && t != DTYPE_I16 && t != DTYPE_I32 && t != DTYPE_Q8_K;
}

bool check_weight(const char * op, const tensor & W, std::string * err) {
    const dtype_traits * tr = dtype_get_traits(W.type);
    auto fail = [&](const std::string & m) {
        if (err) *err = std::string("[") + op + "] " + (W.name.empty() ? "tensor" : W.name) + ": " + m;
        return false;
    };
    if (!tr || !is_float_or_quant(W.type)) return fail(std::string("unsupported weight type ") + dtype_name(W.type));
    if (!W.data) return fail("no data");
    if (W.ne[0] <= 0 || W.ne[1] <= 0) {
        return fail("bad shape " + std::to_string(W.ne[0]) + " x " + std::to_string(W.ne[1]));
    }
    if (W.ne[2] != 1 || W.ne[3] != 1) return fail("expected a 2-D tensor, ne[2] = " + std::to_string(W.ne[2]));
    if (W.ne[0] % tr->block_size != 0) {
        return fail("row length " + std::to_string(W.ne[0]) + " is not a multiple of the " + tr->name + " block size " +
                    std::to_string(tr->block_size));
    }
    if (W.nb[1] < W.row_bytes()) return fail("row stride " + std::to_string(W.nb[1]) + " smaller than a row");
    return true;
}

}  // namespace

bool matmul_check(const tensor & W, int64_t n_tok, std::string * err) {
    if (!check_weight("matmul", W, err)) return false;
    if (n_tok < 0) {
        if (err) *err = "[matmul] negative token count " + std::to_string(n_tok);
        return false;
    }
    return true;
}

bool get_rows_check(const tensor & table, const int32_t * ids, int64_t n_ids, std::string * err) {
    if (!check_weight("get_rows", table, err)) return false;
    if (n_ids > 0 && !ids) {
        if (err) *err = "[get_rows] no ids";
        return false;
    }
    for (int64_t i = 0; i < n_ids; ++i) {
        if (ids[i] < 0 || ids[i] >= table.ne[1]) {
            if (err) {
                *err = "[get_rows] " + table.name + ": id " + std::to_string(ids[i]) + " at position " +
                       std::to_string(i) + " outside [0, " + std::to_string(table.ne[1]) + ")";
            }
            return false;
        }
    }
    return true;
}

namespace ref {

void matmul(const tensor & W, const float * x, float * y, int64_t n_tok, thread_pool * pool) {
    (void)pool;
    const int64_t n_in = W.ne[0], n_out = W.ne[1];
    if (!matmul_check(W, n_tok, nullptr)) {
        // Invariant broken by the caller (see matmul_check): poison the output instead of reading out of bounds.
        if (y && n_tok > 0 && n_out > 0) {
            for (int64_t i = 0; i < n_tok * n_out; ++i) y[i] = std::numeric_limits<float>::quiet_NaN();
        }
        return;
    }
    std::vector<float> w(static_cast<size_t>(n_in));
    for (int64_t o = 0; o < n_out; ++o) {
        dequantize_row(W.type, W.row(o), w.data(), n_in);
        for (int64_t t = 0; t < n_tok; ++t) {
            const float * xt = x + t * n_in;
            double sum = 0;
            for (int64_t i = 0; i < n_in; ++i) sum += static_cast<double>(w[i]) * xt[i];
            y[t * n_out + o] = static_cast<float>(sum);
        }
    }
}

void get_rows(const tensor & table, const int32_t * ids, int64_t n_ids, float * y) {
    const int64_t n = table.ne[0];
    const bool ok = get_rows_check(table, ids, n_ids, nullptr);
    for (int64_t t = 0; t < n_ids; ++t) {
        if (!ok || !dequantize_row(table.type, table.row(ids[t]), y + t * n, n)) {
            for (int64_t i = 0; i < n; ++i) y[t * n + i] = std::numeric_limits<float>::quiet_NaN();
        }
    }
}

}  // namespace ref

}  // namespace spider
