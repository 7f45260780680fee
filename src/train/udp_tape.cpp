// UDP on the autograd tape (train/udp_tape.h): the forward of controller/udp.cpp written with tape ops.
#include "train/udp_tape.h"

#include <cmath>
#include <stdexcept>

#include "core/quants.h"
#include "io/gguf.h"
#include "train/autograd_conv.h"
#include "train/tiny_lm.h"

namespace spider::train {

namespace {

// PyTorch shape of a GGUF tensor spec (ne reversed).
std::vector<int64_t> torch_shape(const std::vector<int64_t> & ne) {
    return std::vector<int64_t>(ne.rbegin(), ne.rend());
}

bool ends_with(const std::string & s, const char * suf) {
    const size_t n = std::char_traits<char>::length(suf);
    return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

}  // namespace

std::unique_ptr<udp_tape> udp_tape::create(const udp_hparams & hp_in, uint64_t seed, std::string * err) {
    udp_hparams hp = hp_in;
    hp.tmf_learned = false;
    if (hp.d_model <= 0 || hp.d_hidden <= 0 || hp.n_expert <= 0 || hp.n_head <= 0 || hp.d_ff <= 0 ||
        hp.d_hidden % hp.n_head != 0 || hp.n_enc_layer < 0 || hp.n_dec_layer < 0) {
        *err = "udp: inconsistent sizes (d_model " + std::to_string(hp.d_model) + ", d_hidden " +
               std::to_string(hp.d_hidden) + ", n_head " + std::to_string(hp.n_head) + ")";
        return nullptr;
    }
    std::unique_ptr<udp_tape> t(new udp_tape);
    t->hp_ = hp;
    rng64 r{seed ^ 0x5544505f696e6974ull};
    for (const auto & spec : udp_tensor_specs(hp)) {
        auto shape = torch_shape(spec.ne);
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        std::vector<float> v(static_cast<size_t>(n), 0.0f);
        if (ends_with(spec.name, "norm.weight")) {
            std::fill(v.begin(), v.end(), 1.0f);
        } else if (ends_with(spec.name, ".query")) {
            for (auto & x : v) x = 0.02f * r.normal();
        } else if (!ends_with(spec.name, ".bias")) {
            const float sc = 1.0f / std::sqrt(static_cast<float>(spec.ne[0]));
            for (auto & x : v) x = sc * r.normal();
        }
        t->w_[spec.name] = parameter(shape, std::move(v));
    }
    return t;
}

std::unique_ptr<udp_tape> udp_tape::load(const std::string & path, std::string * err) {
    // udp_model validates the keys, the presence and the shape of every tensor.
    std::unique_ptr<udp_model> m = udp_model::load(path, err);
    if (!m) return nullptr;
    std::string e;
    std::unique_ptr<gguf_file> f = gguf_file::open(path, &e);
    if (!f) {
        *err = "udp: " + path + ": " + e;
        return nullptr;
    }
    std::unique_ptr<udp_tape> t(new udp_tape);
    t->hp_ = m->hparams();  // learned TM-Fusion tensors, if any, are kept as constants and written back by save()
    for (const auto & spec : udp_tensor_specs(t->hp_)) {
        tensor v = f->view(*f->find_tensor(spec.name));
        std::vector<float> buf(static_cast<size_t>(v.nelements()));
        for (int64_t r = 0; r < v.nrows(); ++r)
            if (!dequantize_row(v.type, v.row(r), buf.data() + r * v.ne[0], v.ne[0])) {
                *err = "udp: " + path + ": tensor " + spec.name + " has unsupported type " + dtype_name(v.type);
                return nullptr;
            }
        if (spec.name.rfind("spider.tmf.", 0) == 0)
            t->fixed_[spec.name] = constant(torch_shape(spec.ne), std::move(buf));
        else
            t->w_[spec.name] = parameter(torch_shape(spec.ne), std::move(buf));
    }
    return t;
}

std::vector<std::pair<std::string, value>> udp_tape::named_params() const {
    return {w_.begin(), w_.end()};
}

value udp_tape::lin(const std::string & base, const value & x) const {
    return linear(x, p(base + ".weight"), p(base + ".bias"));
}

value udp_tape::norm(const std::string & base, const value & x) const {
    return layer_norm(x, p(base + ".weight"), p(base + ".bias"), hp_.eps);
}

// nn.MultiheadAttention: packed in-projection rows [q; k; v] of a [3E, E] weight, no mask, then out_proj.
value udp_tape::mha(const std::string & qkv, const std::string & out, const value & xq, const value & xkv) const {
    const int64_t E = hp_.d_hidden;
    const value & W = p(qkv + ".weight");
    const value & b = p(qkv + ".bias");
    value q = linear(xq, slice(W, 0, 0, E), slice(b, 0, 0, E));
    value k = linear(xkv, slice(W, 0, E, E), slice(b, 0, E, E));
    value v = linear(xkv, slice(W, 0, 2 * E, E), slice(b, 0, 2 * E, E));
    const int64_t hd = E / hp_.n_head;
    value a = cross_attention(q, k, v, hp_.n_head, 1.0f / std::sqrt(static_cast<float>(hd)));
    return lin(out, a);
}

value udp_tape::ffn(const std::string & up, const std::string & down, const value & x) const {
    return lin(down, activation(lin(up, x), ACT_RELU));
}

value udp_tape::forward(modality m, const value & x, value * router) const {
    if (!has(m)) throw std::invalid_argument(std::string("[udp_tape] no head for modality ") + modality_name(m));
    if (x->shape.size() != 2 || x->shape[1] != hp_.d_model || x->shape[0] < 1)
        throw std::invalid_argument("[udp_tape] M-Prompt must be [n_tok, " + std::to_string(hp_.d_model) + "]");
    using M = udp_model;
    value r = lin(M::name_mod(m, "router_down"),
                  activation(lin(M::name_mod(m, "router_up"), mean_rows(x)), ACT_GELU_ERF));  // [1, n_expert]
    value sg = sigmoid(r);
    value w = scale_by(sg, reciprocal(sum(sg)));
    if (router) *router = w;
    value mix;
    for (int k = 0; k < hp_.n_expert; ++k) {
        value src = lin(M::name_expert(k, "in"), x);
        for (int l = 0; l < hp_.n_enc_layer; ++l) {
            value h = norm(M::name_enc(k, l, "attn_norm"), src);
            src = add(src, mha(M::name_enc(k, l, "attn_qkv"), M::name_enc(k, l, "attn_out"), h, h));
            h = norm(M::name_enc(k, l, "ffn_norm"), src);
            src = add(src, ffn(M::name_enc(k, l, "ffn_up"), M::name_enc(k, l, "ffn_down"), h));
        }
        value mem = norm(M::name_expert(k, "enc_norm"), src);
        value tgt = p(M::name_mod(m, "query"));
        for (int l = 0; l < hp_.n_dec_layer; ++l) {
            value h = norm(M::name_dec(k, l, "attn_norm"), tgt);
            tgt = add(tgt, mha(M::name_dec(k, l, "attn_qkv"), M::name_dec(k, l, "attn_out"), h, h));
            h = norm(M::name_dec(k, l, "cross_norm"), tgt);
            tgt = add(tgt, mha(M::name_dec(k, l, "cross_qkv"), M::name_dec(k, l, "cross_out"), h, mem));
            h = norm(M::name_dec(k, l, "ffn_norm"), tgt);
            tgt = add(tgt, ffn(M::name_dec(k, l, "ffn_up"), M::name_dec(k, l, "ffn_down"), h));
        }
        value term = scale_by(norm(M::name_expert(k, "dec_norm"), tgt), slice(w, 1, k, 1));
        mix = mix ? add(mix, term) : term;
    }
    return lin(M::name_mod(m, "out"), mix);
}

bool udp_tape::save(const std::string & path, std::string * err) const {
    return udp_write_gguf(
        path, hp_,
        [&](const udp_tensor_spec & spec) {
            const value & v = w_.count(spec.name) ? w_.at(spec.name) : fixed_.at(spec.name);
            return udp_tensor_data{DTYPE_F32, v->data.data()};
        },
        err);
}

}  // namespace spider::train
