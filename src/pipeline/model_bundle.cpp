// The model bundle: one GGUF carrying every component, or a small JSON manifest of GGUFs.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "decoders/diffusion_tiny.h"
#include "io/gguf.h"
#include "pipeline/pipeline.h"

namespace spider {

using nlohmann::json;

static std::string dir_of(const std::string & p) {
    const size_t s = p.rfind('/');
    return s == std::string::npos ? std::string(".") : p.substr(0, s);
}

static std::string join(const std::string & dir, const std::string & p) {
    if (p.empty() || p[0] == '/') return p;
    return dir + "/" + p;
}

static bool ends_with(const std::string & s, const std::string & suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

bool model_bundle_resolve(const std::string & path, model_bundle * out, std::string * err) {
    *out = model_bundle();
    if (!ends_with(path, ".json")) {
        out->llm_path = path;
        return true;
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (err) *err = "[model] cannot open " + path;
        return false;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    json j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        if (err) *err = "[model] " + path + " is not a JSON object";
        return false;
    }
    if (j.value("format", "") != "spider.model" || !j.contains("version") || !j["version"].is_number_integer() ||
        j["version"].get<int>() != 1) {
        if (err) *err = "[model] " + path + ": expected \"format\": \"spider.model\", \"version\": 1";
        return false;
    }
    const std::string dir = dir_of(path);
    for (const char * k : {"llm", "udp", "projector", "lora", "image_decoder"}) {
        if (j.contains(k) && !j[k].is_string()) {
            if (err) *err = std::string("[model] ") + path + ": \"" + k + "\" must be a path string";
            return false;
        }
    }
    out->llm_path = join(dir, j.value("llm", ""));
    out->udp_path = join(dir, j.value("udp", ""));
    out->projector_path = join(dir, j.value("projector", ""));
    out->lora_path = join(dir, j.value("lora", ""));
    out->image_decoder_path = join(dir, j.value("image_decoder", ""));
    if (j.contains("rules")) out->rules_json = j["rules"].dump();
    return true;
}

bool load_components(model_bundle & b, int n_embd, pipeline_components * c, std::string * err) {
    make_tiny_components(c, n_embd, 42);
    model_bundle & notes = b;
    notes.notes.clear();
    std::string e;
    // The files that may carry each part: its own file first, then the LLM GGUF.
    auto open = [&](const std::string & p, std::shared_ptr<gguf_file> * f) -> bool {
        if (p.empty()) return true;
        std::unique_ptr<gguf_file> g = gguf_file::open(p, &e);
        if (!g) {
            if (err) *err = "[model] " + p + ": " + e;
            return false;
        }
        *f = std::shared_ptr<gguf_file>(std::move(g));
        return true;
    };
    std::shared_ptr<gguf_file> f_llm, f_udp, f_proj;
    if (!open(b.llm_path, &f_llm) || !open(b.udp_path, &f_udp) || !open(b.projector_path, &f_proj)) return false;
    std::shared_ptr<gguf_file> udp_src = f_udp ? f_udp : (f_llm && f_llm->find("spider.udp.d_model") ? f_llm : nullptr);
    if (udp_src) {
        auto u = udp_model::from_gguf(udp_src, &e);
        if (!u) {
            if (err) *err = "[model] UDP: " + e;
            return false;
        }
        if (u->hparams().d_model != n_embd) {
            if (err) {
                *err = "[model] UDP d_model " + std::to_string(u->hparams().d_model) + " != LLM width " +
                       std::to_string(n_embd);
            }
            return false;
        }
        c->udp = std::move(u);
        notes.notes.push_back(std::string("udp: ") + (f_udp ? b.udp_path : b.llm_path));
    } else {
        notes.notes.push_back("udp: tiny random");
    }
    std::shared_ptr<gguf_file> proj_src =
        f_proj ? f_proj : (f_llm && f_llm->find_tensor("spider.proj.weight") ? f_llm : nullptr);
    if (!proj_src && udp_src && udp_src->find_tensor("spider.proj.weight")) proj_src = udp_src;
    if (proj_src) {
        auto p = input_projector::from_gguf(proj_src, &e);
        if (!p) {
            if (err) *err = "[model] projector: " + e;
            return false;
        }
        if (p->d_model() != n_embd || p->emb_dim() != c->enc->dim()) {
            if (err) {
                *err = "[model] projector " + std::to_string(p->emb_dim()) + " -> " + std::to_string(p->d_model()) +
                       " does not fit encoder " + std::to_string(c->enc->dim()) + " -> LLM " + std::to_string(n_embd);
            }
            return false;
        }
        c->proj = std::move(p);
        notes.notes.push_back("projector: loaded");
    } else {
        notes.notes.push_back("projector: tiny random");
    }
    if (!b.image_decoder_path.empty()) {
        // Loaded (and validated) now, so a bad file stops the load instead of failing the first image item; its
        // text encoding takes the UDP's IMAGE head shape so TM-Fusion runs as for the built-in decoder.
        builtin_decoder_config dc;
        int T = dc.cond_tokens[MODALITY_IMAGE], D = dc.cond_dim[MODALITY_IMAGE];
        if (c->udp && c->udp->has(MODALITY_IMAGE)) {
            T = c->udp->hparams().t_out[MODALITY_IMAGE];
            D = c->udp->hparams().d_out[MODALITY_IMAGE];
        }
        auto dec = std::make_shared<std::unique_ptr<decoder>>(
            make_diffusion_tiny_decoder(b.image_decoder_path, diffusion_sampler_config{}, T, D, &e));
        if (!*dec) {
            if (err) *err = "[model] image decoder: " + e;
            return false;
        }
        const std::string name = (*dec)->name();
        c->decoders.add(MODALITY_IMAGE, name, [dec](std::string *) { return std::move(*dec); });
        notes.notes.push_back("image decoder: " + b.image_decoder_path + " (unconditional diffusion, DDIM " +
                              std::to_string(diffusion_sampler_config{}.steps) + " steps)");
    }
    if (!b.rules_json.empty() && !rules_from_json(b.rules_json, &c->rules, &e)) {
        if (err) *err = "[model] rules: " + e;
        return false;
    }
    c->model_name = b.llm_path.empty() ? "spider-tiny-random" : b.llm_path;
    return true;
}

bool export_components(const pipeline_components & c, const std::string & dir, const std::string & llm_path,
                       std::string * err) {
    if (!bundle_make_dirs(dir, err)) return false;
    if (!c.udp || !c.proj) {
        if (err) *err = "[model] nothing to export (no UDP or projector)";
        return false;
    }
    if (!c.udp->save(dir + "/udp.gguf", err) || !c.proj->save(dir + "/proj.gguf", err)) return false;
    json j = {{"format", "spider.model"}, {"version", 1}, {"udp", "udp.gguf"}, {"projector", "proj.gguf"}};
    if (!llm_path.empty()) j["llm"] = llm_path;
    j["rules"] = json::parse(rules_to_json(c.rules));
    return bundle_write_file_atomic(dir + "/spider.model.json", j.dump(2) + "\n", err);
}

}  // namespace spider
