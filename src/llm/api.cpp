// The C API (include/spider.h) over the C++ runtime: opaque handles are the C++ objects below, every call
// validates its arguments, catches everything and reports through spider_status + spider_last_error().
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "llm/context.h"
#include "llm/lora_apply.h"
#include "llm/model.h"
#include "llm/vocab.h"
#include "spider.h"

struct spider_model {
    std::unique_ptr<spider::llm_model> m;
    spider::vocab voc;
    bool has_vocab = false;
    std::unordered_map<std::string, int32_t> added_ids;  // added token text -> id
    std::vector<std::string> added_by_len;               // added token texts, longest first (for splitting)
    std::string desc;
};

struct spider_context {
    std::unique_ptr<spider::llm_context> c;
    const spider_model * model = nullptr;
};

namespace {

thread_local std::string t_last_error;

std::mutex g_log_mutex;
spider_log_callback g_log_cb = nullptr;
void * g_log_ud = nullptr;

void log_line(spider_log_level level, const char * fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    std::lock_guard<std::mutex> lock(g_log_mutex);
    if (g_log_cb) {
        g_log_cb(level, buf, g_log_ud);
    } else if (level >= SPIDER_LOG_LEVEL_WARN) {
        std::fprintf(stderr, "spider: %s\n", buf);
    }
}

spider_status set_error(spider_status s, const std::string & msg) {
    t_last_error = msg;
    if (s != SPIDER_STATUS_OK) log_line(SPIDER_LOG_LEVEL_DEBUG, "%s", msg.c_str());
    return s;
}

// Writes bytes into a caller buffer with the "length or -(needed)" convention.
int32_t write_out(const std::string & s, char * buf, int32_t len) {
    if (s.size() > (size_t)INT32_MAX) return INT32_MIN;
    if (len < 0 || (size_t)len < s.size()) return -(int32_t)s.size();
    if (!s.empty()) std::memcpy(buf, s.data(), s.size());
    return (int32_t)s.size();
}

bool valid_token(const spider_model * model, spider_token t) {
    return t >= 0 && t < model->m->hparams.n_vocab_total();
}

std::string piece_of(const spider_model * model, spider_token t, bool special) {
    const auto & hp = model->m->hparams;
    if (t >= hp.n_vocab) return model->m->added_tokens[t - hp.n_vocab];
    if (!model->has_vocab) return "";
    return model->voc.token_to_piece(t, special);
}

}  // namespace

namespace spider {

const llm_model * llm_model_of(const ::spider_model * m) {
    return m ? m->m.get() : nullptr;
}
const vocab * llm_vocab_of(const ::spider_model * m) {
    return m && m->has_vocab ? &m->voc : nullptr;
}
llm_context * llm_context_of(::spider_context * c) {
    return c ? c->c.get() : nullptr;
}

}  // namespace spider

