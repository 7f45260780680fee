// Loading an LLM from GGUF: common hyperparameters, architecture hooks, tensor binding with shape checks, Spider's
// added-token rows. Every failure names the file, key or tensor at fault.
#include "llm/model.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <utility>

#include "core/ops.h"

namespace spider {

namespace {

thread_local llm_error_kind t_last_kind = LLM_ERR_FORMAT;

bool fail(llm_error_kind kind, std::string * err, const std::string & msg) {
    t_last_kind = kind;
    if (err) *err = msg;
    return false;
}

// An integer KV that may also be stored as a per-layer array whose entries must all be equal (some converters
// write head counts that way).
bool get_uniform_int(const gguf_file & f, const std::string & key, int64_t * out, std::string * err) {
    const gguf_value * v = f.find(key);
    if (!v) return false;
    if (v->type == GGUF_TYPE_ARRAY) {
        if (v->arr_int.empty())
            return fail(LLM_ERR_FORMAT, err, "metadata '" + key + "' is an empty or non-integer array");
        for (int64_t x : v->arr_int) {
            if (x != v->arr_int[0]) {
                return fail(LLM_ERR_UNSUPPORTED, err,
                            "metadata '" + key + "' varies per layer, which is not supported");
            }
        }
        *out = v->arr_int[0];
        return true;
    }
    if (!f.get_int(key, out)) return fail(LLM_ERR_FORMAT, err, "metadata '" + key + "' is not an integer");
    return true;
}

const char * ftype_to_name(int64_t ft) {
    static const std::map<int64_t, const char *> names = {
        {0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},    {8, "Q5_0"},
        {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"}, {14, "Q4_K_S"},
        {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},   {32, "BF16"},
    };
    auto it = names.find(ft);
    return it == names.end() ? nullptr : it->second;
}

}  // namespace

llm_error_kind llm_model_last_error_kind() {
    return t_last_kind;
}

bool llm_load_error(llm_error_kind kind, std::string * err, const std::string & msg) {
    return fail(kind, err, msg);
}

bool llm_model::bind(llm_tensor t, int layer, int64_t ne0, int64_t ne1, bool required, tensor * out,
                     std::string * err) {
    const std::string name = llm_tensor_name(t, layer);
    const gguf_tensor_info * info = file->find_tensor(name);
    *out = tensor();
    if (!info) {
        if (!required) return true;
        return fail(LLM_ERR_FORMAT, err, path + ": missing tensor '" + name + "'");
    }
    const int64_t want[MAX_DIMS] = {ne0, ne1, 1, 1};
    for (int d = 0; d < MAX_DIMS; d++) {
        if (info->ne[d] != want[d]) {
            char buf[256];
            std::snprintf(buf, sizeof buf, "tensor '%s' has shape {%lld, %lld, %lld, %lld}, expected {%lld, %lld}",
                          name.c_str(), (long long)info->ne[0], (long long)info->ne[1], (long long)info->ne[2],
                          (long long)info->ne[3], (long long)ne0, (long long)ne1);
            return fail(LLM_ERR_FORMAT, err, path + ": " + buf);
        }
    }
    if (!dtype_is_supported(info->type)) {
        return fail(LLM_ERR_UNSUPPORTED, err,
                    path + ": tensor '" + name + "' has unsupported type " + std::to_string((int)info->type));
    }
    tensor v = file->view(*info);
    v.name = name;
    if (ne1 == 1 && v.type != DTYPE_F32) {
        // Norm weights and other vectors are read as plain floats by the ops; widen them once.
        if (v.type != DTYPE_F16 && v.type != DTYPE_BF16) {
            return fail(LLM_ERR_UNSUPPORTED, err,
                        path + ": vector tensor '" + name + "' must be F32, F16 or BF16, got " + dtype_name(v.type));
        }
        auto buf = std::make_unique<std::vector<float>>(ne0);
        const uint16_t * src = static_cast<const uint16_t *>(v.data);
        for (int64_t i = 0; i < ne0; i++) {
            (*buf)[i] = v.type == DTYPE_F16 ? fp16_to_fp32(src[i]) : bf16_to_fp32(src[i]);
        }
        v = make_tensor(DTYPE_F32, buf->data(), ne0);
        v.name = name;
        owned.push_back(std::move(buf));
    }
    *out = v;
    return true;
}

std::unique_ptr<llm_model> llm_model::load(const std::string & path, const llm_model_params & params,
                                           std::string * err) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        fail(LLM_ERR_IO, err, "cannot open model '" + path + "': no such file");
        return nullptr;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(LLM_ERR_IO, err, "cannot open model '" + path + "': not a regular file");
        return nullptr;
    }
    t_last_kind = LLM_ERR_FORMAT;
    auto m = std::unique_ptr<llm_model>(new llm_model());
    m->path = path;
    std::string ferr;
    if (params.use_mmap) {
        m->file = gguf_file::open(path, &ferr);
    } else {
        // Read the whole file into memory owned by the model (for file systems where mmap is slow or unavailable).
        FILE * fp = std::fopen(path.c_str(), "rb");
        if (!fp) {
            fail(LLM_ERR_IO, err, "cannot open model '" + path + "': " + std::strerror(errno));
            return nullptr;
        }
        const size_t size = (size_t)st.st_size;
        try {
            m->file_data.reset(new uint8_t[size > 0 ? size : 1]);
        } catch (const std::bad_alloc &) {
            std::fclose(fp);
            fail(LLM_ERR_IO, err,
                 "cannot load model '" + path + "': out of memory reading " + std::to_string(size) + " bytes");
            return nullptr;
        }
        const size_t got = std::fread(m->file_data.get(), 1, size, fp);
        std::fclose(fp);
        if (got != size) {
            fail(LLM_ERR_IO, err, "cannot read model '" + path + "': short read");
            return nullptr;
        }
        m->file = gguf_file::open_buffer(m->file_data.get(), size, &ferr);
    }
    if (!m->file) {
        fail(LLM_ERR_FORMAT, err, "cannot load model '" + path + "': " + ferr);
        return nullptr;
    }
    const gguf_file & f = *m->file;

