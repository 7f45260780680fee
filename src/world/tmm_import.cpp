// Importers for real data: caption lists (CSV or JSONL of file + caption) and folders of media with captions
// become TMM records (T2X, X2T and T->TMM smart) whose media are the user's own files.
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "world/rng.h"
#include "world/tmm.h"

namespace spider {

static bool fail(std::string * err, const std::string & m) {
    if (err) *err = m;
    return false;
}

static std::string lower(std::string s) {
    for (char & c : s) c = (char)std::tolower((unsigned char)c);
    return s;
}

int media_kind_from_path(const std::string & path) {
    size_t dot = path.find_last_of('.');
    if (dot == std::string::npos) return -1;
    std::string e = lower(path.substr(dot + 1));
    if (e == "png" || e == "jpg" || e == "jpeg") return TMM_IMAGE;
    if (e == "wav" || e == "flac" || e == "ogg") return TMM_AUDIO;
    if (e == "mp4" || e == "webm" || e == "mkv" || e == "mov") return TMM_VIDEO;
    return -1;
}

// One CSV record (RFC 4180: quoted fields, doubled quotes, newlines inside quotes).
static bool csv_next(std::istream & in, std::vector<std::string> * fields, int64_t * line, std::string * err) {
    fields->clear();
    std::string f;
    bool quoted = false, any = false, field_was_quoted = false;
    int c;
    while ((c = in.get()) != EOF) {
        any = true;
        if (quoted) {
            if (c == '"') {
                if (in.peek() == '"') {
                    f += '"';
                    in.get();
                } else {
                    quoted = false;
                }
            } else {
                if (c == '\n') ++*line;
                f += (char)c;
            }
            continue;
        }
        if (c == '"' && f.empty() && !field_was_quoted) {
            quoted = field_was_quoted = true;
        } else if (c == ',') {
            fields->push_back(f);
            f.clear();
            field_was_quoted = false;
        } else if (c == '\n') {
            ++*line;
            if (!f.empty() && f.back() == '\r') f.pop_back();
            fields->push_back(f);
            return true;
        } else {
            f += (char)c;
        }
    }
    if (quoted) return fail(err, "line " + std::to_string(*line) + ": unterminated quoted field");
    if (any) {
        if (!f.empty() && f.back() == '\r') f.pop_back();
        fields->push_back(f);
    }
    return any;
}

bool import_read_caption_list(const std::string & path, std::vector<import_row> * rows, std::string * err) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(err, "cannot open '" + path + "'");
    rows->clear();
    std::string ext =
        lower(path.substr(path.find_last_of('.') == std::string::npos ? path.size() : path.find_last_of('.')));
    if (ext == ".jsonl" || ext == ".json") {
        std::string line;
        int64_t ln = 0;
        while (std::getline(in, line)) {
            ++ln;
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_discarded() || !j.is_object())
                return fail(err, path + ":" + std::to_string(ln) + ": not a JSON object");
            if (!j.contains("file") || !j["file"].is_string() || !j.contains("caption") || !j["caption"].is_string())
                return fail(err, path + ":" + std::to_string(ln) + ": needs string fields \"file\" and \"caption\"");
            rows->push_back({j["file"].get<std::string>(), j["caption"].get<std::string>()});
        }
        return true;
    }
    std::vector<std::string> fields;
    int64_t ln = 1;
    std::string e;
    if (!csv_next(in, &fields, &ln, &e)) return fail(err, path + ": empty file" + (e.empty() ? "" : ": " + e));
    int fi = -1, ci = -1;
    for (size_t i = 0; i < fields.size(); ++i) {
        std::string h = lower(fields[i]);
        if (h == "file" || h == "path" || h == "filename") fi = (int)i;
        if (h == "caption" || h == "text" || h == "description") ci = (int)i;
    }
    if (fi < 0 || ci < 0) return fail(err, path + ": the CSV header must name a \"file\" and a \"caption\" column");
    for (;;) {
        int64_t at = ln;
        e.clear();
        if (!csv_next(in, &fields, &ln, &e)) {
            if (!e.empty()) return fail(err, path + ": " + e);
            break;
        }
        if (fields.size() == 1 && fields[0].empty()) continue;
        if ((int)fields.size() <= std::max(fi, ci))
            return fail(err, path + ":" + std::to_string(at) + ": expected at least " +
                                 std::to_string(std::max(fi, ci) + 1) + " columns, found " +
                                 std::to_string(fields.size()));
        rows->push_back({fields[fi], fields[ci]});
    }
    return true;
}

