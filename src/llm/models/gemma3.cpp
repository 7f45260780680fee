// The `gemma3` architecture (text). Facts checked against llama.cpp (src/models/gemma3.cpp, llama-model.cpp) and
// transformers (modeling_gemma3.py):
// - token embeddings scaled by sqrt(n_embd) (not for raw embedding inputs: those are hidden-state-0 rows);
// - RMSNorm everywhere; the GGUF converter already stores the norm weights as (1 + w), so y = x/rms(x) * w;
// - per-head RMSNorm of Q and K (attn_q_norm / attn_k_norm) before NEOX RoPE;
// - sandwich norms: post_attention_norm on the attention output and post_ffw_norm on the FFN output, each before
//   the residual add;
// - GeGLU FFN with tanh-approximated GELU;
// - sliding-window layers (window = gemma3.attention.sliding_window; every 6th layer, il % 6 == 5, is global)
//   use RoPE base 10000 and scale 1; global layers use gemma3.rope.freq_base (+ linear scaling if any);
// - attention scale 1/sqrt(key_length) (query_pre_attn_scalar = head_dim), 27B: 1/sqrt(n_embd / n_head);
// - tied output, no final logit soft-capping in the sliding-window variant.
#include <cmath>

#include "core/ops.h"
#include "llm/context.h"
#include "llm/model.h"