extern "C" {

const char * spider_last_error(void) {
    return t_last_error.c_str();
}

const char * spider_status_name(spider_status s) {
    switch (s) {
        case SPIDER_STATUS_OK:
            return "ok";
        case SPIDER_STATUS_INVALID_ARGUMENT:
            return "invalid argument";
        case SPIDER_STATUS_IO_ERROR:
            return "i/o error";
        case SPIDER_STATUS_BAD_FORMAT:
            return "bad format";
        case SPIDER_STATUS_UNSUPPORTED:
            return "unsupported";
        case SPIDER_STATUS_OUT_OF_MEMORY:
            return "out of memory";
        case SPIDER_STATUS_CONTEXT_FULL:
            return "context full";
        case SPIDER_STATUS_INTERNAL:
            return "internal error";
    }
    return "unknown status";
}

void spider_log_set(spider_log_callback cb, void * user_data) {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    g_log_cb = cb;
    g_log_ud = user_data;
}

// ---- model ----

spider_model_params spider_model_default_params(void) {
    spider_model_params p;
    p.n_threads = 0;
    p.use_mmap = true;
    return p;
}

spider_status spider_model_load(const char * path, spider_model_params params, spider_model ** out) {
    if (!out) return set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_model_load: out is null");
    *out = nullptr;
    if (!path || !*path) return set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_model_load: empty path");
    try {
        spider::llm_model_params mp;
        mp.n_threads = params.n_threads;
        mp.use_mmap = params.use_mmap;
        std::string err;
        auto m = spider::llm_model::load(path, mp, &err);
        if (!m) return set_error((spider_status)spider::llm_model_last_error_kind(), err);
        auto sm = std::make_unique<spider_model>();
        std::string verr;
        if (m->file->find("tokenizer.ggml.tokens")) {
            if (!sm->voc.load(*m->file, &verr)) {
                return set_error(SPIDER_STATUS_BAD_FORMAT, std::string(path) + ": vocabulary: " + verr);
            }
            sm->has_vocab = true;
            if (sm->voc.n_tokens() > m->hparams.n_vocab) {
                return set_error(SPIDER_STATUS_BAD_FORMAT, std::string(path) + ": vocabulary has " +
                                                               std::to_string(sm->voc.n_tokens()) +
                                                               " tokens but token_embd.weight only " +
                                                               std::to_string(m->hparams.n_vocab) + " rows");
            }
        }
        for (size_t i = 0; i < m->added_tokens.size(); i++) {
            const std::string & t = m->added_tokens[i];
            if (t.empty()) return set_error(SPIDER_STATUS_BAD_FORMAT, std::string(path) + ": empty added token text");
            if (!sm->added_ids.emplace(t, (int32_t)(m->hparams.n_vocab + i)).second) {
                return set_error(SPIDER_STATUS_BAD_FORMAT, std::string(path) + ": duplicate added token '" + t + "'");
            }
            sm->added_by_len.push_back(t);
        }
        std::stable_sort(sm->added_by_len.begin(), sm->added_by_len.end(),
                         [](const std::string & a, const std::string & b) { return a.size() > b.size(); });
        sm->desc = m->desc();
        m->release_mapped_pages();  // the vocabulary and the weights' copies are made
        sm->m = std::move(m);
        log_line(SPIDER_LOG_LEVEL_INFO, "loaded %s: %s", path, sm->desc.c_str());
        *out = sm.release();
        return set_error(SPIDER_STATUS_OK, "");
    } catch (const std::bad_alloc &) {
        return set_error(SPIDER_STATUS_OUT_OF_MEMORY, std::string("spider_model_load: out of memory loading ") + path);
    } catch (const std::exception & e) {
        return set_error(SPIDER_STATUS_INTERNAL, std::string("spider_model_load: ") + e.what());
    }
}

spider_status spider_model_apply_lora(spider_model * model, const char * adapter_path) {
    if (!model || !adapter_path || !*adapter_path)
        return set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_model_apply_lora: null model or empty path");
    try {
        std::string err;
        if (!spider::llm_model_apply_lora(model->m.get(), adapter_path, &err))
            return set_error(SPIDER_STATUS_BAD_FORMAT, err);
        model->added_ids.clear();
        model->added_by_len.clear();
        const auto & added = model->m->added_tokens;
        for (size_t i = 0; i < added.size(); i++) {
            if (added[i].empty() ||
                !model->added_ids.emplace(added[i], (int32_t)(model->m->hparams.n_vocab + i)).second)
                return set_error(SPIDER_STATUS_BAD_FORMAT,
                                 std::string(adapter_path) + ": empty or duplicate added token '" + added[i] + "'");
            model->added_by_len.push_back(added[i]);
        }
        std::stable_sort(model->added_by_len.begin(), model->added_by_len.end(),
                         [](const std::string & a, const std::string & b) { return a.size() > b.size(); });
        model->desc = model->m->desc() + " + LoRA " + adapter_path;
        return set_error(SPIDER_STATUS_OK, "");
    } catch (const std::bad_alloc &) {
        return set_error(SPIDER_STATUS_OUT_OF_MEMORY, "spider_model_apply_lora: out of memory");
    } catch (const std::exception & e) {
        return set_error(SPIDER_STATUS_INTERNAL, std::string("spider_model_apply_lora: ") + e.what());
    }
}

void spider_model_free(spider_model * model) {
    delete model;
}

const char * spider_model_arch(const spider_model * model) {
    return model ? spider::llm_arch_name(model->m->arch) : "";
}
int32_t spider_model_n_embd(const spider_model * model) {
    return model ? (int32_t)model->m->hparams.n_embd : 0;
}
int32_t spider_model_n_layer(const spider_model * model) {
    return model ? (int32_t)model->m->hparams.n_layer : 0;
}
int32_t spider_model_n_head(const spider_model * model) {
    return model ? (int32_t)model->m->hparams.n_head : 0;
}
int32_t spider_model_n_head_kv(const spider_model * model) {
    return model ? (int32_t)model->m->hparams.n_head_kv : 0;
}
int32_t spider_model_n_vocab(const spider_model * model) {
    return model ? (int32_t)model->m->hparams.n_vocab_total() : 0;
}
int32_t spider_model_n_ctx_train(const spider_model * model) {
    return model ? (int32_t)model->m->hparams.n_ctx_train : 0;
}
uint64_t spider_model_n_params(const spider_model * model) {
    return model ? model->m->n_params : 0;
}
uint64_t spider_model_size(const spider_model * model) {
    return model ? model->m->n_bytes : 0;
}

int32_t spider_model_desc(const spider_model * model, char * buf, size_t buf_size) {
    if (!model || !buf || buf_size == 0) return 0;
    size_t n = std::min(buf_size - 1, model->desc.size());
    std::memcpy(buf, model->desc.data(), n);
    buf[n] = 0;
    return (int32_t)n;
}

int32_t spider_model_meta_str(const spider_model * model, const char * key, char * buf, size_t buf_size) {
    if (!model || !key) return -1;
    std::string v;
    if (!model->m->file->get_string(key, &v)) return -1;
    if (buf && buf_size > 0) {
        size_t n = std::min(buf_size - 1, v.size());
        std::memcpy(buf, v.data(), n);
        buf[n] = 0;
    }
    return v.size() > (size_t)INT32_MAX ? INT32_MAX : (int32_t)v.size();
}

// ---- vocabulary ----

int32_t spider_tokenize(const spider_model * model, const char * text, int32_t text_len, spider_token * tokens,
                        int32_t n_tokens_max, bool add_special, bool parse_special) {
    if (!model || (!text && text_len != 0) || (!tokens && n_tokens_max > 0) || n_tokens_max < 0) {
        set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_tokenize: null model/text/tokens or negative n_tokens_max");
        return INT32_MIN;
    }
    if (!model->has_vocab) {
        set_error(SPIDER_STATUS_UNSUPPORTED, "spider_tokenize: the model file has no vocabulary");
        return INT32_MIN;
    }
    try {
        std::string s = text_len < 0 ? std::string(text) : std::string(text, (size_t)text_len);
        std::vector<int32_t> out;
        const spider::vocab & v = model->voc;
        if (add_special && v.add_bos() && v.bos() >= 0) out.push_back(v.bos());
        // Added tokens are cut out first (longest match), the pieces between go through the base tokenizer.
        size_t seg = 0, i = 0;
        auto flush = [&](size_t end) {
            if (end > seg) {
                auto part = v.tokenize(s.substr(seg, end - seg), false, parse_special);
                out.insert(out.end(), part.begin(), part.end());
            }
        };
        if (parse_special && !model->added_by_len.empty()) {
            while (i < s.size()) {
                bool hit = false;
                for (const auto & t : model->added_by_len) {
                    if (s.compare(i, t.size(), t) == 0) {
                        flush(i);
                        out.push_back(model->added_ids.at(t));
                        i += t.size();
                        seg = i;
                        hit = true;
                        break;
                    }
                }
                if (!hit) i++;
            }
        }
        flush(s.size());
        if (add_special && v.add_eos() && v.eos() >= 0) out.push_back(v.eos());
        if (out.size() > (size_t)INT32_MAX) {
            set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_tokenize: too many tokens");
            return INT32_MIN;
        }
        if ((int64_t)out.size() > n_tokens_max) return -(int32_t)out.size();
        std::copy(out.begin(), out.end(), tokens);
        return (int32_t)out.size();
    } catch (const std::exception & e) {
        set_error(SPIDER_STATUS_INTERNAL, std::string("spider_tokenize: ") + e.what());
        return INT32_MIN;
    }
}

int32_t spider_token_to_piece(const spider_model * model, spider_token token, char * buf, int32_t length,
                              bool special) {
    if (!model || !valid_token(model, token) || (!buf && length > 0)) {
        set_error(SPIDER_STATUS_INVALID_ARGUMENT,
                  "spider_token_to_piece: invalid model or token " + std::to_string(token));
        return INT32_MIN;
    }
    return write_out(piece_of(model, token, special), buf, length);
}

int32_t spider_detokenize(const spider_model * model, const spider_token * tokens, int32_t n_tokens, char * text,
                          int32_t text_len_max, bool remove_special, bool unparse_special) {
    if (!model || (!tokens && n_tokens > 0) || n_tokens < 0 || (!text && text_len_max > 0)) {
        set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_detokenize: null arguments or negative count");
        return INT32_MIN;
    }
    try {
        const auto & hp = model->m->hparams;
        std::string out;
        std::vector<int32_t> run;  // consecutive base tokens, detokenized together so byte tokens reassemble
        auto flush = [&]() {
            if (!run.empty() && model->has_vocab) out += model->voc.detokenize(run, unparse_special);
            run.clear();
        };
        for (int32_t i = 0; i < n_tokens; i++) {
            const spider_token t = tokens[i];
            if (!valid_token(model, t)) {
                set_error(SPIDER_STATUS_INVALID_ARGUMENT,
                          "spider_detokenize: invalid token " + std::to_string(t) + " at index " + std::to_string(i));
                return INT32_MIN;
            }
            if (remove_special && model->has_vocab && t < hp.n_vocab &&
                (t == model->voc.bos() || t == model->voc.eos())) {
                continue;
            }
            if (t >= hp.n_vocab) {
                flush();
                out += model->m->added_tokens[t - hp.n_vocab];
            } else {
                run.push_back(t);
            }
        }
        flush();
        return write_out(out, text, text_len_max);
    } catch (const std::exception & e) {
        set_error(SPIDER_STATUS_INTERNAL, std::string("spider_detokenize: ") + e.what());
        return INT32_MIN;
    }
}

const char * spider_token_get_text(const spider_model * model, spider_token token) {
    if (!model || !valid_token(model, token)) return nullptr;
    const auto & hp = model->m->hparams;
    if (token >= hp.n_vocab) return model->m->added_tokens[token - hp.n_vocab].c_str();
    if (!model->has_vocab || token >= model->voc.n_tokens()) return nullptr;
    return model->voc.token_text(token).c_str();
}

spider_token spider_token_find(const spider_model * model, const char * text) {
    if (!model || !text) return -1;
    auto it = model->added_ids.find(text);
    if (it != model->added_ids.end()) return it->second;
    if (!model->has_vocab) return -1;
    int32_t id = model->voc.text_to_token(text);
    return id < 0 ? -1 : id;
}

spider_token spider_token_bos(const spider_model * model) {
    return model && model->has_vocab ? model->voc.bos() : -1;
}
spider_token spider_token_eos(const spider_model * model) {
    return model && model->has_vocab ? model->voc.eos() : -1;
}
bool spider_token_is_eog(const spider_model * model, spider_token token) {
    if (!model || !model->has_vocab || token < 0 || token >= model->m->hparams.n_vocab) return false;
    if (model->voc.is_eog(token)) return true;
    // Gemma's chat turns end with <end_of_turn>, which older vocab metadata does not mark as EOT.
    return model->voc.token_text(token) == "<end_of_turn>";
}
bool spider_token_is_control(const spider_model * model, spider_token token) {
    if (!model || !valid_token(model, token)) return false;
    if (token >= model->m->hparams.n_vocab) return true;
    return model->has_vocab && token < model->voc.n_tokens() &&
           model->voc.get_token_type(token) == spider::TOKEN_TYPE_CONTROL;
}

spider_status spider_token_embeddings(const spider_model * model, const spider_token * tokens, int32_t n_tokens,
                                      float * out) {
    if (!model || (!tokens && n_tokens > 0) || n_tokens < 0 || (!out && n_tokens > 0)) {
        return set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_token_embeddings: null arguments or negative count");
    }
    const auto & hp = model->m->hparams;
    for (int32_t i = 0; i < n_tokens; i++) {
        if (!valid_token(model, tokens[i])) {
            return set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_token_embeddings: invalid token " +
                                                                 std::to_string(tokens[i]) + " at index " +
                                                                 std::to_string(i));
        }
    }
    for (int32_t i = 0; i < n_tokens; i++) {
        float * row = out + (int64_t)i * hp.n_embd;
        const int32_t id = tokens[i];
        if (id < hp.n_vocab) {
            spider::get_rows(model->m->tok_embd, &id, 1, row);
        } else {
            std::memcpy(row, model->m->tok_embd_extra.row(id - hp.n_vocab), sizeof(float) * hp.n_embd);
        }
        if (hp.embd_scale != 1.0f) {
            for (int64_t j = 0; j < hp.n_embd; j++) row[j] *= hp.embd_scale;
        }
    }
    return set_error(SPIDER_STATUS_OK, "");
}

