// Hugging Face checkpoint -> GGUF (LlamaForCausalLM, Gemma3ForCausalLM). The KV names, tensor names and
// transforms are those of llama.cpp's convert_hf_to_gguf.py / gguf-py (written down in docs/FORMATS.md):
// - Llama: q_proj / k_proj rows are permuted from HF's "rotate half" RoPE layout to GGML's interleaved pairs.
// - Gemma 3: every *norm.weight is stored as 1 + w (HF's Gemma3RMSNorm multiplies by 1 + w); embeddings are tied
//   (no output.weight) and the embedding rows are cut to the tokenizer's size.
// - 1-D tensors are stored F32, matrices in the requested type.
#include "io/hf_convert.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/gguf.h"
#include "io/safetensors.h"

namespace spider {

namespace {

using json = nlohmann::json;

// GGUF token types (llama.cpp's llama_token_type) share SentencePiece's numbering.
constexpr int32_t TOKEN_TYPE_NORMAL = 1, TOKEN_TYPE_CONTROL = 3, TOKEN_TYPE_USER_DEFINED = 4, TOKEN_TYPE_UNUSED = 5;

// The pre-tokenizer regex of Llama 3 (tokenizer.json, Split pattern); llama.cpp calls this pre-tokenizer
// "llama-bpe".
const char * LLAMA3_PRE_REGEX =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

bool file_exists(const std::string & p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool load_json(const std::string & path, json * out, std::string * err) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        *err = "cannot open '" + path + "'";
        return false;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    try {
        *out = json::parse(ss.str());
    } catch (const std::exception & e) {
        *err = "'" + path + "' is not valid JSON: " + e.what();
        return false;
    }
    return true;
}

// Reads an integer hyperparameter: required (no default) or optional.
bool hp_int(const json & c, const char * key, int64_t * out, std::string * err, bool required = true) {
    auto it = c.find(key);
    if (it == c.end() || it->is_null()) {
        if (required) *err = std::string("config.json: missing '") + key + "'";
        return !required;
    }
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
        *err = std::string("config.json: '") + key + "' must be a non-negative integer, got " + it->dump();
        return false;
    }
    *out = it->get<int64_t>();
    return true;
}

bool hp_float(const json & c, const char * key, double * out, std::string * err) {
    auto it = c.find(key);
    if (it == c.end() || it->is_null()) return true;  // keep the default
    if (!it->is_number()) {
        *err = std::string("config.json: '") + key + "' must be a number, got " + it->dump();
        return false;
    }
    *out = it->get<double>();
    return true;
}

// A special token id from config.json: an int, a list (first element), or null.
bool config_token_id(const json & c, const char * key, int64_t * out) {
    auto it = c.find(key);
    if (it == c.end() || it->is_null()) return false;
    if (it->is_number_integer()) {
        *out = it->get<int64_t>();
        return true;
    }
    if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) {
        *out = (*it)[0].get<int64_t>();
        return true;
    }
    return false;
}

// A special token's text from tokenizer_config.json / special_tokens_map.json: a string or {"content": ...}.
bool config_token_text(const json & c, const std::string & key, std::string * out) {
    auto it = c.find(key);
    if (it == c.end()) return false;
    if (it->is_string()) {
        *out = it->get<std::string>();
        return true;
    }
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
        *out = (*it)["content"].get<std::string>();
        return true;
    }
    return false;
}

struct vocab_out {
    std::string model;  // "llama" or "gpt2"
    std::string pre = "default";
    std::vector<std::string> tokens;
    std::vector<float> scores;  // empty for gpt2
    std::vector<int32_t> types;
    std::vector<std::string> merges;
    int64_t bos = -1, eos = -1, unk = -1, pad = -1;
    int add_bos = -1, add_eos = -1, add_space_prefix = -1;  // -1: not written
    std::string chat_template;
};

