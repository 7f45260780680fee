// ToyWorld dataset writer and reader: media files through io/media.h, items as JSONL, world.json summary.
#include "world/world_io.h"

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

namespace spider {

static bool fail(std::string * err, const std::string & m) {
    if (err) *err = m;
    return false;
}

bool make_dirs(const std::string & path, std::string * err) {
    if (path.empty()) return true;
    std::string cur;
    for (size_t i = 0; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') {
            if (!cur.empty() && mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
                return fail(err, "cannot create directory '" + cur + "': " + std::strerror(errno));
        }
        if (i < path.size()) cur += path[i];
    }
    struct stat sb;
    if (stat(path.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) return fail(err, "'" + path + "' is not a directory");
    return true;
}

static std::string item_id(world_split s, world_kind k, uint64_t i) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%s_%s_%06llu", split_name(s), kind_name(k), (unsigned long long)i);
    return buf;
}

nlohmann::json world_entry_json(const world_entry & e) {
    nlohmann::json j = {{"id", e.id},
                        {"kind", kind_name(e.kind)},
                        {"split", split_name(e.split)},
                        {"index", e.index},
                        {"file", e.file}};
    if (!e.mask_file.empty()) j["mask"] = e.mask_file;
    if (e.kind == KIND_IMAGE) j["truth"] = image_truth_json(e.image);
    if (e.kind == KIND_AUDIO) j["truth"] = audio_truth_json(e.audio);
    if (e.kind == KIND_VIDEO) j["truth"] = video_truth_json(e.video);
    j["captions"] = e.captions;
    return j;
}

// Name -> index in a name table (for "none", -1).
template <typename F>
static bool lookup(const nlohmann::json & j, const char * key, F name_of, int n, int * out, std::string * err,
                   bool allow_none = false) {
    if (!j.contains(key) || !j[key].is_string()) return fail(err, std::string("truth: missing string '") + key + "'");
    std::string v = j[key].get<std::string>();
    if (allow_none && v == "none") {
        *out = -1;
        return true;
    }
    for (int i = 0; i < n; ++i)
        if (v == name_of(i)) {
            *out = i;
            return true;
        }
    return fail(err, std::string("truth: unknown ") + key + " '" + v + "'");
}

static bool get_int_array(const nlohmann::json & j, const char * key, size_t n, int * out, std::string * err) {
    if (!j.contains(key) || !j[key].is_array() || j[key].size() != n)
        return fail(err, std::string("truth: '") + key + "' must be an array of " + std::to_string(n) + " integers");
    for (size_t i = 0; i < n; ++i) {
        if (!j[key][i].is_number_integer()) return fail(err, std::string("truth: '") + key + "' must hold integers");
        out[i] = j[key][i].get<int>();
    }
    return true;
}

bool image_truth_from_json(const nlohmann::json & j, image_truth * t, std::string * err) {
    if (!j.is_object()) return fail(err, "truth: not an object");
    *t = image_truth();
    if (!lookup(j, "background", background_name, BG_COUNT, &t->background, err)) return false;
    if (j.contains("bg_level") && j["bg_level"].is_number_integer()) t->bg_level = j["bg_level"].get<int>();
    int wh[2];
    if (!get_int_array(j, "image_size", 2, wh, err)) return false;
    if (wh[0] <= 0 || wh[1] <= 0) return fail(err, "truth: bad image_size");
    t->width = wh[0];
    t->height = wh[1];
    if (!j.contains("objects") || !j["objects"].is_array()) return fail(err, "truth: missing 'objects' array");
    for (const auto & o : j["objects"]) {
        world_object w;
        if (!o.is_object()) return fail(err, "truth: object entries must be objects");
        if (!lookup(o, "shape", shape_name, SHAPE_COUNT, &w.shape, err) ||
            !lookup(o, "colour", colour_name, COLOUR_COUNT, &w.colour, err) ||
            !lookup(o, "size", size_name, SIZE_COUNT, &w.size, err) ||
            !lookup(o, "position", position_name, POS_COUNT, &w.position, err))
            return false;
        int c[2], b[4];
        if (!get_int_array(o, "center", 2, c, err) || !get_int_array(o, "box", 4, b, err)) return false;
        w.cx = c[0];
        w.cy = c[1];
        w.box = {b[0], b[1], b[2], b[3]};
        w.half = (std::max(b[2] - b[0], b[3] - b[1])) / 2;
        t->objects.push_back(w);
    }
    return true;
}

bool audio_truth_from_json(const nlohmann::json & j, audio_truth * t, std::string * err) {
    if (!j.is_object()) return fail(err, "truth: not an object");
    *t = audio_truth();
    if (!lookup(j, "pattern", pattern_name, PATTERN_COUNT, &t->pattern, err) ||
        !lookup(j, "pitch", pitch_name, PITCH_COUNT, &t->pitch, err, true) ||
        !lookup(j, "timbre", timbre_name, TIMBRE_COUNT, &t->timbre, err, true))
        return false;
    for (const char * k : {"count", "duration_s", "onset_s", "offset_s"})
        if (!j.contains(k) || !j[k].is_number()) return fail(err, std::string("truth: missing number '") + k + "'");
    t->count = j["count"].get<int>();
    t->duration_s = j["duration_s"].get<double>();
    t->onset_s = j["onset_s"].get<double>();
    t->offset_s = j["offset_s"].get<double>();
    return true;
}

bool video_truth_from_json(const nlohmann::json & j, video_truth * t, std::string * err) {
    if (!j.is_object()) return fail(err, "truth: not an object");
    *t = video_truth();
    return lookup(j, "shape", shape_name, SHAPE_COUNT, &t->shape, err) &&
           lookup(j, "colour", colour_name, COLOUR_COUNT, &t->colour, err) &&
           lookup(j, "colour_to", colour_name, COLOUR_COUNT, &t->colour_to, err) &&
           lookup(j, "size", size_name, SIZE_COUNT, &t->size, err) &&
           lookup(j, "motion", motion_name, MOTION_COUNT, &t->motion, err) &&
           lookup(j, "background", background_name, BG_COUNT, &t->background, err);
}

bool world_entry_from_json(const nlohmann::json & j, world_entry * e, std::string * err) {
    if (!j.is_object()) return fail(err, "item is not a JSON object");
    for (const char * k : {"id", "kind", "split", "file"})
        if (!j.contains(k) || !j[k].is_string()) return fail(err, std::string("item: missing string '") + k + "'");
    *e = world_entry();
    e->id = j["id"].get<std::string>();
    if (!kind_from_name(j["kind"].get<std::string>(), &e->kind)) return fail(err, "item: unknown kind");
    if (!split_from_name(j["split"].get<std::string>(), &e->split)) return fail(err, "item: unknown split");
    e->file = j["file"].get<std::string>();
    if (j.contains("index") && j["index"].is_number_unsigned()) e->index = j["index"].get<uint64_t>();
    if (j.contains("mask") && j["mask"].is_string()) e->mask_file = j["mask"].get<std::string>();
    if (!j.contains("captions") || !j["captions"].is_array() || j["captions"].empty())
        return fail(err, "item: missing 'captions' array");
    for (const auto & c : j["captions"]) {
        if (!c.is_string()) return fail(err, "item: captions must be strings");
        e->captions.push_back(c.get<std::string>());
    }
    if (!j.contains("truth")) return fail(err, "item: missing 'truth'");
    if (e->kind == KIND_IMAGE) return image_truth_from_json(j["truth"], &e->image, err);
    if (e->kind == KIND_AUDIO) return audio_truth_from_json(j["truth"], &e->audio, err);
    return video_truth_from_json(j["truth"], &e->video, err);
}

// Generates and writes one item; returns its JSON line.
static bool write_one(const std::string & dir, const world_write_options & o, world_kind kind, uint64_t i,
                      std::string * line, std::string * err) {
    world_entry e;
    e.kind = kind;
    e.split = o.params.split;
    e.index = i;
    e.id = item_id(e.split, kind, i);
    media_metadata meta = {{"software", "spider world"},     {"source", "ToyWorld"},
                           {"seed", std::to_string(o.seed)}, {"index", std::to_string(i)},
                           {"split", split_name(e.split)},   {"synthetic", "true"}};
    if (kind == KIND_IMAGE) {
        image_item it;
        world_make_image(o.seed, i, o.params, &it);
        e.file = "image/" + e.id + ".png";
        e.mask_file = "image/" + e.id + "_mask.png";
        e.image = it.truth;
        e.captions = it.captions;
        meta.push_back({"caption", it.captions[0]});
        if (!image_write_png(dir + "/" + e.file, it.image, meta, err)) return false;
        image_u8 lab;
        lab.width = it.image.width;
        lab.height = it.image.height;
        lab.channels = 1;
        lab.pixels = it.labels;
        if (!image_write_png(dir + "/" + e.mask_file, lab, {{"software", "spider world"}, {"content", "label map"}},
                             err))
            return false;
    } else if (kind == KIND_AUDIO) {
        audio_item it;
        world_make_audio(o.seed, i, o.params, &it);
        e.file = "audio/" + e.id + ".wav";
        e.audio = it.truth;
        e.captions = it.captions;
        meta.push_back({"title", it.captions[0]});
        if (!audio_write_wav(dir + "/" + e.file, it.audio, meta, err)) return false;
    } else {
        video_item it;
        world_make_video(o.seed, i, o.params, &it);
        e.file = "video/" + e.id + "." + o.video_ext;
        e.video = it.truth;
        e.captions = it.captions;
        meta.push_back({"comment", it.captions[0]});
        if (!video_write(dir + "/" + e.file, it.video, meta, err)) return false;
    }
    *line = world_entry_json(e).dump();
    return true;
}

bool world_write(const std::string & dir, const world_write_options & o, world_write_stats * st, std::string * err) {
    if (!world_params_check(o.params, err)) return false;
    if (o.video_ext != "mp4" && o.video_ext != "webm") return fail(err, "video format must be mp4 or webm");
    if (o.count == 0 || o.count > 10000000) return fail(err, "count must be 1..10000000");
    if (o.threads < 1 || o.threads > 64) return fail(err, "threads must be 1..64");
    if (!make_dirs(dir, err)) return false;
    for (world_kind k : o.kinds)
        if (!make_dirs(dir + "/" + kind_name(k), err)) return false;
    auto t0 = std::chrono::steady_clock::now();
    // Jobs in (kind, index) order; lines land in their slot so the JSONL order never depends on threads.
    std::vector<std::pair<world_kind, uint64_t>> jobs;
    for (world_kind k : o.kinds)
        for (uint64_t i = 0; i < o.count; ++i) jobs.push_back({k, i});
    std::vector<std::string> lines(jobs.size());
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mu;
    std::string first_err;
    auto worker = [&]() {
        for (;;) {
            size_t j = next.fetch_add(1);
            if (j >= jobs.size() || failed) return;
            std::string e;
            if (!write_one(dir, o, jobs[j].first, jobs[j].second, &lines[j], &e)) {
                std::lock_guard<std::mutex> lk(mu);
                if (!failed) first_err = e;
                failed = true;
                return;
            }
        }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < o.threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto & t : pool) t.join();
    if (failed) return fail(err, first_err);
    std::string body;
    for (const auto & l : lines) body += l + "\n";
    std::string items = dir + "/items_" + split_name(o.params.split) + ".jsonl";
    if (!file_write_atomic(items, body.data(), body.size(), err)) return false;
    // world.json: merge this split's counts with what an earlier run wrote.
    nlohmann::json w;
    std::vector<uint8_t> old;
    std::string e2;
    if (file_read_all(dir + "/world.json", &old, &e2)) {
        w = nlohmann::json::parse(old.begin(), old.end(), nullptr, false);
        if (!w.is_object()) w = nlohmann::json::object();
    }
    w["format"] = "spider-toyworld";
    w["version"] = 1;
    w["seed"] = o.seed;
    w["params"] = {{"image_size", o.params.image_size},
                   {"max_objects", o.params.max_objects},
                   {"textured", o.params.textured},
                   {"video_size", o.params.video_size},
                   {"video_frames", o.params.video_frames},
                   {"video_fps", o.params.video_fps},
                   {"audio_rate", o.params.audio_rate},
                   {"audio_min_s", o.params.audio_min_s},
                   {"audio_max_s", o.params.audio_max_s},
                   {"n_captions", o.params.n_captions},
                   {"video_format", o.video_ext}};
    nlohmann::json counts = nlohmann::json::object();
    for (world_kind k : o.kinds) counts[kind_name(k)] = o.count;
    if (!w.contains("splits") || !w["splits"].is_object()) w["splits"] = nlohmann::json::object();
    w["splits"][split_name(o.params.split)] = counts;
    std::string ws = w.dump(2) + "\n";
    if (!file_write_atomic(dir + "/world.json", ws.data(), ws.size(), err)) return false;
    if (st) {
        st->items = jobs.size();
        st->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (world_kind k : o.kinds) st->per_kind[k] = o.count;
    }
    return true;
}

bool world_read_items(const std::string & dir, world_split split, std::vector<world_entry> * out, std::string * err) {
    std::string path = dir + "/items_" + split_name(split) + ".jsonl";
    std::ifstream f(path);
    if (!f) return fail(err, "cannot open '" + path + "' (run `spider world --split " + split_name(split) + "` first)");
    out->clear();
    std::string line;
    int ln = 0;
    while (std::getline(f, line)) {
        ++ln;
        if (line.empty()) continue;
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        world_entry e;
        std::string e2;
        if (j.is_discarded()) return fail(err, path + ":" + std::to_string(ln) + ": invalid JSON");
        if (!world_entry_from_json(j, &e, &e2)) return fail(err, path + ":" + std::to_string(ln) + ": " + e2);
        out->push_back(std::move(e));
    }
    return true;
}

}  // namespace spider