// ---- context ----

spider_context_params spider_context_default_params(void) {
    spider_context_params p;
    p.n_ctx = 2048;
    p.n_batch = 512;
    p.n_threads = 0;
    p.kv_type = SPIDER_KV_TYPE_F32;
    return p;
}

spider_status spider_context_create(const spider_model * model, spider_context_params params, spider_context ** out) {
    if (!out) return set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_context_create: out is null");
    *out = nullptr;
    if (!model) return set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_context_create: model is null");
    if (params.kv_type != SPIDER_KV_TYPE_F32 && params.kv_type != SPIDER_KV_TYPE_F16) {
        return set_error(SPIDER_STATUS_INVALID_ARGUMENT,
                         "spider_context_create: unknown kv_type " + std::to_string((int)params.kv_type));
    }
    try {
        spider::llm_context_params cp;
        cp.n_ctx = params.n_ctx;
        cp.n_batch = params.n_batch;
        cp.n_threads = params.n_threads;
        cp.kv_f16 = params.kv_type == SPIDER_KV_TYPE_F16;
        std::string err;
        auto c = spider::llm_context::create(model->m.get(), cp, &err);
        if (!c) {
            return set_error(err.find("out of memory") != std::string::npos ? SPIDER_STATUS_OUT_OF_MEMORY
                                                                            : SPIDER_STATUS_INVALID_ARGUMENT,
                             err);
        }
        auto sc = std::make_unique<spider_context>();
        sc->c = std::move(c);
        sc->model = model;
        *out = sc.release();
        return set_error(SPIDER_STATUS_OK, "");
    } catch (const std::bad_alloc &) {
        return set_error(SPIDER_STATUS_OUT_OF_MEMORY, "spider_context_create: out of memory");
    } catch (const std::exception & e) {
        return set_error(SPIDER_STATUS_INTERNAL, std::string("spider_context_create: ") + e.what());
    }
}