bool load_tokenizer(const std::string & dir, const json & config, bool is_gemma, int64_t vocab_size, vocab_out * v,
                    const std::function<void(const std::string &)> & log, std::string * err) {
    json tcfg = json::object(), stmap = json::object();
    if (file_exists(dir + "/tokenizer_config.json") && !load_json(dir + "/tokenizer_config.json", &tcfg, err)) {
        return false;
    }
    if (file_exists(dir + "/special_tokens_map.json") && !load_json(dir + "/special_tokens_map.json", &stmap, err)) {
        return false;
    }
    sp_model sp;
    const bool have_sp = file_exists(dir + "/tokenizer.model");
    if (have_sp) {
        if (!sentencepiece_model_load(dir + "/tokenizer.model", &sp, err)) return false;
        // llama.cpp's _create_vocab_sentencepiece: every id up to vocab_size, unknown ids padded as [PAD<i>].
        const int64_t n = std::max<int64_t>(vocab_size, static_cast<int64_t>(sp.pieces.size()));
        v->model = "llama";
        v->tokens.resize(static_cast<size_t>(n));
        v->scores.assign(static_cast<size_t>(n), -10000.0f);
        v->types.assign(static_cast<size_t>(n), TOKEN_TYPE_UNUSED);
        for (int64_t i = 0; i < n; ++i) v->tokens[i] = "[PAD" + std::to_string(i) + "]";
        for (size_t i = 0; i < sp.pieces.size(); ++i) {
            v->tokens[i] = sp.pieces[i].piece;
            v->scores[i] = sp.pieces[i].score;
            v->types[i] = sp.pieces[i].type;
        }
        // Added tokens declared in tokenizer_config.json override their rows.
        if (tcfg.contains("added_tokens_decoder") && tcfg["added_tokens_decoder"].is_object()) {
            for (auto it = tcfg["added_tokens_decoder"].begin(); it != tcfg["added_tokens_decoder"].end(); ++it) {
                char * end = nullptr;
                const long long id = std::strtoll(it.key().c_str(), &end, 10);
                if (*end || id < 0 || id >= n || !it.value().is_object() || !it.value().contains("content")) continue;
                const std::string content = it.value()["content"].get<std::string>();
                const bool special = it.value().value("special", false);
                v->tokens[id] = content;
                v->types[id] = special ? TOKEN_TYPE_CONTROL : TOKEN_TYPE_USER_DEFINED;
                v->scores[id] = -1000.0f;
            }
        }
        // llama.cpp writes false for every Gemma 3; the model's own normalizer flag is what HF applies (and is false
        // in the released Gemma 3 tokenizer), so follow the file.
        v->add_space_prefix = sp.add_dummy_prefix ? 1 : 0;
    } else if (file_exists(dir + "/tokenizer.json")) {
        json tj;
        if (!load_json(dir + "/tokenizer.json", &tj, err)) return false;
        if (!tj.contains("model") || !tj["model"].is_object() || tj["model"].value("type", "") != "BPE" ||
            !tj["model"].contains("vocab") || !tj["model"]["vocab"].is_object()) {
            *err = "tokenizer.json: only a BPE model with a vocab object is supported";
            return false;
        }
        v->model = "gpt2";
        std::map<int64_t, std::pair<std::string, int32_t>> by_id;
        for (auto it = tj["model"]["vocab"].begin(); it != tj["model"]["vocab"].end(); ++it) {
            if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0) {
                *err = "tokenizer.json: vocab entry '" + it.key() + "' has no valid id";
                return false;
            }
            by_id[it.value().get<int64_t>()] = {it.key(), TOKEN_TYPE_NORMAL};
        }
        if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
            for (const json & a : tj["added_tokens"]) {
                if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content")) {
                    continue;
                }
                by_id[a["id"].get<int64_t>()] = {a["content"].get<std::string>(), a.value("special", false)
                                                                                      ? TOKEN_TYPE_CONTROL
                                                                                      : TOKEN_TYPE_USER_DEFINED};
            }
        }
        const int64_t max_id = by_id.empty() ? -1 : by_id.rbegin()->first;
        if (max_id > (1 << 24)) {
            *err = "tokenizer.json: token id " + std::to_string(max_id) + " is absurdly large";
            return false;
        }
        const int64_t n = std::max<int64_t>(vocab_size, max_id + 1);
        v->tokens.resize(static_cast<size_t>(n));
        v->types.assign(static_cast<size_t>(n), TOKEN_TYPE_UNUSED);
        for (int64_t i = 0; i < n; ++i) v->tokens[i] = "[PAD" + std::to_string(i) + "]";
        for (const auto & e : by_id) {
            v->tokens[e.first] = e.second.first;
            v->types[e.first] = e.second.second;
        }
        if (tj["model"].contains("merges") && tj["model"]["merges"].is_array()) {
            for (const json & m : tj["model"]["merges"]) {
                if (m.is_string()) {
                    v->merges.push_back(m.get<std::string>());
                } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
                    v->merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
                }
            }
        }
        // Pre-tokenizer name from the regex (llama.cpp identifies it by hashing a tokenization; we cannot run the
        // HF tokenizer, so we recognise the patterns we support).
        const std::string pt = tj.contains("pre_tokenizer") ? tj["pre_tokenizer"].dump() : "";
        if (pt.find(json(std::string(LLAMA3_PRE_REGEX)).dump()) != std::string::npos) {
            v->pre = "llama-bpe";
        } else if (tj.contains("pre_tokenizer") && tj["pre_tokenizer"].is_object() &&
                   tj["pre_tokenizer"].value("type", "") == "ByteLevel") {
            v->pre = "gpt-2";
        } else {
            v->pre = "default";
            if (log) log("warning: unrecognised pre-tokenizer in tokenizer.json; writing tokenizer.ggml.pre=default");
        }
    } else {
        *err = "no tokenizer: '" + dir + "' has neither tokenizer.model nor tokenizer.json";
        return false;
    }

    // Special ids: config.json first (as gguf-py's SpecialVocab), then the token text from tokenizer_config.json /
    // special_tokens_map.json looked up in the vocabulary, then the SentencePiece trainer's ids.
    auto find_text = [&](const std::string & text) -> int64_t {
        for (size_t i = 0; i < v->tokens.size(); ++i) {
            if (v->tokens[i] == text) return static_cast<int64_t>(i);
        }
        return -1;
    };
    struct special {
        const char * name;
        int64_t * id;
        int32_t sp_id;
    };
    const special specials[] = {{"bos", &v->bos, sp.bos_id},
                                {"eos", &v->eos, sp.eos_id},
                                {"unk", &v->unk, sp.unk_id},
                                {"pad", &v->pad, sp.pad_id}};
    for (const special & s : specials) {
        int64_t id = -1;
        std::string text;
        if (config_token_id(config, (std::string(s.name) + "_token_id").c_str(), &id)) {
        } else if (config_token_text(tcfg, std::string(s.name) + "_token", &text) ||
                   config_token_text(stmap, std::string(s.name) + "_token", &text)) {
            id = find_text(text);
        }
        if (id < 0 && have_sp) id = s.sp_id;
        if (id >= static_cast<int64_t>(v->tokens.size())) {
            *err = std::string("special token ") + s.name + " id " + std::to_string(id) + " is outside the vocabulary";
            return false;
        }
        *s.id = id;
    }
    if (tcfg.contains("add_bos_token") && tcfg["add_bos_token"].is_boolean()) v->add_bos = tcfg["add_bos_token"];
    if (tcfg.contains("add_eos_token") && tcfg["add_eos_token"].is_boolean()) v->add_eos = tcfg["add_eos_token"];
    if (tcfg.contains("chat_template")) {
        const json & ct = tcfg["chat_template"];
        if (ct.is_string()) {
            v->chat_template = ct.get<std::string>();
        } else if (ct.is_array()) {  // [{"name": "default", "template": ...}, ...]
            for (const json & e : ct) {
                if (e.is_object() && e.value("name", "") == "default" && e.contains("template")) {
                    v->chat_template = e["template"].get<std::string>();
                }
            }
        }
    }
    if (v->chat_template.empty() && file_exists(dir + "/chat_template.jinja")) {
        std::ifstream f(dir + "/chat_template.jinja", std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        v->chat_template = ss.str();
    }
    return true;
}

