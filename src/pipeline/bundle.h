// The response bundle (docs/BUNDLE_FORMAT.md): a versioned JSON manifest (text with ordered references to
// items; each item's modality, T-Prompt, status, files, seed, timings and rule decisions), the media files
// (PNG, WAV, MP4, boxes JSON, mask PNG + overlay PNG on the input image) and a self-contained HTML page that
// shows the answer with its media inline (data: URIs, renders offline). Every file is written atomically
// (temp file + rename) and every PNG/WAV/MP4 carries provenance metadata (model, seed, prompt, AI-generated).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "controller/rules.h"
#include "decoders/decoder.h"

namespace spider {

constexpr int BUNDLE_VERSION = 1;

struct item_file {
    std::string role;  // "media", "boxes", "overlay", "mask"
    std::string path;  // relative to the bundle directory
    std::string mime;
};

struct response_item {
    int id = 0;           // index in items[]
    int group_index = 0;  // index of the group in the LLM answer
    modality m = MODALITY_IMAGE;
    std::string t_prompt;
    // "ok", "failed", "timeout", "blocked" (a rule refused it), "dropped" (quality), "malformed" (bad group)
    std::string status = "pending";
    std::string error;
    uint64_t seed = 0;
    int attempts = 0;
    float quality = -1.0f;  // last quality score (-1: not scored)
    bool needs_review = false;
    std::string decoder;
    std::vector<rule_decision> decisions;
    std::vector<float> router_weights;
    std::vector<item_file> files;
    std::vector<box_item> boxes;
    std::map<std::string, double> timings_ms;  // closed, dispatched, started, finished (ms since run start)
};

struct answer_part {
    bool is_item = false;
    std::string text;  // text part
    int item = -1;     // item part: index into items
};

struct response {
    int version = BUNDLE_VERSION;
    std::string id;
    std::string model;
    std::string generator;
    std::string prompt;
    std::string task_token;
    uint64_t seed = 0;
    std::vector<std::pair<std::string, std::string>> inputs;  // (modality, path)
    std::vector<answer_part> parts;
    std::vector<response_item> items;
    std::vector<std::string> warnings;
    std::vector<rule_decision> decisions;  // answer-level
    bool needs_review = false;
    std::vector<std::string> review_reasons;
    std::string rules_json = "{}";
    std::map<std::string, double> timings_ms;

    std::string text() const;  // answer text with each item written as [modality #id]
};

std::string manifest_json(const response & r);
// Parses a manifest back (tests, tools); validates the schema version.
bool manifest_parse(const std::string & json_text, response * out, std::string * err);

// Writes one finished item's media under dir/items/ and fills item->files. input_image (may be null): the
// image boxes and masks are drawn on for the overlay. video_format: "mp4" (H.264) or "webm" (VP9).
bool bundle_write_item(const std::string & dir, const decode_result & res, const image_u8 * input_image,
                       const std::string & model, response_item * item, std::string * err,
                       const std::string & video_format = "mp4");
// Writes manifest.json and index.html (media embedded from the files already written).
bool bundle_write(const std::string & dir, const response & r, std::string * err);

// Atomic file write: dir is created if needed; data goes to a temp file in the same folder, then rename().
bool bundle_write_file_atomic(const std::string & path, const std::string & data, std::string * err);
bool bundle_make_dirs(const std::string & dir, std::string * err);

}  // namespace spider
