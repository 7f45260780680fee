// Tiny built-in decoders: deterministic procedural image / audio / video / box / mask generators conditioned on
// the fused condition vector, the T-Prompt and the seed. They exercise the whole pipeline (steps, progress,
// cancel, real media files) without trained weights; their colour-word grounding makes outputs checkable.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>

#include "decoders/decoder.h"

namespace spider {

namespace {

uint64_t fnv1a(const std::string & s, uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

std::vector<std::string> words_of(const std::string & text) {
    std::vector<std::string> w;
    std::string cur;
    for (char c : text) {
        if (std::isalnum(static_cast<unsigned char>(c))) {
            cur += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        } else if (!cur.empty()) {
            w.push_back(cur);
            cur.clear();
        }
    }
    if (!cur.empty()) w.push_back(cur);
    return w;
}

struct named_colour {
    const char * name;
    uint8_t r, g, b;
};
const named_colour k_colours[] = {{"red", 220, 30, 30},     {"green", 30, 190, 40},   {"blue", 30, 60, 220},
                                  {"yellow", 235, 215, 30}, {"orange", 245, 140, 20}, {"purple", 140, 40, 190},
                                  {"white", 245, 245, 245}, {"black", 15, 15, 15}};

// The first colour word of the prompt, or -1.
int colour_in(const std::string & text) {
    for (const auto & w : words_of(text)) {
        for (int i = 0; i < static_cast<int>(sizeof(k_colours) / sizeof(k_colours[0])); ++i) {
            if (w == k_colours[i].name) return i;
        }
    }
    return -1;
}

bool has_word(const std::string & text, const char * word) {
    for (const auto & w : words_of(text)) {
        if (w == word) return true;
    }
    return false;
}

// Condition feature i (cycled over the vector), squashed to [-1, 1]; 0 without a condition.
float feat(const decode_request & r, int i) {
    if (r.cond.empty()) return 0.0f;
    return std::tanh(r.cond[static_cast<size_t>(i) % r.cond.size()] * 2.0f);
}

bool cancelled(const decode_request & r) {
    return r.cancel && r.cancel->load();
}

bool check_size(const decode_request & r, std::string * err) {
    if (r.width < 8 || r.height < 8 || r.width > 4096 || r.height > 4096) {
        if (err) *err = "bad size " + std::to_string(r.width) + "x" + std::to_string(r.height) + " (8..4096)";
        return false;
    }
    return true;
}

struct scene {
    uint8_t bg[3], fg[3];
    float cx, cy, radius;  // fractions of the canvas
    bool square;
};

scene make_scene(const decode_request & r) {
    scene s;
    for (int c = 0; c < 3; ++c) s.bg[c] = static_cast<uint8_t>(110 + 60 * feat(r, c));
    int ci = colour_in(r.t_prompt);
    if (ci >= 0) {
        s.fg[0] = k_colours[ci].r;
        s.fg[1] = k_colours[ci].g;
        s.fg[2] = k_colours[ci].b;
    } else {
        uint64_t h = fnv1a(r.t_prompt);
        for (int c = 0; c < 3; ++c) s.fg[c] = static_cast<uint8_t>(40 + (h >> (8 * c)) % 180);
    }
    std::mt19937_64 rng(r.seed);
    std::uniform_real_distribution<float> u(-0.1f, 0.1f);
    s.cx = 0.5f + 0.2f * feat(r, 3) + u(rng);
    s.cy = 0.5f + 0.2f * feat(r, 4) + u(rng);
    s.radius = 0.18f + 0.06f * feat(r, 5);
    s.square = has_word(r.t_prompt, "square") || has_word(r.t_prompt, "box") || has_word(r.t_prompt, "cube");
    return s;
}

void draw_scene(const scene & s, int W, int H, float dx, image_u8 * img) {
    img->width = W;
    img->height = H;
    img->channels = 3;
    img->pixels.assign(static_cast<size_t>(W) * H * 3, 0);
    const float cx = (s.cx + dx) * W, cy = s.cy * H, rad = s.radius * std::min(W, H);
    for (int y = 0; y < H; ++y) {
        for (int x = 0; x < W; ++x) {
            const float ddx = x + 0.5f - cx, ddy = y + 0.5f - cy;
            const bool in =
                s.square ? (std::fabs(ddx) <= rad && std::fabs(ddy) <= rad) : (ddx * ddx + ddy * ddy <= rad * rad);
            uint8_t * p = &img->pixels[(static_cast<size_t>(y) * W + x) * 3];
            for (int c = 0; c < 3; ++c) p[c] = in ? s.fg[c] : static_cast<uint8_t>(s.bg[c] * (0.8f + 0.2f * y / H));
        }
    }
}

class text_cond_decoder : public decoder {
public:
    text_cond_decoder(modality m, int t, int d, int steps) : m_(m), t_(t), d_(d), steps_(steps) {}
    modality kind() const override { return m_; }
    std::string name() const override { return std::string("builtin-") + modality_name_lower(m_); }
    bool encode_text(const std::string & t_prompt, std::vector<float> * out, int * n_tok, int * dim,
                     std::string * err) override {
        if (t_ <= 0 || d_ <= 0) return decoder::encode_text(t_prompt, out, n_tok, dim, err);
        *out = builtin_text_encode(t_prompt, t_, d_);
        *n_tok = t_;
        *dim = d_;
        return true;
    }

protected:
    // Runs the step loop: progress + cancel. Returns false (with a message) when cancelled.
    bool steps(const decode_request & r, decode_result * out, std::string * err) {
        for (int i = 0; i < steps_; ++i) {
            if (cancelled(r)) {
                if (err) *err = "cancelled at step " + std::to_string(i);
                return false;
            }
            if (r.progress) r.progress(i + 1, steps_);
            out->steps = i + 1;
        }
        return true;
    }
    modality m_;
    int t_, d_, steps_;
};

class image_decoder : public text_cond_decoder {
public:
    using text_cond_decoder::text_cond_decoder;
    bool decode(const decode_request & r, decode_result * out, std::string * err) override {
        if (!check_size(r, err)) return false;
        if (!steps(r, out, err)) return false;
        out->m = MODALITY_IMAGE;
        draw_scene(make_scene(r), r.width, r.height, 0.0f, &out->image);
        // A little seeded grain so different seeds give different files.
        std::mt19937_64 rng(r.seed ^ 0x9e3779b97f4a7c15ull);
        for (auto & p : out->image.pixels) p = static_cast<uint8_t>(std::clamp(int(p) + int(rng() % 7) - 3, 0, 255));
        return true;
    }
};

class video_decoder : public text_cond_decoder {
public:
    using text_cond_decoder::text_cond_decoder;
    bool decode(const decode_request & r, decode_result * out, std::string * err) override {
        if (!check_size(r, err)) return false;
        if (r.fps <= 0 || r.duration_s <= 0 || r.duration_s * r.fps > 1000) {
            if (err) *err = "bad video duration/fps";
            return false;
        }
        if (!steps(r, out, err)) return false;
        out->m = MODALITY_VIDEO;
        scene s = make_scene(r);
        const int n = std::max(2, static_cast<int>(std::lround(r.duration_s * r.fps)));
        out->video.width = r.width & ~1;  // H.264 yuv420p needs even sizes
        out->video.height = r.height & ~1;
        out->video.fps = r.fps;
        out->video.frames.resize(n);
        const float dir = feat(r, 6) >= 0 ? 1.0f : -1.0f;
        for (int f = 0; f < n; ++f) {
            const float dx = dir * 0.25f * (static_cast<float>(f) / (n - 1) - 0.5f);
            draw_scene(s, out->video.width, out->video.height, dx, &out->video.frames[f]);
        }
        return true;
    }
};

class audio_decoder : public text_cond_decoder {
public:
    using text_cond_decoder::text_cond_decoder;
    bool decode(const decode_request & r, decode_result * out, std::string * err) override {
        if (r.sample_rate < 8000 || r.sample_rate > 96000 || r.duration_s <= 0 || r.duration_s > 60) {
            if (err) *err = "bad audio rate/duration";
            return false;
        }
        if (!steps(r, out, err)) return false;
        out->m = MODALITY_AUDIO;
        float f0 = 220.0f * std::pow(2.0f, feat(r, 0));
        if (has_word(r.t_prompt, "high")) f0 *= 2.0f;
        if (has_word(r.t_prompt, "low")) f0 *= 0.5f;
        const bool noisy =
            has_word(r.t_prompt, "rain") || has_word(r.t_prompt, "noise") || has_word(r.t_prompt, "wind");
        std::mt19937_64 rng(r.seed);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        const int n = static_cast<int>(r.duration_s * r.sample_rate);
        out->audio.sample_rate = r.sample_rate;
        out->audio.channels = 1;
        out->audio.samples.resize(n);
        const float h2 = 0.3f + 0.2f * feat(r, 1), h3 = 0.15f + 0.1f * feat(r, 2);
        for (int i = 0; i < n; ++i) {
            const float t = static_cast<float>(i) / r.sample_rate;
            const float env = std::min(1.0f, t * 20.0f) * std::min(1.0f, (r.duration_s - t) * 20.0f);
            const float w = 2.0f * static_cast<float>(M_PI) * f0 * t;
            float v = std::sin(w) + h2 * std::sin(2 * w) + h3 * std::sin(3 * w);
            if (noisy) v = 0.3f * v + 0.7f * u(rng);
            out->audio.samples[i] = 0.25f * env * v;
        }
        return true;
    }
};

// Open-vocabulary "detector": grounds a colour word in the input image; otherwise proposes hashed boxes.
std::vector<box_item> detect(const image_u8 * img, int W, int H, const std::string & t_prompt, uint64_t seed) {
    std::vector<box_item> boxes;
    const int ci = colour_in(t_prompt);
    if (img && ci >= 0 && img->channels >= 3) {
        int x0 = img->width, y0 = img->height, x1 = -1, y1 = -1;
        long hits = 0;
        for (int y = 0; y < img->height; ++y) {
            for (int x = 0; x < img->width; ++x) {
                const uint8_t * p = &img->pixels[(static_cast<size_t>(y) * img->width + x) * img->channels];
                const int d = std::abs(p[0] - k_colours[ci].r) + std::abs(p[1] - k_colours[ci].g) +
                              std::abs(p[2] - k_colours[ci].b);
                if (d < 90) {
                    ++hits;
                    x0 = std::min(x0, x);
                    y0 = std::min(y0, y);
                    x1 = std::max(x1, x);
                    y1 = std::max(y1, y);
                }
            }
        }
        if (hits > 0) {
            box_item b;
            b.x0 = x0;
            b.y0 = y0;
            b.x1 = x1 + 1;
            b.y1 = y1 + 1;
            const float fill = static_cast<float>(hits) / ((b.x1 - b.x0) * (b.y1 - b.y0));
            b.score = 0.5f + 0.5f * fill;
            b.label = t_prompt;
            boxes.push_back(b);
        }
        return boxes;
    }
    uint64_t h = fnv1a(t_prompt, seed + 1469598103934665603ull);
    const int n = 1 + static_cast<int>(h % 2);
    for (int i = 0; i < n; ++i) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        const float fx = ((h >> 10) % 1000) / 1000.0f, fy = ((h >> 20) % 1000) / 1000.0f;
        const float fw = 0.2f + ((h >> 30) % 1000) / 2500.0f, fh = 0.2f + ((h >> 40) % 1000) / 2500.0f;
        box_item b;
        b.x0 = fx * (1 - fw) * W;
        b.y0 = fy * (1 - fh) * H;
        b.x1 = b.x0 + fw * W;
        b.y1 = b.y0 + fh * H;
        b.score = i == 0 ? 0.55f + ((h >> 50) % 400) / 1000.0f : 0.1f + ((h >> 50) % 400) / 1000.0f;
        b.label = t_prompt;
        boxes.push_back(b);
    }
    return boxes;
}

class box_decoder : public decoder {
public:
    explicit box_decoder(int steps) : steps_(steps) {}
    modality kind() const override { return MODALITY_BOX; }
    std::string name() const override { return "builtin-box"; }
    bool decode(const decode_request & r, decode_result * out, std::string * err) override {
        const int W = r.input_image ? r.input_image->width : r.width;
        const int H = r.input_image ? r.input_image->height : r.height;
        if (W <= 0 || H <= 0) {
            if (err) *err = "bad canvas size";
            return false;
        }
        if (r.progress) r.progress(1, 1);
        out->m = MODALITY_BOX;
        out->steps = 1;
        out->canvas_width = W;
        out->canvas_height = H;
        // The reference keeps boxes with score >= 0.3.
        for (const auto & b : detect(r.input_image, W, H, r.t_prompt, r.seed)) {
            if (b.score >= 0.3f) out->boxes.push_back(b);
        }
        std::sort(out->boxes.begin(), out->boxes.end(),
                  [](const box_item & a, const box_item & b) { return a.score > b.score; });
        return true;
    }

private:
    int steps_;
};

class mask_decoder : public text_cond_decoder {
public:
    using text_cond_decoder::text_cond_decoder;
    bool decode(const decode_request & r, decode_result * out, std::string * err) override {
        const int W = r.input_image ? r.input_image->width : r.width;
        const int H = r.input_image ? r.input_image->height : r.height;
        if (W <= 0 || H <= 0 || W > 8192 || H > 8192) {
            if (err) *err = "bad canvas size";
            return false;
        }
        if (!steps(r, out, err)) return false;
        out->m = MODALITY_MASK;
        box_item b;
        if (!r.prompt_boxes.empty()) {
            b = r.prompt_boxes[0];
        } else {
            // SAM without a box prompt: a centred region whose extent follows the condition.
            const float s = 0.3f + 0.1f * feat(r, 0);
            b.x0 = W * (0.5f - s);
            b.x1 = W * (0.5f + s);
            b.y0 = H * (0.5f - s);
            b.y1 = H * (0.5f + s);
        }
        out->boxes = {b};
        out->mask.width = W;
        out->mask.height = H;
        out->mask.channels = 1;
        out->mask.pixels.assign(static_cast<size_t>(W) * H, 0);
        const int ci = colour_in(r.t_prompt);
        const float cx = 0.5f * (b.x0 + b.x1), cy = 0.5f * (b.y0 + b.y1);
        const float rx = std::max(0.5f, 0.5f * (b.x1 - b.x0)), ry = std::max(0.5f, 0.5f * (b.y1 - b.y0));
        for (int y = 0; y < H; ++y) {
            for (int x = 0; x < W; ++x) {
                const float dx = (x + 0.5f - cx) / rx, dy = (y + 0.5f - cy) / ry;
                bool in = dx * dx + dy * dy <= 1.0f;
                if (r.input_image && ci >= 0 && r.input_image->channels >= 3 && in) {
                    // inside the box: keep the pixels of the named colour
                    const uint8_t * p =
                        &r.input_image->pixels[(static_cast<size_t>(y) * W + x) * r.input_image->channels];
                    in = std::abs(p[0] - k_colours[ci].r) + std::abs(p[1] - k_colours[ci].g) +
                             std::abs(p[2] - k_colours[ci].b) <
                         90;
                }
                out->mask.pixels[static_cast<size_t>(y) * W + x] = in ? 255 : 0;
            }
        }
        return true;
    }
};

}  // namespace

std::vector<float> builtin_text_encode(const std::string & text, int n_tok, int dim) {
    std::vector<float> out(static_cast<size_t>(n_tok) * dim, 0.0f);
    auto words = words_of(text);
    if (words.empty()) words.push_back("");
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int t = 0; t < n_tok; ++t) {
        // token t: word t (cycled) plus a bag-of-words summary so every token carries the whole prompt
        float * row = &out[static_cast<size_t>(t) * dim];
        for (size_t w = 0; w < words.size(); ++w) {
            std::mt19937_64 rng(fnv1a(words[w]));
            const float weight =
                (static_cast<int>(w % words.size()) == t % static_cast<int>(words.size())) ? 1.0f : 0.3f;
            for (int i = 0; i < dim; ++i) row[i] += weight * nd(rng);
        }
        std::mt19937_64 prng(static_cast<uint64_t>(t) * 7919 + 17);
        for (int i = 0; i < dim; ++i) row[i] += 0.1f * nd(prng);
        double n2 = 0;
        for (int i = 0; i < dim; ++i) n2 += row[i] * static_cast<double>(row[i]);
        const float inv = n2 > 0 ? static_cast<float>(1.0 / std::sqrt(n2)) : 0.0f;
        for (int i = 0; i < dim; ++i) row[i] *= inv;
    }
    return out;
}

