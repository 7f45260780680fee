// One request from inputs to a response bundle:
//   load inputs -> encode (one embedding each) -> input projector (one LLM token each) -> input layout with
//   task token -> text generator (LLM or script) -> streaming template parser -> for each closed group: rules
//   (allowed, limits, blocked words) -> M-Prompt -> dispatched at once to a worker pool while the text goes on:
//   decoder text encoding + UDP + TM-Fusion -> decoder (retries under the quality rule) -> media files
//   -> manifest + HTML.
// Each item succeeds or fails on its own: a decoder that returns an error, throws, runs out of memory or runs
// past the item timeout fails only that item (a timed-out decoder is asked to cancel and abandoned), never the
// text or the other items. Stage timings go into the manifest (first dispatch vs end of text).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "controller/rules.h"
#include "controller/udp.h"
#include "decoders/decoder.h"
#include "encoders/encoder.h"
#include "pipeline/bundle.h"
#include "pipeline/generator.h"

namespace spider {

using quality_scorer = std::function<float(const decode_result & r, const std::string & t_prompt)>;

// Loaded once, reused for every request.
struct pipeline_components {
    std::string model_name = "spider-tiny-random";
    template_config tmpl;
    std::unique_ptr<encoder> enc;
    std::unique_ptr<input_projector> proj;
    std::unique_ptr<udp_model> udp;
    decoder_registry decoders;
    quality_scorer scorer;   // empty: builtin_quality_score
    controller_rules rules;  // configured rules (a request can tighten them)
};

struct pipeline_config {
    int n_workers = 2;
    double item_timeout_s = 120.0;
    int image_size = 64;  // generated image / video / canvas side
    float audio_seconds = 1.0f;
    float video_seconds = 1.0f;
    float video_fps = 8.0f;
    int max_tokens = 512;              // generation limit for the LLM
    std::string video_format = "mp4";  // "mp4" (H.264) or "webm" (VP9)
};

struct run_request {
    std::string id;
    std::string prompt;
    std::vector<std::string> images, audios, videos;  // input file paths
    std::vector<modality> modalities;                 // output choices (task token)
    bool smart = true;                                // let the model choose ([SMARTMULTIMODAL])
    uint64_t seed = 0;
    std::string out_dir;  // "" = do not write a bundle
    bool has_rules = false;
    controller_rules rules;  // per-request rules (tighten the configured ones)
};

struct progress_event {
    enum kind_t { STAGE, TOKEN, GROUP, ITEM_STEP, ITEM_DONE } kind = STAGE;
    std::string text;  // STAGE: stage name; TOKEN: the piece; GROUP / ITEM_DONE: modality + status
    int item = -1;
    int step = 0, n_steps = 0;
};
using progress_fn = std::function<void(const progress_event & e)>;  // called from several threads

// Runs one request. Returns false only for request-level failures (bad input files, generator errors); any
// per-item problem is recorded in *out and still returns true.
bool run_pipeline(pipeline_components & c, const pipeline_config & cfg, text_generator & gen, const run_request & req,
                  const progress_fn & progress, response * out, std::string * err);

// ---- model bundle ----
// A user moves one thing: either ONE GGUF that holds the LLM plus spider.udp.* / spider.tmf.* / spider.proj.*
// (and later encoder / decoder tensors), or a small JSON manifest naming the GGUFs:
//   {"format": "spider.model", "version": 1, "llm": "llm.gguf", "udp": "udp.gguf", "projector": "proj.gguf",
//    "image_decoder": "diffusion.gguf", "rules": {...controller rules...}}
// "image_decoder" (optional) replaces the built-in IMAGE decoder by a trained spider-diffusion-tiny decoder
// (decoders/diffusion_tiny.h; DDIM, 50 steps). It is unconditional: images follow the seed, not the T-Prompt.
// Paths are relative to the manifest's folder. Parts that are absent fall back to the tiny built-in ones, and
// the bundle says which (model_bundle::notes).
struct model_bundle {
    std::string llm_path;                  // the LLM GGUF ("" = none named)
    std::string udp_path, projector_path;  // "" = look in the LLM GGUF, then tiny random
    std::string lora_path;                 // "" = none; else a LoRA adapter (+ template token rows) merged at load
    std::string image_decoder_path;        // "" = built-in; else a spider-diffusion-tiny GGUF (unconditional)
    std::string rules_json;                // "" = none
    std::vector<std::string> notes;        // what was loaded from where
};
// -m PATH: a .json manifest, or a .gguf (the LLM, possibly carrying the other parts).
bool model_bundle_resolve(const std::string & path, model_bundle * out, std::string * err);
// Fills the components for an LLM of width n_embd: UDP / projector from the bundle's files when present (checked
// against n_embd), tiny random otherwise; built-in encoder and decoders; the bundle's rules.
bool load_components(model_bundle & b, int n_embd, pipeline_components * c, std::string * err);
// Writes a manifest + udp.gguf + proj.gguf for the given components (the projector must be random or loaded).
bool export_components(const pipeline_components & c, const std::string & dir, const std::string & llm_path,
                       std::string * err);

// Tiny random components for tests and for `spider run` without a model: built-in encoder (dim 64), random
// projector and UDP (d_model = n_embd, heads matching the built-in decoders), built-in decoders.
void make_tiny_components(pipeline_components * c, int n_embd, uint64_t seed);

}  // namespace spider