    std::string arch_name;
    if (!f.get_string("general.architecture", &arch_name)) {
        fail(LLM_ERR_FORMAT, err, path + ": metadata 'general.architecture' is missing (not an LLM GGUF?)");
        return nullptr;
    }
    m->arch = llm_arch_from_name(arch_name);
    m->impl = llm_arch_get(m->arch);
    if (!m->impl) {
        fail(LLM_ERR_UNSUPPORTED, err,
             path + ": unsupported architecture '" + arch_name + "' (supported: llama, gemma3)");
        return nullptr;
    }
    f.get_string("general.name", &m->name);

    llm_hparams & hp = m->hparams;
    auto req_int = [&](const char * suffix, int64_t * out) {
        const std::string key = llm_kv(m->arch, suffix);
        std::string e;
        if (!get_uniform_int(f, key, out, &e)) {
            if (e.empty())
                fail(LLM_ERR_FORMAT, err, path + ": metadata '" + key + "' is missing");
            else
                fail(llm_model_last_error_kind(), err, path + ": " + e);
            return false;
        }
        return true;
    };
    auto opt_int = [&](const char * suffix, int64_t * out) {
        const std::string key = llm_kv(m->arch, suffix);
        if (!f.find(key)) return true;
        std::string e;
        if (!get_uniform_int(f, key, out, &e)) {
            fail(llm_model_last_error_kind(), err, path + ": " + e);
            return false;
        }
        return true;
    };
    auto opt_float = [&](const char * suffix, float * out) {
        const std::string key = llm_kv(m->arch, suffix);
        if (!f.find(key)) return true;
        double d;
        if (!f.get_float(key, &d) || !std::isfinite(d)) {
            fail(LLM_ERR_FORMAT, err, path + ": metadata '" + key + "' is not a finite number");
            return false;
        }
        *out = (float)d;
        return true;
    };

    if (!req_int("embedding_length", &hp.n_embd) || !req_int("block_count", &hp.n_layer) ||
        !req_int("feed_forward_length", &hp.n_ff) || !req_int("attention.head_count", &hp.n_head)) {
        return nullptr;
    }
    hp.n_head_kv = hp.n_head;
    hp.n_ctx_train = 2048;
    if (!opt_int("attention.head_count_kv", &hp.n_head_kv) || !opt_int("context_length", &hp.n_ctx_train)) {
        return nullptr;
    }
    auto bad = [&](const std::string & what) {
        fail(LLM_ERR_FORMAT, err, path + ": invalid hyperparameters: " + what);
        return nullptr;
    };
    if (hp.n_embd <= 0 || hp.n_embd > (1 << 16)) return bad("embedding_length " + std::to_string(hp.n_embd));
    if (hp.n_layer <= 0 || hp.n_layer > 1024) return bad("block_count " + std::to_string(hp.n_layer));
    if (hp.n_ff <= 0 || hp.n_ff > (1 << 20)) return bad("feed_forward_length " + std::to_string(hp.n_ff));
    if (hp.n_head <= 0 || hp.n_head > 1024) return bad("head_count " + std::to_string(hp.n_head));
    if (hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0) {
        return bad("head_count_kv " + std::to_string(hp.n_head_kv) + " does not divide head_count " +
                   std::to_string(hp.n_head));
    }
    if (hp.n_ctx_train <= 0) hp.n_ctx_train = 2048;

