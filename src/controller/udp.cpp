// Unified Decoder Projector and TM-Fusion forward passes on the core op set, GGUF load/save and random init.
#include "controller/udp.h"

#include <cmath>
#include <random>

#include "core/ops.h"
#include "core/quants.h"
#include "io/gguf.h"

namespace spider {

udp_hparams udp_hparams::reference(int d_model) {
    udp_hparams hp;
    hp.d_model = d_model;
    hp.t_out[MODALITY_IMAGE] = 77;
    hp.d_out[MODALITY_IMAGE] = 768;
    hp.t_out[MODALITY_VIDEO] = 77;
    hp.d_out[MODALITY_VIDEO] = 1024;
    hp.t_out[MODALITY_AUDIO] = 1;
    hp.d_out[MODALITY_AUDIO] = 512;
    hp.t_out[MODALITY_MASK] = 1;
    hp.d_out[MODALITY_MASK] = 256;
    return hp;
}

std::string udp_model::name_expert(int k, const std::string & leaf) {
    return "spider.udp.expert." + std::to_string(k) + "." + leaf;
}
std::string udp_model::name_enc(int k, int l, const std::string & leaf) {
    return name_expert(k, "enc." + std::to_string(l) + "." + leaf);
}
std::string udp_model::name_dec(int k, int l, const std::string & leaf) {
    return name_expert(k, "dec." + std::to_string(l) + "." + leaf);
}
std::string udp_model::name_mod(modality m, const std::string & leaf) {
    return std::string("spider.udp.") + modality_name_lower(m) + "." + leaf;
}
std::string udp_model::name_tmf(modality m, const std::string & leaf) {
    return std::string("spider.tmf.") + modality_name_lower(m) + "." + leaf;
}

static void add_linear(std::vector<udp_tensor_spec> & s, const std::string & base, int n_in, int n_out) {
    s.push_back({base + ".weight", {n_in, n_out}});
    s.push_back({base + ".bias", {n_out}});
}
static void add_norm(std::vector<udp_tensor_spec> & s, const std::string & base, int n) {
    s.push_back({base + ".weight", {n}});
    s.push_back({base + ".bias", {n}});
}

std::vector<udp_tensor_spec> udp_tensor_specs(const udp_hparams & hp) {
    std::vector<udp_tensor_spec> s;
    const int E = hp.d_hidden, F = hp.d_ff;
    for (int k = 0; k < hp.n_expert; ++k) {
        add_linear(s, udp_model::name_expert(k, "in"), hp.d_model, E);
        for (int l = 0; l < hp.n_enc_layer; ++l) {
            add_norm(s, udp_model::name_enc(k, l, "attn_norm"), E);
            add_linear(s, udp_model::name_enc(k, l, "attn_qkv"), E, 3 * E);
            add_linear(s, udp_model::name_enc(k, l, "attn_out"), E, E);
            add_norm(s, udp_model::name_enc(k, l, "ffn_norm"), E);
            add_linear(s, udp_model::name_enc(k, l, "ffn_up"), E, F);
            add_linear(s, udp_model::name_enc(k, l, "ffn_down"), F, E);
        }
        add_norm(s, udp_model::name_expert(k, "enc_norm"), E);
        for (int l = 0; l < hp.n_dec_layer; ++l) {
            add_norm(s, udp_model::name_dec(k, l, "attn_norm"), E);
            add_linear(s, udp_model::name_dec(k, l, "attn_qkv"), E, 3 * E);
            add_linear(s, udp_model::name_dec(k, l, "attn_out"), E, E);
            add_norm(s, udp_model::name_dec(k, l, "cross_norm"), E);
            add_linear(s, udp_model::name_dec(k, l, "cross_qkv"), E, 3 * E);
            add_linear(s, udp_model::name_dec(k, l, "cross_out"), E, E);
            add_norm(s, udp_model::name_dec(k, l, "ffn_norm"), E);
            add_linear(s, udp_model::name_dec(k, l, "ffn_up"), E, F);
            add_linear(s, udp_model::name_dec(k, l, "ffn_down"), F, E);
        }
        add_norm(s, udp_model::name_expert(k, "dec_norm"), E);
    }
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        if (hp.t_out[i] <= 0) continue;
        modality m = static_cast<modality>(i);
        add_linear(s, udp_model::name_mod(m, "router_up"), hp.d_model, hp.d_model);
        add_linear(s, udp_model::name_mod(m, "router_down"), hp.d_model, hp.n_expert);
        s.push_back({udp_model::name_mod(m, "query"), {E, hp.t_out[i]}});
        add_linear(s, udp_model::name_mod(m, "out"), E, hp.d_out[i]);
        if (hp.tmf_learned) {
            const int D = hp.d_out[i];
            add_norm(s, udp_model::name_tmf(m, "norm"), D);
            add_linear(s, udp_model::name_tmf(m, "attn_qkv"), D, 3 * D);
            add_linear(s, udp_model::name_tmf(m, "attn_out"), D, D);
            s.push_back({udp_model::name_tmf(m, "gate"), {1}});
        }
    }
    return s;
}

