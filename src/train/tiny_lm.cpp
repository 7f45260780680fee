// Tiny Llama on the autograd tape (HF weight names; rotate_half RoPE = NEOX mode).
#include "train/tiny_lm.h"

#include <cmath>
#include <stdexcept>

namespace spider::train {

uint64_t rng64::next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float rng64::uniform() {
    return static_cast<float>(next() >> 40) / static_cast<float>(1ull << 24);
}

float rng64::normal() {  // Box-Muller
    float u1 = uniform(), u2 = uniform();
    if (u1 < 1e-7f) u1 = 1e-7f;
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
}

std::map<std::string, std::vector<int64_t>> tiny_lm::expected_shapes() const {
    const int64_t hd = c_.n_embd / c_.n_head;
    std::map<std::string, std::vector<int64_t>> s;
    s["model.embed_tokens.weight"] = {c_.vocab, c_.n_embd};
    s["model.norm.weight"] = {c_.n_embd};
    s["lm_head.weight"] = {c_.vocab, c_.n_embd};
    for (int64_t l = 0; l < c_.n_layer; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        s[p + "input_layernorm.weight"] = {c_.n_embd};
        s[p + "post_attention_layernorm.weight"] = {c_.n_embd};
        s[p + "self_attn.q_proj.weight"] = {c_.n_head * hd, c_.n_embd};
        s[p + "self_attn.k_proj.weight"] = {c_.n_head_kv * hd, c_.n_embd};
        s[p + "self_attn.v_proj.weight"] = {c_.n_head_kv * hd, c_.n_embd};
        s[p + "self_attn.o_proj.weight"] = {c_.n_embd, c_.n_head * hd};
        s[p + "mlp.gate_proj.weight"] = {c_.n_ff, c_.n_embd};
        s[p + "mlp.up_proj.weight"] = {c_.n_ff, c_.n_embd};
        s[p + "mlp.down_proj.weight"] = {c_.n_embd, c_.n_ff};
    }
    return s;
}

void tiny_lm::init_random(uint64_t seed, float std) {
    rng64 r{seed};
    for (const auto & [name, shape] : expected_shapes()) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        std::vector<float> data(static_cast<size_t>(n));
        if (shape.size() == 1)
            for (auto & x : data) x = 1.0f;
        else
            for (auto & x : data) x = std * r.normal();
        w_[name] = parameter(shape, std::move(data));
    }
}

void tiny_lm::set_param(const std::string & name, value v) {
    w_[name] = std::move(v);
}

std::vector<std::pair<std::string, value>> tiny_lm::named_params() const {
    return {w_.begin(), w_.end()};
}

std::vector<value> tiny_lm::params() const {
    std::vector<value> v;
    for (const auto & kv : w_) v.push_back(kv.second);
    return v;
}

value tiny_lm::forward_loss(const std::vector<int32_t> & ids) {
    return forward_loss_batch({ids});
}

value tiny_lm::forward_loss_batch(const std::vector<std::vector<int32_t>> & seqs) {
    const int64_t hd = c_.n_embd / c_.n_head;
    const int64_t n_seq = static_cast<int64_t>(seqs.size());
    if (n_seq == 0) throw std::invalid_argument("[tiny_lm] empty batch");
    const size_t len = seqs[0].size();
    std::vector<int32_t> ids, pos, targets;
    for (const auto & s : seqs) {
        if (s.size() != len) throw std::invalid_argument("[tiny_lm] sequences of a batch must have equal lengths");
        ids.insert(ids.end(), s.begin(), s.end());
        for (size_t i = 0; i < len; ++i) {
            pos.push_back(static_cast<int32_t>(i));
            targets.push_back(i + 1 < len ? s[i + 1] : -1);
        }
    }
    value x = embedding(w_.at("model.embed_tokens.weight"), ids);
    for (int64_t l = 0; l < c_.n_layer; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        value h = rms_norm(x, w_.at(p + "input_layernorm.weight"), c_.eps);
        value q = rope(linear(h, w_.at(p + "self_attn.q_proj.weight"), nullptr), pos, c_.n_head, hd, c_.rope_theta,
                       ROPE_MODE_NEOX);
        value k = rope(linear(h, w_.at(p + "self_attn.k_proj.weight"), nullptr), pos, c_.n_head_kv, hd, c_.rope_theta,
                       ROPE_MODE_NEOX);
        value v = linear(h, w_.at(p + "self_attn.v_proj.weight"), nullptr);
        value a = attention(q, k, v, c_.n_head, c_.n_head_kv, 1.0f / std::sqrt(static_cast<float>(hd)), true, n_seq);
        x = add(x, linear(a, w_.at(p + "self_attn.o_proj.weight"), nullptr));
        h = rms_norm(x, w_.at(p + "post_attention_layernorm.weight"), c_.eps);
        value g = glu(linear(h, w_.at(p + "mlp.gate_proj.weight"), nullptr),
                      linear(h, w_.at(p + "mlp.up_proj.weight"), nullptr), ACT_SILU);
        x = add(x, linear(g, w_.at(p + "mlp.down_proj.weight"), nullptr));
    }
    value logits = linear(rms_norm(x, w_.at("model.norm.weight"), c_.eps), w_.at("lm_head.weight"), nullptr);
    return cross_entropy(logits, targets);
}

}  // namespace spider::train
