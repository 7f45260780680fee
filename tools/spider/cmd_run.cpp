// `spider run`: one request (or a JSONL batch) from prompt and input media to a response bundle
// (manifest.json + media + index.html), with progress for the LLM and each decoder.
//
//   spider run [-m MODEL] -p PROMPT [--image F] [--audio F] [--video F] [--modalities image,audio,...|auto]
//              [--out DIR] [--seed N] [--batch FILE.jsonl] [--script FILE] [--rules FILE.json] ...
//
// --script feeds a fixed LLM answer (template text) through exactly the same path as the LLM (tests, demos).
// Without --script the LLM writes the answer with template-constrained decoding: -m names its GGUF, default:
// the installed default model. Encoders, UDP and decoders are the tiny built-in ones until trained components
// are bundled.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "llm/default_model.h"
#include "pipeline/pipeline.h"
#include "spider.h"

using namespace spider;

namespace {

void usage() {
    std::fprintf(
        stderr,
        "usage: spider run [-m MODEL.gguf] -p PROMPT [--image F]... [--audio F]... [--video F]...\n"
        "                  [--modalities image,audio,video,box,mask|auto] [--out DIR] [--seed N]\n"
        "                  [--batch FILE.jsonl] [--script FILE] [--rules FILE.json] [--workers N]\n"
        "                  [--timeout SEC] [--size PX] [--max-tokens N] [-t THREADS] [--quiet]\n"
        "                  [--video-format mp4|webm] [--export-components DIR] [--no-lora] [--no-grammar]\n"
        "  -m MODEL        an LLM GGUF (may also carry spider.udp.* / spider.proj.*) or a spider.model JSON\n"
        "                  manifest of GGUFs (docs/CONTROLLER.md); default: the installed default model\n"
        "  --export-components DIR  write DIR/spider.model.json + udp.gguf + proj.gguf and exit\n"
        "  --lora ADAPTER  merge a LoRA adapter + template token rows (spider train stage instruct) into the LLM\n"
        "                  (default with the default model: its template adapter, if installed by setup.sh)\n"
        "  --no-lora       use the default model without its template adapter (budget-driven decoding)\n"
        "  --no-grammar    let a template-tuned model write its answer unconstrained (nothing masked or forced;\n"
        "                  malformed groups are reported per group); needs the template adapter\n"
        "  --script FILE   use FILE's text as the LLM answer (same parser, rules, decoders and bundle)\n"
        "  --batch FILE    one JSON request per line: {\"id\", \"prompt\", \"images\", \"audios\", \"videos\",\n"
        "                  \"modalities\", \"seed\", \"script\", \"rules\"}; bundles go to OUT/<id>\n"
        "  default --out: spider_out; default --modalities: auto ([SMARTMULTIMODAL])\n");
}

bool read_text(const std::string & path, std::string * out, std::string * err) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        *err = "cannot open " + path;
        return false;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    *out = ss.str();
    return true;
}

bool parse_modalities(const std::string & s, run_request * req, std::string * err) {
    if (s == "auto" || s.empty()) {
        req->smart = true;
        req->modalities.clear();
        return true;
    }
    req->smart = false;
    return modality_list_from_string(s, &req->modalities, err);
}

// Progress on stderr: one line for the LLM, one line per decoder step update.
struct progress_printer {
    bool quiet = false;
    int tokens = 0;
    void operator()(const progress_event & e) {
        if (quiet) return;
        switch (e.kind) {
            case progress_event::STAGE:
                if (tokens > 0 && e.text != "llm") std::fprintf(stderr, "\n");
                std::fprintf(stderr, "[%s]\n", e.text.c_str());
                break;
            case progress_event::TOKEN:
                ++tokens;
                if (tokens % 4 == 1) std::fprintf(stderr, "\rllm %s %d tokens", bar(tokens % 40, 40).c_str(), tokens);
                break;
            case progress_event::GROUP:
                std::fprintf(stderr, "\n  group -> item %d: %s\n", e.item, e.text.c_str());
                break;
            case progress_event::ITEM_STEP:
                std::fprintf(stderr, "  item %d %s %d/%d\n", e.item, bar(e.step, e.n_steps).c_str(), e.step, e.n_steps);
                break;
            case progress_event::ITEM_DONE:
                std::fprintf(stderr, "  item %d done: %s\n", e.item, e.text.c_str());
                break;
        }
    }
    static std::string bar(int k, int n) {
        const int w = 20;
        const int f = n > 0 ? k * w / n : 0;
        return "[" + std::string(f, '#') + std::string(w - f, '.') + "]";
    }
};