struct udp_model::impl {
    std::shared_ptr<gguf_file> file;          // when loaded from GGUF
    std::vector<std::vector<float>> storage;  // when random / converted to F32
    std::map<std::string, tensor> w;
    const tensor & get(const std::string & n) const { return w.at(n); }
};

udp_model::udp_model() : p_(new impl) {}
udp_model::~udp_model() = default;

static bool read_hparams(const gguf_file & f, udp_hparams * hp, std::string * err) {
    auto need_int = [&](const char * key, int * out) {
        int64_t v = 0;
        if (!f.get_int(key, &v)) {
            *err = std::string("[udp] missing integer key ") + key;
            return false;
        }
        if (v < 0 || v > (1 << 20)) {
            *err = std::string("[udp] key ") + key + " out of range: " + std::to_string(v);
            return false;
        }
        *out = static_cast<int>(v);
        return true;
    };
    if (!need_int("spider.udp.d_model", &hp->d_model) || !need_int("spider.udp.d_hidden", &hp->d_hidden) ||
        !need_int("spider.udp.n_expert", &hp->n_expert) || !need_int("spider.udp.n_enc_layer", &hp->n_enc_layer) ||
        !need_int("spider.udp.n_dec_layer", &hp->n_dec_layer) || !need_int("spider.udp.n_head", &hp->n_head) ||
        !need_int("spider.udp.d_ff", &hp->d_ff)) {
        return false;
    }
    double d = 0;
    if (f.get_float("spider.udp.eps", &d)) hp->eps = static_cast<float>(d);
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        std::string base = std::string("spider.udp.") + modality_name_lower(static_cast<modality>(i));
        int64_t t = 0, dd = 0;
        if (f.get_int(base + ".t_out", &t) && f.get_int(base + ".d_out", &dd)) {
            if (t <= 0 || dd <= 0 || t > 4096 || dd > 65536) {
                *err = "[udp] bad output shape for " + base + ": " + std::to_string(t) + " x " + std::to_string(dd);
                return false;
            }
            hp->t_out[i] = static_cast<int>(t);
            hp->d_out[i] = static_cast<int>(dd);
        }
    }
    if (f.get_float("spider.tmf.alpha", &d)) hp->tmf_alpha = static_cast<float>(d);
    bool learned = false;
    if (f.get_bool("spider.tmf.learned", &learned)) hp->tmf_learned = learned;
    int64_t nh = 1;
    if (f.get_int("spider.tmf.n_head", &nh)) hp->tmf_n_head = static_cast<int>(nh);
    if (hp->d_model <= 0 || hp->d_hidden <= 0 || hp->n_expert <= 0 || hp->n_head <= 0 || hp->d_ff <= 0 ||
        hp->d_hidden % hp->n_head != 0) {
        *err = "[udp] inconsistent hyperparameters (d_hidden " + std::to_string(hp->d_hidden) + ", n_head " +
               std::to_string(hp->n_head) + ")";
        return false;
    }
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        if (hp->tmf_learned && hp->t_out[i] > 0 && (hp->tmf_n_head <= 0 || hp->d_out[i] % hp->tmf_n_head != 0)) {
            *err = "[udp] spider.tmf.n_head " + std::to_string(hp->tmf_n_head) + " does not divide d_out " +
                   std::to_string(hp->d_out[i]);
            return false;
        }
    }
    return true;
}