// HF name -> GGUF name; "" to skip; false for a tensor we do not know (an error, so nothing is silently lost).
bool map_name(const std::string & hf, bool is_gemma, std::string * out) {
    static const std::map<std::string, std::string> top = {
        {"model.embed_tokens", "token_embd"}, {"model.norm", "output_norm"}, {"lm_head", "output"}};
    static const std::map<std::string, std::string> layer_common = {
        {"input_layernorm", "attn_norm"},   {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"},
        {"self_attn.v_proj", "attn_v"},     {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"},
        {"mlp.up_proj", "ffn_up"},          {"mlp.down_proj", "ffn_down"},       {"self_attn.q_norm", "attn_q_norm"},
        {"self_attn.k_norm", "attn_k_norm"}};
    const size_t dot = hf.rfind('.');
    if (dot == std::string::npos) return false;
    const std::string base = hf.substr(0, dot), suffix = hf.substr(dot);  // ".weight" / ".bias"
    if (suffix != ".weight" && suffix != ".bias") {
        if (hf.find("rotary_emb.inv_freq") != std::string::npos) {
            *out = "";
            return true;
        }
        return false;
    }
    auto t = top.find(base);
    if (t != top.end()) {
        *out = t->second + suffix;
        return true;
    }
    int layer = -1, consumed = 0;
    if (std::sscanf(base.c_str(), "model.layers.%d.%n", &layer, &consumed) != 1 || consumed == 0 || layer < 0) {
        return false;
    }
    const std::string rest = base.substr(static_cast<size_t>(consumed));
    std::string g;
    auto c = layer_common.find(rest);
    if (c != layer_common.end()) {
        g = c->second;
    } else if (rest == "post_attention_layernorm") {
        g = is_gemma ? "post_attention_norm" : "ffn_norm";
    } else if (is_gemma && rest == "pre_feedforward_layernorm") {
        g = "ffn_norm";
    } else if (is_gemma && rest == "post_feedforward_layernorm") {
        g = "post_ffw_norm";
    } else {
        return false;
    }
    *out = "blk." + std::to_string(layer) + "." + g + suffix;
    return true;
}

// convert_hf_to_gguf.py's LlamaModel.permute: rows of each head go from [2][hd/2] (HF rotate-half) to [hd/2][2]
// (GGML interleaved pairs).
void permute_rows(const std::vector<float> & src, std::vector<float> * dst, int64_t n_head, int64_t rows,
                  int64_t cols) {
    dst->resize(src.size());
    const int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; ++h) {
        for (int64_t t = 0; t < 2; ++t) {
            for (int64_t j = 0; j < half; ++j) {
                const int64_t from = h * hd + t * half + j, to = h * hd + j * 2 + t;
                std::copy(src.begin() + from * cols, src.begin() + (from + 1) * cols, dst->begin() + to * cols);
            }
        }
    }
}

}  // namespace

