// The frozen GGUF LLM on the tape: the same block structure as src/llm/models/{llama,gemma3}.cpp (optional Q/K
// norms, sandwich norms, GeGLU/SwiGLU, sliding-window layers, embedding scale, tied output), built from tape ops.
#include "train/llm_tape.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "core/threadpool.h"
#include "io/gguf.h"
#include "llm/arch.h"
#include "train/autograd_llm.h"
#include "train/tiny_lm.h"

namespace spider::train {

namespace {

const char * target_suffix(const std::string & t) {
    if (t == "q") return "attn_q";
    if (t == "k") return "attn_k";
    if (t == "v") return "attn_v";
    if (t == "o") return "attn_output";
    if (t == "gate") return "ffn_gate";
    if (t == "up") return "ffn_up";
    if (t == "down") return "ffn_down";
    return nullptr;
}

value const_row(const tensor & t) {
    const float * p = static_cast<const float *>(t.data);
    return constant({t.ne[0]}, std::vector<float>(p, p + t.ne[0]));
}

// SPIDER_TAPE_DUMP=DIR writes activations under the runtime's SPIDER_DUMP names (NAME-LAYER.f32), to compare
// the tape with the inference forward layer by layer.
void dump(const char * name, int64_t il, const value & v) {
    static const char * dir = std::getenv("SPIDER_TAPE_DUMP");
    if (!dir) return;
    const std::string p = std::string(dir) + "/" + name + (il >= 0 ? "-" + std::to_string(il) : "") + ".f32";
    if (FILE * f = std::fopen(p.c_str(), "wb")) {
        std::fwrite(v->data.data(), sizeof(float), v->data.size(), f);
        std::fclose(f);
    }
}

}  // namespace

std::string llm_lora_target_tensor(const std::string & target, int il) {
    const char * s = target_suffix(target);
    if (!s) return "";
    return "blk." + std::to_string(il) + "." + s + ".weight";
}

struct frozen_w {
    tensor W;
    tensor Wt;  // F16 transpose (empty when no backward cache)
    std::vector<uint16_t> buf;
};

struct layer_tape {
    value attn_norm, q_norm, k_norm, post_attn_norm, ffn_norm, post_ffn_norm;  // constants (null if absent)
    frozen_w w[7];                                                             // q k v o gate up down
    std::string name[7];
};

struct llm_tape::impl {
    const llm_model * m = nullptr;
    llm_tape_config c;
    std::unique_ptr<thread_pool> pool;
    std::vector<layer_tape> layers;
    value out_norm;
    frozen_w output;  // LM head (the token table when tied)
};

llm_tape::~llm_tape() = default;

int64_t llm_tape::n_vocab() const {
    return p_->m->hparams.n_vocab;
}

std::unique_ptr<llm_tape> llm_tape::create(const llm_model & m, const llm_tape_config & c, std::string * err) {
    if (m.arch != LLM_ARCH_GEMMA3 && m.arch != LLM_ARCH_LLAMA) {
        *err = "llm_tape: architecture '" + std::string(llm_arch_name(m.arch)) + "' is not supported (gemma3, llama)";
        return nullptr;
    }
    const llm_hparams & hp = m.hparams;
    if (hp.n_added > 0) {
        *err = "llm_tape: the base model already carries " + std::to_string(hp.n_added) + " added tokens";
        return nullptr;
    }
    if (c.lora_rank <= 0 || c.lora_rank > 1024) {
        *err = "llm_tape: LoRA rank " + std::to_string(c.lora_rank) + " outside 1..1024";
        return nullptr;
    }
    for (const auto & t : c.lora_targets)
        if (!target_suffix(t)) {
            *err = "llm_tape: unknown LoRA target '" + t + "' (q, k, v, o, gate, up, down)";
            return nullptr;
        }
    if (!c.embed_init_ids.empty() && c.embed_init_ids.size() != c.added_tokens.size()) {
        *err = "llm_tape: embed_init_ids must have one entry per added token";
        return nullptr;
    }
    std::unique_ptr<llm_tape> t(new llm_tape());
    t->p_ = std::make_unique<impl>();
    impl & p = *t->p_;
    p.m = &m;
    p.c = c;
    p.pool = std::make_unique<thread_pool>(std::max(1, c.n_threads));
    const char * short_names[7] = {"q", "k", "v", "o", "gate", "up", "down"};
    auto freeze = [&](frozen_w * f, const tensor & W) {
        f->W = W;
        if (c.build_backward_cache) f->Wt = transpose_to_f16(W, &f->buf, p.pool.get());
    };
    uint64_t seed = c.seed;
    for (int il = 0; il < hp.n_layer; ++il) {
        const llm_layer & l = m.layers[il];
        layer_tape lt;
        lt.attn_norm = const_row(l.attn_norm);
        lt.ffn_norm = const_row(l.ffn_norm);
        if (l.attn_q_norm.data) lt.q_norm = const_row(l.attn_q_norm);
        if (l.attn_k_norm.data) lt.k_norm = const_row(l.attn_k_norm);
        if (l.attn_post_norm.data) lt.post_attn_norm = const_row(l.attn_post_norm);
        if (l.ffn_post_norm.data) lt.post_ffn_norm = const_row(l.ffn_post_norm);
        const tensor * ws[7] = {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down};
        for (int k = 0; k < 7; ++k) {
            freeze(&lt.w[k], *ws[k]);
            lt.name[k] = llm_lora_target_tensor(short_names[k], il);
        }
        for (const auto & tg : c.lora_targets)
            for (int k = 0; k < 7; ++k)
                if (tg == short_names[k])
                    t->adapters_[lt.name[k]] =
                        lora_create(ws[k]->ne[0], ws[k]->ne[1], c.lora_rank, c.lora_alpha, seed++);
        p.layers.push_back(std::move(lt));
    }
    p.out_norm = const_row(m.output_norm);
    freeze(&p.output, m.output);
    if (!c.added_tokens.empty()) {
        const int64_t n_new = static_cast<int64_t>(c.added_tokens.size()), d = hp.n_embd;
        std::vector<float> rows(static_cast<size_t>(n_new * d), 0.0f);
        std::vector<float> tmp(static_cast<size_t>(d));
        for (int64_t i = 0; i < n_new && !c.embed_init_ids.empty(); ++i) {
            const auto & ids = c.embed_init_ids[i];
            for (int32_t id : ids) {
                if (id < 0 || id >= hp.n_vocab) {
                    *err = "llm_tape: embed_init_ids has token " + std::to_string(id) + " outside the vocabulary";
                    return nullptr;
                }
                get_rows(m.tok_embd, &id, 1, tmp.data());
                for (int64_t j = 0; j < d; ++j) rows[i * d + j] += tmp[j] / static_cast<float>(ids.size());
            }
        }
        t->extra_ = parameter({n_new, d}, std::move(rows));
    }
    return t;
}

value llm_tape::logits(const std::vector<int32_t> & ids, const std::vector<int32_t> & out_rows,
                       const std::vector<int32_t> & embd_pos, const value & embd_rows) {
    value input;
    return head(hidden(ids, embd_pos, embd_rows, &input), out_rows);
}

value llm_tape::hidden(const std::vector<int32_t> & ids, const std::vector<int32_t> & embd_pos, const value & embd_rows,
                       value * input) {
    const impl & p = *p_;
    const llm_model & m = *p.m;
    const llm_hparams & hp = m.hparams;
    const int64_t n = static_cast<int64_t>(ids.size()), d = hp.n_embd, hd = hp.head_dim;
    if (n == 0) throw std::invalid_argument("[llm_tape] empty token sequence");
    thread_pool * pool = p.pool.get();
    std::vector<int32_t> pos(ids.size());
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);