std::unique_ptr<udp_model> udp_model::load(const std::string & path, std::string * err) {
    std::string e;
    std::unique_ptr<gguf_file> f = gguf_file::open(path, &e);
    if (!f) {
        if (err) *err = "[udp] " + path + ": " + e;
        return nullptr;
    }
    return from_gguf(std::shared_ptr<gguf_file>(std::move(f)), err);
}

std::unique_ptr<udp_model> udp_model::from_gguf(std::shared_ptr<gguf_file> file, std::string * err) {
    std::string e;
    std::unique_ptr<udp_model> m(new udp_model);
    if (!read_hparams(*file, &m->hp_, &e)) {
        if (err) *err = e;
        return nullptr;
    }
    m->p_->file = file;
    for (const auto & spec : udp_tensor_specs(m->hp_)) {
        const gguf_tensor_info * info = file->find_tensor(spec.name);
        if (!info) {
            if (err) *err = "[udp] missing tensor " + spec.name;
            return nullptr;
        }
        for (size_t d = 0; d < MAX_DIMS; ++d) {
            int64_t want = d < spec.ne.size() ? spec.ne[d] : 1;
            if (info->ne[d] != want) {
                if (err) {
                    *err = "[udp] tensor " + spec.name + " has ne[" + std::to_string(d) +
                           "] = " + std::to_string(info->ne[d]) + ", expected " + std::to_string(want);
                }
                return nullptr;
            }
        }
        tensor t = file->view(*info);
        // Norms, biases, queries and gates are read as plain floats: convert anything that is not F32.
        bool is_matrix = spec.ne.size() == 2 && spec.name.find(".query") == std::string::npos;
        if (t.type != DTYPE_F32 && !is_matrix) {
            std::vector<float> buf(static_cast<size_t>(t.nelements()));
            for (int64_t r = 0; r < t.nrows(); ++r) {
                if (!dequantize_row(t.type, t.row(r), buf.data() + r * t.ne[0], t.ne[0])) {
                    if (err) *err = "[udp] tensor " + spec.name + " has unsupported type " + dtype_name(t.type);
                    return nullptr;
                }
            }
            m->p_->storage.push_back(std::move(buf));
            t = make_tensor(DTYPE_F32, m->p_->storage.back().data(), t.ne[0], t.ne[1]);
            t.name = spec.name;
        } else if (t.type != DTYPE_F32) {
            std::vector<float> probe(static_cast<size_t>(t.ne[0]));
            if (!dequantize_row(t.type, t.row(0), probe.data(), t.ne[0])) {
                if (err) *err = "[udp] tensor " + spec.name + " has unsupported type " + dtype_name(t.type);
                return nullptr;
            }
        }
        m->p_->w[spec.name] = t;
    }
    return m;
}

