// LLM run state (see context.h): creation with all scratch sized once, decode split into micro-batches, the KV
// cache, hidden-state capture, the shared output head, and the SPIDER_DUMP debug writer.
#include "llm/context.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "core/cpu_features.h"
#include "core/ops.h"

namespace spider {

// F16C row conversion (kv_convert_avx2.cpp); the scalar loop below is the portable path.
void kv_f32_to_f16_avx2(const float * src, uint16_t * dst, size_t n);

namespace {

// spider_status values (include/spider.h); the context does not include the C header.
constexpr int k_status_invalid = 1;
constexpr int k_status_oom = 5;
constexpr int k_status_ctx_full = 6;
constexpr int k_status_internal = 7;

int resolve_threads(int n) {
    if (n > 0) return n;
    unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : (int)hc;
}

void kv_narrow(const float * src, uint16_t * dst, size_t n) {
    if (cpu_level_active() >= CPU_LEVEL_AVX2) return kv_f32_to_f16_avx2(src, dst, n);
    for (size_t i = 0; i < n; i++) dst[i] = fp32_to_fp16(src[i]);
}

}  // namespace

std::unique_ptr<llm_context> llm_context::create(const llm_model * model, const llm_context_params & params,
                                                 std::string * err) {
    if (!model) {
        if (err) *err = "context: model is null";
        return nullptr;
    }
    const llm_hparams & hp = model->hparams;
    llm_context_params p = params;
    if (p.n_ctx == 0) p.n_ctx = std::min<int64_t>(hp.n_ctx_train, 8192);
    if (p.n_ctx < 0 || p.n_ctx > (1 << 20)) {
        if (err) *err = "context: n_ctx " + std::to_string(p.n_ctx) + " out of range [1, 1048576]";
        return nullptr;
    }
    if (p.n_batch <= 0 || p.n_batch > (1 << 16)) {
        if (err) *err = "context: n_batch " + std::to_string(p.n_batch) + " out of range [1, 65536]";
        return nullptr;
    }
    p.n_batch = std::min(p.n_batch, p.n_ctx);
    if (p.n_threads > 1024) {
        if (err) *err = "context: n_threads " + std::to_string(p.n_threads) + " out of range";
        return nullptr;
    }
    p.n_threads = resolve_threads(p.n_threads);

    auto c = std::unique_ptr<llm_context>(new llm_context());
    c->model = model;
    c->params = p;
    const int64_t nb = p.n_batch;
    const int64_t q_dim = hp.n_head * hp.head_dim;
    const int64_t kv_dim = hp.n_head_kv * hp.head_dim;
    try {
        c->pool = std::make_unique<thread_pool>(p.n_threads);
        c->kv.resize(hp.n_layer);
        for (auto & l : c->kv) {
            if (p.kv_f16) {
                l.k16.assign((size_t)(p.n_ctx * kv_dim), 0);
                l.v16.assign((size_t)(p.n_ctx * kv_dim), 0);
            } else {
                l.k.assign((size_t)(p.n_ctx * kv_dim), 0.0f);
                l.v.assign((size_t)(p.n_ctx * kv_dim), 0.0f);
            }
        }
        c->x.assign(nb * hp.n_embd, 0.0f);
        c->xn.assign(nb * hp.n_embd, 0.0f);
        c->q.assign(nb * q_dim, 0.0f);
        c->k.assign(nb * kv_dim, 0.0f);
        c->k2.assign(nb * kv_dim, 0.0f);
        c->v.assign(nb * kv_dim, 0.0f);
        c->attn.assign(nb * q_dim, 0.0f);
        c->proj.assign(nb * hp.n_embd, 0.0f);
        c->gate.assign(nb * hp.n_ff, 0.0f);
        c->up.assign(nb * hp.n_ff, 0.0f);
        c->act.assign(nb * hp.n_ff, 0.0f);
        c->pos.assign(nb, 0);
        c->logits.reserve(hp.n_vocab_total());
        c->capture.assign(hp.n_layer + 1, false);
        c->hidden.resize(hp.n_layer + 1);
    } catch (const std::bad_alloc &) {
        if (err) *err = "context: out of memory allocating the KV cache / scratch for n_ctx " + std::to_string(p.n_ctx);
        return nullptr;
    }
    if (const char * d = std::getenv("SPIDER_DUMP")) c->dump_dir = d;
    return c;
}

bool llm_context::set_n_threads(int n, std::string * err) {
    if (n > 1024) {
        if (err) *err = "context: n_threads " + std::to_string(n) + " out of range";
        err_kind = k_status_invalid;
        return false;
    }
    n = resolve_threads(n);
    if (n == params.n_threads && pool) return true;
    pool = std::make_unique<thread_pool>(n);
    params.n_threads = n;
    return true;
}

bool llm_context::set_capture(const std::vector<int> & layers, std::string * err) {
    const int64_t n_layer = model->hparams.n_layer;
    std::vector<bool> cap(n_layer + 1, false);
    for (int l : layers) {
        int64_t idx = l < 0 ? n_layer + 1 + l : l;
        if (idx < 0 || idx > n_layer) {
            if (err) {
                *err = "capture: layer " + std::to_string(l) + " out of range [-" + std::to_string(n_layer + 1) + ", " +
                       std::to_string(n_layer) + "]";
            }
            err_kind = k_status_invalid;
            return false;
        }
        cap[idx] = true;
    }
    capture = cap;
    for (int64_t i = 0; i <= n_layer; i++) {
        if (!capture[i]) std::vector<float>().swap(hidden[i]);
    }
    hidden_rows = 0;
    return true;
}

bool llm_context::kv_truncate(int64_t n, std::string * err) {
    if (n < 0 || n > kv_len) {
        if (err) *err = "kv_truncate: n " + std::to_string(n) + " out of range [0, " + std::to_string(kv_len) + "]";
        err_kind = k_status_invalid;
        return false;
    }
    kv_len = n;
    return true;
}

bool llm_context::decode(const int32_t * tokens, const float * embd, int64_t n, llm_output_mode out,
                         std::string * err) {
    const llm_hparams & hp = model->hparams;
    auto fail = [&](int kind, const std::string & msg) {
        err_kind = kind;
        if (err) *err = "decode: " + msg;
        return false;
    };
    if (n <= 0) return fail(k_status_invalid, "n_tokens " + std::to_string(n) + " must be positive");
    if ((tokens == nullptr) == (embd == nullptr))
        return fail(k_status_invalid, "exactly one of tokens / embd must be set");
    if (out != LLM_OUTPUT_LAST && out != LLM_OUTPUT_ALL && out != LLM_OUTPUT_NONE) {
        return fail(k_status_invalid, "unknown output mode " + std::to_string((int)out));
    }
    if (kv_len + n > params.n_ctx) {
        return fail(k_status_ctx_full, "context full: " + std::to_string(kv_len) + " cached + " + std::to_string(n) +
                                           " new tokens > n_ctx " + std::to_string(params.n_ctx));
    }
    if (tokens) {
        const int64_t nv = hp.n_vocab_total();
        for (int64_t i = 0; i < n; i++) {
            if (tokens[i] < 0 || tokens[i] >= nv) {
                return fail(k_status_invalid, "token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                                  " out of range [0, " + std::to_string(nv) + ")");
            }
        }
    } else {
        for (int64_t i = 0; i < n * hp.n_embd; i++) {
            if (!std::isfinite(embd[i])) {
                return fail(k_status_invalid,
                            "embedding input has a non-finite value at row " + std::to_string(i / hp.n_embd));
            }
        }
    }

    const auto t0 = std::chrono::steady_clock::now();
    const int64_t nv = hp.n_vocab_total();
    n_outputs = out == LLM_OUTPUT_ALL ? n : out == LLM_OUTPUT_LAST ? 1 : 0;
    try {
        logits.resize((size_t)(n_outputs * nv));
        for (int64_t i = 0; i <= hp.n_layer; i++) {
            if (capture[i]) hidden[i].resize((size_t)(n * hp.n_embd));
        }
    } catch (const std::bad_alloc &) {
        n_outputs = 0;
        return fail(k_status_oom, "out of memory for " + std::to_string(n) + " output rows");
    }
    hidden_rows = n;

    const int64_t kv_len0 = kv_len;
    for (int64_t start = 0; start < n; start += params.n_batch) {
        llm_ubatch ub;
        ub.n_tokens = std::min(params.n_batch, n - start);
        ub.tokens = tokens ? tokens + start : nullptr;
        ub.embd = embd ? embd + start * hp.n_embd : nullptr;
        ub.pos0 = kv_len;
        ub.row0 = start;
        if (out == LLM_OUTPUT_ALL) {
            ub.out_first = 0;
            ub.out_row0 = start;
        } else if (out == LLM_OUTPUT_LAST && start + ub.n_tokens == n) {
            ub.out_first = ub.n_tokens - 1;
            ub.out_row0 = 0;
        } else {
            ub.out_first = ub.n_tokens;  // none
        }
        for (int64_t i = 0; i < ub.n_tokens; i++) pos[i] = (int32_t)(ub.pos0 + i);
        std::string e;
        prof.begin(ub.n_tokens);
        if (!model->impl->forward(this, ub, &e)) {
            kv_len = kv_len0;
            n_outputs = 0;
            return fail(k_status_internal, e);
        }
        kv_len += ub.n_tokens;
    }

    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (n > 1) {
        timings.t_prompt_ms += ms;
        timings.n_prompt += n;
    } else {
        timings.t_eval_ms += ms;
        timings.n_eval += 1;
    }
    return true;
}

bool llm_context::embed_input(const llm_ubatch & ub, std::string * err) {
    const llm_hparams & hp = model->hparams;
    const int64_t d = hp.n_embd;
    if (ub.embd) {
        std::memcpy(x.data(), ub.embd, sizeof(float) * ub.n_tokens * d);
        return true;
    }
    for (int64_t i = 0; i < ub.n_tokens; i++) {
        const int32_t id = ub.tokens[i];
        float * row = x.data() + i * d;
        if (id < hp.n_vocab) {
            get_rows(model->tok_embd, &id, 1, row);
        } else {
            std::memcpy(row, model->tok_embd_extra.row(id - hp.n_vocab), sizeof(float) * d);
        }
        if (hp.embd_scale != 1.0f) {
            for (int64_t j = 0; j < d; j++) row[j] *= hp.embd_scale;
        }
    }
    (void)err;
    return true;
}

void llm_context::kv_store(int64_t il, const llm_ubatch & ub, const float * k_rows, const float * v_rows) {
    const llm_hparams & hp = model->hparams;
    const int64_t kv_dim = hp.n_head_kv * hp.head_dim;
    llm_kv_layer & l = kv[il];
    const size_t off = (size_t)(ub.pos0 * kv_dim);
    const size_t cnt = (size_t)(ub.n_tokens * kv_dim);
    if (params.kv_f16) {
        kv_narrow(k_rows, l.k16.data() + off, cnt);
        kv_narrow(v_rows, l.v16.data() + off, cnt);
    } else {
        std::memcpy(l.k.data() + off, k_rows, cnt * sizeof(float));
        std::memcpy(l.v.data() + off, v_rows, cnt * sizeof(float));
    }
}

void llm_context::kv_attend(int64_t il, const llm_ubatch & ub, const float * q_rows, float * out, float scale,
                            int64_t window) {
    const llm_hparams & hp = model->hparams;
    const int64_t kv_dim = hp.n_head_kv * hp.head_dim;
    const int64_t n_kv = ub.pos0 + ub.n_tokens;
    // With a sliding window the first query (at pos0) sees nothing before pos0 - window + 1: skip those keys and
    // shift positions so the op's "key j sits at position j" convention still holds.
    int64_t start = 0;
    if (window > 0) start = std::max<int64_t>(0, ub.pos0 - window + 1);
    const llm_kv_layer & l = kv[il];
    // Tiny attention (the first few keys) runs on this thread: a pool dispatch would cost more than the work. From
    // there on the pool splits the query heads, and past 64 keys the keys (attention_impl: segments merged in a fixed
    // order; it takes items from a queue with run_any, so a worker that a busy machine has not scheduled costs
    // nothing). gemma-3-270m tg128 on the 2-core EPYC (Zen 5), rdtsc laps per section, 2 alternating rounds
    // (2026-12-05): attention 131-137 us per token on one thread, 87-96 with the pool from the first key; the former
    // threshold (work 262144, i.e. 256 keys for gemma) kept tg128 on one thread.
    const double work = (double)ub.n_tokens * (double)(n_kv - start) * (double)(hp.n_head * hp.head_dim);
    thread_pool * p = work < 16384.0 ? nullptr : pool.get();
    if (params.kv_f16) {
        // The F16 cache is read as it is: attention widens each block of keys and values in L1.
        attention_f16kv(q_rows, l.k16.data() + start * kv_dim, l.v16.data() + start * kv_dim, out, ub.n_tokens,
                        n_kv - start, hp.n_head, hp.n_head_kv, hp.head_dim, scale, true, ub.pos0 - start, window, p,
                        &kv_wide);
    } else {
        attention(q_rows, l.k.data() + start * kv_dim, l.v.data() + start * kv_dim, out, ub.n_tokens, n_kv - start,
                  hp.n_head, hp.n_head_kv, hp.head_dim, scale, true, ub.pos0 - start, window, p);
    }
}

int64_t llm_context::rows_needed_from(int64_t il, const llm_ubatch & ub) const {
    const llm_hparams & hp = model->hparams;
    if (il + 1 < hp.n_layer || capture[hp.n_layer]) return 0;
    return ub.out_first;  // == n_tokens when the ubatch produces no logits
}

void llm_context::capture_rows(int64_t idx, const llm_ubatch & ub, const float * rows) {
    if (idx < 0 || idx >= (int64_t)capture.size() || !capture[idx]) return;
    const int64_t d = model->hparams.n_embd;
    std::memcpy(hidden[idx].data() + ub.row0 * d, rows, sizeof(float) * ub.n_tokens * d);
}

void llm_context::output_head(const llm_ubatch & ub) {
    const llm_hparams & hp = model->hparams;
    const int64_t d = hp.n_embd;
    const bool cap = capture[hp.n_layer];
    const int64_t first = cap ? 0 : ub.out_first;
    if (first >= ub.n_tokens) return;
    rms_norm(x.data() + first * d, (const float *)model->output_norm.data, xn.data() + first * d, ub.n_tokens - first,
             d, hp.rms_eps);
    if (cap) capture_rows(hp.n_layer, ub, xn.data());
    dump("result_norm", -1, xn.data() + first * d, ub.n_tokens - first, d);
    prof.mark("output_norm");
    if (ub.want_logits()) compute_logits(ub, xn.data());
}

void llm_context::compute_logits(const llm_ubatch & ub, const float * normed) {
    const llm_hparams & hp = model->hparams;
    const int64_t d = hp.n_embd;
    const int64_t nv = hp.n_vocab_total();
    const int64_t n_out = ub.n_tokens - ub.out_first;
    float * dst = logits.data() + ub.out_row0 * nv;
    const float * src = normed + ub.out_first * d;
    if (hp.n_added == 0) {
        matmul(model->output, src, dst, n_out, pool.get());
    } else {
        // Rows are n_vocab + n_added wide: the base head and the added rows go side by side, one token at a time.
        for (int64_t i = 0; i < n_out; i++) {
            matmul(model->output, src + i * d, dst + i * nv, 1, pool.get());
            matmul(model->output_extra, src + i * d, dst + i * nv + hp.n_vocab, 1, pool.get());
        }
    }
    // Weight bytes read: the batched matmul reads the head once; the per-token path once per token.
    prof.mark("matmul_output",
              hp.n_added == 0 ? model->output.nbytes()
                              : static_cast<uint64_t>(n_out) * (model->output.nbytes() + model->output_extra.nbytes()));
    dump("result_output", -1, dst, n_out, nv);
}

void llm_context::dump(const char * name, int64_t il, const float * data, int64_t rows, int64_t cols) const {
    if (dump_dir.empty()) return;
    char base[512];
    if (il >= 0) {
        std::snprintf(base, sizeof base, "%s/%s-%lld", dump_dir.c_str(), name, (long long)il);
    } else {
        std::snprintf(base, sizeof base, "%s/%s", dump_dir.c_str(), name);
    }
    std::string p = std::string(base) + ".f32";
    if (FILE * f = std::fopen(p.c_str(), "wb")) {
        std::fwrite(data, sizeof(float), (size_t)(rows * cols), f);
        std::fclose(f);
    }
    p = std::string(base) + ".shape";
    if (FILE * f = std::fopen(p.c_str(), "w")) {
        std::fprintf(f, "%lld %lld\n", (long long)rows, (long long)cols);
        std::fclose(f);
    }
}

}  // namespace spider
