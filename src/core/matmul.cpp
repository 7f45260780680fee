// Optimised matmul / get_rows (ops.h): picks the kernel for the weight type at the active CPU level
// (cpu_features.h), converts the activations once to the kernel's format (Q8_0 / Q8_K for quantized weights, so the
// inner loops are integer dot products), then shares the output rows out over the thread pool.
//
// Work is split into chunks of whole 4-row weight tiles (about CHUNK_BYTES of weights each) that threads take
// from a shared atomic counter, so a thread that was descheduled on a busy machine, or is slower, does less
// instead of making the others wait. Chunk boundaries depend only on the shapes, never on the thread count or on
// which thread runs a chunk, and every output is computed by the same tile call: results are identical with any
// number of threads.
//
// Loop order in a chunk: token chunks of TOK_CHUNK, then the chunk's 4-row weight tiles, then token tiles of
// max_nc. A chunk's weights (<= CHUNK_BYTES) stay in L2 while every token chunk uses them, and one token chunk's
// activations (<= 64 rows) stay in L1/L2, so weights stream from memory once per matmul. Decode (n_tok = 1) is
// the degenerate case: each weight row is read exactly once, row after row (ROWWISE in matmul_simd_impl.h), in
// longer chunks (DECODE_CHUNK_BYTES) that shrink toward the end of the matmul (a guided queue, see run_jobs).
//
// matmul_multi runs several weights that read the same input (Q/K/V, gate/up) as one job: one activation
// conversion per activation format and one pool dispatch, with all weights' chunks in one queue.
#include <atomic>
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
constexpr size_t CHUNK_BYTES = 64 * 1024;  // weight bytes per work chunk (fits L2 with room for activations)
// Decode (one token) reads each weight once, so the chunk does not need to fit L2; longer chunks keep each thread
// on one sequential stream longer (the prefetcher restarts at every chunk). Measured idle, 2 threads, 2 alternating
// runs: 64 KB -> 1 MB took TinyLlama-shape Q8_0 tg from 26.7 / 25.7 to 29.5 / 28.2 t/s, gemma-3-270m from 99.0 /
// 98.1 to 117.7 / 116.5, Q4_0 from 55.5 / 46.6 to 64.3 / 72.5 (noisy); 4 MB was not better than 1 MB.
constexpr size_t DECODE_CHUNK_BYTES = 1024 * 1024;
constexpr size_t DECODE_MIN_CHUNK_BYTES = 64 * 1024;
constexpr int MULTI_MAX = 8;  // weights per matmul_multi call

matmul_kernel select_kernel(dtype t) {
    matmul_kernel k;
    const cpu_level lvl = cpu_level_active();
    if (lvl >= CPU_LEVEL_AVX512 && matmul_kernel_avx512(t, &k)) return k;
    if (lvl >= CPU_LEVEL_AVX2 && matmul_kernel_avx2(t, &k)) return k;
    matmul_kernel_portable(t, &k);
    return k;
}

void parallel(thread_pool * pool, const std::function<void(int, int)> & fn) {
    if (pool && pool->size() > 1) {
        pool->run(fn);
    } else {
        fn(0, 1);
    }
}

// One weight of a (multi-)matmul, ready to run: kernel, weights, converted activations, output.
struct mm_job {
    matmul_kernel k;
    matmul_tile_fn tile = nullptr;  // k.tile, or k.tile_packed for packed weights
    int tile_rows = MATMUL_MAX_NR;  // weight rows per tile call (MATMUL_PACK_ROWS when packed)
    const uint8_t * w0 = nullptr;   // W.data, or W.packed
    size_t w_stride = 0;
    dtype type = DTYPE_F32;
    // Packed weights whose packed kernel takes one token (k.packed_one_token) in a prompt: each chunk's groups of
    // MATMUL_PACK_ROWS rows are unpacked to plain rows and `tile` (k.tile) runs on those.
    bool unpack = false;
    int64_t n_out = 0, n_tiles = 0;
    const uint8_t * xq = nullptr;
    size_t x_stride = 0;
    float * y = nullptr;
};

