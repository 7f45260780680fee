// `spider world`: generates a ToyWorld split (images, audio, video with truth and captions) into a directory, and
// `spider world judge` runs the judges over a generated split (or over single media files) and prints per-attribute
// scores.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "command.h"
#include "world/judges.h"
#include "world/world_io.h"

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: spider world --out DIR [--seed N] [--count K] [--kind image,audio,video] [--split S]\n"
                 "                    [--video-format mp4|webm] [--threads N] [--image-size N] [--max-objects N]\n"
                 "                    [--plain] [--captions N]\n"
                 "       spider world judge --world DIR [--split S]       judge every item against its truth\n"
                 "       spider world judge --image F | --audio F | --video F   print what a file shows (JSON)\n"
                 "  --count K        items per kind (default 100)\n"
                 "  --split S        train (default), validation or test (test items use held-out combinations)\n"
                 "  --threads N      worker threads (default 2)\n"
                 "  --plain          plain backgrounds only\n");
}

bool parse_u64(const char * s, uint64_t * out) {
    char * end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (errno || !end || *end || s[0] == '-' || !s[0]) return false;
    *out = v;
    return true;
}

bool parse_kinds(const std::string & s, std::vector<spider::world_kind> * out) {
    out->clear();
    size_t start = 0;
    while (start <= s.size()) {
        size_t c = s.find(',', start);
        std::string part = s.substr(start, c == std::string::npos ? std::string::npos : c - start);
        spider::world_kind k;
        if (part == "all") {
            *out = {spider::KIND_IMAGE, spider::KIND_AUDIO, spider::KIND_VIDEO};
        } else if (spider::kind_from_name(part, &k)) {
            out->push_back(k);
        } else {
            return false;
        }
        if (c == std::string::npos) break;
        start = c + 1;
    }
    return !out->empty();
}

nlohmann::json box_json(const spider::world_box & b) {
    return {b.x0, b.y0, b.x1, b.y1};
}

int run_judge(int argc, char ** argv) {
    using namespace spider;
    std::string dir, image, audio, video;
    world_split split = SPLIT_TRAIN;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&](std::string * v) {
            if (i + 1 >= argc) return false;
            *v = argv[++i];
            return true;
        };
        std::string s;
        if (a == "--world" && val(&dir)) continue;
        if (a == "--image" && val(&image)) continue;
        if (a == "--audio" && val(&audio)) continue;
        if (a == "--video" && val(&video)) continue;
        if (a == "--split" && val(&s) && split_from_name(s, &split)) continue;
        std::fprintf(stderr, "spider world judge: bad argument '%s'\n", a.c_str());
        usage();
        return 1;
    }
    std::string err;
    if (!image.empty()) {
        image_u8 img;
        image_judgement j;
        if (!image_read(image, &img, &err) || !judge_image(img, &j, &err)) {
            std::fprintf(stderr, "spider world judge: %s\n", err.c_str());
            return 1;
        }
        nlohmann::json out = {{"judgeable", j.judgeable}, {"reason", j.reason}, {"objects", nlohmann::json::array()}};
        for (const auto & o : j.objects)
            out["objects"].push_back({{"shape", shape_name(o.shape)},
                                      {"colour", colour_name(o.colour)},
                                      {"size", size_name(o.size)},
                                      {"position", position_name(o.position)},
                                      {"box", box_json(o.box)},
                                      {"area", o.area}});
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }
    if (!audio.empty()) {
        audio_f32 a;
        audio_judgement j;
        if (!audio_read(audio, &a, &err) || !judge_audio(a, &j, &err)) {
            std::fprintf(stderr, "spider world judge: %s\n", err.c_str());
            return 1;
        }
        nlohmann::json out = {{"judgeable", j.judgeable},
                              {"reason", j.reason},
                              {"pattern", pattern_name(j.pattern)},
                              {"pitch", pitch_name(j.pitch)},
                              {"f0_hz", j.f0_hz},
                              {"timbre", timbre_name(j.timbre)},
                              {"count", j.count},
                              {"onset_s", j.onset_s},
                              {"offset_s", j.offset_s}};
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }
    if (!video.empty()) {
        video_u8 v;
        video_judgement j;
        if (!video_read(video, &v, &err) || !judge_video(v, &j, &err)) {
            std::fprintf(stderr, "spider world judge: %s\n", err.c_str());
            return 1;
        }
        nlohmann::json out = {{"judgeable", j.judgeable},        {"reason", j.reason},
                              {"motion", motion_name(j.motion)}, {"shape", shape_name(j.shape)},
                              {"colour", colour_name(j.colour)}, {"colour_to", colour_name(j.colour_to)},
                              {"size", size_name(j.size)}};
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }
    if (dir.empty()) {
        usage();
        return 1;
    }
    std::vector<world_entry> items;
    if (!world_read_items(dir, split, &items, &err)) {
        std::fprintf(stderr, "spider world judge: %s\n", err.c_str());
        return 1;
    }
    judge_tally tally[3];
    int bad_files = 0;
    for (const auto & e : items) {
        std::string path = dir + "/" + e.file;
        if (e.kind == KIND_IMAGE) {
            image_u8 img, lab;
            image_judgement j;
            if (!image_read(path, &img, &err) || !judge_image(img, &j, &err)) {
                std::fprintf(stderr, "%s: %s\n", e.id.c_str(), err.c_str());
                ++bad_files;
                continue;
            }
            std::vector<uint8_t> labels;
            if (!e.mask_file.empty() && image_read(dir + "/" + e.mask_file, &lab, &err) && lab.channels == 1)
                labels = lab.pixels;
            judge_check_image(j, e.image, labels, &tally[0]);
        } else if (e.kind == KIND_AUDIO) {
            audio_f32 a;
            audio_judgement j;
            if (!audio_read(path, &a, &err) || !judge_audio(a, &j, &err)) {
                std::fprintf(stderr, "%s: %s\n", e.id.c_str(), err.c_str());
                ++bad_files;
                continue;
            }
            judge_check_audio(j, e.audio, &tally[1]);
        } else {
            video_u8 v;
            video_judgement j;
            if (!video_read(path, &v, &err) || !judge_video(v, &j, &err)) {
                std::fprintf(stderr, "%s: %s\n", e.id.c_str(), err.c_str());
                ++bad_files;
                continue;
            }
            judge_check_video(j, e.video, &tally[2]);
        }
    }
    for (int k = 0; k < 3; ++k) {
        if (tally[k].counts.empty()) continue;
        std::printf("[%s]\n%s", kind_name(k), tally[k].to_string().c_str());
    }
    if (bad_files) std::printf("unreadable files: %d\n", bad_files);
    return bad_files ? 1 : 0;
}

