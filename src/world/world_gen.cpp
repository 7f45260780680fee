// ToyWorld generators: attribute tables, the shape rasteriser, and the image / audio / video item generators.
// Every random choice comes from world_rng seeded by (seed, kind, split, index).
#include <cmath>

#include "world/rng.h"
#include "world/world.h"

namespace spider {

static const char * k_shapes[] = {"circle", "square", "triangle", "diamond", "cross", "ring"};
static const char * k_colours[] = {"red",     "green",  "blue",   "yellow", "cyan",
                                   "magenta", "orange", "purple", "white",  "black"};
static const uint8_t k_rgb[][3] = {{220, 30, 30},  {30, 180, 40},  {30, 60, 220},  {235, 215, 30},  {30, 210, 220},
                                   {210, 40, 200}, {245, 130, 20}, {120, 40, 170}, {245, 245, 245}, {15, 15, 15}};
static const char * k_sizes[] = {"small", "medium", "large"};
static const char * k_positions[] = {"top left", "top",         "top right", "left",        "center",
                                     "right",    "bottom left", "bottom",    "bottom right"};
static const char * k_backgrounds[] = {"plain", "horizontal stripes", "vertical stripes", "checkerboard", "noise"};
static const char * k_patterns[] = {"tone", "rising chirp", "falling chirp", "beeps", "noise burst", "chord", "rhythm"};
static const char * k_pitches[] = {"low", "mid-low", "mid", "mid-high", "high"};
static const double k_pitch_hz[] = {220.0, 311.127, 440.0, 622.254, 880.0};  // half-octave steps
static const char * k_timbres[] = {"sine", "square", "sawtooth"};
static const char * k_motions[] = {"left", "right", "up", "down", "grow", "shrink", "change colour", "rotate"};
static const char * k_splits[] = {"train", "validation", "test"};
static const char * k_kinds[] = {"image", "audio", "video"};

template <int N>
static const char * name_at(const char * const (&t)[N], int i) {
    return i >= 0 && i < N ? t[i] : "unknown";
}

const char * shape_name(int s) {
    return name_at(k_shapes, s);
}
const char * colour_name(int c) {
    return name_at(k_colours, c);
}
const char * size_name(int s) {
    return name_at(k_sizes, s);
}
const char * position_name(int p) {
    return name_at(k_positions, p);
}
const char * background_name(int b) {
    return name_at(k_backgrounds, b);
}
const char * pattern_name(int p) {
    return name_at(k_patterns, p);
}
const char * pitch_name(int p) {
    return name_at(k_pitches, p);
}
const char * timbre_name(int t) {
    return name_at(k_timbres, t);
}
const char * motion_name(int m) {
    return name_at(k_motions, m);
}
const char * split_name(int s) {
    return name_at(k_splits, s);
}
const char * kind_name(int k) {
    return name_at(k_kinds, k);
}

bool split_from_name(const std::string & s, world_split * out) {
    for (int i = 0; i < 3; ++i)
        if (s == k_splits[i]) {
            *out = (world_split)i;
            return true;
        }
    return false;
}
bool kind_from_name(const std::string & s, world_kind * out) {
    for (int i = 0; i < 3; ++i)
        if (s == k_kinds[i]) {
            *out = (world_kind)i;
            return true;
        }
    return false;
}

void colour_rgb(int c, uint8_t rgb[3]) {
    for (int k = 0; k < 3; ++k) rgb[k] = k_rgb[c][k];
}
double pitch_hz(int p) {
    return p >= 0 && p < PITCH_COUNT ? k_pitch_hz[p] : 0.0;
}

int size_half_extent(int s, int img) {
    static const int at64[] = {4, 6, 8};
    int h = (int)std::lround(at64[s] * img / 64.0);
    return h < 2 ? 2 : h;
}

// One held-out colour per shape (all different), one held-out pitch per pitched pattern.
bool held_out_shape_colour(int shape, int colour) {
    return colour == (shape * 3 + 1) % COLOUR_COUNT;
}
bool held_out_pattern_pitch(int pattern, int pitch) {
    return pattern != PATTERN_NOISE && pitch == (pattern * 2 + 1) % PITCH_COUNT;
}

bool world_params_check(const world_params & p, std::string * err) {
    auto bad = [&](const std::string & m) {
        if (err) *err = "world params: " + m;
        return false;
    };
    if (p.image_size < 48 || p.image_size > 1024) return bad("image_size must be 48..1024");
    if (p.max_objects < 1 || p.max_objects > 3) return bad("max_objects must be 1..3");
    if (p.video_size < 48 || p.video_size > 512 || p.video_size % 2) return bad("video_size must be even, 48..512");
    if (p.video_frames < 8 || p.video_frames > 256) return bad("video_frames must be 8..256");
    if (!(p.video_fps > 0 && p.video_fps <= 60)) return bad("video_fps must be in (0, 60]");
    if (p.audio_rate < 8000 || p.audio_rate > 48000) return bad("audio_rate must be 8000..48000");
    if (!(p.audio_min_s >= 1.0 && p.audio_max_s <= 10.0 && p.audio_min_s <= p.audio_max_s))
        return bad("audio duration range must satisfy 1 <= min <= max <= 10 seconds");
    if (p.n_captions < 1 || p.n_captions > 16) return bad("n_captions must be 1..16");
    if (p.split < SPLIT_TRAIN || p.split > SPLIT_TEST) return bad("unknown split");
    return true;
}

// ---- rasteriser ----------------------------------------------------------------------------------------------

bool world_shape_contains(int shape, double cx, double cy, double half, double angle, double x, double y) {
    double s = half + 0.5;
    double u0 = (x - cx) / s, v0 = (y - cy) / s;
    double ca = std::cos(angle), sa = std::sin(angle);
    double u = ca * u0 + sa * v0, v = -sa * u0 + ca * v0;
    double au = std::fabs(u), av = std::fabs(v), r2 = u * u + v * v;
    switch (shape) {
        case SHAPE_CIRCLE:
            return r2 <= 1.0;
        case SHAPE_SQUARE:
            return au <= 1.0 && av <= 1.0;
        case SHAPE_TRIANGLE:
            return v >= -1.0 && v <= 1.0 && au <= (v + 1.0) * 0.5;  // apex at the top
        case SHAPE_DIAMOND:
            return au + av <= 1.0;
        case SHAPE_CROSS:
            return au <= 1.0 && av <= 1.0 && (au <= 0.34 || av <= 0.34);
        case SHAPE_RING:
            return r2 <= 1.0 && r2 >= 0.36;
        default:
            return false;
    }
}

void world_draw_shape(image_u8 * img, std::vector<uint8_t> * labels, uint8_t label, int shape, const uint8_t rgb[3],
                      double cx, double cy, double half, double angle) {
    double reach = half * 1.5 + 1;  // a rotated square reaches half*sqrt(2)
    int x0 = std::max(0, (int)std::floor(cx - reach)), x1 = std::min(img->width - 1, (int)std::ceil(cx + reach));
    int y0 = std::max(0, (int)std::floor(cy - reach)), y1 = std::min(img->height - 1, (int)std::ceil(cy + reach));
    for (int y = y0; y <= y1; ++y)
        for (int x = x0; x <= x1; ++x) {
            if (!world_shape_contains(shape, cx, cy, half, angle, x, y)) continue;
            uint8_t * p = &img->pixels[((size_t)y * img->width + x) * img->channels];
            p[0] = rgb[0];
            p[1] = rgb[1];
            p[2] = rgb[2];
            if (labels) (*labels)[(size_t)y * img->width + x] = label;
        }
}

static void fill_background(image_u8 * img, int bg, int level, world_rng & rng) {
    for (int y = 0; y < img->height; ++y)
        for (int x = 0; x < img->width; ++x) {
            int v = level;
            switch (bg) {
                case BG_STRIPES_H:
                    v += ((y / 4) % 2) ? 12 : -12;
                    break;
                case BG_STRIPES_V:
                    v += ((x / 4) % 2) ? 12 : -12;
                    break;
                case BG_CHECKER:
                    v += ((x / 8 + y / 8) % 2) ? 12 : -12;
                    break;
                case BG_NOISE:
                    v += rng.range(-10, 10);
                    break;
                default:
                    break;
            }
            uint8_t * p = &img->pixels[((size_t)y * img->width + x) * 3];
            p[0] = p[1] = p[2] = (uint8_t)v;
        }
}

static void new_rgb(image_u8 * img, int w, int h) {
    img->width = w;
    img->height = h;
    img->channels = 3;
    img->pixels.assign((size_t)w * h * 3, 0);
}

// Draws (shape, colour) pairs honouring the split: train never uses a held-out pair; test forces one on the first
// object; validation follows the train distribution.
static void pick_shape_colour(world_rng & rng, world_split split, bool force_held_out, int * shape, int * colour) {
    if (force_held_out) {
        *shape = rng.below(SHAPE_COUNT);
        *colour = (*shape * 3 + 1) % COLOUR_COUNT;
        return;
    }
    do {
        *shape = rng.below(SHAPE_COUNT);
        *colour = rng.below(COLOUR_COUNT);
    } while (split != SPLIT_TEST && held_out_shape_colour(*shape, *colour));
}

void world_make_image(uint64_t seed, uint64_t index, const world_params & p, image_item * out) {
    world_rng rng(seed_mix(seed, KIND_IMAGE * 4 + p.split, index));
    const int S = p.image_size;
    *out = image_item();
    image_truth & t = out->truth;
    t.width = t.height = S;
    t.background = p.textured ? rng.below(BG_COUNT) : BG_PLAIN;
    t.bg_level = rng.range(95, 150);
    new_rgb(&out->image, S, S);
    out->labels.assign((size_t)S * S, 0);
    fill_background(&out->image, t.background, t.bg_level, rng);
    int n = rng.range(1, p.max_objects);
    int cells[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    for (int i = 8; i > 0; --i) std::swap(cells[i], cells[rng.below(i + 1)]);
    bool used_colour[COLOUR_COUNT] = {false};
    for (int i = 0; i < n; ++i) {
        world_object o;
        // Colours are distinct within an image so that "the red one" always names one object.
        do {
            pick_shape_colour(rng, p.split, p.split == SPLIT_TEST && i == 0, &o.shape, &o.colour);
        } while (used_colour[o.colour]);
        used_colour[o.colour] = true;
        o.size = rng.below(SIZE_COUNT);
        o.position = cells[i];
        o.half = size_half_extent(o.size, S);
        double cw = S / 3.0;
        o.cx = (int)std::floor(cw * (o.position % 3 + 0.5)) + rng.range(-1, 1);
        o.cy = (int)std::floor(cw * (o.position / 3 + 0.5)) + rng.range(-1, 1);
        uint8_t rgb[3];
        colour_rgb(o.colour, rgb);
        world_draw_shape(&out->image, &out->labels, (uint8_t)(i + 1), o.shape, rgb, o.cx, o.cy, o.half, 0.0);
        t.objects.push_back(o);
    }
    // Exact boxes from the drawn pixels.
    for (size_t i = 0; i < t.objects.size(); ++i) {
        world_box b{S, S, -1, -1};
        for (int y = 0; y < S; ++y)
            for (int x = 0; x < S; ++x)
                if (out->labels[(size_t)y * S + x] == i + 1) {
                    b.x0 = std::min(b.x0, x);
                    b.y0 = std::min(b.y0, y);
                    b.x1 = std::max(b.x1, x);
                    b.y1 = std::max(b.y1, y);
                }
        t.objects[i].box = b;
    }
    out->captions = caption_image(t, rng.next(), p.n_captions);
}

// ---- audio ---------------------------------------------------------------------------------------------------

// Band-limited oscillator: the sum of harmonics below 0.45 * rate with the timbre's amplitudes.
static double osc(int timbre, double phase, double f0, double rate) {
    if (timbre == TIMBRE_SINE) return std::sin(phase);
    // sin(k x) by the Chebyshev recurrence sin(kx) = 2 cos(x) sin((k-1)x) - sin((k-2)x): one sin and one cos per
    // sample instead of one sin per harmonic.
    double s = 0, c2 = 2 * std::cos(phase), prev = 0, cur = std::sin(phase);
    int kmax = (int)(0.45 * rate / f0);
    for (int k = 1; k <= kmax; ++k) {
        if (timbre == TIMBRE_SQUARE) {
            if (k % 2) s += cur / k;
        } else {
            s += ((k % 2) ? 1.0 : -1.0) * cur / k;
        }
        double next = c2 * cur - prev;
        prev = cur;
        cur = next;
    }
    return timbre == TIMBRE_SQUARE ? s * (4.0 / M_PI) * 0.8 : s * (2.0 / M_PI);
}

// Adds one note [t0, t0 + dur) with 5 ms linear fades; the frequency glides from f_start to f_end exponentially.
static void add_note(audio_f32 * a, int timbre, double t0, double dur, double f_start, double f_end, double amp) {
    const double rate = a->sample_rate;
    int i0 = (int)std::lround(t0 * rate), n = (int)std::lround(dur * rate);
    double phase = 0, fade = 0.005 * rate;
    for (int i = 0; i < n && i0 + i < (int)a->samples.size(); ++i) {
        double frac = n > 1 ? (double)i / (n - 1) : 0.0;
        double f = f_start * std::pow(f_end / f_start, frac);
        double env = std::min(1.0, std::min((i + 1) / fade, (n - i) / fade));
        a->samples[i0 + i] += (float)(amp * env * osc(timbre, phase, f, rate));
        phase += 2 * M_PI * f / rate;
        if (phase > 2 * M_PI * 64) phase -= 2 * M_PI * 64;
    }
}

void world_make_audio(uint64_t seed, uint64_t index, const world_params & p, audio_item * out) {
    world_rng rng(seed_mix(seed, KIND_AUDIO * 4 + p.split, index));
    *out = audio_item();
    audio_truth & t = out->truth;
    bool force = p.split == SPLIT_TEST;
    do {
        t.pattern = rng.below(PATTERN_COUNT);
        t.pitch = rng.below(PITCH_COUNT);
    } while (force ? !held_out_pattern_pitch(t.pattern, t.pitch)
                   : (p.split != SPLIT_TEST && held_out_pattern_pitch(t.pattern, t.pitch)));
    t.timbre = rng.below(TIMBRE_COUNT);
    if (t.pattern == PATTERN_CHORD) t.timbre = TIMBRE_SINE;  // a chord's partials must not be confused with harmonics
    if (t.pattern == PATTERN_NOISE) {
        t.pitch = -1;
        t.timbre = -1;
    }
    t.count = 1;
    // Note plan: (start, duration) pairs relative to the onset.
    std::vector<std::pair<double, double>> notes;
    if (t.pattern == PATTERN_BEEPS) {
        t.count = rng.range(2, 5);
        double d = rng.uniform(0.10, 0.16), g = rng.uniform(0.10, 0.16);
        for (int i = 0; i < t.count; ++i) notes.push_back({i * (d + g), d});
    } else if (t.pattern == PATTERN_RHYTHM) {
        t.count = rng.range(3, 5);
        double at = 0;
        for (int i = 0; i < t.count; ++i) {
            double d = (i % 2 == 0) ? 0.36 : 0.12;  // long-short alternation
            notes.push_back({at, d});
            at += d + 0.12;
        }
    } else {
        notes.push_back({0.0, rng.uniform(0.6, 1.2)});
    }
    double span = notes.back().first + notes.back().second;
    double lo = std::max(p.audio_min_s, span + 0.5);
    double hi = std::max(lo, p.audio_max_s);
    t.duration_s = std::round(rng.uniform(lo, hi) * 10) / 10;
    if (t.duration_s < span + 0.5) t.duration_s = std::ceil((span + 0.5) * 10) / 10;
    // Sustained sounds fill most of the clip.
    if (notes.size() == 1) {
        notes[0].second = std::max(notes[0].second, (t.duration_s - 0.5) * rng.uniform(0.7, 1.0));
        span = notes[0].second;
    }
    t.onset_s = std::round(rng.uniform(0.2, t.duration_s - span - 0.25) * 1000) / 1000;
    t.offset_s = t.onset_s + span;
    audio_f32 & a = out->audio;
    a.sample_rate = p.audio_rate;
    a.channels = 1;
    a.samples.assign((size_t)std::lround(t.duration_s * p.audio_rate), 0.0f);
    double f = pitch_hz(t.pitch);
    for (const auto & nt : notes) {
        double t0 = t.onset_s + nt.first, d = nt.second;
        switch (t.pattern) {
            case PATTERN_CHIRP_UP:
                add_note(&a, t.timbre, t0, d, f / std::sqrt(2.0), f * std::sqrt(2.0), 0.5);
                break;
            case PATTERN_CHIRP_DOWN:
                add_note(&a, t.timbre, t0, d, f * std::sqrt(2.0), f / std::sqrt(2.0), 0.5);
                break;
            case PATTERN_CHORD:
                add_note(&a, TIMBRE_SINE, t0, d, f, f, 0.25);
                add_note(&a, TIMBRE_SINE, t0, d, f * 1.25, f * 1.25, 0.25);
                add_note(&a, TIMBRE_SINE, t0, d, f * 1.5, f * 1.5, 0.25);
                break;
            case PATTERN_NOISE: {
                int i0 = (int)std::lround(t0 * a.sample_rate), n = (int)std::lround(d * a.sample_rate);
                double fade = 0.005 * a.sample_rate;
                for (int i = 0; i < n && i0 + i < (int)a.samples.size(); ++i) {
                    double env = std::min(1.0, std::min((i + 1) / fade, (n - i) / fade));
                    a.samples[i0 + i] += (float)(0.4 * env * rng.uniform(-1.0, 1.0));
                }
                break;
            }
            default:
                add_note(&a, t.timbre, t0, d, f, f, 0.5);
                break;
        }
    }
    // A faint room hiss so that silence is not digital zero.
    for (float & s : a.samples) s += (float)(0.002 * rng.uniform(-1.0, 1.0));
    out->captions = caption_audio(t, rng.next(), p.n_captions);
}

// ---- video ---------------------------------------------------------------------------------------------------

void world_make_video(uint64_t seed, uint64_t index, const world_params & p, video_item * out) {
    world_rng rng(seed_mix(seed, KIND_VIDEO * 4 + p.split, index));
    *out = video_item();
    video_truth & t = out->truth;
    const int S = p.video_size, N = p.video_frames;
    t.motion = rng.below(MOTION_COUNT);
    for (;;) {
        pick_shape_colour(rng, p.split, p.split == SPLIT_TEST, &t.shape, &t.colour);
        // A circle or ring looks the same at every angle: rotation needs a shape with corners.
        if (t.motion == MOTION_ROTATE && (t.shape == SHAPE_CIRCLE || t.shape == SHAPE_RING)) continue;
        break;
    }
    t.size = rng.below(SIZE_COUNT);
    t.colour_to = t.colour;
    if (t.motion == MOTION_RECOLOUR)
        while (t.colour_to == t.colour) t.colour_to = rng.below(COLOUR_COUNT);
    t.background = p.textured ? rng.below(BG_COUNT) : BG_PLAIN;
    t.bg_level = rng.range(95, 150);
    image_u8 bg;
    new_rgb(&bg, S, S);
    fill_background(&bg, t.background, t.bg_level, rng);  // static background: noise is drawn once
    double half = size_half_extent(t.size, S);
    double jx = rng.range(-2, 2), jy = rng.range(-2, 2);
    video_u8 & v = out->video;
    v.width = v.height = S;
    v.fps = p.video_fps;
    for (int f = 0; f < N; ++f) {
        double a = (double)f / (N - 1);
        double cx = S / 2.0 + jx, cy = S / 2.0 + jy, h = half, angle = 0;
        int colour = t.colour;
        double from = S * 0.25, to = S * 0.75;
        switch (t.motion) {
            case MOTION_LEFT:
                cx = to + (from - to) * a;
                break;
            case MOTION_RIGHT:
                cx = from + (to - from) * a;
                break;
            case MOTION_UP:
                cy = to + (from - to) * a;
                break;
            case MOTION_DOWN:
                cy = from + (to - from) * a;
                break;
            case MOTION_GROW:
                h = S * (0.06 + 0.14 * a);
                break;
            case MOTION_SHRINK:
                h = S * (0.20 - 0.14 * a);
                break;
            case MOTION_RECOLOUR:
                colour = f < N / 2 ? t.colour : t.colour_to;
                break;
            case MOTION_ROTATE:
                angle = a * M_PI / 2;
                break;
        }
        image_u8 img = bg;
        uint8_t rgb[3];
        colour_rgb(colour, rgb);
        world_draw_shape(&img, nullptr, 0, t.shape, rgb, std::round(cx), std::round(cy), std::round(h), angle);
        v.frames.push_back(std::move(img));
    }
    out->captions = caption_video(t, rng.next(), p.n_captions);
}

// ---- truth JSON ----------------------------------------------------------------------------------------------

nlohmann::json image_truth_json(const image_truth & t) {
    nlohmann::json objs = nlohmann::json::array();
    for (const auto & o : t.objects)
        objs.push_back({{"shape", shape_name(o.shape)},
                        {"colour", colour_name(o.colour)},
                        {"size", size_name(o.size)},
                        {"position", position_name(o.position)},
                        {"center", {o.cx, o.cy}},
                        {"box", {o.box.x0, o.box.y0, o.box.x1, o.box.y1}}});
    return {{"image_size", {t.width, t.height}},
            {"background", background_name(t.background)},
            {"bg_level", t.bg_level},
            {"objects", objs}};
}

nlohmann::json audio_truth_json(const audio_truth & t) {
    return {{"pattern", pattern_name(t.pattern)},
            {"pitch", t.pitch < 0 ? "none" : pitch_name(t.pitch)},
            {"pitch_hz", pitch_hz(t.pitch)},
            {"timbre", t.timbre < 0 ? "none" : timbre_name(t.timbre)},
            {"count", t.count},
            {"duration_s", t.duration_s},
            {"onset_s", t.onset_s},
            {"offset_s", t.offset_s}};
}

nlohmann::json video_truth_json(const video_truth & t) {
    return {{"shape", shape_name(t.shape)},
            {"colour", colour_name(t.colour)},
            {"colour_to", colour_name(t.colour_to)},
            {"size", size_name(t.size)},
            {"motion", motion_name(t.motion)},
            {"background", background_name(t.background)},
            {"bg_level", t.bg_level}};
}

}  // namespace spider
