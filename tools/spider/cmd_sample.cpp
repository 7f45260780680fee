// `spider sample`: unconditional images from a trained tiny diffusion decoder (`diffusion.gguf` of `spider train`
// stage diffusion_scratch) with the DDIM or DDPM sampler, written as PNGs (decoders/diffusion_tiny.h).
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "command.h"
#include "decoders/diffusion_tiny.h"
#include "io/media.h"

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: spider sample --model DIFFUSION.gguf [--n N] [--steps S] [--sampler ddim|ddpm] [--seed N]\n"
                 "                     [--spacing leading|trailing] [--no-clip] [--out DIR]\n"
                 "  --n N          images (default 4); image i uses seed N+i and is written as DIR/sample_<i>.png\n"
                 "  --steps S      sampler steps (default 50 for ddim, the schedule's timesteps for ddpm)\n"
                 "  --sampler K    ddim (eta 0, default) or ddpm (ancestral)\n"
                 "  --seed N       first seed (default 0)\n"
                 "  --spacing K    timestep spacing as diffusers defines it (default leading)\n"
                 "  --no-clip      do not clamp the predicted x0 to [-1, 1]\n"
                 "  --out DIR      output directory (default .; created if missing)\n");
}

bool parse_u64(const char * s, uint64_t * out) {
    char * end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (errno || !end || *end || s[0] == '-' || !s[0]) return false;
    *out = v;
    return true;
}

int run_sample(int argc, char ** argv) {
    std::string model, out = ".";
    uint64_t n = 4, seed = 0, steps = 0;
    spider::diffusion_sampler_config c;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            usage();
            return 0;
        }
        if (a == "--no-clip") {
            c.clip_sample = false;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "spider sample: %s needs a value\n", a.c_str());
            usage();
            return 1;
        }
        const std::string v = argv[++i];
        bool ok = true;
        if (a == "--model") {
            model = v;
        } else if (a == "--out") {
            out = v;
        } else if (a == "--n") {
            ok = parse_u64(v.c_str(), &n) && n >= 1 && n <= 100000;
        } else if (a == "--steps") {
            ok = parse_u64(v.c_str(), &steps) && steps >= 1;
        } else if (a == "--seed") {
            ok = parse_u64(v.c_str(), &seed);
        } else if (a == "--sampler") {
            ok = spider::parse_sampler_kind(v, &c.kind);
        } else if (a == "--spacing") {
            ok = spider::parse_spacing(v, &c.spacing);
        } else {
            std::fprintf(stderr, "spider sample: unknown option '%s'\n", a.c_str());
            usage();
            return 1;
        }
        if (!ok) {
            std::fprintf(stderr, "spider sample: bad value '%s' for %s\n", v.c_str(), a.c_str());
            return 1;
        }
    }
    if (model.empty()) {
        std::fprintf(stderr, "spider sample: --model is required\n");
        usage();
        return 1;
    }
    std::string err;
    auto m = spider::diffusion_tiny::load(model, &err);
    if (!m) {
        std::fprintf(stderr, "spider sample: %s\n", err.c_str());
        return 1;
    }
    const auto & mc = m->config();
    c.steps = steps ? static_cast<int64_t>(steps) : (c.kind == spider::SAMPLER_DDIM ? 50 : mc.schedule.n_steps);
    std::vector<int64_t> ts;
    if (!spider::diffusion_timesteps(mc.schedule, c.steps, c.spacing, &ts, &err)) {
        std::fprintf(stderr, "spider sample: %s\n", err.c_str());
        return 1;
    }
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    if (ec) {
        std::fprintf(stderr, "spider sample: cannot create %s: %s\n", out.c_str(), ec.message().c_str());
        return 1;
    }
    const char * kind = c.kind == spider::SAMPLER_DDIM ? "ddim" : "ddpm";
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < n; ++i) {
        spider::image_u8 img;
        if (!spider::diffusion_tiny_sample_image(*m, c, seed + i, &img, nullptr, nullptr, {}, &err)) {
            std::fprintf(stderr, "spider sample: %s\n", err.c_str());
            return 1;
        }
        char name[64];
        std::snprintf(name, sizeof name, "sample_%03llu.png", static_cast<unsigned long long>(i));
        const std::string path = (std::filesystem::path(out) / name).string();
        const spider::media_metadata meta = {{"model", model},
                                             {"seed", std::to_string(seed + i)},
                                             {"sampler", kind},
                                             {"steps", std::to_string(c.steps)},
                                             {"ai_generated", "true"}};
        if (!spider::image_write_png(path, img, meta, &err)) {
            std::fprintf(stderr, "spider sample: %s\n", err.c_str());
            return 1;
        }
        std::printf("%s\n", path.c_str());
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "sampled %llu image(s) of %lldx%lld (%s, %lld steps, %s prediction) in %.2f s\n",
                 static_cast<unsigned long long>(n), static_cast<long long>(mc.image_size),
                 static_cast<long long>(mc.image_size), kind, static_cast<long long>(c.steps),
                 mc.prediction == spider::PREDICT_V ? "v" : "epsilon", s);
    return 0;
}

spider_cli::command_registrar reg({"sample", "unconditional images from a trained tiny diffusion decoder (PNG)",
                                   run_sample});

}  // namespace