    hp.head_dim = hp.n_embd % hp.n_head == 0 ? hp.n_embd / hp.n_head : 0;
    int64_t head_dim_v = -1;
    if (!opt_int("attention.key_length", &hp.head_dim) || !opt_int("attention.value_length", &head_dim_v)) {
        return nullptr;
    }
    if (hp.head_dim <= 0 || hp.head_dim > 4096 || hp.head_dim % 2 != 0) {
        return bad("key_length " + std::to_string(hp.head_dim));
    }
    if (head_dim_v >= 0 && head_dim_v != hp.head_dim) {
        fail(LLM_ERR_UNSUPPORTED, err, path + ": value_length != key_length is not supported");
        return nullptr;
    }
    hp.n_rot = hp.head_dim;
    if (!opt_int("rope.dimension_count", &hp.n_rot)) return nullptr;
    if (hp.n_rot <= 0 || hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0) {
        return bad("rope.dimension_count " + std::to_string(hp.n_rot));
    }
    if (!opt_float("attention.layer_norm_rms_epsilon", &hp.rms_eps) ||
        !opt_float("rope.freq_base", &hp.rope_freq_base)) {
        return nullptr;
    }
    if (!(hp.rms_eps > 0) || !(hp.rope_freq_base > 0)) return bad("rms epsilon or rope.freq_base not positive");
    {
        std::string scaling;
        float factor = 0;
        f.get_string(llm_kv(m->arch, "rope.scaling.type"), &scaling);
        if (!opt_float("rope.scaling.factor", &factor)) return nullptr;
        if (!scaling.empty() && scaling != "none" && scaling != "linear") {
            fail(LLM_ERR_UNSUPPORTED, err, path + ": rope scaling '" + scaling + "' is not supported (only linear)");
            return nullptr;
        }
        if ((scaling == "linear" || scaling.empty()) && factor > 0 && factor != 1.0f)
            hp.rope_freq_scale = 1.0f / factor;
        if (!opt_float("rope.scale_linear", &factor)) return nullptr;
        if (factor > 0 && f.find(llm_kv(m->arch, "rope.scale_linear"))) hp.rope_freq_scale = 1.0f / factor;
    }

    std::string e;
    if (!m->impl->load_hparams(f, &hp, &e)) {
        fail(llm_model_last_error_kind(), err, path + ": " + e);
        return nullptr;
    }

    // Vocabulary size from the embedding table.
    const gguf_tensor_info * te = f.find_tensor(llm_tensor_name(LLM_TENSOR_TOKEN_EMBD));
    if (!te) {
        fail(LLM_ERR_FORMAT, err, path + ": missing tensor '" + llm_tensor_name(LLM_TENSOR_TOKEN_EMBD) + "'");
        return nullptr;
    }
    hp.n_vocab = te->ne[1];
    if (hp.n_vocab <= 0 || hp.n_vocab > (1 << 24)) return bad("vocabulary size " + std::to_string(hp.n_vocab));

    // Spider added tokens.
    if (const gguf_value * at = f.find(LLM_KV_ADDED_TOKENS)) {
        if (at->type != GGUF_TYPE_ARRAY || at->arr_type != GGUF_TYPE_STRING) {
            fail(LLM_ERR_FORMAT, err, path + ": '" + LLM_KV_ADDED_TOKENS + "' must be an array of strings");
            return nullptr;
        }
        m->added_tokens = at->arr_str;
        hp.n_added = (int64_t)m->added_tokens.size();
    }

    if (!m->impl->load_tensors(m.get(), &e)) {
        fail(llm_model_last_error_kind(), err, e);
        return nullptr;
    }
    if (hp.n_added > 0) {
        if (!m->bind(LLM_TENSOR_TOKEN_EMBD_EXTRA, -1, hp.n_embd, hp.n_added, true, &m->tok_embd_extra, err) ||
            !m->bind(LLM_TENSOR_OUTPUT_EXTRA, -1, hp.n_embd, hp.n_added, false, &m->output_extra, err)) {
            return nullptr;
        }
        if (m->tok_embd_extra.type != DTYPE_F32 || (m->output_extra.data && m->output_extra.type != DTYPE_F32)) {
            fail(LLM_ERR_FORMAT, err, path + ": added-token tensors must be F32");
            return nullptr;
        }
        if (!m->output_extra.data) m->output_extra = m->tok_embd_extra;
    } else if (f.find_tensor(llm_tensor_name(LLM_TENSOR_TOKEN_EMBD_EXTRA))) {
        fail(LLM_ERR_FORMAT, err,
             path + ": tensor 'token_embd_extra.weight' present but '" + LLM_KV_ADDED_TOKENS + "' is missing");
        return nullptr;
    }