void register_builtin_decoders(decoder_registry & reg, const builtin_decoder_config & cfg) {
    const builtin_decoder_config c = cfg;
    reg.add(MODALITY_IMAGE, "builtin-image", [c](std::string *) {
        return std::unique_ptr<decoder>(
            new image_decoder(MODALITY_IMAGE, c.cond_tokens[MODALITY_IMAGE], c.cond_dim[MODALITY_IMAGE], c.n_steps));
    });
    reg.add(MODALITY_VIDEO, "builtin-video", [c](std::string *) {
        return std::unique_ptr<decoder>(
            new video_decoder(MODALITY_VIDEO, c.cond_tokens[MODALITY_VIDEO], c.cond_dim[MODALITY_VIDEO], c.n_steps));
    });
    reg.add(MODALITY_AUDIO, "builtin-audio", [c](std::string *) {
        return std::unique_ptr<decoder>(
            new audio_decoder(MODALITY_AUDIO, c.cond_tokens[MODALITY_AUDIO], c.cond_dim[MODALITY_AUDIO], c.n_steps));
    });
    reg.add(MODALITY_BOX, "builtin-box",
            [c](std::string *) { return std::unique_ptr<decoder>(new box_decoder(c.n_steps)); });
    reg.add(MODALITY_MASK, "builtin-mask", [c](std::string *) {
        return std::unique_ptr<decoder>(
            new mask_decoder(MODALITY_MASK, c.cond_tokens[MODALITY_MASK], c.cond_dim[MODALITY_MASK], c.n_steps));
    });
}