namespace spider {

namespace {

bool gemma3_load_hparams(const gguf_file & f, llm_hparams * hp, std::string * err) {
    hp->rope_type = ROPE_MODE_NEOX;
    hp->ffn_act = ACT_GELU_TANH;
    hp->embd_scale = std::sqrt((float)hp->n_embd);
    hp->rope_freq_base_swa = 10000.0f;
    int64_t swa = 0;
    if (!f.get_int("gemma3.attention.sliding_window", &swa) || swa <= 0) {
        return llm_load_error(LLM_ERR_FORMAT, err,
                              "metadata 'gemma3.attention.sliding_window' is missing or not a positive integer");
    }
    hp->n_swa = swa;
    hp->swa_pattern = 6;
    int64_t pattern = 0;
    if (f.get_int("gemma3.attention.sliding_window_pattern", &pattern)) {
        if (pattern <= 0) {
            return llm_load_error(LLM_ERR_FORMAT, err,
                                  "metadata 'gemma3.attention.sliding_window_pattern' must be positive");
        }
        hp->swa_pattern = pattern;
    }
    // 27B (62 layers) uses query_pre_attn_scalar = n_embd / n_head; the others head_dim.
    if (hp->n_layer == 62) {
        hp->attn_scale = 1.0f / std::sqrt((float)(hp->n_embd / hp->n_head));
    } else {
        hp->attn_scale = 1.0f / std::sqrt((float)hp->head_dim);
    }
    return true;
}

bool gemma3_load_tensors(llm_model * m, std::string * err) {
    const llm_hparams & hp = m->hparams;
    const int64_t d = hp.n_embd, hd = hp.head_dim, q_dim = hp.n_head * hd, kv_dim = hp.n_head_kv * hd;
    if (!m->bind(LLM_TENSOR_TOKEN_EMBD, -1, d, hp.n_vocab, true, &m->tok_embd, err) ||
        !m->bind(LLM_TENSOR_OUTPUT_NORM, -1, d, 1, true, &m->output_norm, err) ||
        !m->bind(LLM_TENSOR_OUTPUT, -1, d, hp.n_vocab, false, &m->output, err)) {
        return false;
    }
    if (!m->output.data) {
        m->output = m->tok_embd;
        m->output_tied = true;
    }
    m->layers.resize(hp.n_layer);
    for (int il = 0; il < hp.n_layer; il++) {
        llm_layer & l = m->layers[il];
        if (!m->bind(LLM_TENSOR_ATTN_NORM, il, d, 1, true, &l.attn_norm, err) ||
            !m->bind(LLM_TENSOR_ATTN_Q, il, d, q_dim, true, &l.wq, err) ||
            !m->bind(LLM_TENSOR_ATTN_K, il, d, kv_dim, true, &l.wk, err) ||
            !m->bind(LLM_TENSOR_ATTN_V, il, d, kv_dim, true, &l.wv, err) ||
            !m->bind(LLM_TENSOR_ATTN_OUT, il, q_dim, d, true, &l.wo, err) ||
            !m->bind(LLM_TENSOR_ATTN_Q_NORM, il, hd, 1, true, &l.attn_q_norm, err) ||
            !m->bind(LLM_TENSOR_ATTN_K_NORM, il, hd, 1, true, &l.attn_k_norm, err) ||
            !m->bind(LLM_TENSOR_ATTN_POST_NORM, il, d, 1, true, &l.attn_post_norm, err) ||
            !m->bind(LLM_TENSOR_FFN_NORM, il, d, 1, true, &l.ffn_norm, err) ||
            !m->bind(LLM_TENSOR_FFN_GATE, il, d, hp.n_ff, true, &l.ffn_gate, err) ||
            !m->bind(LLM_TENSOR_FFN_UP, il, d, hp.n_ff, true, &l.ffn_up, err) ||
            !m->bind(LLM_TENSOR_FFN_DOWN, il, hp.n_ff, d, true, &l.ffn_down, err) ||
            !m->bind(LLM_TENSOR_FFN_POST_NORM, il, d, 1, true, &l.ffn_post_norm, err)) {
            return false;
        }
    }
    return true;
}

void add_into(float * x, const float * y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

bool gemma3_forward(llm_context * c, const llm_ubatch & ub, std::string * err) {
    const llm_model & m = *c->model;
    const llm_hparams & hp = m.hparams;
    const int64_t n = ub.n_tokens, d = hp.n_embd, hd = hp.head_dim;
    const int64_t q_dim = hp.n_head * hd, kv_dim = hp.n_head_kv * hd;
    thread_pool * pool = c->pool.get();
    float * x = c->x.data();
    float * xn = c->xn.data();
    float * q = c->q.data();
    float * qn = c->attn.data();  // normed Q, then reused below as attention output's source
    float * k = c->k.data();
    float * kn = c->k2.data();
    float * v = c->v.data();

    if (!c->embed_input(ub, err)) return false;
    c->capture_rows(0, ub, x);
    c->dump("inp_scaled", -1, x, n, d);
    c->prof.mark("embed");

    for (int64_t il = 0; il < hp.n_layer; il++) {
        const llm_layer & l = m.layers[il];
        const bool swa = hp.is_swa(il);
        const float freq_base = swa ? hp.rope_freq_base_swa : hp.rope_freq_base;
        const float freq_scale = swa ? 1.0f : hp.rope_freq_scale;

        rms_norm(x, (const float *)l.attn_norm.data, xn, n, d, hp.rms_eps);
        c->dump("attn_norm", il, xn, n, d);
        c->prof.mark("norm_add");
        {
            const tensor * w[3] = {&l.wq, &l.wk, &l.wv};
            float * y[3] = {q, k, v};
            matmul_multi(3, w, xn, y, n, pool);  // one dispatch for Q, K and V
            c->prof.mark("matmul_qkv", l.wq.nbytes() + l.wk.nbytes() + l.wv.nbytes());
        }
        // per-head norms: rows of head_dim
        rms_norm(q, (const float *)l.attn_q_norm.data, qn, n * hp.n_head, hd, hp.rms_eps);
        rms_norm(k, (const float *)l.attn_k_norm.data, kn, n * hp.n_head_kv, hd, hp.rms_eps);
        rope(qn, c->pos.data(), n, hp.n_head, hd, hp.n_rot, freq_base, freq_scale, hp.rope_type);
        rope(kn, c->pos.data(), n, hp.n_head_kv, hd, hp.n_rot, freq_base, freq_scale, hp.rope_type);
        c->dump("Qcur", il, qn, n, q_dim);
        c->dump("Kcur", il, kn, n, kv_dim);
        c->dump("Vcur", il, v, n, kv_dim);
        c->prof.mark("qk_norm_rope");
        c->kv_store(il, ub, kn, v);
        c->prof.mark("kv_store");
        // The last layer only carries on the rows that produce output (llama.cpp's inp_out_ids).
        const int64_t r0 = c->rows_needed_from(il, ub), nr = n - r0;
        if (nr == 0) break;
        float * xr = x + r0 * d;
        c->kv_attend(il, ub.tail(r0), qn + r0 * q_dim, q, hp.attn_scale, swa ? hp.n_swa : 0);
        c->dump("kqv_out", il, q, nr, q_dim);
        c->prof.mark("attention");
        matmul(l.wo, q, c->proj.data(), nr, pool);
        c->prof.mark("matmul_attn_out", l.wo.nbytes());
        rms_norm(c->proj.data(), (const float *)l.attn_post_norm.data, xn, nr, d, hp.rms_eps);
        c->dump("attn_post_norm", il, xn, nr, d);
        add_into(xr, xn, nr * d);
        c->dump("sa_out", il, xr, nr, d);

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
        rms_norm(c->proj.data(), (const float *)l.ffn_post_norm.data, xn, nr, d, hp.rms_eps);
        c->dump("ffn_post_norm", il, xn, nr, d);
        add_into(xr, xn, nr * d);
        c->dump("l_out", il, xr, nr, d);
        if (il + 1 < hp.n_layer) c->capture_rows(il + 1, ub, x);
        c->prof.mark("norm_add");
    }
    c->output_head(ub);
    return true;
}

const llm_arch_impl k_gemma3 = {LLM_ARCH_GEMMA3, gemma3_load_hparams, gemma3_load_tensors, gemma3_forward};

}  // namespace

const llm_arch_impl * llm_arch_impl_gemma3() {
    return &k_gemma3;
}

}  // namespace spider