    value x;
    if (extra_) {
        x = embedding_extended(m.tok_embd, extra_, ids);
    } else {
        std::vector<float> e(static_cast<size_t>(n * d));
        for (int64_t i = 0; i < n; ++i) {
            if (ids[i] < 0 || ids[i] >= hp.n_vocab)
                throw std::invalid_argument("[llm_tape] token id " + std::to_string(ids[i]) +
                                            " outside the vocabulary");
            get_rows(m.tok_embd, &ids[i], 1, e.data() + i * d);
        }
        x = constant({n, d}, std::move(e));
    }
    if (hp.embd_scale != 1.0f) x = scale(x, hp.embd_scale);
    if (embd_rows) x = replace_rows(x, embd_pos, embd_rows);
    dump("inp_scaled", -1, x);
    *input = x;

    auto proj = [&](const value & in, const layer_tape & l, int k) {
        const frozen_w & f = l.w[k];
        value base = f.Wt.data ? linear_frozen_t(in, f.W, f.Wt, pool) : linear_frozen(in, f.W, pool);
        auto it = adapters_.find(l.name[k]);
        if (it == adapters_.end()) return base;
        const lora_adapter & a = it->second;
        return add(base, scale(linear(linear(in, a.A, nullptr), a.B, nullptr), a.scaling()));
    };
    const float * ff = static_cast<const float *>(m.rope_freqs.data);  // Llama 3.1 frequency divisors or null
    const float attn_scale = hp.attn_scale > 0 ? hp.attn_scale : 1.0f / std::sqrt(static_cast<float>(hd));
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        const layer_tape & l = p.layers[il];
        const bool swa = hp.is_swa(il);
        const float fb = swa ? hp.rope_freq_base_swa : hp.rope_freq_base;
        const float fs = swa ? 1.0f : hp.rope_freq_scale;
        value h = rms_norm_k(x, l.attn_norm, hp.rms_eps);
        dump("attn_norm", il, h);
        value q = proj(h, l, 0), k = proj(h, l, 1), v = proj(h, l, 2);
        if (l.q_norm)
            q = view_shape(rms_norm_k(view_shape(q, {n * hp.n_head, hd}), l.q_norm, hp.rms_eps), {n, hp.n_head * hd});
        if (l.k_norm)
            k = view_shape(rms_norm_k(view_shape(k, {n * hp.n_head_kv, hd}), l.k_norm, hp.rms_eps),
                           {n, hp.n_head_kv * hd});
        q = rope_ext(q, pos, hp.n_head, hd, hp.n_rot, fb, fs, hp.rope_type, ff);
        k = rope_ext(k, pos, hp.n_head_kv, hd, hp.n_rot, fb, fs, hp.rope_type, ff);
        dump("Qcur", il, q);
        dump("Kcur", il, k);
        dump("Vcur", il, v);
        value a = attention_window(q, k, v, hp.n_head, hp.n_head_kv, attn_scale, swa ? hp.n_swa : 0, pool);
        dump("kqv_out", il, a);
        value o = proj(a, l, 3);
        if (l.post_attn_norm) o = rms_norm_k(o, l.post_attn_norm, hp.rms_eps);
        x = add(x, o);
        h = rms_norm_k(x, l.ffn_norm, hp.rms_eps);
        value f = proj(glu_k(proj(h, l, 4), proj(h, l, 5), hp.ffn_act), l, 6);
        if (l.post_ffn_norm) f = rms_norm_k(f, l.post_ffn_norm, hp.rms_eps);
        x = add(x, f);
        dump("l_out", il, x);
    }
    return x;
}