float builtin_quality_score(const decode_result & r, const std::string & t_prompt) {
    auto flat = [](const image_u8 & im) {
        if (im.pixels.empty()) return true;
        uint8_t lo = 255, hi = 0;
        for (uint8_t p : im.pixels) {
            lo = std::min(lo, p);
            hi = std::max(hi, p);
        }
        return hi - lo < 8;
    };
    switch (r.m) {
        case MODALITY_IMAGE: {
            if (flat(r.image) || r.image.channels < 3) return 0.0f;
            const int ci = colour_in(t_prompt);
            if (ci < 0) return 1.0f;
            long hits = 0;
            const size_t n = r.image.pixels.size() / r.image.channels;
            for (size_t i = 0; i < n; ++i) {
                const uint8_t * p = &r.image.pixels[i * r.image.channels];
                hits += std::abs(p[0] - k_colours[ci].r) + std::abs(p[1] - k_colours[ci].g) +
                            std::abs(p[2] - k_colours[ci].b) <
                        60;
            }
            return hits * 50 >= static_cast<long>(n) ? 1.0f : 0.25f;  // >= 2% of the pixels in the named colour
        }
        case MODALITY_AUDIO: {
            double e = 0;
            for (float s : r.audio.samples) e += s * static_cast<double>(s);
            return (!r.audio.samples.empty() && e / r.audio.samples.size() > 1e-6) ? 1.0f : 0.0f;
        }
        case MODALITY_VIDEO:
            if (r.video.frames.size() < 2 || flat(r.video.frames[0])) return 0.0f;
            return r.video.frames.front().pixels != r.video.frames.back().pixels ? 1.0f : 0.0f;
        case MODALITY_BOX:
            return r.boxes.empty() ? 0.0f : std::min(1.0f, r.boxes[0].score);
        case MODALITY_MASK: {
            long on = 0;
            for (uint8_t p : r.mask.pixels) on += p > 0;
            return on > 0 ? 1.0f : 0.0f;
        }
        default:
            return 0.0f;
    }
}

}  // namespace spider