bool import_scan_folder(const std::string & dir, std::vector<import_row> * rows, std::string * err) {
    rows->clear();
    for (const char * name : {"captions.csv", "captions.jsonl"}) {
        std::string p = dir + "/" + name;
        struct stat sb;
        if (stat(p.c_str(), &sb) == 0) {
            if (!import_read_caption_list(p, rows, err)) return false;
            for (auto & r : *rows)
                if (!r.file.empty() && r.file[0] != '/') r.file = dir + "/" + r.file;
            return true;
        }
    }
    DIR * d = opendir(dir.c_str());
    if (!d) return fail(err, "cannot open folder '" + dir + "'");
    std::vector<std::string> names;
    while (dirent * e = readdir(d)) names.push_back(e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());
    std::set<std::string> all(names.begin(), names.end());
    for (const auto & n : names) {
        if (media_kind_from_path(n) < 0) continue;
        std::string stem = n.substr(0, n.find_last_of('.'));
        if (!all.count(stem + ".txt")) continue;  // media without a caption are not training data
        std::ifstream t(dir + "/" + stem + ".txt", std::ios::binary);
        std::string cap((std::istreambuf_iterator<char>(t)), std::istreambuf_iterator<char>());
        while (!cap.empty() && (cap.back() == '\n' || cap.back() == '\r' || cap.back() == ' ')) cap.pop_back();
        if (cap.empty()) continue;
        rows->push_back({dir + "/" + n, cap});
    }
    if (rows->empty())
        return fail(err, "no media file with a caption (<name>.txt or captions.csv/jsonl) in '" + dir + "'");
    return true;
}

static std::string real(const std::string & p) {
    char buf[PATH_MAX];
    return realpath(p.c_str(), buf) ? std::string(buf) : p;
}