value llm_tape::head(const value & x, const std::vector<int32_t> & out_rows) {
    const impl & p = *p_;
    thread_pool * pool = p.pool.get();
    value xs = rms_norm_k(gather_rows(x, out_rows), p.out_norm, p.m->hparams.rms_eps);
    const frozen_w & o = p.output;
    value base = o.Wt.data ? linear_frozen_t(xs, o.W, o.Wt, pool) : linear_frozen(xs, o.W, pool);
    if (!extra_) return base;
    return concat_cols(base, linear(xs, extra_, nullptr));
}

value llm_tape::loss(const std::vector<int32_t> & ids, const std::vector<int32_t> & targets,
                     const std::vector<int32_t> & embd_pos, const value & embd_rows) {
    if (targets.size() != ids.size())
        throw std::invalid_argument("[llm_tape] " + std::to_string(targets.size()) + " targets for " +
                                    std::to_string(ids.size()) + " tokens");
    value input;
    return targets_loss(targets, hidden(ids, embd_pos, embd_rows, &input));
}

value llm_tape::loss_with_mprompt(const std::vector<int32_t> & ids, const std::vector<int32_t> & targets,
                                  const std::vector<int32_t> & embd_pos, const value & embd_rows,
                                  const std::vector<int32_t> & mprompt_pos, value * mprompt) {
    if (targets.size() != ids.size())
        throw std::invalid_argument("[llm_tape] " + std::to_string(targets.size()) + " targets for " +
                                    std::to_string(ids.size()) + " tokens");
    for (int32_t q : mprompt_pos)
        if (q < 0 || q >= static_cast<int32_t>(ids.size()))
            throw std::invalid_argument("[llm_tape] M-Prompt position " + std::to_string(q) + " outside the " +
                                        std::to_string(ids.size()) + " tokens");
    value input;
    value h = hidden(ids, embd_pos, embd_rows, &input);
    *mprompt = add(rms_norm_k(gather_rows(h, mprompt_pos), p_->out_norm, p_->m->hparams.rms_eps),
                   gather_rows(input, mprompt_pos));
    return targets_loss(targets, h);
}