std::unique_ptr<udp_model> udp_model::random(const udp_hparams & hp, uint64_t seed, float tmf_gate) {
    std::unique_ptr<udp_model> m(new udp_model);
    m->hp_ = hp;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    auto specs = udp_tensor_specs(hp);
    m->p_->storage.reserve(specs.size());
    for (const auto & spec : specs) {
        int64_t n = 1;
        for (int64_t v : spec.ne) n *= v;
        std::vector<float> buf(static_cast<size_t>(n));
        const bool is_norm_w = spec.name.find("norm.weight") != std::string::npos;
        const bool is_bias = spec.name.size() > 5 && spec.name.compare(spec.name.size() - 5, 5, ".bias") == 0;
        const bool is_gate = spec.name.size() > 5 && spec.name.compare(spec.name.size() - 5, 5, ".gate") == 0;
        const float sc = spec.ne.size() == 2 ? 1.0f / std::sqrt(static_cast<float>(spec.ne[0])) : 0.1f;
        for (auto & v : buf) {
            v = is_gate ? tmf_gate : is_norm_w ? 1.0f + 0.1f * nd(rng) : is_bias ? 0.05f * nd(rng) : sc * nd(rng);
        }
        m->p_->storage.push_back(std::move(buf));
        tensor t =
            make_tensor(DTYPE_F32, m->p_->storage.back().data(), spec.ne[0], spec.ne.size() > 1 ? spec.ne[1] : 1);
        t.name = spec.name;
        m->p_->w[spec.name] = t;
    }
    return m;
}

bool udp_write_gguf(const std::string & path, const udp_hparams & hp,
                    const std::function<udp_tensor_data(const udp_tensor_spec &)> & tensor_of, std::string * err) {
    gguf_writer w;
    w.set_string("general.architecture", "spider-udp");
    w.set_u32("spider.udp.d_model", hp.d_model);
    w.set_u32("spider.udp.d_hidden", hp.d_hidden);
    w.set_u32("spider.udp.n_expert", hp.n_expert);
    w.set_u32("spider.udp.n_enc_layer", hp.n_enc_layer);
    w.set_u32("spider.udp.n_dec_layer", hp.n_dec_layer);
    w.set_u32("spider.udp.n_head", hp.n_head);
    w.set_u32("spider.udp.d_ff", hp.d_ff);
    w.set_f32("spider.udp.eps", hp.eps);
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        if (hp.t_out[i] <= 0) continue;
        const std::string base = std::string("spider.udp.") + modality_name_lower(static_cast<modality>(i));
        w.set_u32(base + ".t_out", hp.t_out[i]);
        w.set_u32(base + ".d_out", hp.d_out[i]);
    }
    w.set_f32("spider.tmf.alpha", hp.tmf_alpha);
    w.set_bool("spider.tmf.learned", hp.tmf_learned);
    w.set_u32("spider.tmf.n_head", hp.tmf_n_head);
    for (const auto & spec : udp_tensor_specs(hp)) {
        int64_t ne[MAX_DIMS] = {1, 1, 1, 1};
        for (size_t d = 0; d < spec.ne.size(); ++d) ne[d] = spec.ne[d];
        const udp_tensor_data t = tensor_of(spec);
        if (!w.add_tensor(spec.name, t.type, ne, static_cast<int>(spec.ne.size()), t.data, err)) return false;
    }
    return w.write(path, err);
}

bool udp_model::save(const std::string & path, std::string * err) const {
    // load() checked every tensor's shape against its spec, so the spec's shape is the tensor's.
    return udp_write_gguf(
        path, hp_,
        [&](const udp_tensor_spec & spec) {
            const tensor & t = p_->get(spec.name);
            return udp_tensor_data{t.type, t.data};
        },
        err);
}

namespace {

// Scratch-owning helpers for one forward pass (the weights are immutable and shared).
struct fwd {
    const std::map<std::string, tensor> & w;
    float eps;

    const tensor & W(const std::string & n) const { return w.at(n); }
    const float * F(const std::string & n) const { return static_cast<const float *>(w.at(n).data); }