bool hf_convert(const std::string & dir_in, const std::string & out_path, const hf_convert_params & params,
                std::string * err_out) {
    std::string local;
    std::string * err = err_out ? err_out : &local;
    std::string dir = dir_in;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    auto log = [&](const std::string & s) {
        if (params.log) params.log(s);
    };
    if (params.out_type != DTYPE_F32 && params.out_type != DTYPE_F16 && params.out_type != DTYPE_BF16) {
        *err = std::string("convert: output type must be f32, f16 or bf16, not ") + dtype_name(params.out_type);
        return false;
    }
    json cfg;
    if (!load_json(dir + "/config.json", &cfg, err)) {
        *err = "convert: " + *err;
        return false;
    }
    std::string archname;
    if (cfg.contains("architectures") && cfg["architectures"].is_array() && !cfg["architectures"].empty() &&
        cfg["architectures"][0].is_string()) {
        archname = cfg["architectures"][0].get<std::string>();
    }
    bool is_gemma;
    std::string arch;
    if (archname == "LlamaForCausalLM") {
        is_gemma = false;
        arch = "llama";
    } else if (archname == "Gemma3ForCausalLM") {
        is_gemma = true;
        arch = "gemma3";
    } else {
        *err = "convert: unsupported architecture '" + archname +
               "' in config.json (supported: LlamaForCausalLM, Gemma3ForCausalLM)";
        return false;
    }
    auto fail = [&](const std::string & m) {
        *err = "convert: " + m;
        return false;
    };

    // Hyperparameters.
    int64_t n_embd = 0, n_layer = 0, n_ff = 0, n_head = 0, n_head_kv = -1, n_ctx = 0, vocab_size = 0, head_dim = -1;
    if (!hp_int(cfg, "hidden_size", &n_embd, err) || !hp_int(cfg, "num_hidden_layers", &n_layer, err) ||
        !hp_int(cfg, "intermediate_size", &n_ff, err) || !hp_int(cfg, "vocab_size", &vocab_size, err)) {
        return fail(*err);
    }
    n_head = is_gemma ? 8 : 0;
    n_ctx = is_gemma ? 131072 : 2048;
    if (!hp_int(cfg, "num_attention_heads", &n_head, err, !is_gemma) ||
        !hp_int(cfg, "num_key_value_heads", &n_head_kv, err, false) ||
        !hp_int(cfg, "max_position_embeddings", &n_ctx, err, false) ||
        !hp_int(cfg, "head_dim", &head_dim, err, false)) {
        return fail(*err);
    }
    if (n_head_kv < 0) n_head_kv = is_gemma ? 4 : n_head;
    if (n_embd == 0 || n_layer == 0 || n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0) {
        return fail("config.json: bad head counts or sizes (hidden_size " + std::to_string(n_embd) + ", heads " +
                    std::to_string(n_head) + ", kv heads " + std::to_string(n_head_kv) + ")");
    }
    const bool explicit_head_dim = head_dim > 0;
    if (!explicit_head_dim) head_dim = is_gemma ? 256 : n_embd / n_head;
    if (head_dim <= 0 || head_dim % 2 != 0) return fail("config.json: head dimension must be even and positive");
    double rms_eps = is_gemma ? 1e-6 : 1e-5;
    if (!hp_float(cfg, "rms_norm_eps", &rms_eps, err)) return fail(*err);
    // RoPE: transformers >= 5 nests it in rope_parameters (per layer type for Gemma 3); older configs use
    // rope_theta + rope_scaling.
    double theta = is_gemma ? 1000000.0 : 10000.0, theta_swa = -1;
    std::string rope_type = "default";
    double rope_factor = 1.0;
    json rope_full = json::object();
    if (cfg.contains("rope_parameters") && cfg["rope_parameters"].is_object()) {
        const json & rp = cfg["rope_parameters"];
        rope_full = rp.contains("full_attention") && rp["full_attention"].is_object() ? rp["full_attention"] : rp;
        if (rp.contains("sliding_attention") && rp["sliding_attention"].is_object() &&
            rp["sliding_attention"].contains("rope_theta") && rp["sliding_attention"]["rope_theta"].is_number()) {
            theta_swa = rp["sliding_attention"]["rope_theta"].get<double>();
        }
    } else if (cfg.contains("rope_scaling") && cfg["rope_scaling"].is_object()) {
        rope_full = cfg["rope_scaling"];
    }
    if (!hp_float(cfg, "rope_theta", &theta, err) || !hp_float(rope_full, "rope_theta", &theta, err) ||
        !hp_float(rope_full, "factor", &rope_factor, err)) {
        return fail(*err);
    }
    rope_type = rope_full.value("rope_type", rope_full.value("type", std::string("default")));
    if (rope_type != "default" && rope_type != "linear" && !(rope_type == "llama3" && !is_gemma)) {
        return fail("rope type '" + rope_type + "' is not supported (default, linear, and llama3 for Llama are)");
    }
    // Llama 3.1 ("llama3") RoPE scaling: each rotated pair's frequency is divided by a factor that is 1 for short
    // wavelengths, `factor` for long ones and blended in between; stored as rope_freqs.weight (n_rot / 2 floats).
    std::vector<float> rope_freqs;
    if (rope_type == "llama3") {
        double low = 1.0, high = 4.0;
        int64_t orig_ctx = 8192;
        if (!hp_float(rope_full, "low_freq_factor", &low, err) ||
            !hp_float(rope_full, "high_freq_factor", &high, err) ||
            !hp_int(rope_full, "original_max_position_embeddings", &orig_ctx, err, false)) {
            return fail(*err);
        }
        if (!(rope_factor >= 1.0) || !(high > low) || !(low > 0) || orig_ctx <= 0) {
            return fail(
                "rope llama3 parameters out of range (factor >= 1, high_freq_factor > low_freq_factor > 0, "
                "original_max_position_embeddings > 0)");
        }
        const double low_wavelen = orig_ctx / low, high_wavelen = orig_ctx / high;
        for (int64_t i = 0; i < head_dim / 2; ++i) {
            const double inv_freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
            const double wavelen = 2.0 * M_PI / inv_freq;
            double f = 1.0;
            if (wavelen > low_wavelen) {
                f = rope_factor;
            } else if (wavelen >= high_wavelen) {
                const double smooth = (orig_ctx / wavelen - low) / (high - low);
                f = 1.0 / ((1.0 - smooth) / rope_factor + smooth);
            }
            rope_freqs.push_back(static_cast<float>(f));
        }
    }

    auto st = safetensors_model::open(dir, err);
    if (!st) return fail(*err);

    vocab_out voc;
    if (!load_tokenizer(dir, cfg, is_gemma, is_gemma ? 0 : vocab_size, &voc, params.log, err)) return fail(*err);
    const int64_t n_vocab = static_cast<int64_t>(voc.tokens.size());

    gguf_writer w;
    w.set_string("general.architecture", arch);
    w.set_string("general.type", "model");
    std::string name = params.name;
    if (name.empty()) name = dir.find('/') == std::string::npos ? dir : dir.substr(dir.rfind('/') + 1);
    w.set_string("general.name", name);
    const std::string a = arch + ".";
    w.set_u32(a + "context_length", static_cast<uint32_t>(n_ctx));
    w.set_u32(a + "embedding_length", static_cast<uint32_t>(n_embd));
    w.set_u32(a + "block_count", static_cast<uint32_t>(n_layer));
    w.set_u32(a + "feed_forward_length", static_cast<uint32_t>(n_ff));
    w.set_u32(a + "attention.head_count", static_cast<uint32_t>(n_head));
    w.set_u32(a + "attention.head_count_kv", static_cast<uint32_t>(n_head_kv));
    w.set_f32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(rms_eps));
    w.set_f32(a + "rope.freq_base", static_cast<float>(theta));
    if (!is_gemma) {
        w.set_u32(a + "vocab_size", static_cast<uint32_t>(n_vocab));
        w.set_u32(a + "rope.dimension_count", static_cast<uint32_t>(head_dim));
    }
    if (is_gemma || explicit_head_dim) {
        w.set_u32(a + "attention.key_length", static_cast<uint32_t>(head_dim));
        w.set_u32(a + "attention.value_length", static_cast<uint32_t>(head_dim));
    }
    if (rope_type == "linear" && rope_factor != 1.0) {
        w.set_string(a + "rope.scaling.type", "linear");
        w.set_f32(a + "rope.scaling.factor", static_cast<float>(rope_factor));
    }
    if (is_gemma) {
        double softcap = 0;
        if (!hp_float(cfg, "final_logit_softcapping", &softcap, err)) return fail(*err);
        if (softcap > 0) w.set_f32(a + "final_logit_softcapping", static_cast<float>(softcap));
        int64_t window = 0;
        if (!hp_int(cfg, "sliding_window", &window, err)) return fail(*err);
        // Sliding-window layout. llama.cpp hard-codes "every 6th layer is global" for gemma3; Spider also writes
        // the period so models with another layout (layer_types in config.json) convert exactly.
        int64_t pattern = 6;
        if (!hp_int(cfg, "sliding_window_pattern", &pattern, err, false)) return fail(*err);
        if (cfg.contains("layer_types") && cfg["layer_types"].is_array() && !cfg["layer_types"].empty()) {
            const json & lt = cfg["layer_types"];
            int64_t first_full = -1;
            for (size_t i = 0; i < lt.size(); ++i) {
                if (lt[i] == "full_attention") {
                    first_full = static_cast<int64_t>(i);
                    break;
                }
            }
            pattern = first_full < 0 ? 0 : first_full + 1;
            for (size_t i = 0; i < lt.size(); ++i) {
                const bool global = pattern > 0 && static_cast<int64_t>(i) % pattern == pattern - 1;
                if (lt[i] != (global ? "full_attention" : "sliding_attention")) {
                    return fail("config.json: layer_types is not periodic (layer " + std::to_string(i) + " is " +
                                lt[i].dump() + "); cannot express it as a sliding-window pattern");
                }
            }
        }
        if (pattern != 1) w.set_u32(a + "attention.sliding_window", static_cast<uint32_t>(window));
        if (pattern > 0) w.set_u32(a + "attention.sliding_window_pattern", static_cast<uint32_t>(pattern));
        if (theta_swa > 0) w.set_f32(a + "rope.freq_base_swa", static_cast<float>(theta_swa));
    }
    const uint32_t ftype = params.out_type == DTYPE_F32 ? 0 : params.out_type == DTYPE_F16 ? 1 : 32;
    w.set_u32("general.file_type", ftype);
    w.set_u32("general.quantization_version", 2);

    w.set_string("tokenizer.ggml.model", voc.model);
    w.set_string("tokenizer.ggml.pre", voc.pre);
    w.set_array_str("tokenizer.ggml.tokens", voc.tokens);
    if (!voc.scores.empty()) w.set_array_f32("tokenizer.ggml.scores", voc.scores);
    w.set_array_i32("tokenizer.ggml.token_type", voc.types);
    if (!voc.merges.empty()) w.set_array_str("tokenizer.ggml.merges", voc.merges);
    if (voc.bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(voc.bos));
    if (voc.eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(voc.eos));
    if (voc.unk >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(voc.unk));
    if (voc.pad >= 0) w.set_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(voc.pad));
    if (voc.add_bos >= 0) w.set_bool("tokenizer.ggml.add_bos_token", voc.add_bos != 0);
    if (voc.add_eos >= 0) w.set_bool("tokenizer.ggml.add_eos_token", voc.add_eos != 0);
    if (voc.add_space_prefix >= 0) w.set_bool("tokenizer.ggml.add_space_prefix", voc.add_space_prefix != 0);
    if (!voc.chat_template.empty()) w.set_string("tokenizer.chat_template", voc.chat_template);

    // Tensors.
    const bool tied = cfg.value("tie_word_embeddings", is_gemma);
    std::vector<std::vector<uint8_t>> bufs;
    bufs.reserve(st->tensors().size());
    bool have_embd = false;
    size_t done = 0;
    for (const st_tensor & t : st->tensors()) {
        std::string g;
        if (!map_name(t.name, is_gemma, &g)) {
            return fail("tensor '" + t.name + "' is not part of a " + archname + " checkpoint this converter knows");
        }
        if (g.empty()) continue;
        if (g == "output.weight" && (is_gemma || tied)) {
            log("skipping " + t.name + " (tied to the token embedding)");
            continue;
        }
        if (t.shape.empty() || t.shape.size() > 2) {
            return fail("tensor '" + t.name + "' has " + std::to_string(t.shape.size()) +
                        " dimensions, expected 1 or 2");
        }
        int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
        const int64_t cols = t.shape.back();
        // Shape checks for the tensors a transform touches.
        if (g == "token_embd.weight") {
            have_embd = true;
            if (cols != n_embd) {
                return fail("'" + t.name + "' has " + std::to_string(cols) + " columns, not hidden_size");
            }
            if (rows < n_vocab && is_gemma) {
                return fail("'" + t.name + "' has " + std::to_string(rows) + " rows but the tokenizer has " +
                            std::to_string(n_vocab) + " tokens");
            }
        }
        const bool is_q = g.find(".attn_q.weight") != std::string::npos;
        const bool is_k = g.find(".attn_k.weight") != std::string::npos;
        const bool permute = !is_gemma && (is_q || is_k);
        const int64_t nh = is_q ? n_head : n_head_kv;
        if (permute && rows != nh * head_dim) {
            return fail("'" + t.name + "' has " + std::to_string(rows) + " rows, expected " +
                        std::to_string(nh * head_dim) + " (heads x head_dim)");
        }
        const bool shift = is_gemma && g.size() >= 11 && g.compare(g.size() - 11, 11, "norm.weight") == 0;
        const bool cut_rows = is_gemma && g == "token_embd.weight" && rows > n_vocab;
        if (cut_rows) rows = n_vocab;  // drop the out-of-vocabulary rows, as llama.cpp does
        const dtype ot = t.shape.size() == 1 ? DTYPE_F32 : params.out_type;
        const int64_t ne[2] = {cols, rows};
        const int nd = t.shape.size() == 2 ? 2 : 1;
        const bool same_type = (t.dtype == ST_F32 && ot == DTYPE_F32) || (t.dtype == ST_F16 && ot == DTYPE_F16) ||
                               (t.dtype == ST_BF16 && ot == DTYPE_BF16);
        if (same_type && !permute && !shift) {
            // Written straight from the mapping (the leading rows when cut): no copy for big checkpoints.
            if (!w.add_tensor_ref(g, ot, ne, nd, t.data, err)) return fail(*err);
        } else {
            std::vector<float> x(static_cast<size_t>(t.nelements()));
            if (!safetensors_model::read_f32(t, x.data(), err)) return fail(*err);
            x.resize(static_cast<size_t>(rows * cols));
            if (permute) {
                std::vector<float> y;
                permute_rows(x, &y, nh, rows, cols);
                x.swap(y);
            }
            if (shift) {
                for (float & v : x) v += 1.0f;  // Gemma3RMSNorm scales by (1 + w)
            }
            std::vector<uint8_t> buf(static_cast<size_t>(rows * cols) * (ot == DTYPE_F32 ? 4 : 2));
            for (size_t i = 0; i < x.size(); ++i) {
                if (ot == DTYPE_F32) {
                    std::memcpy(&buf[4 * i], &x[i], 4);
                } else {
                    const uint16_t h = ot == DTYPE_F16 ? fp32_to_fp16(x[i]) : fp32_to_bf16(x[i]);
                    std::memcpy(&buf[2 * i], &h, 2);
                }
            }
            bufs.push_back(std::move(buf));
            if (!w.add_tensor_ref(g, ot, ne, nd, bufs.back().data(), err)) return fail(*err);
        }
        ++done;
        char line[256];
        const std::string shape =
            t.shape.size() == 2 ? std::to_string(cols) + " x " + std::to_string(rows) : std::to_string(cols);
        std::snprintf(line, sizeof(line), "[%3zu] %-44s -> %-32s %-4s [%s]", done, t.name.c_str(), g.c_str(),
                      dtype_name(ot), shape.c_str());
        log(line);
    }
    if (!have_embd) return fail("checkpoint has no model.embed_tokens.weight");
    if (!rope_freqs.empty()) {
        const int64_t ne[2] = {static_cast<int64_t>(rope_freqs.size()), 1};
        if (!w.add_tensor_ref("rope_freqs.weight", DTYPE_F32, ne, 1, rope_freqs.data(), err)) return fail(*err);
        log("added rope_freqs.weight (llama3 RoPE scaling, " + std::to_string(rope_freqs.size()) + " factors)");
    }
    if (!w.write(out_path, err)) return fail(*err);
    log("wrote " + out_path + " (" + std::to_string(w.n_tensors()) + " tensors, " + arch + ", " +
        dtype_name(params.out_type) + ")");
    return true;
}

}  // namespace spider