void spider_context_free(spider_context * ctx) {
    delete ctx;
}
const spider_model * spider_context_model(const spider_context * ctx) {
    return ctx ? ctx->model : nullptr;
}
uint32_t spider_n_ctx(const spider_context * ctx) {
    return ctx ? (uint32_t)ctx->c->params.n_ctx : 0;
}

spider_status spider_set_n_threads(spider_context * ctx, int32_t n_threads) {
    if (!ctx) return set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_set_n_threads: ctx is null");
    std::string err;
    try {
        if (!ctx->c->set_n_threads(n_threads, &err)) return set_error(SPIDER_STATUS_INVALID_ARGUMENT, err);
    } catch (const std::exception & e) {
        return set_error(SPIDER_STATUS_INTERNAL, std::string("spider_set_n_threads: ") + e.what());
    }
    return set_error(SPIDER_STATUS_OK, "");
}

// ---- decoding ----

spider_batch spider_batch_tokens(const spider_token * tokens, int32_t n_tokens) {
    spider_batch b;
    b.n_tokens = n_tokens;
    b.tokens = tokens;
    b.embd = nullptr;
    b.output = SPIDER_OUTPUT_LAST;
    return b;
}

spider_batch spider_batch_embd(const float * embd, int32_t n_tokens) {
    spider_batch b;
    b.n_tokens = n_tokens;
    b.tokens = nullptr;
    b.embd = embd;
    b.output = SPIDER_OUTPUT_LAST;
    return b;
}