    // Statistics over the weight tensors.
    std::map<int, uint64_t> bytes_by_type;
    for (const auto & ti : f.tensors()) {
        int64_t n = ti.ne[0] * ti.ne[1] * ti.ne[2] * ti.ne[3];
        m->n_params += (uint64_t)n;
        m->n_bytes += ti.nbytes;
        bytes_by_type[ti.type] += ti.nbytes;
    }
    int64_t ft = -1;
    const char * fname = nullptr;
    if (f.get_int("general.file_type", &ft)) fname = ftype_to_name(ft);
    if (fname) {
        m->ftype_name = fname;
    } else {
        int best = DTYPE_F32;
        uint64_t best_bytes = 0;
        for (auto & kv : bytes_by_type) {
            if (kv.second > best_bytes) best = kv.first, best_bytes = kv.second;
        }
        m->ftype_name = dtype_name(best);
    }
    m->pack_weights();
    // pack_weights released each original behind its copy, but reading one mapped page maps the page-cache folio
    // around it (the kernel's fault-around), and in file order the neighbours of a tensor copied early are often
    // copied later: without a release here gemma-3-270m kept ~29 MB of copied weights mapped (peak RSS 388 MiB,
    // 2026-12-05). The C API releases once more after reading the vocabulary.
    m->release_mapped_pages();
    return m;
}

std::string llm_model::desc() const {
    char buf[256];
    double n = (double)n_params;
    const char * unit = "M";
    double v = n / 1e6;
    if (n >= 1e9) unit = "B", v = n / 1e9;
    std::snprintf(buf, sizeof buf, "%s %.2f%s %s (%lld layers, n_embd %lld, vocab %lld%s)", llm_arch_name(arch), v,
                  unit, ftype_name.c_str(), (long long)hparams.n_layer, (long long)hparams.n_embd,
                  (long long)hparams.n_vocab,
                  hparams.n_added ? (" + " + std::to_string(hparams.n_added) + " added").c_str() : "");
    return buf;
}