struct run_options {
    std::string model, rules_path, out = "spider_out", batch, script_path, export_dir, video_format = "mp4", lora;
    int workers = 2, threads = 0, size = 64, max_tokens = 256;
    double timeout = 120;
    bool quiet = false;
    bool no_lora = false;
    bool no_grammar = false;
};

int run_one(pipeline_components & comp, const pipeline_config & cfg, spider_model * llm, const run_options & o,
            run_request req, const std::string & script, bool print_text) {
    std::string err;
    std::unique_ptr<text_generator> gen;
    if (!script.empty()) {
        gen = make_scripted_generator(script, comp.proj ? comp.proj->d_model() : 64, 0, comp.tmpl);
    } else {
        llm_gen_params gp;
        gp.n_threads = o.threads;
        gp.max_tokens = cfg.max_tokens;
        gp.grammar = !o.no_grammar;
        gen = make_llm_generator(llm, gp, comp.tmpl, &err);
        if (!gen) {
            std::fprintf(stderr, "spider run: %s\n", err.c_str());
            return 1;
        }
    }
    progress_printer pp;
    pp.quiet = o.quiet;
    response r;
    if (!run_pipeline(
            comp, cfg, *gen, req, [&pp](const progress_event & e) { pp(e); }, &r, &err)) {
        std::fprintf(stderr, "\nspider run: %s\n", err.c_str());
        return 1;
    }
    int ok = 0;
    for (const auto & it : r.items) ok += it.status == "ok";
    if (!o.quiet) std::fprintf(stderr, "\n");
    if (print_text) std::printf("%s\n", r.text().c_str());
    std::fprintf(stderr,
                 "%d/%zu item(s) ok; text %.0f ms, first dispatch %.0f ms, total %.0f ms; bundle: %s/index.html\n", ok,
                 r.items.size(), r.timings_ms["llm_end"],
                 r.timings_ms.count("first_dispatch") ? r.timings_ms["first_dispatch"] : -1.0, r.timings_ms["total"],
                 req.out_dir.c_str());
    for (const auto & it : r.items) {
        if (it.status != "ok")
            std::fprintf(stderr, "  item %d (%s): %s %s\n", it.id, modality_name_lower(it.m), it.status.c_str(),
                         it.error.c_str());
    }
    return 0;
}

std::vector<std::string> str_or_list(const nlohmann::json & j, const char * one, const char * many) {
    std::vector<std::string> v;
    if (j.contains(one) && j[one].is_string()) v.push_back(j[one].get<std::string>());
    if (j.contains(many) && j[many].is_array()) {
        for (const auto & x : j[many]) {
            if (x.is_string()) v.push_back(x.get<std::string>());
        }
    }
    return v;
}

