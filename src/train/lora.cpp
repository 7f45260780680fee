// LoRA adapters and extended token rows.
#include "train/lora.h"

#include <cmath>
#include <stdexcept>

#include "io/gguf.h"
#include "train/tiny_lm.h"

namespace spider::train {

lora_adapter lora_create(int64_t in, int64_t out, int64_t r, float alpha, uint64_t seed) {
    rng64 g{seed};
    std::vector<float> a(static_cast<size_t>(r * in));
    const float bound = 1.0f / std::sqrt(static_cast<float>(in));
    for (auto & v : a) v = (2.0f * g.uniform() - 1.0f) * bound;
    lora_adapter ad;
    ad.A = parameter({r, in}, std::move(a));
    ad.B = parameter({out, r}, std::vector<float>(static_cast<size_t>(out * r), 0.0f));
    ad.alpha = alpha;
    return ad;
}

value lora_linear(const value & x, const tensor & W, const lora_adapter & a, thread_pool * pool) {
    if (a.A->shape[1] != W.ne[0] || a.B->shape[0] != W.ne[1] || a.B->shape[1] != a.A->shape[0])
        throw std::invalid_argument("[lora_linear] adapter A [" + std::to_string(a.A->shape[0]) + ", " +
                                    std::to_string(a.A->shape[1]) + "], B [" + std::to_string(a.B->shape[0]) + ", " +
                                    std::to_string(a.B->shape[1]) + "] do not fit a weight of " +
                                    std::to_string(W.ne[0]) + " inputs and " + std::to_string(W.ne[1]) + " outputs");
    return add(linear_frozen(x, W, pool), scale(linear(linear(x, a.A, nullptr), a.B, nullptr), a.scaling()));
}

bool lora_save(const std::string & path, const std::map<std::string, lora_adapter> & adapters, std::string * err) {
    gguf_writer w;
    w.set_string("general.architecture", "spider-lora");
    if (adapters.empty()) {
        *err = "lora_save: no adapters";
        return false;
    }
    w.set_f32("spider.lora.alpha", adapters.begin()->second.alpha);
    w.set_u32("spider.lora.rank", static_cast<uint32_t>(adapters.begin()->second.rank()));
    for (const auto & [name, a] : adapters) {
        if (a.alpha != adapters.begin()->second.alpha || a.rank() != adapters.begin()->second.rank()) {
            *err = "lora_save: adapter '" + name + "' has a different rank or alpha (one per file)";
            return false;
        }
        const int64_t ne_a[2] = {a.A->shape[1], a.A->shape[0]};
        const int64_t ne_b[2] = {a.B->shape[1], a.B->shape[0]};
        if (!w.add_tensor("lora." + name + ".a", DTYPE_F32, ne_a, 2, a.A->data.data(), err)) return false;
        if (!w.add_tensor("lora." + name + ".b", DTYPE_F32, ne_b, 2, a.B->data.data(), err)) return false;
    }
    return w.write(path, err);
}

bool lora_load(const std::string & path, std::map<std::string, lora_adapter> * adapters, std::string * err) {
    auto f = gguf_file::open(path, err);
    if (!f) return false;
    std::string arch;
    double alpha = 0;
    int64_t rank = 0;
    if (!f->get_string("general.architecture", &arch) || arch != "spider-lora" ||
        !f->get_float("spider.lora.alpha", &alpha) || !f->get_int("spider.lora.rank", &rank) || rank <= 0) {
        *err = path + ": not a Spider LoRA file (needs general.architecture = spider-lora, spider.lora.alpha/rank)";
        return false;
    }
    adapters->clear();
    for (const auto & t : f->tensors()) {
        const std::string & n = t.name;
        if (n.size() < 8 || n.compare(0, 5, "lora.") != 0 || n.compare(n.size() - 2, 2, ".a") != 0) continue;
        const std::string target = n.substr(5, n.size() - 7);
        const gguf_tensor_info * tb = f->find_tensor("lora." + target + ".b");
        if (!tb || t.type != DTYPE_F32 || tb->type != DTYPE_F32 || t.n_dims != 2 || tb->n_dims != 2 ||
            t.ne[1] != rank || tb->ne[0] != rank) {
            *err = path + ": adapter '" + target + "' is incomplete or not of rank " + std::to_string(rank);
            return false;
        }
        lora_adapter a;
        a.alpha = static_cast<float>(alpha);
        const float * pa = reinterpret_cast<const float *>(f->data_section() + t.offset);
        const float * pb = reinterpret_cast<const float *>(f->data_section() + tb->offset);
        a.A = parameter({t.ne[1], t.ne[0]}, std::vector<float>(pa, pa + t.ne[0] * t.ne[1]));
        a.B = parameter({tb->ne[1], tb->ne[0]}, std::vector<float>(pb, pb + tb->ne[0] * tb->ne[1]));
        (*adapters)[target] = std::move(a);
    }
    if (adapters->empty()) {
        *err = path + ": no adapters in the file";
        return false;
    }
    return true;
}

bool lora_merge(const tensor & W, const lora_adapter & a, std::vector<float> * merged, std::string * err) {
    const int64_t in = W.ne[0], out = W.ne[1], r = a.rank();
    if (a.A->shape[1] != in || a.B->shape[0] != out) {
        *err = "lora_merge: adapter does not fit the weight";
        return false;
    }
    merged->assign(static_cast<size_t>(in * out), 0.0f);
    for (int64_t o = 0; o < out; ++o) {
        const int32_t id = static_cast<int32_t>(o);
        get_rows(W, &id, 1, merged->data() + o * in);
        for (int64_t k = 0; k < r; ++k) {
            const float b = a.B->data[o * r + k] * a.scaling();
            if (b == 0.0f) continue;
            for (int64_t i = 0; i < in; ++i) (*merged)[o * in + i] += b * a.A->data[k * in + i];
        }
    }
    return true;
}

value embedding_extended(const tensor & table, const value & extra, const std::vector<int32_t> & ids) {
    const int64_t V = table.ne[1], d = table.ne[0];
    if (extra->shape.size() != 2 || extra->shape[1] != d)
        throw std::invalid_argument("[embedding_extended] extra rows must be [n_new, " + std::to_string(d) + "]");
    const int64_t n_new = extra->shape[0];
    for (int32_t id : ids)
        if (id < 0 || id >= V + n_new)
            throw std::invalid_argument("[embedding_extended] token id " + std::to_string(id) + " outside " +
                                        std::to_string(V) + " + " + std::to_string(n_new) + " rows");
    // Rows of the frozen table are constants; rows of `extra` come through the differentiable embedding op.
    std::vector<float> base(ids.size() * static_cast<size_t>(d), 0.0f);
    std::vector<int32_t> extra_ids(ids.size(), 0);
    std::vector<float> mask(ids.size() * static_cast<size_t>(d), 0.0f);
    for (size_t t = 0; t < ids.size(); ++t) {
        if (ids[t] < V) {
            get_rows(table, &ids[t], 1, base.data() + t * d);
        } else {
            extra_ids[t] = ids[t] - static_cast<int32_t>(V);
            std::fill_n(mask.data() + t * d, d, 1.0f);
        }
    }
    const int64_t n = static_cast<int64_t>(ids.size());
    return add(constant({n, d}, std::move(base)), mul(embedding(extra, extra_ids), constant({n, d}, std::move(mask))));
}

value lm_head_extended(const value & x, const tensor & output, const value & extra, thread_pool * pool) {
    const int64_t V = output.ne[1], d = output.ne[0];
    if (x->shape.back() != d || extra->shape.size() != 2 || extra->shape[1] != d)
        throw std::invalid_argument("[lm_head_extended] shapes do not match the output matrix of width " +
                                    std::to_string(d));
    value base = linear_frozen(x, output, pool);  // [n, V]
    value ext = linear(x, extra, nullptr);        // [n, n_new]
    const int64_t n = base->numel() / V, n_new = extra->shape[0];
    // Concatenate along the last dimension (the tape has no generic concat yet: one small op here).
    auto y = std::make_shared<node>();
    y->op = "lm_head_extended";
    y->shape = {n, V + n_new};
    y->data.resize(static_cast<size_t>(n * (V + n_new)));
    y->inputs = {base, ext};
    y->requires_grad = base->requires_grad || ext->requires_grad;
    if (y->requires_grad) y->grad.assign(y->data.size(), 0.0f);
    for (int64_t t = 0; t < n; ++t) {
        std::copy_n(base->data.data() + t * V, V, y->data.data() + t * (V + n_new));
        std::copy_n(ext->data.data() + t * n_new, n_new, y->data.data() + t * (V + n_new) + V);
    }
    y->backward_fn = [n, V, n_new](node & s) {
        for (int k = 0; k < 2; ++k) {
            node & in = *s.inputs[k];
            if (!in.requires_grad) continue;
            if (in.grad.size() != in.data.size()) in.grad.assign(in.data.size(), 0.0f);
            const int64_t w = k == 0 ? V : n_new, off = k == 0 ? 0 : V;
            for (int64_t t = 0; t < n; ++t)
                for (int64_t i = 0; i < w; ++i) in.grad[t * w + i] += s.grad[t * (V + n_new) + off + i];
        }
    };
    return y;
}

}  // namespace spider::train