// Rows [r_begin, r_end) of one job, whose weights start at w (row r_begin), in tiles of tile_rows rows, for tokens
// [c_begin, c_end).
void run_rows(const mm_job & j, matmul_tile_fn tile, int tile_rows, const uint8_t * w, int64_t r_begin, int64_t r_end,
              int64_t n_in, int64_t c_begin, int64_t c_end) {
    const matmul_kernel & k = j.k;
    for (int64_t t0 = c_begin; t0 < c_end; t0 += TOK_CHUNK) {
        const int64_t t1 = t0 + TOK_CHUNK < c_end ? t0 + TOK_CHUNK : c_end;
        for (int64_t r0 = r_begin; r0 < r_end; r0 += tile_rows) {
            const int nr = static_cast<int>(r_end - r0 < tile_rows ? r_end - r0 : tile_rows);
            for (int64_t c0 = t0; c0 < t1; c0 += k.max_nc) {
                const int nc = static_cast<int>(t1 - c0 < k.max_nc ? t1 - c0 : k.max_nc);
                tile(n_in, w + (r0 - r_begin) * j.w_stride, j.w_stride, nr, j.xq + c0 * j.x_stride, j.x_stride, nc,
                     j.y + c0 * j.n_out + r0, static_cast<size_t>(j.n_out));
            }
        }
    }
}

// Row tiles [tb, te) of one job for tokens [c_begin, c_end).
void run_tiles(const mm_job & j, int64_t n_in, int64_t tb, int64_t te, int64_t c_begin, int64_t c_end) {
    const int64_t r_begin = tb * j.tile_rows, r_end = te * j.tile_rows < j.n_out ? te * j.tile_rows : j.n_out;
    if (!j.unpack) {
        run_rows(j, j.tile, j.tile_rows, j.w0 + r_begin * j.w_stride, r_begin, r_end, n_in, c_begin, c_end);
        return;
    }
    // Once per chunk, whatever the number of tokens: a prompt chunk is about CHUNK_BYTES of weights.
    static thread_local std::vector<uint8_t> plain;
    const size_t bytes = static_cast<size_t>(r_end - r_begin) * j.w_stride;
    if (plain.size() < bytes) plain.resize(bytes);
    matmul_unpack_rows(j.type, j.w0 + r_begin * j.w_stride, n_in, r_end - r_begin, plain.data());
    run_rows(j, j.tile, MATMUL_MAX_NR, plain.data(), r_begin, r_end, n_in, c_begin, c_end);
}

// Converts x to each job's activation format (once per distinct format; the buffers are per calling thread so
// concurrent matmuls from different threads, each with its own pool, do not collide).
void prepare_activations(mm_job * jobs, int n_jobs, const float * x, int64_t n_in, int64_t n_tok, thread_pool * pool) {
    static thread_local std::vector<uint8_t> xbufs[MULTI_MAX];
    for (int i = 0; i < n_jobs; ++i) {
        mm_job & j = jobs[i];
        const matmul_kernel & k = j.k;
        j.xq = reinterpret_cast<const uint8_t *>(x);
        j.x_stride = static_cast<size_t>(n_in) * sizeof(float);
        if (!k.prep && k.vec_dot_type == DTYPE_F32) continue;
        int same = -1;
        for (int p = 0; p < i && same < 0; ++p) {
            if (jobs[p].k.prep == k.prep && jobs[p].k.vec_dot_type == k.vec_dot_type) same = p;
        }
        if (same >= 0) {
            j.xq = jobs[same].xq;
            j.x_stride = jobs[same].x_stride;
            continue;
        }
        std::vector<uint8_t> & xbuf = xbufs[i];
        j.x_stride = k.prep ? k.x_bytes(n_in) : dtype_row_bytes(k.vec_dot_type, n_in);
        if (xbuf.size() < j.x_stride * static_cast<size_t>(n_tok)) xbuf.resize(j.x_stride * static_cast<size_t>(n_tok));
        uint8_t * dst = xbuf.data();
        const size_t xs = j.x_stride;
        auto quantize_tokens = [&](int ith, int nth) {
            long long b, e;
            split_range(n_tok, ith, nth, b, e);
            for (long long t = b; t < e; ++t) {
                if (k.prep) {
                    k.prep(x + t * n_in, n_in, dst + t * xs);
                } else {
                    quantize_row(k.vec_dot_type, x + t * n_in, dst + t * xs, n_in);
                }
            }
        };
        if (n_tok > 1) {
            parallel(pool, quantize_tokens);
        } else {
            quantize_tokens(0, 1);
        }
        j.xq = dst;
    }
}

