// `spider data`: TMM datasets. build (records from a ToyWorld directory), validate (every bad record by line with
// the reason), stats (counts and lengths), import (caption lists or media folders of real data).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "command.h"
#include "world/tmm.h"

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: spider data build --world DIR [--out FILE] [--split S] [--count N] [--seed N]\n"
                 "                         [--families f1,f2,..] [--signals N]\n"
                 "       spider data validate FILE.jsonl [--no-decode] [--json]\n"
                 "       spider data stats FILE.jsonl [--json]\n"
                 "       spider data import (--captions LIST.csv|.jsonl | --folder DIR) --out FILE.jsonl [--seed N]\n"
                 "                          [--no-check]\n"
                 "  build: --out defaults to DIR/tmm_<split>.jsonl; families default to all:\n"
                 "        ");
    for (const auto & f : spider::tmm_family_names()) std::fprintf(stderr, "%s ", f.c_str());
    std::fprintf(stderr, "\n");
}

bool parse_u64(const std::string & s, uint64_t * out) {
    char * end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (errno || !end || *end || s.empty() || s[0] == '-') return false;
    *out = v;
    return true;
}

std::vector<std::string> split_list(const std::string & s) {
    std::vector<std::string> out;
    size_t a = 0;
    while (a <= s.size()) {
        size_t c = s.find(',', a);
        std::string p = s.substr(a, c == std::string::npos ? std::string::npos : c - a);
        if (!p.empty()) out.push_back(p);
        if (c == std::string::npos) break;
        a = c + 1;
    }
    return out;
}

int run_build(int argc, char ** argv) {
    using namespace spider;
    std::string world, out;
    tmm_build_options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "spider data build: '%s' needs a value\n", a.c_str());
            return 1;
        }
        std::string v = argv[++i];
        uint64_t n = 0;
        bool ok = true;
        if (a == "--world")
            world = v;
        else if (a == "--out")
            out = v;
        else if (a == "--split")
            ok = split_from_name(v, &o.split);
        else if (a == "--count")
            ok = parse_u64(v, &o.count) && o.count <= 100000000ull;
        else if (a == "--seed")
            ok = parse_u64(v, &o.seed);
        else if (a == "--families")
            o.families = split_list(v);
        else if (a == "--signals") {
            ok = parse_u64(v, &n) && n >= 1 && n <= 32;
            o.n_signal = (int)n;
        } else {
            std::fprintf(stderr, "spider data build: unknown option '%s'\n", a.c_str());
            usage();
            return 1;
        }
        if (!ok) {
            std::fprintf(stderr, "spider data build: bad value '%s' for %s\n", v.c_str(), a.c_str());
            return 1;
        }
    }
    if (world.empty()) {
        usage();
        return 1;
    }
    if (out.empty()) out = world + "/tmm_" + split_name(o.split) + ".jsonl";
    tmm_build_stats st;
    std::string err;
    if (!tmm_build(world, out, o, &st, &err)) {
        std::fprintf(stderr, "spider data build: %s\n", err.c_str());
        return 1;
    }
    std::printf("wrote %llu records to %s in %.2f s (%.0f records/s)\n", (unsigned long long)st.records, out.c_str(),
                st.seconds, st.records / std::max(st.seconds, 1e-9));
    return 0;
}

int run_validate(int argc, char ** argv) {
    using namespace spider;
    std::string path;
    tmm_validate_options o;
    bool json = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--no-decode")
            o.decode_media = false;
        else if (a == "--json")
            json = true;
        else if (path.empty() && a[0] != '-')
            path = a;
        else {
            std::fprintf(stderr, "spider data validate: bad argument '%s'\n", a.c_str());
            return 1;
        }
    }
    if (path.empty()) {
        usage();
        return 1;
    }
    tmm_validate_result r;
    std::string err;
    if (!tmm_validate_file(path, o, &r, &err)) {
        std::fprintf(stderr, "spider data validate: %s\n", err.c_str());
        return 2;
    }
    if (json) {
        nlohmann::json j = {
            {"records", r.records}, {"bad_records", r.bad_records}, {"issues", nlohmann::json::array()}};
        for (const auto & is : r.issues)
            j["issues"].push_back({{"line", is.line}, {"id", is.id}, {"reason", is.reason}});
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        for (const auto & is : r.issues)
            std::printf("%s:%lld: %s%s%s\n", path.c_str(), (long long)is.line, is.id.empty() ? "" : is.id.c_str(),
                        is.id.empty() ? "" : ": ", is.reason.c_str());
        std::printf("%lld records, %lld bad\n", (long long)r.records, (long long)r.bad_records);
    }
    return r.bad_records ? 1 : 0;
}