value llm_tape::targets_loss(const std::vector<int32_t> & targets, const value & h) {
    std::vector<int32_t> rows, tg;
    for (size_t i = 0; i < targets.size(); ++i)
        if (targets[i] >= 0) {
            rows.push_back(static_cast<int32_t>(i));
            tg.push_back(targets[i]);
        }
    if (rows.empty()) throw std::invalid_argument("[llm_tape] no position has a target");
    return cross_entropy_k(head(h, rows), tg, p_->pool.get());
}

std::vector<std::pair<std::string, value>> llm_tape::named_params() const {
    std::vector<std::pair<std::string, value>> v;
    for (const auto & [name, a] : adapters_) {
        v.push_back({"lora." + name + ".a", a.A});
        v.push_back({"lora." + name + ".b", a.B});
    }
    if (extra_) v.push_back({"token_embd_extra", extra_});
    return v;
}

std::vector<value> llm_tape::params() const {
    std::vector<value> v;
    for (const auto & kv : named_params()) v.push_back(kv.second);
    return v;
}

bool llm_tape::save_adapter(const std::string & path, std::string * err) const {
    gguf_writer w;
    w.set_string("general.architecture", "spider-lora");
    w.set_f32("spider.lora.alpha", p_->c.lora_alpha);
    w.set_u32("spider.lora.rank", static_cast<uint32_t>(p_->c.lora_rank));
    if (!p_->m->name.empty()) w.set_string("spider.lora.base", p_->m->name);
    for (const auto & [name, a] : adapters_) {
        const int64_t ne_a[2] = {a.A->shape[1], a.A->shape[0]};
        const int64_t ne_b[2] = {a.B->shape[1], a.B->shape[0]};
        if (!w.add_tensor("lora." + name + ".a", DTYPE_F32, ne_a, 2, a.A->data.data(), err)) return false;
        if (!w.add_tensor("lora." + name + ".b", DTYPE_F32, ne_b, 2, a.B->data.data(), err)) return false;
    }
    if (extra_) {
        w.set_array_str(LLM_KV_ADDED_TOKENS, p_->c.added_tokens);
        const int64_t ne[2] = {extra_->shape[1], extra_->shape[0]};
        if (!w.add_tensor(llm_tensor_name(LLM_TENSOR_TOKEN_EMBD_EXTRA), DTYPE_F32, ne, 2, extra_->data.data(), err))
            return false;
    }
    return w.write(path, err);
}

}  // namespace spider::train