    void lin(const std::string & base, const float * x, float * y, int64_t n) const {
        linear_forward(W(base + ".weight"), &W(base + ".bias"), x, y, n);
    }
    void norm(const std::string & base, const float * x, float * y, int64_t n, int64_t d) const {
        layer_norm(x, F(base + ".weight"), F(base + ".bias"), y, n, d, eps);
    }
    // Multi-head attention as nn.MultiheadAttention: in_proj = [Wq; Wk; Wv] rows of a [3E, E] matrix.
    // xq: [nq, E] queries; xkv: [nk, E]; out: [nq, E] (after out_proj).
    void mha(const std::string & qkv, const std::string & out_base, const float * xq, int64_t nq, const float * xkv,
             int64_t nk, int64_t E, int64_t n_head, float * out) const {
        const tensor & Wt = W(qkv + ".weight");
        const float * bias = F(qkv + ".bias");
        const size_t rb = Wt.nb[1];
        auto slice = [&](int part) {
            tensor s = Wt;
            s.ne[1] = E;
            s.data = static_cast<char *>(Wt.data) + rb * E * part;
            return s;
        };
        tensor tq = slice(0), tk = slice(1), tv = slice(2);
        tensor bq = make_tensor(DTYPE_F32, const_cast<float *>(bias), E);
        tensor bk = make_tensor(DTYPE_F32, const_cast<float *>(bias + E), E);
        tensor bv = make_tensor(DTYPE_F32, const_cast<float *>(bias + 2 * E), E);
        std::vector<float> q(nq * E), k(nk * E), v(nk * E), a(nq * E);
        linear_forward(tq, &bq, xq, q.data(), nq);
        linear_forward(tk, &bk, xkv, k.data(), nk);
        linear_forward(tv, &bv, xkv, v.data(), nk);
        const int64_t hd = E / n_head;
        attention(q.data(), k.data(), v.data(), a.data(), nq, nk, n_head, n_head, hd,
                  1.0f / std::sqrt(static_cast<float>(hd)), false, 0, 0, nullptr);
        lin(out_base, a.data(), out, nq);
    }
    void ffn(const std::string & up, const std::string & down, const float * x, float * y, int64_t n, int64_t E,
             int64_t F_) const {
        std::vector<float> h(n * F_);
        lin(up, x, h.data(), n);
        activation(ACT_RELU, h.data(), h.data(), n * F_);
        lin(down, h.data(), y, n);
    }
};

}  // namespace

