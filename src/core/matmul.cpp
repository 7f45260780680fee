// Optimised matmul / get_rows (ops.h): picks the kernel for the weight type at the active CPU level
// (cpu_features.h), converts the activations once to the kernel's format (Q8_0 / Q8_K for quantized weights, so the
// inner loops are integer dot products), then splits the output rows over the thread pool.
//
// Loop order per thread: token chunks of TOK_CHUNK, then the thread's 4-row weight tiles, then token tiles of
// max_nc. A 4-row tile (a few KB) stays in L1 while every token tile of the chunk uses it, and the chunk's
// activations (<= 64 rows) stay in L2, so weights stream from memory once per chunk. Decode (n_tok = 1) is the
// degenerate case: each weight row is read exactly once, four rows at a time.
#include <cstring>
#include <limits>
#include <vector>

#include "core/cpu_features.h"
#include "core/matmul_kernels.h"
#include "core/ops.h"
#include "core/quants.h"

namespace spider {

namespace {

constexpr int64_t TOK_CHUNK = 64;

matmul_kernel select_kernel(dtype t) {
    matmul_kernel k;
    const cpu_level lvl = cpu_level_active();
    if (lvl >= CPU_LEVEL_AVX512 && matmul_kernel_avx512(t, &k)) return k;
    if (lvl >= CPU_LEVEL_AVX2 && matmul_kernel_avx2(t, &k)) return k;
    matmul_kernel_portable(t, &k);
    return k;
}

void parallel(thread_pool *pool, const std::function<void(int, int)> &fn) {
    if (pool && pool->size() > 1) {
        pool->run(fn);
    } else {
        fn(0, 1);
    }
}

}  // namespace

void matmul(const tensor &W, const float *x, float *y, int64_t n_tok, thread_pool *pool) {
    if (!matmul_check(W, n_tok, nullptr)) {
        ref::matmul(W, x, y, n_tok, pool);  // writes NaN for the broken invariant; never reads out of bounds
        return;
    }
    const int64_t n_in = W.ne[0], n_out = W.ne[1];
    if (n_tok == 0) return;
    const matmul_kernel k = select_kernel(W.type);

    // Activations in the kernel's format. The buffer is per calling thread so concurrent matmuls from different
    // threads (each with its own pool) do not collide.
    const uint8_t *xq = reinterpret_cast<const uint8_t *>(x);
    size_t x_stride = static_cast<size_t>(n_in) * sizeof(float);
    if (k.prep || k.vec_dot_type != DTYPE_F32) {
        static thread_local std::vector<uint8_t> xbuf;
        x_stride = k.prep ? k.x_bytes(n_in) : dtype_row_bytes(k.vec_dot_type, n_in);
        if (xbuf.size() < x_stride * static_cast<size_t>(n_tok)) xbuf.resize(x_stride * static_cast<size_t>(n_tok));
        uint8_t *dst = xbuf.data();
        const dtype vt = k.vec_dot_type;
        auto quantize_tokens = [&](int ith, int nth) {
            long long b, e;
            split_range(n_tok, ith, nth, b, e);
            for (long long t = b; t < e; ++t) {
                if (k.prep) {
                    k.prep(x + t * n_in, n_in, dst + t * x_stride);
                } else {
                    quantize_row(vt, x + t * n_in, dst + t * x_stride, n_in);
                }
            }
        };
        if (n_tok > 1) {
            parallel(pool, quantize_tokens);
        } else {
            quantize_tokens(0, 1);
        }
        xq = dst;
    }

    const int64_t n_tiles = (n_out + MATMUL_MAX_NR - 1) / MATMUL_MAX_NR;
    const uint8_t *w0 = static_cast<const uint8_t *>(W.data);
    const size_t w_stride = W.nb[1];
    auto run_tiles = [&](int64_t tb, int64_t te, int64_t c_begin, int64_t c_end) {
        for (int64_t t0 = c_begin; t0 < c_end; t0 += TOK_CHUNK) {
            const int64_t t1 = t0 + TOK_CHUNK < c_end ? t0 + TOK_CHUNK : c_end;
            for (int64_t rt = tb; rt < te; ++rt) {
                const int64_t r0 = rt * MATMUL_MAX_NR;
                const int nr = static_cast<int>(n_out - r0 < MATMUL_MAX_NR ? n_out - r0 : MATMUL_MAX_NR);
                for (int64_t c0 = t0; c0 < t1; c0 += k.max_nc) {
                    const int nc = static_cast<int>(t1 - c0 < k.max_nc ? t1 - c0 : k.max_nc);
                    k.tile(n_in, w0 + r0 * w_stride, w_stride, nr, xq + c0 * x_stride, x_stride, nc,
                           y + c0 * n_out + r0, static_cast<size_t>(n_out));
                }
            }
        }
    };
    parallel(pool, [&](int ith, int nth) {
        long long b, e;
        if (n_tiles >= nth || n_tok <= k.max_nc) {  // usual case: each thread owns a range of output rows
            split_range(n_tiles, ith, nth, b, e);
            run_tiles(b, e, 0, n_tok);
        } else {
            // Fewer row tiles than threads (a narrow output, many tokens): split the tokens instead, in whole
            // token tiles so every output is computed by the same tile shape as with one thread.
            const int64_t n_units = (n_tok + k.max_nc - 1) / k.max_nc;
            split_range(n_units, ith, nth, b, e);
            const int64_t c_end = e * k.max_nc < n_tok ? e * k.max_nc : n_tok;
            if (b * k.max_nc < c_end) run_tiles(0, n_tiles, b * k.max_nc, c_end);
        }
    });
}

void get_rows(const tensor &table, const int32_t *ids, int64_t n_ids, float *y) {
    if (!get_rows_check(table, ids, n_ids, nullptr)) {
        ref::get_rows(table, ids, n_ids, y);  // NaN rows for the broken invariant
        return;
    }
    const int64_t n = table.ne[0];
    for (int64_t t = 0; t < n_ids; ++t) {
        if (table.type == DTYPE_F32) {
            std::memcpy(y + t * n, table.row(ids[t]), static_cast<size_t>(n) * sizeof(float));
        } else {
            dequantize_row(table.type, table.row(ids[t]), y + t * n, n);
        }
    }
}

}  // namespace spider