spider_status spider_decode(spider_context * ctx, spider_batch batch) {
    if (!ctx) return set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_decode: ctx is null");
    try {
        std::string err;
        if (!ctx->c->decode(batch.tokens, batch.embd, batch.n_tokens, (spider::llm_output_mode)batch.output, &err)) {
            return set_error((spider_status)ctx->c->err_kind, err);
        }
    } catch (const std::bad_alloc &) {
        return set_error(SPIDER_STATUS_OUT_OF_MEMORY, "spider_decode: out of memory");
    } catch (const std::exception & e) {
        return set_error(SPIDER_STATUS_INTERNAL, std::string("spider_decode: ") + e.what());
    }
    return set_error(SPIDER_STATUS_OK, "");
}

const float * spider_get_logits(const spider_context * ctx) {
    if (!ctx || ctx->c->n_outputs == 0) return nullptr;
    return ctx->c->logits.data();
}

int32_t spider_n_outputs(const spider_context * ctx) {
    return ctx ? (int32_t)ctx->c->n_outputs : 0;
}

const float * spider_get_logits_ith(const spider_context * ctx, int32_t i) {
    if (!ctx) return nullptr;
    const int64_t n = ctx->c->n_outputs;
    const int64_t idx = i < 0 ? n + i : i;
    if (idx < 0 || idx >= n) return nullptr;
    return ctx->c->logits.data() + idx * ctx->c->model->hparams.n_vocab_total();
}