int run_cmd(int argc, char ** argv) {
    run_options o;
    run_request req;
    req.smart = true;
    std::string prompt;
    bool have_prompt = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto need = [&](const char * what) -> const char * {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "spider run: %s needs a value\n", what);
                return nullptr;
            }
            return argv[++i];
        };
        const char * v = nullptr;
        std::string err;
        if (a == "-h" || a == "--help") {
            usage();
            return 0;
        } else if (a == "-m" || a == "--model") {
            if (!(v = need("-m"))) return 1;
            o.model = v;
        } else if (a == "-p" || a == "--prompt") {
            if (!(v = need("-p"))) return 1;
            req.prompt = v;
            have_prompt = true;
        } else if (a == "--image") {
            if (!(v = need("--image"))) return 1;
            req.images.push_back(v);
        } else if (a == "--audio") {
            if (!(v = need("--audio"))) return 1;
            req.audios.push_back(v);
        } else if (a == "--video") {
            if (!(v = need("--video"))) return 1;
            req.videos.push_back(v);
        } else if (a == "--modalities") {
            if (!(v = need("--modalities"))) return 1;
            if (!parse_modalities(v, &req, &err)) {
                std::fprintf(stderr, "spider run: %s\n", err.c_str());
                return 1;
            }
        } else if (a == "--out" || a == "-o") {
            if (!(v = need("--out"))) return 1;
            o.out = v;
        } else if (a == "--seed") {
            if (!(v = need("--seed"))) return 1;
            req.seed = std::strtoull(v, nullptr, 10);
        } else if (a == "--batch") {
            if (!(v = need("--batch"))) return 1;
            o.batch = v;
        } else if (a == "--script") {
            if (!(v = need("--script"))) return 1;
            o.script_path = v;
        } else if (a == "--rules") {
            if (!(v = need("--rules"))) return 1;
            o.rules_path = v;
        } else if (a == "--workers") {
            if (!(v = need("--workers"))) return 1;
            o.workers = std::atoi(v);
        } else if (a == "--timeout") {
            if (!(v = need("--timeout"))) return 1;
            o.timeout = std::atof(v);
        } else if (a == "--size") {
            if (!(v = need("--size"))) return 1;
            o.size = std::atoi(v);
        } else if (a == "--lora") {
            if (!(v = need("--lora"))) return 1;
            o.lora = v;
        } else if (a == "--max-tokens") {
            if (!(v = need("--max-tokens"))) return 1;
            o.max_tokens = std::atoi(v);
        } else if (a == "-t" || a == "--threads") {
            if (!(v = need("-t"))) return 1;
            o.threads = std::atoi(v);
        } else if (a == "--video-format") {
            if (!(v = need("--video-format"))) return 1;
            o.video_format = v;
            if (o.video_format != "mp4" && o.video_format != "webm") {
                std::fprintf(stderr, "spider run: --video-format must be mp4 or webm\n");
                return 1;
            }
        } else if (a == "--export-components") {
            if (!(v = need("--export-components"))) return 1;
            o.export_dir = v;
        } else if (a == "--no-lora") {
            o.no_lora = true;
        } else if (a == "--no-grammar") {
            o.no_grammar = true;
        } else if (a == "--quiet" || a == "-q") {
            o.quiet = true;
        } else {
            std::fprintf(stderr, "spider run: unknown option %s\n\n", a.c_str());
            usage();
            return 1;
        }
    }
    if (!have_prompt && o.batch.empty() && o.export_dir.empty()) {
        std::fprintf(stderr, "spider run: -p PROMPT or --batch FILE is required\n\n");
        usage();
        return 1;
    }
    if (o.workers < 1 || o.workers > 64 || o.size < 8 || o.size > 2048 || o.timeout <= 0 || o.max_tokens < 1) {
        std::fprintf(stderr, "spider run: bad --workers (1..64), --size (8..2048), --timeout (> 0) or --max-tokens\n");
        return 1;
    }
    std::string err, script;
    if (!o.script_path.empty() && !read_text(o.script_path, &script, &err)) {
        std::fprintf(stderr, "spider run: --script: %s\n", err.c_str());
        return 1;
    }

    // -m: an LLM GGUF (possibly carrying UDP / projector) or a spider.model JSON manifest of GGUFs.
    model_bundle bundle;
    if (!o.model.empty() && !model_bundle_resolve(o.model, &bundle, &err)) {
        std::fprintf(stderr, "spider run: %s\n", err.c_str());
        return 1;
    }
    spider_model * llm = nullptr;
    auto load_llm = [&]() -> bool {
        if (llm) return true;
        std::string path = bundle.llm_path;
        const bool path_was_default = path.empty();
        if (path.empty() && !find_default_model(&path, &err)) {
            std::fprintf(stderr, "spider run: %s\n", err.c_str());
            return false;
        }
        if (spider_model_load(path.c_str(), spider_model_default_params(), &llm) != SPIDER_STATUS_OK) {
            std::fprintf(stderr, "spider run: cannot load %s: %s\n", path.c_str(), spider_last_error());
            return false;
        }
        // --lora wins over the bundle's "lora" (one adapter at a time: both would add the template tokens). The
        // default model comes with its template adapter unless --no-lora.
        std::string lora = !o.lora.empty() ? o.lora : bundle.lora_path;
        if (lora.empty() && path_was_default && !o.no_lora) find_default_adapter(&lora);
        if (!lora.empty() && spider_model_apply_lora(llm, lora.c_str()) != SPIDER_STATUS_OK) {
            std::fprintf(stderr, "spider run: %s: %s\n", o.lora.empty() ? "model bundle \"lora\"" : "--lora",
                         spider_last_error());
            return false;
        }
        if (!lora.empty() && !o.quiet) std::fprintf(stderr, "model: lora: %s\n", lora.c_str());
        if (bundle.llm_path.empty()) bundle.llm_path = path;
        return true;
    };

    pipeline_config cfg;
    cfg.n_workers = o.workers;
    cfg.item_timeout_s = o.timeout;
    cfg.image_size = o.size;
    cfg.max_tokens = o.max_tokens;
    cfg.video_format = o.video_format;
    // Components for an LLM of width n_embd (the bundle's parts where it has them), then --rules.
    auto make_components = [&](pipeline_components * c, int n_embd, bool with_bundle) -> bool {
        if (with_bundle) {
            if (!load_components(bundle, n_embd, c, &err)) {
                std::fprintf(stderr, "spider run: %s\n", err.c_str());
                return false;
            }
            if (!o.quiet) {
                for (const auto & n : bundle.notes) std::fprintf(stderr, "model: %s\n", n.c_str());
            }
        } else {
            make_tiny_components(c, n_embd, 42);
        }
        if (!o.rules_path.empty() && !rules_load(o.rules_path, &c->rules, &err)) {
            std::fprintf(stderr, "spider run: --rules: %s\n", err.c_str());
            return false;
        }
        return true;
    };
    // With --script and no -m nothing needs the LLM; otherwise it sets the width of every component.
    auto prepare = [&](pipeline_components * c, bool scripted) -> bool {
        if (scripted && o.model.empty()) return make_components(c, 64, false);
        if (!load_llm()) return false;
        return make_components(c, spider_model_n_embd(llm), true);
    };

    if (!o.export_dir.empty()) {
        pipeline_components comp;
        if (!prepare(&comp, false)) return 1;
        if (!export_components(comp, o.export_dir, bundle.llm_path, &err)) {
            std::fprintf(stderr, "spider run: --export-components: %s\n", err.c_str());
            return 1;
        }
        std::fprintf(stderr, "wrote %s/spider.model.json (+ udp.gguf, proj.gguf)\n", o.export_dir.c_str());
        if (llm) spider_model_free(llm);
        return 0;
    }

    int rc = 0;
    if (o.batch.empty()) {
        pipeline_components comp;
        if (!prepare(&comp, !script.empty())) return 1;
        req.out_dir = o.out;
        rc = run_one(comp, cfg, llm, o, req, script, true);
    } else {
        std::string text;
        if (!read_text(o.batch, &text, &err)) {
            std::fprintf(stderr, "spider run: --batch: %s\n", err.c_str());
            return 1;
        }
        std::unique_ptr<pipeline_components> comp_script, comp_llm;
        std::istringstream in(text);
        std::string line;
        int n = 0, n_fail = 0;
        while (std::getline(in, line)) {
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            ++n;
            nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_discarded() || !j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) {
                std::fprintf(stderr, "spider run: --batch line %d: not a JSON object with a \"prompt\" string\n", n);
                ++n_fail;
                continue;
            }
            run_request r;
            r.id = j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : std::to_string(n);
            r.prompt = j["prompt"].get<std::string>();
            r.images = str_or_list(j, "image", "images");
            r.audios = str_or_list(j, "audio", "audios");
            r.videos = str_or_list(j, "video", "videos");
            r.seed = j.contains("seed") && j["seed"].is_number_unsigned() ? j["seed"].get<uint64_t>() : req.seed;
            std::string mods = "auto";
            if (j.contains("modalities") && j["modalities"].is_string()) mods = j["modalities"].get<std::string>();
            if (j.contains("modalities") && j["modalities"].is_array()) {
                mods.clear();
                for (const auto & m : j["modalities"]) mods += (mods.empty() ? "" : ",") + m.get<std::string>();
            }
            if (!parse_modalities(mods, &r, &err)) {
                std::fprintf(stderr, "spider run: --batch line %d: %s\n", n, err.c_str());
                ++n_fail;
                continue;
            }
            if (j.contains("rules")) {
                if (!rules_from_json(j["rules"].dump(), &r.rules, &err)) {
                    std::fprintf(stderr, "spider run: --batch line %d: %s\n", n, err.c_str());
                    ++n_fail;
                    continue;
                }
                r.has_rules = true;
            }
            std::string line_script = script;
            if (j.contains("script") && j["script"].is_string()) line_script = j["script"].get<std::string>();
            r.out_dir = o.out + "/" + r.id;
            pipeline_components * comp = nullptr;
            if (!line_script.empty()) {
                if (!comp_script) {
                    comp_script.reset(new pipeline_components);
                    if (!prepare(comp_script.get(), true)) return 1;
                }
                comp = comp_script.get();
            } else {
                if (!comp_llm) {
                    comp_llm.reset(new pipeline_components);
                    if (!prepare(comp_llm.get(), false)) return 1;
                }
                comp = comp_llm.get();
            }
            std::fprintf(stderr, "== request %s\n", r.id.c_str());
            if (run_one(*comp, cfg, llm, o, r, line_script, true) != 0) ++n_fail;
        }
        std::fprintf(stderr, "batch: %d request(s), %d failed\n", n, n_fail);
        rc = n_fail ? 1 : 0;
    }
    if (llm) spider_model_free(llm);
    return rc;
}

}  // namespace

static spider_cli::command_registrar reg({"run", "answer a prompt with text + generated media (a response bundle)",
                                          run_cmd});
