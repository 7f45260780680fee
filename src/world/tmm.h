// TMM (Text-formatted Many-Modal) data: the record format of SPIDER.md §6 (documented field by field in
// docs/TMM_FORMAT.md), the builders for every family (T->TMM smart / specific, multi-item, long-form tours,
// Image/Audio/Video->TMM, Image+Text->BOX/MASK+TMM, the single-modality X->X tasks) over a ToyWorld directory,
// the validator behind `spider data validate`, the statistics behind `spider data stats`, and importers that
// turn a user's caption lists or media folders into records.
//
// One record is one JSON object per line:
//   {"id", "family", "split", "Question", "TaskPrompt", "Answer", "Inputs": [...], "Targets": [...], "Caption"}
// Question holds each input as <M><M-Placeholder></M>; Answer is [OUTPUT] text ( <M> T-Prompt [M0] </M> text )*
// [END]; media paths are relative to the directory of the JSONL file (absolute paths are allowed).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "world/world_io.h"

namespace spider {

// Output / input modalities of the template (same spelling as the added tokens).
enum tmm_modality : int { TMM_IMAGE, TMM_VIDEO, TMM_AUDIO, TMM_BOX, TMM_MASK, TMM_MODALITY_COUNT };
const char * tmm_modality_name(int m);                        // "IMAGE", ...
bool tmm_modality_from_name(const std::string & s, int * m);  // exact upper-case spelling

struct tmm_media {
    int modality = TMM_IMAGE;
    std::string file;           // IMAGE / AUDIO / VIDEO media, MASK: label-map PNG (value `label` = the object)
    std::string caption;        // targets: the T-Prompt this item realises
    int label = 0;              // MASK targets
    int box[4] = {0, 0, 0, 0};  // BOX targets: x0 y0 x1 y1 inclusive pixels
    int width = 0, height = 0;  // BOX / MASK targets: size of the image the box or mask refers to
};

struct tmm_record {
    std::string id, family, split;
    std::string question, task_prompt, answer, caption;
    std::vector<tmm_media> inputs;   // in the order of their placeholders in the question
    std::vector<tmm_media> targets;  // in the order of their groups in the answer (when known)
};

nlohmann::json tmm_record_json(const tmm_record & r);

// Builder families (names as written in the "family" field).
const std::vector<std::string> & tmm_family_names();

struct tmm_build_options {
    uint64_t seed = 1;
    uint64_t count = 1000;              // records to write
    std::vector<std::string> families;  // empty = all, in equal shares
    world_split split = SPLIT_TRAIN;    // which world split to draw from; test also uses held-out phrasings
    int n_signal = 1;                   // signal tokens per group ([M0]..[M{n-1}])
    int threads = 2;
};

struct tmm_build_stats {
    uint64_t records = 0;
    double seconds = 0;
    std::map<std::string, uint64_t> per_family;
};

// Reads the world's items of the split and writes `count` records to out_path (atomic). Deterministic.
bool tmm_build(const std::string & world_dir, const std::string & out_path, const tmm_build_options & o,
               tmm_build_stats * st, std::string * err);
// The same into memory (used by tests and benches); items paths are relative to the world directory.
bool tmm_build_records(const std::vector<world_entry> & items, const tmm_build_options & o,
                       std::vector<tmm_record> * out, std::string * err);

// ---- validation ----

struct tmm_issue {
    int64_t line = 0;  // 1-based line in the JSONL file
    std::string id;    // record id when readable
    std::string reason;
};

struct tmm_validate_options {
    bool decode_media = true;  // open and decode every referenced file (cached per path)
    int max_issues = 1000000;
};

struct tmm_validate_result {
    int64_t records = 0, bad_records = 0;
    std::vector<tmm_issue> issues;  // every bad record (one issue per record, the first problem found)
};

// Checks one record object (no file access when base_dir is empty); returns false with the reason.
bool tmm_check_record(const nlohmann::json & j, std::string * reason);
// Checks every line of a JSONL file: UTF-8, JSON, fields, template grammar, placeholders, task consistency,
// referenced files exist and decode. Never stops at the first bad record.
bool tmm_validate_file(const std::string & path, const tmm_validate_options & o, tmm_validate_result * out,
                       std::string * err);

// ---- statistics ----

struct tmm_stats {
    int64_t records = 0, bad_lines = 0;
    std::map<std::string, int64_t> per_family, per_task, groups_per_modality, inputs_per_modality;
    std::map<int, int64_t> groups_per_record;  // histogram
    int64_t answer_chars = 0, answer_chars_max = 0, question_chars = 0, answer_words = 0;
    std::string to_string() const;
    nlohmann::json to_json() const;
};
bool tmm_stats_file(const std::string & path, tmm_stats * out, std::string * err);

// ---- importers ----

struct import_row {
    std::string file, caption;
};
// Caption list: CSV with a header holding "file" and "caption" columns (RFC 4180 quoting) or JSONL objects with
// "file" and "caption". Errors name the line.
bool import_read_caption_list(const std::string & path, std::vector<import_row> * rows, std::string * err);
// A folder of media with captions: each media file (png/jpg/jpeg/wav/flac/mp4/webm/mkv/mov) with a sidecar
// <stem>.txt caption, or a captions.csv / captions.jsonl in the folder.
bool import_scan_folder(const std::string & dir, std::vector<import_row> * rows, std::string * err);

struct import_options {
    uint64_t seed = 1;
    bool x2x = true;          // T2X and X2T records per row
    bool t2tmm = true;        // T->TMM (smart) records per row
    bool check_media = true;  // decode each file; rows whose file does not decode are skipped and reported
};
// Writes records for the rows to out_path; file paths are written relative to out_path's directory when the
// media lie below it, else absolute. `skipped` receives "file: reason" for rows left out.
bool import_build(const std::vector<import_row> & rows, const std::string & base_dir, const std::string & out_path,
                  const import_options & o, int64_t * written, std::vector<std::string> * skipped, std::string * err);

// True when s is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool utf8_valid(const std::string & s);

// Media kind of a path from its extension: TMM_IMAGE / TMM_AUDIO / TMM_VIDEO, or -1.
int media_kind_from_path(const std::string & path);

}  // namespace spider