spider_status spider_set_capture_layers(spider_context * ctx, const int32_t * layers, int32_t n_layers) {
    if (!ctx || (!layers && n_layers > 0) || n_layers < 0) {
        return set_error(SPIDER_STATUS_INVALID_ARGUMENT,
                         "spider_set_capture_layers: null ctx/layers or negative count");
    }
    std::string err;
    std::vector<int> ls(layers, layers + n_layers);
    if (!ctx->c->set_capture(ls, &err)) return set_error(SPIDER_STATUS_INVALID_ARGUMENT, err);
    return set_error(SPIDER_STATUS_OK, "");
}

const float * spider_get_hidden(const spider_context * ctx, int32_t layer, int32_t * n_rows) {
    if (n_rows) *n_rows = 0;
    if (!ctx) return nullptr;
    const int64_t n_layer = ctx->c->model->hparams.n_layer;
    const int64_t idx = layer < 0 ? n_layer + 1 + layer : layer;
    if (idx < 0 || idx > n_layer || !ctx->c->capture[idx] || ctx->c->hidden_rows == 0) return nullptr;
    if (n_rows) *n_rows = (int32_t)ctx->c->hidden_rows;
    return ctx->c->hidden[idx].data();
}

// ---- KV cache ----

int32_t spider_kv_len(const spider_context * ctx) {
    return ctx ? (int32_t)ctx->c->kv_len : 0;
}
void spider_kv_clear(spider_context * ctx) {
    if (ctx) ctx->c->kv_clear();
}
spider_status spider_kv_truncate(spider_context * ctx, int32_t n) {
    if (!ctx) return set_error(SPIDER_STATUS_INVALID_ARGUMENT, "spider_kv_truncate: ctx is null");
    std::string err;
    if (!ctx->c->kv_truncate(n, &err)) return set_error(SPIDER_STATUS_INVALID_ARGUMENT, err);
    return set_error(SPIDER_STATUS_OK, "");
}

// ---- timings ----

spider_timings spider_get_timings(const spider_context * ctx) {
    spider_timings t = {0, 0, 0, 0};
    if (!ctx) return t;
    const auto & s = ctx->c->timings;
    t.t_prompt_ms = s.t_prompt_ms;
    t.t_eval_ms = s.t_eval_ms;
    t.n_prompt = (int32_t)s.n_prompt;
    t.n_eval = (int32_t)s.n_eval;
    return t;
}

void spider_reset_timings(spider_context * ctx) {
    if (ctx) ctx->c->timings = spider::llm_timings();
}

}  // extern "C"