bool udp_model::forward(modality m, const float * x, int n_tok, std::vector<float> * y, std::vector<float> * router_w,
                        std::string * err) const {
    if (!has(m)) {
        if (err) *err = std::string("[udp] no projector head for modality ") + modality_name(m);
        return false;
    }
    if (!x || n_tok <= 0) {
        if (err) *err = "[udp] empty M-Prompt (n_tok = " + std::to_string(n_tok) + ")";
        return false;
    }
    const int64_t D = hp_.d_model, E = hp_.d_hidden, T = hp_.t_out[m], Do = hp_.d_out[m], Fd = hp_.d_ff;
    const int64_t n = n_tok;
    fwd f{p_->w, hp_.eps};

    // Router on the mean M-Prompt token.
    std::vector<float> mean(D, 0.0f), r1(D), r2(hp_.n_expert);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < D; ++i) mean[i] += x[t * D + i];
    for (auto & v : mean) v /= static_cast<float>(n);
    f.lin(name_mod(m, "router_up"), mean.data(), r1.data(), 1);
    activation(ACT_GELU_ERF, r1.data(), r1.data(), D);
    f.lin(name_mod(m, "router_down"), r1.data(), r2.data(), 1);
    double sum = 0.0;
    for (auto & v : r2) {
        v = 1.0f / (1.0f + std::exp(-v));
        sum += v;
    }
    for (auto & v : r2) v = static_cast<float>(v / sum);
    if (router_w) *router_w = r2;

    std::vector<float> mix(T * E, 0.0f);
    std::vector<float> src(n * E), h(n * E), o(n * E), mem(n * E);
    std::vector<float> tgt(T * E), th(T * E), to(T * E);
    const float * query = f.F(name_mod(m, "query"));
    for (int k = 0; k < hp_.n_expert; ++k) {
        f.lin(name_expert(k, "in"), x, src.data(), n);
        for (int l = 0; l < hp_.n_enc_layer; ++l) {
            f.norm(name_enc(k, l, "attn_norm"), src.data(), h.data(), n, E);
            f.mha(name_enc(k, l, "attn_qkv"), name_enc(k, l, "attn_out"), h.data(), n, h.data(), n, E, hp_.n_head,
                  o.data());
            add(src.data(), o.data(), src.data(), n * E);
            f.norm(name_enc(k, l, "ffn_norm"), src.data(), h.data(), n, E);
            f.ffn(name_enc(k, l, "ffn_up"), name_enc(k, l, "ffn_down"), h.data(), o.data(), n, E, Fd);
            add(src.data(), o.data(), src.data(), n * E);
        }
        f.norm(name_expert(k, "enc_norm"), src.data(), mem.data(), n, E);

        std::copy(query, query + T * E, tgt.begin());
        for (int l = 0; l < hp_.n_dec_layer; ++l) {
            f.norm(name_dec(k, l, "attn_norm"), tgt.data(), th.data(), T, E);
            f.mha(name_dec(k, l, "attn_qkv"), name_dec(k, l, "attn_out"), th.data(), T, th.data(), T, E, hp_.n_head,
                  to.data());
            add(tgt.data(), to.data(), tgt.data(), T * E);
            f.norm(name_dec(k, l, "cross_norm"), tgt.data(), th.data(), T, E);
            f.mha(name_dec(k, l, "cross_qkv"), name_dec(k, l, "cross_out"), th.data(), T, mem.data(), n, E, hp_.n_head,
                  to.data());
            add(tgt.data(), to.data(), tgt.data(), T * E);
            f.norm(name_dec(k, l, "ffn_norm"), tgt.data(), th.data(), T, E);
            f.ffn(name_dec(k, l, "ffn_up"), name_dec(k, l, "ffn_down"), th.data(), to.data(), T, E, Fd);
            add(tgt.data(), to.data(), tgt.data(), T * E);
        }
        f.norm(name_expert(k, "dec_norm"), tgt.data(), th.data(), T, E);
        for (int64_t i = 0; i < T * E; ++i) mix[i] += r2[k] * th[i];
    }
    y->assign(T * Do, 0.0f);
    f.lin(name_mod(m, "out"), mix.data(), y->data(), T);
    return true;
}

bool udp_model::fuse(modality m, const float * y, const float * text, int n_text_tok, std::vector<float> * cond,
                     std::string * err, float alpha) const {
    if (!has(m)) {
        if (err) *err = std::string("[tm-fusion] no head for modality ") + modality_name(m);
        return false;
    }
    const int64_t T = hp_.t_out[m], D = hp_.d_out[m];
    if (!text || n_text_tok != T) {
        if (err) {
            *err = std::string("[tm-fusion] ") + modality_name(m) + ": the T-Prompt encoding has " +
                   std::to_string(n_text_tok) + " tokens, the projector " + std::to_string(T);
        }
        return false;
    }
    const float a = alpha >= 0.0f ? alpha : hp_.tmf_alpha;
    cond->assign(T * D, 0.0f);
    for (int64_t i = 0; i < T * D; ++i) (*cond)[i] = a * y[i] + (1.0f - a) * text[i];
    if (!hp_.tmf_learned) return true;
    fwd f{p_->w, hp_.eps};
    const float g = std::tanh(f.F(name_tmf(m, "gate"))[0]);
    std::vector<float> qn(T * D), att(T * D);
    f.norm(name_tmf(m, "norm"), y, qn.data(), T, D);
    f.mha(name_tmf(m, "attn_qkv"), name_tmf(m, "attn_out"), qn.data(), T, text, T, D, hp_.tmf_n_head, att.data());
    for (int64_t i = 0; i < T * D; ++i) (*cond)[i] += g * att[i];
    return true;
}

}  // namespace spider