// Runs the jobs' chunks over the pool (all jobs have the same n_in and n_tok).
void run_jobs(mm_job * jobs, int n_jobs, int64_t n_in, int64_t n_tok, thread_pool * pool) {
    const int nth = pool ? pool->size() : 1;
    int64_t total_tiles = 0;
    for (int i = 0; i < n_jobs; ++i) {
        mm_job & j = jobs[i];
        j.n_tiles = (j.n_out + j.tile_rows - 1) / j.tile_rows;
        total_tiles += j.n_tiles;
    }
    if (nth > 1 && total_tiles < nth && n_tok > jobs[0].k.max_nc) {
        // Fewer row tiles than threads (a narrow output, many tokens): split the tokens instead, in whole token
        // tiles so every output is computed by the same tile shape as with one thread.
        for (int i = 0; i < n_jobs; ++i) {
            const mm_job & j = jobs[i];
            parallel(pool, [&](int ith, int nth_) {
                long long b, e;
                const int64_t n_units = (n_tok + j.k.max_nc - 1) / j.k.max_nc;
                split_range(n_units, ith, nth_, b, e);
                const int64_t c_end = e * j.k.max_nc < n_tok ? e * j.k.max_nc : n_tok;
                if (b * j.k.max_nc < c_end) run_tiles(j, n_in, 0, j.n_tiles, b * j.k.max_nc, c_end);
            });
        }
        return;
    }
    // The work as a list of chunks (row tile ranges of one job) that threads take in order from a shared counter.
    struct span {
        int job;
        int64_t tb, te;
    };
    static thread_local std::vector<span> spans;
    spans.clear();
    if (n_tok == 1 && nth > 1) {
        // Decode: a guided queue. Chunks of up to DECODE_CHUNK_BYTES while much is left, then each half of what
        // remains, down to DECODE_MIN_CHUNK_BYTES: the thread that finishes first waits for at most one small chunk
        // at the end of the matmul instead of up to a whole 1 MB one. The split depends only on the shapes, and rows
        // are computed by the same tile calls either way. A/B on the 2-core Xeon (spider bench tg -n 64 -r 3, 5
        // alternating pairs per model, busy host): faster in 10 of 15 pairs; medians gemma-3-270m +3.9%, TinyLlama-
        // shape Q8_0 +5.1%, Q4_0 -0.1% (2 of 5 faster). 16 KB instead of 64 KB at the end: gemma slower in 3 of 4
        // pairs (2026-12-05). Half instead of a quarter of what remains: every chunk restarts a weight stream (a
        // memory latency and the prefetcher's ramp), and gemma's small matmuls (0.4-1.8 MB) were cut into 6-9 chunks.
        // gemma-3-270m tg128 on the 2-core EPYC (Zen 5), rdtsc laps per matmul class, 6 alternating pairs: the
        // layers' matmuls took 0.394-0.400 instead of 0.404-0.408 of the output matrix's time when the host's
        // bandwidth was low, 0.462-0.485 instead of 0.525-0.533 when it was high (layers 1345-1380 -> 1143-1268 us
        // per token); a floor of 256 KB instead of 64 KB was slower (attn_output 151-158 -> 177-184 us).
        size_t left = 0;
        for (int i = 0; i < n_jobs; ++i)
            left += static_cast<size_t>(jobs[i].n_tiles) * jobs[i].tile_rows * jobs[i].w_stride;
        for (int i = 0; i < n_jobs; ++i) {
            const mm_job & j = jobs[i];
            const size_t tile_bytes = static_cast<size_t>(j.tile_rows) * j.w_stride;
            for (int64_t tb = 0; tb < j.n_tiles;) {
                size_t want = left / 2;
                if (want > DECODE_CHUNK_BYTES) want = DECODE_CHUNK_BYTES;
                if (want < DECODE_MIN_CHUNK_BYTES) want = DECODE_MIN_CHUNK_BYTES;
                int64_t ct = static_cast<int64_t>((want + tile_bytes - 1) / tile_bytes);
                if (ct < 1) ct = 1;
                const int64_t te = tb + ct < j.n_tiles ? tb + ct : j.n_tiles;
                spans.push_back({i, tb, te});
                const size_t done = static_cast<size_t>(te - tb) * tile_bytes;
                left = left > done ? left - done : 0;
                tb = te;
            }
        }
    } else {
        // Chunks: about CHUNK_BYTES of weights each (DECODE_CHUNK_BYTES for one token on one thread), but at least 4
        // per thread when the work allows (balance).
        for (int i = 0; i < n_jobs; ++i) {
            const mm_job & j = jobs[i];
            const size_t tile_bytes = static_cast<size_t>(j.tile_rows) * j.w_stride;
            const size_t chunk_bytes = n_tok == 1 ? DECODE_CHUNK_BYTES : CHUNK_BYTES;
            int64_t ct = static_cast<int64_t>((chunk_bytes + tile_bytes - 1) / tile_bytes);
            const int64_t balance = (total_tiles + 4 * nth - 1) / (4 * nth);
            if (ct > balance) ct = balance;
            if (ct < 1) ct = 1;
            for (int64_t tb = 0; tb < j.n_tiles; tb += ct)
                spans.push_back({i, tb, tb + ct < j.n_tiles ? tb + ct : j.n_tiles});
        }
    }
    const int64_t n_spans = static_cast<int64_t>(spans.size());
    const span * sp = spans.data();
    auto run_span = [&](int64_t c) {
        // One token as a constant, as the decode path had it before the two paths shared this queue. (Without it,
        // gemma-3-270m's decode t/s was 4-10% lower in 6 alternating pairs; with it, the same-interval roofline
        // shares of `spider bench --roofline` were 88 / 92 / 90% against the unmerged code's 90 / 85 / 82%.)
        if (n_tok == 1) {
            run_tiles(jobs[sp[c].job], n_in, sp[c].tb, sp[c].te, 0, 1);
        } else {
            run_tiles(jobs[sp[c].job], n_in, sp[c].tb, sp[c].te, 0, n_tok);
        }
    };
    if (nth == 1 || n_spans == 1) {
        for (int64_t c = 0; c < n_spans; ++c) run_span(c);
        return;
    }
    std::atomic<int64_t> next{0};
    pool->run_any([&](int, int) {
        for (;;) {
            const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
            if (c >= n_spans) break;
            run_span(c);
        }
    });
}