bool import_build(const std::vector<import_row> & rows, const std::string & base_dir, const std::string & out_path,
                  const import_options & o, int64_t * written, std::vector<std::string> * skipped, std::string * err) {
    size_t s = out_path.find_last_of('/');
    std::string out_dir = real(s == std::string::npos ? "." : s == 0 ? "/" : out_path.substr(0, s));
    std::string body;
    int64_t n = 0;
    static const char * k_names[] = {"IMAGE", "VIDEO", "AUDIO"};
    static const char * k_t2[] = {"t2i", "t2v", "t2a"};
    static const char * k_2t[] = {"i2t", "v2t", "a2t"};
    static const char * k_word[] = {"image", "video", "sound"};
    static const std::vector<std::string> t2_q = {"Generate {w}: {c}.", "Make {a} of {c}.", "Create {a} showing {c}.",
                                                  "Please produce {a}: {c}."};
    static const std::vector<std::string> x2t_q = {"Describe this {w}.", "What is in this {w}?",
                                                   "Write a caption for this {w}.", "Caption the {w}."};
    static const std::vector<std::string> smart_q = {"Show me {c}.", "I would like {c}.", "Can you make {c}?",
                                                     "Give me {c}."};
    auto fill = [](std::string t, const std::string & k, const std::string & v) {
        size_t p = t.find(k);
        if (p != std::string::npos) t.replace(p, k.size(), v);
        return t;
    };
    for (size_t i = 0; i < rows.size(); ++i) {
        const import_row & r = rows[i];
        if (!utf8_valid(r.file) || !utf8_valid(r.caption)) {
            if (skipped)
                skipped->push_back("row " + std::to_string(i + 1) + ": file name or caption is not valid UTF-8");
            continue;
        }
        int kind = media_kind_from_path(r.file);
        if (kind < 0) {
            if (skipped) skipped->push_back(r.file + ": unknown media extension");
            continue;
        }
        std::string caption = r.caption;
        while (!caption.empty() && (caption.back() == '.' || caption.back() == ' ')) caption.pop_back();
        if (caption.empty() || caption.find('\n') != std::string::npos || caption.find('<') != std::string::npos ||
            caption.find('[') != std::string::npos) {
            if (skipped) skipped->push_back(r.file + ": caption is empty, multi-line or holds '<' / '['");
            continue;
        }
        std::string full = !r.file.empty() && r.file[0] == '/' ? r.file : base_dir + "/" + r.file;
        if (o.check_media) {
            std::string e;
            bool ok;
            if (kind == TMM_IMAGE) {
                image_u8 img;
                ok = image_read(full, &img, &e);
            } else if (kind == TMM_AUDIO) {
                audio_f32 a;
                ok = audio_read(full, &a, &e);
            } else {
                video_u8 v;
                ok = video_read(full, &v, &e);
            }
            if (!ok) {
                if (skipped) skipped->push_back(r.file + ": " + e);
                continue;
            }
        }
        std::string rp = real(full);
        std::string rel = rp.compare(0, out_dir.size() + 1, out_dir + "/") == 0 ? rp.substr(out_dir.size() + 1) : rp;
        int slot = kind == TMM_IMAGE ? 0 : kind == TMM_VIDEO ? 1 : 2;
        std::string M = k_names[slot];
        std::string group = "<" + M + ">" + caption + "[" + M + "0]</" + M + ">";
        std::string ph = "<" + M + "><" + M + "-Placeholder></" + M + ">";
        world_rng rng(seed_mix(o.seed, 0x494D50, i));
        char id[64];
        auto emit = [&](const std::string & fam, const std::string & q, const std::string & task, const std::string & a,
                        bool input) {
            std::snprintf(id, sizeof(id), "import_%07zu_%s", i, fam.c_str());
            tmm_record rec;
            rec.id = id;
            rec.family = fam;
            rec.split = "train";
            rec.question = q;
            rec.task_prompt = task;
            rec.answer = a;
            rec.caption = caption;
            tmm_media m;
            m.modality = kind;
            m.file = rel;
            if (input) {
                rec.inputs.push_back(m);
            } else {
                m.caption = caption;
                rec.targets.push_back(m);
            }
            body += tmm_record_json(rec).dump() + "\n";
            ++n;
        };
        std::string art = slot == 0 ? "an image" : slot == 1 ? "a video" : "a sound";
        if (o.x2x) {
            std::string q = fill(fill(t2_q[rng.below((int)t2_q.size())], "{w}", k_word[slot]), "{a}", art);
            emit(k_t2[slot], fill(q, "{c}", caption), "[" + M + "]", "[OUTPUT]" + group + "[END]", false);
            std::string q2 = fill(x2t_q[rng.below((int)x2t_q.size())], "{w}", k_word[slot]);
            std::string sent = caption;
            if (!sent.empty() && sent[0] >= 'a' && sent[0] <= 'z') sent[0] = (char)(sent[0] - 'a' + 'A');
            emit(k_2t[slot], ph + " " + q2, "[TEXT]", "[OUTPUT]" + sent + ".[END]", true);
        }
        if (o.t2tmm) {
            std::string q = fill(smart_q[rng.below((int)smart_q.size())], "{c}", caption);
            emit("t2tmm_smart", q, "[SMARTMULTIMODAL]", "[OUTPUT]Here it is: " + group + "[END]", false);
        }
    }
    if (!file_write_atomic(out_path, body.data(), body.size(), err)) return false;
    if (written) *written = n;
    return true;
}

}  // namespace spider
