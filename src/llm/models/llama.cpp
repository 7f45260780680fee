// The `llama` architecture (GGUF llama layout): pre-RMSNorm blocks, GQA attention with NORMAL-mode RoPE (the GGUF
// converter stores q/k rows permuted for it), SwiGLU FFN, final RMSNorm, output.weight or tied embeddings.
#include <cmath>

#include "core/ops.h"
#include "llm/context.h"
#include "llm/model.h"

namespace spider {

namespace {

bool llama_load_hparams(const gguf_file & f, llm_hparams * hp, std::string * err) {
    hp->rope_type = ROPE_MODE_NORMAL;
    hp->ffn_act = ACT_SILU;
    hp->embd_scale = 1.0f;
    hp->attn_scale = 1.0f / std::sqrt((float)hp->head_dim);
    hp->n_swa = 0;
    hp->swa_pattern = 0;
    int64_t n_expert = 0;
    if (f.get_int("llama.expert_count", &n_expert) && n_expert > 0) {
        return llm_load_error(
            LLM_ERR_UNSUPPORTED, err,
            "mixture-of-experts llama (expert_count " + std::to_string(n_expert) + ") is not supported");
    }
    return true;
}

bool llama_load_tensors(llm_model * m, std::string * err) {
    const llm_hparams & hp = m->hparams;
    const int64_t d = hp.n_embd, q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
    if (!m->bind(LLM_TENSOR_TOKEN_EMBD, -1, d, hp.n_vocab, true, &m->tok_embd, err) ||
        !m->bind(LLM_TENSOR_OUTPUT_NORM, -1, d, 1, true, &m->output_norm, err) ||
        !m->bind(LLM_TENSOR_OUTPUT, -1, d, hp.n_vocab, false, &m->output, err)) {
        return false;
    }
    if (!m->output.data) {
        m->output = m->tok_embd;
        m->output_tied = true;
    }
    // Llama 3.1-style RoPE scaling ("llama3" rope type): one divisor per rotated pair.
    if (!m->bind(LLM_TENSOR_ROPE_FREQS, -1, hp.n_rot / 2, 1, false, &m->rope_freqs, err)) return false;
    if (m->rope_freqs.data) {
        const float * ff = static_cast<const float *>(m->rope_freqs.data);
        for (int64_t i = 0; i < hp.n_rot / 2; i++) {
            if (!(ff[i] > 0) || !std::isfinite(ff[i])) {
                return llm_load_error(LLM_ERR_FORMAT, err,
                                      "rope_freqs.weight[" + std::to_string(i) + "] is not a positive finite number");
            }
        }
    }
    m->layers.resize(hp.n_layer);
    for (int il = 0; il < hp.n_layer; il++) {
        llm_layer & l = m->layers[il];
        if (!m->bind(LLM_TENSOR_ATTN_NORM, il, d, 1, true, &l.attn_norm, err) ||
            !m->bind(LLM_TENSOR_ATTN_Q, il, d, q_dim, true, &l.wq, err) ||
            !m->bind(LLM_TENSOR_ATTN_K, il, d, kv_dim, true, &l.wk, err) ||
            !m->bind(LLM_TENSOR_ATTN_V, il, d, kv_dim, true, &l.wv, err) ||
            !m->bind(LLM_TENSOR_ATTN_OUT, il, q_dim, d, true, &l.wo, err) ||
            !m->bind(LLM_TENSOR_FFN_NORM, il, d, 1, true, &l.ffn_norm, err) ||
            !m->bind(LLM_TENSOR_FFN_GATE, il, d, hp.n_ff, true, &l.ffn_gate, err) ||
            !m->bind(LLM_TENSOR_FFN_UP, il, d, hp.n_ff, true, &l.ffn_up, err) ||
            !m->bind(LLM_TENSOR_FFN_DOWN, il, hp.n_ff, d, true, &l.ffn_down, err)) {
            return false;
        }
    }
    return true;
}

void add_into(float * x, const float * y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

bool llama_forward(llm_context * c, const llm_ubatch & ub, std::string * err) {
    const llm_model & m = *c->model;
    const llm_hparams & hp = m.hparams;
    const int64_t n = ub.n_tokens, d = hp.n_embd;
    const int64_t q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
    thread_pool * pool = c->pool.get();
    const float * rope_ff = static_cast<const float *>(m.rope_freqs.data);  // nullptr unless Llama 3.1 scaling
    float * x = c->x.data();
    float * xn = c->xn.data();

    if (!c->embed_input(ub, err)) return false;
    c->capture_rows(0, ub, x);
    c->dump("inp_embd", -1, x, n, d);
    c->prof.mark("embed");

    for (int64_t il = 0; il < hp.n_layer; il++) {
        const llm_layer & l = m.layers[il];
        // attention
        rms_norm(x, (const float *)l.attn_norm.data, xn, n, d, hp.rms_eps);
        c->dump("attn_norm", il, xn, n, d);
        c->prof.mark("norm_add");
        {
            const tensor * w[3] = {&l.wq, &l.wk, &l.wv};
            float * y[3] = {c->q.data(), c->k.data(), c->v.data()};
            matmul_multi(3, w, xn, y, n, pool);  // one dispatch for Q, K and V
            c->prof.mark("matmul_qkv", l.wq.nbytes() + l.wk.nbytes() + l.wv.nbytes());
        }
        rope(c->q.data(), c->pos.data(), n, hp.n_head, hp.head_dim, hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale,
             hp.rope_type, rope_ff);
        rope(c->k.data(), c->pos.data(), n, hp.n_head_kv, hp.head_dim, hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale,
             hp.rope_type, rope_ff);
        c->dump("Qcur", il, c->q.data(), n, q_dim);
        c->dump("Kcur", il, c->k.data(), n, kv_dim);
        c->dump("Vcur", il, c->v.data(), n, kv_dim);
        c->prof.mark("rope");
        c->kv_store(il, ub, c->k.data(), c->v.data());
        c->prof.mark("kv_store");
        // The last layer only carries on the rows that produce output (llama.cpp's inp_out_ids).
        const int64_t r0 = c->rows_needed_from(il, ub), nr = n - r0;
        if (nr == 0) break;
        float * xr = x + r0 * d;
        c->kv_attend(il, ub.tail(r0), c->q.data() + r0 * q_dim, c->attn.data(), hp.attn_scale, 0);
        c->dump("kqv_out", il, c->attn.data(), nr, q_dim);
        c->prof.mark("attention");
        matmul(l.wo, c->attn.data(), c->proj.data(), nr, pool);
        c->prof.mark("matmul_attn_out", l.wo.nbytes());
        add_into(xr, c->proj.data(), nr * d);
        c->dump("ffn_inp", il, xr, nr, d);
        // feed-forward
        rms_norm(xr, (const float *)l.ffn_norm.data, xn, nr, d, hp.rms_eps);
        {
            const tensor * w[2] = {&l.ffn_gate, &l.ffn_up};
            float * y[2] = {c->gate.data(), c->up.data()};
            c->prof.mark("norm_add");
            matmul_multi(2, w, xn, y, nr, pool);
            c->prof.mark("matmul_ffn_gate_up", l.ffn_gate.nbytes() + l.ffn_up.nbytes());
        }
        glu(hp.ffn_act, c->gate.data(), c->up.data(), c->act.data(), nr * hp.n_ff);
        c->prof.mark("glu");
        matmul(l.ffn_down, c->act.data(), c->proj.data(), nr, pool);
        c->prof.mark("matmul_ffn_down", l.ffn_down.nbytes());
        c->dump("ffn_out", il, c->proj.data(), nr, d);
        add_into(xr, c->proj.data(), nr * d);
        c->dump("l_out", il, xr, nr, d);
        if (il + 1 < hp.n_layer) c->capture_rows(il + 1, ub, x);
        c->prof.mark("norm_add");
    }
    c->output_head(ub);
    return true;
}

const llm_arch_impl k_llama = {LLM_ARCH_LLAMA, llama_load_hparams, llama_load_tensors, llama_forward};

}  // namespace

const llm_arch_impl * llm_arch_impl_llama() {
    return &k_llama;
}

}  // namespace spider