int run_stats(int argc, char ** argv) {
    using namespace spider;
    std::string path;
    bool json = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--json")
            json = true;
        else if (path.empty() && a[0] != '-')
            path = a;
        else {
            std::fprintf(stderr, "spider data stats: bad argument '%s'\n", a.c_str());
            return 1;
        }
    }
    if (path.empty()) {
        usage();
        return 1;
    }
    tmm_stats s;
    std::string err;
    if (!tmm_stats_file(path, &s, &err)) {
        std::fprintf(stderr, "spider data stats: %s\n", err.c_str());
        return 1;
    }
    std::printf("%s", json ? (s.to_json().dump(2) + "\n").c_str() : s.to_string().c_str());
    return 0;
}

int run_import(int argc, char ** argv) {
    using namespace spider;
    std::string list, folder, out;
    import_options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--no-check") {
            o.check_media = false;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "spider data import: '%s' needs a value\n", a.c_str());
            return 1;
        }
        std::string v = argv[++i];
        if (a == "--captions")
            list = v;
        else if (a == "--folder")
            folder = v;
        else if (a == "--out")
            out = v;
        else if (a == "--seed") {
            if (!parse_u64(v, &o.seed)) {
                std::fprintf(stderr, "spider data import: bad seed '%s'\n", v.c_str());
                return 1;
            }
        } else {
            std::fprintf(stderr, "spider data import: unknown option '%s'\n", a.c_str());
            return 1;
        }
    }
    if (out.empty() || list.empty() == folder.empty()) {
        usage();
        return 1;
    }
    std::vector<import_row> rows;
    std::string err, base;
    if (!list.empty()) {
        if (!import_read_caption_list(list, &rows, &err)) {
            std::fprintf(stderr, "spider data import: %s\n", err.c_str());
            return 1;
        }
        size_t s = list.find_last_of('/');
        base = s == std::string::npos ? "." : list.substr(0, s);
    } else {
        if (!import_scan_folder(folder, &rows, &err)) {
            std::fprintf(stderr, "spider data import: %s\n", err.c_str());
            return 1;
        }
        base = folder;
    }
    int64_t n = 0;
    std::vector<std::string> skipped;
    if (!import_build(rows, base, out, o, &n, &skipped, &err)) {
        std::fprintf(stderr, "spider data import: %s\n", err.c_str());
        return 1;
    }
    for (const auto & s : skipped) std::fprintf(stderr, "skipped %s\n", s.c_str());
    std::printf("%zu rows -> %lld records in %s (%zu skipped)\n", rows.size(), (long long)n, out.c_str(),
                skipped.size());
    return 0;
}

int run_data(int argc, char ** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
        usage();
        return argc < 2 ? 1 : 0;
    }
    std::string sub = argv[1];
    if (sub == "build") return run_build(argc - 1, argv + 1);
    if (sub == "validate") return run_validate(argc - 1, argv + 1);
    if (sub == "stats") return run_stats(argc - 1, argv + 1);
    if (sub == "import") return run_import(argc - 1, argv + 1);
    std::fprintf(stderr, "spider data: unknown subcommand '%s'\n", sub.c_str());
    usage();
    return 1;
}

spider_cli::command_registrar reg({"data", "build, validate, inspect and import TMM datasets", run_data});

}  // namespace