size_t llm_model::pack_weights() {
    const bool mmapped = file_data == nullptr;
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    // Q4_0, Q5_0, Q8_0, Q4_K and Q6_K are packed (the K-quants for decode; prompts unpack chunks). Q5_0's packed
    // kernel keeps the unpacked kernel's summation order, bit for bit (tile_pack8_lanes in
    // core/matmul_simd_impl.h), as the K-quant ones do: a faster whole-block Q5_0 kernel moves gemma-3-270m's
    // perplexity away from llama.cpp's (+0.42% on tests/data/llm/ppl_long.txt, +0.56% on ppl_text.txt, bound 0.5%,
    // against +0.053% / +0.361% in llama.cpp's order; 2026-12-05). Rounding noise amplified by the activation
    // quantization, not an error: two correct kernel sets move this model's logits by up to ~1
    // (test_real_model_parity).
    std::vector<tensor *> matmul_weights;
    for (llm_layer & l : layers) {
        for (tensor * W : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down})
            matmul_weights.push_back(W);
    }
    // A tied output matrix is also the embedding table: get_rows reads its rows from the copy.
    matmul_weights.push_back(&output);
    // Every other matmul weight of a mapped file gets a plain copy next to them (`data` then points at it), so that
    // decode streams all its weights from huge pages. So do the small tensors that inference reads (norm weights,
    // RoPE divisors, added-token rows): a read of a mapped file page maps the page-cache folio around it, up to
    // 2 MiB of neighbouring weights that were copied and released (gemma-3-270m: +29 MB RSS from its norm weights
    // during the first prompt, 2026-12-05). After the copies inference reads nothing from the mapping.
    std::vector<tensor *> small;
    if (mmapped) {
        for (llm_layer & l : layers) {
            for (tensor * T :
                 {&l.attn_norm, &l.attn_q_norm, &l.attn_k_norm, &l.attn_post_norm, &l.ffn_norm, &l.ffn_post_norm}) {
                small.push_back(T);
            }
        }
        small.push_back(&output_norm);
        small.push_back(&rope_freqs);
        small.push_back(&tok_embd_extra);
        if (output_extra.data != tok_embd_extra.data) small.push_back(&output_extra);
    }
    const bool extra_shared = output_extra.data == tok_embd_extra.data;
    auto in_file = [&](const void * p) {
        const uint8_t * b = file ? file->data_section() : nullptr;
        const auto * q = static_cast<const uint8_t *>(p);
        return b && q >= b && q < b + (file->file_size() - file->data_offset());
    };
    struct item {
        tensor * W;
        size_t offset;
        bool pack;
    };
    std::vector<item> plan;
    size_t total = 0;
    for (tensor * W : matmul_weights) {
        if (!W->data || W->packed) continue;
        const bool pack = matmul_pack_bytes(*W) > 0;  // the types and shapes with a packed kernel at this level
        const bool plain_2d = W->ne[2] == 1 && W->ne[3] == 1 && W->nb[1] == W->row_bytes();
        if (!pack && (!mmapped || !plain_2d)) continue;
        plan.push_back({W, total, pack});
        total += (W->nbytes() + 63) / 64 * 64;
    }
    for (tensor * T : small) {
        if (!T->data || T->ne[2] != 1 || T->ne[3] != 1 || T->nb[1] != T->row_bytes()) continue;
        if (!in_file(T->data)) continue;  // already a copy (an F32 conversion of an F16 norm)
        plan.push_back({T, total, false});
        total += (T->nbytes() + 63) / 64 * 64;
    }
    if (plan.empty()) return 0;
    weights = huge_buffer(total);
    if (!weights.data()) return 0;  // no memory for the copies: keep reading the originals
    for (const item & it : plan) {
        tensor & W = *it.W;
        uint8_t * buf = weights.data() + it.offset;
        // In slices of about 1 MB, releasing the original's pages behind each slice, so that peak memory does not
        // grow by a whole tensor (gemma-3-270m's output matrix is 178 MB). Only whole pages inside the tensor are
        // released: a neighbouring tensor may share the first or last page.
        const int64_t rows_per_slice = std::max<int64_t>(8, (int64_t(1) << 20) / (int64_t)W.row_bytes() / 8 * 8);
        uintptr_t released = (reinterpret_cast<uintptr_t>(W.data) + page - 1) / page * page;
        for (int64_t r0 = 0; r0 < W.ne[1]; r0 += rows_per_slice) {
            const int64_t rows = std::min(rows_per_slice, W.ne[1] - r0);
            if (it.pack) {
                tensor slice = W;
                slice.data = const_cast<void *>(W.row(r0));
                slice.ne[1] = rows;
                matmul_pack(slice, buf + r0 * W.nb[1]);
            } else {
                std::memcpy(buf + r0 * W.nb[1], W.row(r0), rows * W.nb[1]);
            }
            if (mmapped) {
                const uintptr_t e = reinterpret_cast<uintptr_t>(W.row(r0 + rows)) / page * page;
                if (e > released) {
                    madvise(reinterpret_cast<void *>(released), e - released, MADV_DONTNEED);
                    released = e;
                }
            }
        }
        if (it.pack) {
            W.packed = buf;
        } else {
            W.data = buf;
            if (&W == &output && output_tied) tok_embd.data = buf;
            if (&W == &tok_embd_extra && extra_shared) output_extra.data = buf;
        }
    }
    if (output_tied) tok_embd.packed = output.packed;
    return total;
}

std::vector<std::pair<const uint8_t *, size_t>> llm_model::decode_weight_spans() const {
    std::vector<std::pair<const uint8_t *, size_t>> spans;
    auto add = [&](const tensor & T) {
        if (!T.data) return;
        if (T.packed)
            spans.emplace_back(static_cast<const uint8_t *>(T.packed), matmul_pack_bytes(T));
        else
            spans.emplace_back(static_cast<const uint8_t *>(T.data), T.nbytes());
    };
    for (const llm_layer & l : layers) {
        for (const tensor * T : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.attn_q_norm, &l.attn_k_norm,
                                 &l.attn_post_norm, &l.ffn_norm, &l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.ffn_post_norm})
            add(*T);
    }
    add(output_norm);
    add(output);
    return spans;
}

void llm_model::release_mapped_pages() {
    if (file_data || !file || !file->data_section()) return;  // read into memory, not mapped
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t base = reinterpret_cast<uintptr_t>(file->data_section() - file->data_offset()) / page * page;
    const uintptr_t end = reinterpret_cast<uintptr_t>(file->data_section()) + (file->file_size() - file->data_offset());
    madvise(reinterpret_cast<void *>(base), end - base, MADV_DONTNEED);
}

}  // namespace spider
