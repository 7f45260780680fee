// ToyWorld datasets on disk: `spider world` writes media files plus one JSONL line per item (id, kind, split,
// files, structured truth, captions); the TMM builders read them back. Layout of a world directory:
//   world.json                 seed, params, counts per split (rewritten after every run)
//   items_<split>.jsonl        one item per line, in index order
//   image/<id>.png             RGB image (PNG tEXt: source, seed, index, split, synthetic)
//   image/<id>_mask.png        grey label map: 0 background, k = truth.objects[k-1]
//   audio/<id>.wav             16-bit PCM WAV (INFO comment: provenance)
//   video/<id>.mp4 | .webm     H.264 or VP9 (container metadata: provenance)
#pragma once
#include <string>
#include <vector>

#include "world/world.h"

namespace spider {

struct world_entry {
    std::string id;  // e.g. "train_image_000042"
    world_kind kind = KIND_IMAGE;
    world_split split = SPLIT_TRAIN;
    uint64_t index = 0;
    std::string file;       // relative to the world directory
    std::string mask_file;  // images only
    std::vector<std::string> captions;
    image_truth image;  // valid for KIND_IMAGE
    audio_truth audio;  // valid for KIND_AUDIO
    video_truth video;  // valid for KIND_VIDEO
};

struct world_write_options {
    uint64_t seed = 1;
    uint64_t count = 100;  // items per kind
    std::vector<world_kind> kinds = {KIND_IMAGE, KIND_AUDIO, KIND_VIDEO};
    std::string video_ext = "mp4";  // "mp4" or "webm"
    int threads = 2;
    world_params params;
};

struct world_write_stats {
    uint64_t items = 0;
    double seconds = 0;
    uint64_t per_kind[3] = {0, 0, 0};
};

// Generates and writes `count` items per kind of one split (params.split) into dir (created if missing).
// Deterministic: the same options give byte-identical files whatever the thread count.
bool world_write(const std::string & dir, const world_write_options & o, world_write_stats * st, std::string * err);

// Reads items_<split>.jsonl of a world directory. Errors name the line.
bool world_read_items(const std::string & dir, world_split split, std::vector<world_entry> * out, std::string * err);

// JSON line of one entry, and back.
nlohmann::json world_entry_json(const world_entry & e);
bool world_entry_from_json(const nlohmann::json & j, world_entry * out, std::string * err);

// Truth from the JSON written by *_truth_json (attribute names back to indices).
bool image_truth_from_json(const nlohmann::json & j, image_truth * out, std::string * err);
bool audio_truth_from_json(const nlohmann::json & j, audio_truth * out, std::string * err);
bool video_truth_from_json(const nlohmann::json & j, video_truth * out, std::string * err);

bool make_dirs(const std::string & path, std::string * err);  // mkdir -p

}  // namespace spider
