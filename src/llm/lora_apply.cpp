// Merging a Spider LoRA adapter into a loaded model (see lora_apply.h).
#include "llm/lora_apply.h"

#include <cstring>
#include <memory>

#include "core/dtype.h"
#include "io/gguf.h"
#include "llm/arch.h"

namespace spider {

namespace {

// The projection of block il named by suffix ("attn_q", ...); nullptr if unknown.
tensor * target_tensor(llm_model * m, const std::string & name) {
    // blk.<il>.<suffix>.weight
    if (name.compare(0, 4, "blk.") != 0) return nullptr;
    const size_t dot = name.find('.', 4);
    if (dot == std::string::npos || name.size() < dot + 8 || name.compare(name.size() - 7, 7, ".weight") != 0)
        return nullptr;
    int il = -1;
    try {
        il = std::stoi(name.substr(4, dot - 4));
    } catch (...) {
        return nullptr;
    }
    if (il < 0 || il >= (int)m->layers.size()) return nullptr;
    const std::string s = name.substr(dot + 1, name.size() - 7 - dot - 1);
    llm_layer & l = m->layers[il];
    if (s == "attn_q") return &l.wq;
    if (s == "attn_k") return &l.wk;
    if (s == "attn_v") return &l.wv;
    if (s == "attn_output") return &l.wo;
    if (s == "ffn_gate") return &l.ffn_gate;
    if (s == "ffn_up") return &l.ffn_up;
    if (s == "ffn_down") return &l.ffn_down;
    return nullptr;
}

}  // namespace

bool llm_model_apply_lora(llm_model * m, const std::string & path, std::string * err) {
    auto f = gguf_file::open(path, err);
    if (!f) return false;
    std::string arch;
    double alpha = 0;
    int64_t rank = 0;
    if (!f->get_string("general.architecture", &arch) || arch != "spider-lora" ||
        !f->get_float("spider.lora.alpha", &alpha) || !f->get_int("spider.lora.rank", &rank) || rank <= 0) {
        *err = path + ": not a Spider LoRA adapter (needs general.architecture = spider-lora, spider.lora.alpha/rank)";
        return false;
    }
    const float scaling = (float)alpha / (float)rank;
    const int64_t d = m->hparams.n_embd;
    int n_merged = 0;
    for (const auto & t : f->tensors()) {
        const std::string & n = t.name;
        if (n.size() < 8 || n.compare(0, 5, "lora.") != 0 || n.compare(n.size() - 2, 2, ".a") != 0) continue;
        const std::string target = n.substr(5, n.size() - 7);
        tensor * W = target_tensor(m, target);
        if (!W || !W->data) {
            *err = path + ": adapter target '" + target + "' is not a projection of this model";
            return false;
        }
        const int64_t in = W->ne[0], out = W->ne[1];
        const gguf_tensor_info * tb = f->find_tensor("lora." + target + ".b");
        if (!tb || t.type != DTYPE_F32 || tb->type != DTYPE_F32 || t.n_dims != 2 || tb->n_dims != 2 || t.ne[0] != in ||
            t.ne[1] != rank || tb->ne[0] != rank || tb->ne[1] != out) {
            *err = path + ": adapter '" + target + "' does not fit the weight [" + std::to_string(out) + " x " +
                   std::to_string(in) + "] at rank " + std::to_string(rank);
            return false;
        }
        const float * A = reinterpret_cast<const float *>(f->data_section() + t.offset);    // [r][in]
        const float * B = reinterpret_cast<const float *>(f->data_section() + tb->offset);  // [out][r]
        // F16 halves kept in a float vector (llm_model::owned holds the model's extra buffers).
        auto merged = std::make_unique<std::vector<float>>((size_t)((in * out + 1) / 2));
        uint16_t * h = reinterpret_cast<uint16_t *>(merged->data());
        std::vector<float> row((size_t)in);
        for (int64_t o = 0; o < out; ++o) {
            const int32_t id = (int32_t)o;
            get_rows(*W, &id, 1, row.data());
            for (int64_t k = 0; k < rank; ++k) {
                const float b = B[o * rank + k] * scaling;
                if (b == 0.0f) continue;
                for (int64_t i = 0; i < in; ++i) row[i] += b * A[k * in + i];
            }
            for (int64_t i = 0; i < in; ++i) h[o * in + i] = fp32_to_fp16(row[i]);
        }
        *W = make_tensor(DTYPE_F16, h, in, out);
        m->owned.push_back(std::move(merged));
        ++n_merged;
    }
    const gguf_value * at = f->find(LLM_KV_ADDED_TOKENS);
    const gguf_tensor_info * te = f->find_tensor(llm_tensor_name(LLM_TENSOR_TOKEN_EMBD_EXTRA));
    if (at || te) {
        if (!at || !te || at->type != GGUF_TYPE_ARRAY || at->arr_type != GGUF_TYPE_STRING || te->type != DTYPE_F32 ||
            te->n_dims != 2 || te->ne[0] != d || te->ne[1] != (int64_t)at->arr_str.size()) {
            *err = path + ": new-token rows need '" + LLM_KV_ADDED_TOKENS + "' and an F32 token_embd_extra.weight [" +
                   std::to_string(d) + " x n_added]";
            return false;
        }
        if (m->hparams.n_added > 0) {
            *err = path + ": the base model already has " + std::to_string(m->hparams.n_added) + " added tokens";
            return false;
        }
        const float * src = reinterpret_cast<const float *>(f->data_section() + te->offset);
        auto rows = std::make_unique<std::vector<float>>(src, src + te->ne[0] * te->ne[1]);
        m->added_tokens = at->arr_str;
        m->hparams.n_added = (int64_t)at->arr_str.size();
        m->tok_embd_extra = make_tensor(DTYPE_F32, rows->data(), d, te->ne[1]);
        m->output_extra = m->tok_embd_extra;
        m->owned.push_back(std::move(rows));
    } else if (n_merged == 0) {
        *err = path + ": the adapter holds neither LoRA tensors nor new-token rows";
        return false;
    }
    return true;
}

}  // namespace spider