int run_world(int argc, char ** argv) {
    using namespace spider;
    if (argc >= 2 && !std::strcmp(argv[1], "judge")) return run_judge(argc - 1, argv + 1);
    world_write_options o;
    std::string out;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage();
            return 0;
        }
        if (a == "--plain") {
            o.params.textured = false;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "spider world: '%s' needs a value\n", a.c_str());
            return 1;
        }
        std::string v = argv[++i];
        uint64_t n = 0;
        bool ok = true;
        if (a == "--out") {
            out = v;
        } else if (a == "--seed") {
            ok = parse_u64(v.c_str(), &o.seed);
        } else if (a == "--count") {
            ok = parse_u64(v.c_str(), &o.count);
        } else if (a == "--kind") {
            ok = parse_kinds(v, &o.kinds);
        } else if (a == "--split") {
            ok = split_from_name(v, &o.params.split);
        } else if (a == "--video-format") {
            o.video_ext = v;
        } else if (a == "--threads") {
            ok = parse_u64(v.c_str(), &n) && n <= 64;
            o.threads = (int)n;
        } else if (a == "--image-size") {
            ok = parse_u64(v.c_str(), &n) && n <= 4096;
            o.params.image_size = (int)n;
        } else if (a == "--max-objects") {
            ok = parse_u64(v.c_str(), &n) && n <= 16;
            o.params.max_objects = (int)n;
        } else if (a == "--captions") {
            ok = parse_u64(v.c_str(), &n) && n <= 64;
            o.params.n_captions = (int)n;
        } else {
            std::fprintf(stderr, "spider world: unknown option '%s'\n", a.c_str());
            usage();
            return 1;
        }
        if (!ok) {
            std::fprintf(stderr, "spider world: bad value '%s' for %s\n", v.c_str(), a.c_str());
            return 1;
        }
    }
    if (out.empty()) {
        usage();
        return 1;
    }
    world_write_stats st;
    std::string err;
    if (!world_write(out, o, &st, &err)) {
        std::fprintf(stderr, "spider world: %s\n", err.c_str());
        return 1;
    }
    std::printf("wrote %llu items (%s split) to %s in %.2f s (%.1f items/s)\n", (unsigned long long)st.items,
                split_name(o.params.split), out.c_str(), st.seconds, st.items / std::max(st.seconds, 1e-9));
    return 0;
}

spider_cli::command_registrar reg({"world", "generate or judge a ToyWorld dataset (synthetic media with truth)",
                                   run_world});

}  // namespace