// Kernel, weights and tile shape for W (its packed copy when there is one and a kernel for it at this level).
void setup_job(mm_job & j, const tensor & W, float * y, int64_t n_tok) {
    j.k = select_kernel(W.type);
    j.w_stride = W.nb[1];
    j.n_out = W.ne[1];
    j.y = y;
    j.type = W.type;
    if (W.packed && j.k.tile_packed) {
        j.unpack = n_tok > 1 && j.k.packed_one_token;
        j.tile = j.unpack ? j.k.tile : j.k.tile_packed;
        j.tile_rows = MATMUL_PACK_ROWS;
        j.w0 = W.packed;
    } else {
        j.tile = j.k.tile;
        j.tile_rows = MATMUL_MAX_NR;
        j.w0 = static_cast<const uint8_t *>(W.data);
    }
}

}  // namespace

size_t matmul_pack_bytes(const tensor & W) {
    const bool kquant = W.type == DTYPE_Q4_K || W.type == DTYPE_Q6_K;
    const bool type_ok = W.type == DTYPE_Q4_0 || W.type == DTYPE_Q5_0 || W.type == DTYPE_Q8_0 || kquant;
    if (!type_ok || W.ne[0] % (kquant ? QK_K : 32) != 0 || W.ne[1] % MATMUL_PACK_ROWS != 0 || W.ne[2] != 1 ||
        W.ne[3] != 1 || W.nb[1] != W.row_bytes() || !W.data) {
        return 0;
    }
    if (!select_kernel(W.type).tile_packed) return 0;
    return W.nbytes();
}

void matmul(const tensor & W, const float * x, float * y, int64_t n_tok, thread_pool * pool) {
    if (!matmul_check(W, n_tok, nullptr)) {
        ref::matmul(W, x, y, n_tok, pool);  // writes NaN for the broken invariant; never reads out of bounds
        return;
    }
    if (n_tok == 0) return;
    mm_job j;
    setup_job(j, W, y, n_tok);
    if (pool && pool->size() < 2) pool = nullptr;
    prepare_activations(&j, 1, x, W.ne[0], n_tok, pool);
    run_jobs(&j, 1, W.ne[0], n_tok, pool);
}

void matmul_multi(int n_w, const tensor * const * W, const float * x, float * const * y, int64_t n_tok,
                  thread_pool * pool) {
    bool fused = n_w >= 1 && n_w <= MULTI_MAX;
    for (int i = 0; fused && i < n_w; ++i) {
        fused = matmul_check(*W[i], n_tok, nullptr) && W[i]->ne[0] == W[0]->ne[0];
    }
    if (!fused) {  // a broken invariant (matmul poisons that output) or too many weights: one at a time
        for (int i = 0; i < n_w; ++i) matmul(*W[i], x, y[i], n_tok, pool);
        return;
    }
    if (n_tok == 0) return;
    mm_job jobs[MULTI_MAX];
    for (int i = 0; i < n_w; ++i) setup_job(jobs[i], *W[i], y[i], n_tok);
    if (pool && pool->size() < 2) pool = nullptr;
    prepare_activations(jobs, n_w, x, W[0]->ne[0], n_tok, pool);
    run_jobs(jobs, n_w, W[0]->ne[0], n_tok, pool);
}

void linear_forward(const tensor & W, const tensor * b, const float * x, float * y, int64_t n_tok) {
    // The optimised matmul (SIMD kernels, tested against ref::matmul in tests/test_matmul.cpp), then the bias.
    matmul(W, x, y, n_tok, nullptr);
    if (b) add_row(y, static_cast<const float *>(b->data), y, n_tok, W.ne[1]);
}

void get_rows(const tensor & table, const int32_t * ids, int64_t n_ids, float * y) {
    if (!get_rows_check(table, ids, n_ids, nullptr)) {
        ref::get_rows(table, ids, n_ids, y);  // NaN rows for the broken invariant
        return;
    }
    const int64_t n = table.ne[0];
    for (int64_t t = 0; t < n_ids; ++t) {
        if (table.packed) {  // every type matmul_pack packs has a packed-row reader
            matmul_dequantize_packed_row(table, ids[t], y + t * n);
        } else if (table.type == DTYPE_F32) {
            std::memcpy(y + t * n, table.row(ids[t]), static_cast<size_t>(n) * sizeof(float));
        } else {
            dequantize_row(table.type, table.row(ids[t]), y + t * n, n);
        }
    }
}

}  // namespace spider
