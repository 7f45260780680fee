// ToyWorld judges: image (palette classification, connected components, shape templates), audio (envelope
// segmentation, FFT pitch / harmonic analysis), video (per-frame main object tracking), plus scoring against the
// claimed truth, consistency checks and text claim parsing. Thresholds are fixed constants chosen with margin from
// the generator's geometry (documented in docs/WORLD.md).
#include "world/judges.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>

namespace spider {

// ---- shared pixel analysis -----------------------------------------------------------------------------------

namespace {

constexpr int CLASS_BG = -1, CLASS_UNEXPLAINED = -2;

// Palette colour within distance 70 -> its index; grey-ish -> background; anything else unexplained.
int classify_pixel(const uint8_t * p) {
    int best = -1, best_d = 70 * 70;
    for (int c = 0; c < COLOUR_COUNT; ++c) {
        uint8_t rgb[3];
        colour_rgb(c, rgb);
        int d = 0;
        for (int k = 0; k < 3; ++k) d += (p[k] - rgb[k]) * (p[k] - rgb[k]);
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    if (best >= 0) return best;
    int mx = std::max(p[0], std::max(p[1], p[2])), mn = std::min(p[0], std::min(p[1], p[2]));
    return mx - mn <= 36 ? CLASS_BG : CLASS_UNEXPLAINED;
}

int nearest_palette(const uint8_t * p) {
    int best = 0, best_d = 1 << 30;
    for (int c = 0; c < COLOUR_COUNT; ++c) {
        uint8_t rgb[3];
        colour_rgb(c, rgb);
        int d = 0;
        for (int k = 0; k < 3; ++k) d += (p[k] - rgb[k]) * (p[k] - rgb[k]);
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    return best;
}

struct component {
    int colour, area;
    world_box box;
    double sx = 0, sy = 0;
    std::vector<int> pixels;
};

struct frame_analysis {
    bool ok = false;
    std::string reason;
    std::vector<component> comps;  // objects (area >= min_area)
};

frame_analysis analyse_frame(const image_u8 & img) {
    frame_analysis fa;
    const int W = img.width, H = img.height, C = img.channels;
    const int N = W * H;
    std::vector<int> cls(N);
    int unexplained = 0;
    for (int i = 0; i < N; ++i) {
        cls[i] = classify_pixel(&img.pixels[(size_t)i * C]);
        if (cls[i] == CLASS_UNEXPLAINED) ++unexplained;
    }
    if (unexplained > N / 10) {
        fa.reason = "too many pixels match neither an object colour nor a grey background (" +
                    std::to_string(100 * unexplained / N) + "%)";
        return fa;
    }
    // 4-connected components per colour class.
    std::vector<uint8_t> seen(N, 0);
    std::vector<int> stack;
    const int min_area = std::max(6, N / 700);  // a small triangle at 64x64 has ~40 pixels
    int speckle = 0;
    for (int i = 0; i < N; ++i) {
        if (cls[i] < 0 || seen[i]) continue;
        component c;
        c.colour = cls[i];
        c.box = {W, H, -1, -1};
        stack.assign(1, i);
        seen[i] = 1;
        while (!stack.empty()) {
            int q = stack.back();
            stack.pop_back();
            c.pixels.push_back(q);
            int x = q % W, y = q / W;
            c.sx += x;
            c.sy += y;
            c.box.x0 = std::min(c.box.x0, x);
            c.box.x1 = std::max(c.box.x1, x);
            c.box.y0 = std::min(c.box.y0, y);
            c.box.y1 = std::max(c.box.y1, y);
            const int nb[4] = {x > 0 ? q - 1 : -1, x < W - 1 ? q + 1 : -1, y > 0 ? q - W : -1, y < H - 1 ? q + W : -1};
            for (int n : nb)
                if (n >= 0 && !seen[n] && cls[n] == c.colour) {
                    seen[n] = 1;
                    stack.push_back(n);
                }
        }
        c.area = (int)c.pixels.size();
        if (c.area < min_area) {
            speckle += c.area;
            continue;
        }
        fa.comps.push_back(std::move(c));
    }
    // Lossy codecs (4:2:0 chroma) smear object edges into colours that match neither the palette nor grey. Such
    // unexplained pixels touching an object join it when their nearest palette colour is the object's.
    for (auto & c : fa.comps) {
        std::vector<int> add;
        for (int q : c.pixels) {
            int x = q % W, y = q / W;
            const int nb[4] = {x > 0 ? q - 1 : -1, x < W - 1 ? q + 1 : -1, y > 0 ? q - W : -1, y < H - 1 ? q + W : -1};
            for (int n : nb)
                if (n >= 0 && cls[n] == CLASS_UNEXPLAINED && nearest_palette(&img.pixels[(size_t)n * C]) == c.colour) {
                    cls[n] = c.colour;
                    add.push_back(n);
                }
        }
        for (int q : add) {
            int x = q % W, y = q / W;
            c.pixels.push_back(q);
            c.sx += x;
            c.sy += y;
            c.box.x0 = std::min(c.box.x0, x);
            c.box.x1 = std::max(c.box.x1, x);
            c.box.y0 = std::min(c.box.y0, y);
            c.box.y1 = std::max(c.box.y1, y);
        }
        c.area = (int)c.pixels.size();
    }
    if (speckle > N / 50) {
        fa.reason = "scattered coloured specks instead of solid objects (" + std::to_string(speckle) + " pixels)";
        return fa;
    }
    fa.ok = true;
    return fa;
}

// Best shape template in the component's box; returns the IoU through *iou.
int match_shape(const component & c, int W, double * iou_out) {
    int bw = c.box.x1 - c.box.x0 + 1, bh = c.box.y1 - c.box.y0 + 1;
    double half = (std::max(bw, bh) - 1) / 2.0;
    double cx = (c.box.x0 + c.box.x1) / 2.0, cy = (c.box.y0 + c.box.y1) / 2.0;
    std::vector<uint8_t> in(bw * bh, 0);
    for (int q : c.pixels) in[(q / W - c.box.y0) * bw + (q % W - c.box.x0)] = 1;
    int best = -1;
    double best_iou = 0;
    for (int s = 0; s < SHAPE_COUNT; ++s) {
        int inter = 0, uni = 0;
        // The template may extend past the box by rounding; count a one-pixel margin.
        for (int y = c.box.y0 - 1; y <= c.box.y1 + 1; ++y)
            for (int x = c.box.x0 - 1; x <= c.box.x1 + 1; ++x) {
                bool t = world_shape_contains(s, cx, cy, half, 0.0, x, y);
                bool m = x >= c.box.x0 && x <= c.box.x1 && y >= c.box.y0 && y <= c.box.y1 &&
                         in[(y - c.box.y0) * bw + (x - c.box.x0)];
                inter += t && m;
                uni += t || m;
            }
        double iou = uni ? (double)inter / uni : 0;
        if (iou > best_iou) {
            best_iou = iou;
            best = s;
        }
    }
    *iou_out = best_iou;
    return best_iou >= 0.6 ? best : -1;
}

int size_from_box(const world_box & b, int img) {
    double half = (std::max(b.x1 - b.x0, b.y1 - b.y0)) / 2.0;
    int best = -1;
    double best_d = 1e9;
    for (int s = 0; s < SIZE_COUNT; ++s) {
        double d = std::fabs(half - size_half_extent(s, img));
        if (d < best_d) {
            best_d = d;
            best = s;
        }
    }
    return best_d <= 1.01 ? best : -1;
}

int position_from_center(double cx, double cy, int W, int H) {
    int col = std::min(2, std::max(0, (int)(cx / (W / 3.0))));
    int row = std::min(2, std::max(0, (int)(cy / (H / 3.0))));
    return row * 3 + col;
}

detected_object to_object(const component & c, int W, int H) {
    detected_object o;
    o.colour = c.colour;
    o.box = c.box;
    o.area = c.area;
    o.cx = c.sx / c.area;
    o.cy = c.sy / c.area;
    o.shape = match_shape(c, W, &o.shape_iou);
    o.size = size_from_box(c.box, std::min(W, H));
    o.position = position_from_center((c.box.x0 + c.box.x1) / 2.0, (c.box.y0 + c.box.y1) / 2.0, W, H);
    o.mask.assign((size_t)W * H, 0);
    for (int q : c.pixels) o.mask[q] = 1;
    return o;
}

bool check_image_arg(const image_u8 & img, std::string * err) {
    if (img.width < 16 || img.height < 16 || (img.channels != 3 && img.channels != 4) ||
        img.pixels.size() != (size_t)img.width * img.height * img.channels) {
        if (err) *err = "judge: image must be RGB or RGBA, at least 16x16, with a matching pixel buffer";
        return false;
    }
    return true;
}

}  // namespace

bool judge_image(const image_u8 & img, image_judgement * out, std::string * err) {
    if (!check_image_arg(img, err)) return false;
    *out = image_judgement();
    out->width = img.width;
    out->height = img.height;
    frame_analysis fa = analyse_frame(img);
    if (!fa.ok) {
        out->reason = fa.reason;
        return true;
    }
    for (const auto & c : fa.comps) out->objects.push_back(to_object(c, img.width, img.height));
    std::sort(out->objects.begin(), out->objects.end(), [](const detected_object & a, const detected_object & b) {
        return a.box.y0 != b.box.y0 ? a.box.y0 < b.box.y0 : a.box.x0 < b.box.x0;
    });
    if (out->objects.size() > 12) {
        out->reason = "too many separate objects (" + std::to_string(out->objects.size()) + ")";
        out->objects.clear();
        return true;
    }
    out->judgeable = true;
    return true;
}

double box_iou(const world_box & a, const world_box & b) {
    int ix = std::min(a.x1, b.x1) - std::max(a.x0, b.x0) + 1, iy = std::min(a.y1, b.y1) - std::max(a.y0, b.y0) + 1;
    double inter = (ix > 0 && iy > 0) ? (double)ix * iy : 0;
    double aa = (double)(a.x1 - a.x0 + 1) * (a.y1 - a.y0 + 1), bb = (double)(b.x1 - b.x0 + 1) * (b.y1 - b.y0 + 1);
    double uni = aa + bb - inter;
    return uni > 0 ? inter / uni : 0;
}

double mask_iou(const std::vector<uint8_t> & a, const std::vector<uint8_t> & b) {
    if (a.size() != b.size()) return 0;
    int64_t inter = 0, uni = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        inter += a[i] && b[i];
        uni += a[i] || b[i];
    }
    return uni ? (double)inter / uni : 0;
}

// ---- tallies -------------------------------------------------------------------------------------------------

double judge_tally::rate(const std::string & attr) const {
    auto it = counts.find(attr);
    if (it == counts.end() || it->second.second == 0) return 1.0;
    return (double)it->second.first / it->second.second;
}

void judge_tally::merge(const judge_tally & o) {
    for (const auto & kv : o.counts) {
        counts[kv.first].first += kv.second.first;
        counts[kv.first].second += kv.second.second;
    }
}

std::string judge_tally::to_string() const {
    std::string s;
    char buf[160];
    for (const auto & kv : counts) {
        std::snprintf(buf, sizeof(buf), "%-12s %7lld / %-7lld %.4f\n", kv.first.c_str(), (long long)kv.second.first,
                      (long long)kv.second.second, rate(kv.first));
        s += buf;
    }
    return s;
}

void judge_check_image(const image_judgement & j, const image_truth & claimed, const std::vector<uint8_t> & labels,
                       judge_tally * t) {
    t->add("judgeable", j.judgeable);
    t->add("count", j.judgeable && j.objects.size() == claimed.objects.size());
    const int W = j.width, H = j.height;
    bool have_labels = !labels.empty() && labels.size() == (size_t)W * H;
    std::vector<bool> used(j.objects.size(), false);
    for (size_t i = 0; i < claimed.objects.size(); ++i) {
        const world_object & o = claimed.objects[i];
        // Match by box IoU: the claim's box is where the object should be.
        int best = -1;
        double best_iou = 0.3;
        for (size_t k = 0; k < j.objects.size(); ++k) {
            if (used[k]) continue;
            double iou = box_iou(j.objects[k].box, o.box);
            if (iou > best_iou) {
                best_iou = iou;
                best = (int)k;
            }
        }
        if (best < 0) {
            for (const char * a : {"shape", "colour", "size", "position", "box"}) t->add(a, false);
            if (have_labels) t->add("mask", false);
            continue;
        }
        used[best] = true;
        const detected_object & d = j.objects[best];
        t->add("shape", d.shape == o.shape);
        t->add("colour", d.colour == o.colour);
        t->add("size", d.size == o.size);
        t->add("position", d.position == o.position);
        t->add("box", best_iou >= 0.9);
        if (have_labels) {
            std::vector<uint8_t> gt(labels.size());
            for (size_t p = 0; p < labels.size(); ++p) gt[p] = labels[p] == i + 1;
            t->add("mask", mask_iou(gt, d.mask) >= 0.9);
        }
    }
}

bool judge_image_matches(const image_judgement & j, const image_truth & claimed, const std::vector<uint8_t> & labels) {
    judge_tally t;
    judge_check_image(j, claimed, labels, &t);
    for (const auto & kv : t.counts)
        if (kv.second.first != kv.second.second) return false;
    return true;
}

// ---- audio ---------------------------------------------------------------------------------------------------

namespace {

void fft(std::vector<std::complex<double>> & a) {
    const size_t n = a.size();
    for (size_t i = 1, j = 0; i < n; ++i) {
        size_t bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) std::swap(a[i], a[j]);
    }
    for (size_t len = 2; len <= n; len <<= 1) {
        double ang = -2 * M_PI / len;
        std::complex<double> wl(std::cos(ang), std::sin(ang));
        for (size_t i = 0; i < n; i += len) {
            std::complex<double> w(1);
            for (size_t k = 0; k < len / 2; ++k) {
                std::complex<double> u = a[i + k], v = a[i + k + len / 2] * w;
                a[i + k] = u + v;
                a[i + k + len / 2] = u - v;
                w *= wl;
            }
        }
    }
}

// Power spectrum of samples [i0, i1) (centre part up to max_len, Hann window, zero-padded to nfft).
std::vector<double> power_spectrum(const std::vector<float> & x, int i0, int i1, int max_len, int nfft) {
    int len = std::min(i1 - i0, max_len);
    int start = i0 + (i1 - i0 - len) / 2;
    std::vector<std::complex<double>> buf(nfft, 0.0);
    for (int i = 0; i < len; ++i) {
        double w = 0.5 - 0.5 * std::cos(2 * M_PI * (i + 0.5) / len);
        buf[i] = x[start + i] * w;
    }
    fft(buf);
    std::vector<double> p(nfft / 2);
    for (int k = 0; k < nfft / 2; ++k) p[k] = std::norm(buf[k]);
    return p;
}

double band_energy(const std::vector<double> & p, double f_lo, double f_hi, double bin_hz) {
    int k0 = std::max(1, (int)(f_lo / bin_hz)), k1 = std::min((int)p.size() - 1, (int)(f_hi / bin_hz));
    double s = 0;
    for (int k = k0; k <= k1; ++k) s += p[k];
    return s;
}

// Significant spectral peaks (local maxima above frac * max) between 80 Hz and 5 kHz, ascending in frequency,
// with parabolic interpolation.
std::vector<double> spectral_peaks(const std::vector<double> & p, double bin_hz, double frac) {
    int k0 = (int)(80 / bin_hz), k1 = std::min((int)p.size() - 2, (int)(5000 / bin_hz));
    double mx = 0;
    for (int k = k0; k <= k1; ++k) mx = std::max(mx, p[k]);
    std::vector<double> peaks;
    if (mx <= 0) return peaks;
    for (int k = std::max(k0, 1); k <= k1; ++k) {
        if (p[k] < frac * mx || p[k] < p[k - 1] || p[k] < p[k + 1]) continue;
        double a = std::log(p[k - 1] + 1e-30), b = std::log(p[k] + 1e-30), c = std::log(p[k + 1] + 1e-30);
        double den = a - 2 * b + c, off = den != 0 ? 0.5 * (a - c) / den : 0;
        peaks.push_back((k + std::max(-0.5, std::min(0.5, off))) * bin_hz);
    }
    return peaks;
}

// Fundamental of a harmonic or chord spectrum: the lowest significant peak.
double fundamental(const std::vector<double> & p, double bin_hz) {
    auto pk = spectral_peaks(p, bin_hz, 0.2);
    return pk.empty() ? 0 : pk[0];
}

int nearest_pitch(double f) {
    if (f <= 0) return -1;
    int best = -1;
    double best_d = 0.25;  // octaves: half the distance between pitch classes
    for (int q = 0; q < PITCH_COUNT; ++q) {
        double d = std::fabs(std::log2(f / pitch_hz(q)));
        if (d < best_d) {
            best_d = d;
            best = q;
        }
    }
    return best;
}

int timbre_from_spectrum(const std::vector<double> & p, double f0, double bin_hz) {
    double e1 = band_energy(p, f0 * 0.9, f0 * 1.1, bin_hz);
    if (e1 <= 0) return -1;
    double r2 = band_energy(p, f0 * 1.85, f0 * 2.15, bin_hz) / e1;
    double r3 = band_energy(p, f0 * 2.8, f0 * 3.2, bin_hz) / e1;
    if (r3 < 0.03 && r2 < 0.03) return TIMBRE_SINE;
    if (r2 > 0.08) return TIMBRE_SAW;
    if (r3 > 0.05) return TIMBRE_SQUARE;
    return -1;
}

}  // namespace

bool judge_audio(const audio_f32 & a, audio_judgement * out, std::string * err) {
    if (a.channels < 1 || a.sample_rate < 8000 || a.sample_rate > 192000 || a.samples.size() % a.channels) {
        if (err) *err = "judge: audio needs >= 1 channel, a sample rate of 8..192 kHz and whole frames";
        return false;
    }
    *out = audio_judgement();
    const int rate = a.sample_rate;
    std::vector<float> x(a.samples.size() / a.channels);
    for (size_t i = 0; i < x.size(); ++i) {
        double s = 0;
        for (int c = 0; c < a.channels; ++c) s += a.samples[i * a.channels + c];
        x[i] = (float)(s / a.channels);
    }
    for (float v : x)
        if (!std::isfinite(v)) {
            out->reason = "non-finite samples";
            return true;
        }
    const int hop = rate / 100;  // 10 ms frames
    const int nfr = (int)(x.size() / hop);
    if (nfr < 25) {
        out->reason = "clip shorter than 0.25 s";
        return true;
    }
    std::vector<double> rms(nfr);
    for (int f = 0; f < nfr; ++f) {
        double s = 0;
        for (int i = 0; i < hop; ++i) s += (double)x[f * hop + i] * x[f * hop + i];
        rms[f] = std::sqrt(s / hop);
    }
    std::vector<double> sorted = rms;
    std::sort(sorted.begin(), sorted.end());
    double mx = sorted.back(), floor_ = sorted[nfr / 10];
    if (mx < 0.01) {
        out->reason = "silence";
        return true;
    }
    if (floor_ > 0.2 * mx) {
        out->reason = "no quiet background: continuous noise or sound without onsets";
        return true;
    }
    double thr = std::max(0.12 * mx, 4 * floor_);
    // Active runs, merging gaps under 40 ms and dropping runs under 30 ms.
    std::vector<std::pair<int, int>> seg;
    for (int f = 0; f < nfr;) {
        if (rms[f] < thr) {
            ++f;
            continue;
        }
        int g = f;
        while (g < nfr && rms[g] >= thr) ++g;
        if (!seg.empty() && f - seg.back().second < 4)
            seg.back().second = g;
        else
            seg.push_back({f, g});
        f = g;
    }
    seg.erase(
        std::remove_if(seg.begin(), seg.end(), [](const std::pair<int, int> & s) { return s.second - s.first < 3; }),
        seg.end());
    if (seg.empty()) {
        out->reason = "no sound event found";
        return true;
    }
    if (seg.size() > 12) {
        out->reason = "too many separate events (" + std::to_string(seg.size()) + ")";
        return true;
    }
    out->count = (int)seg.size();
    out->onset_s = seg.front().first * 0.01;
    out->offset_s = seg.back().second * 0.01;
    const int nfft = 16384;
    const double bin_hz = (double)rate / nfft;
    if (seg.size() >= 2) {
        int dmin = 1 << 30, dmax = 0;
        for (auto & s : seg) {
            dmin = std::min(dmin, s.second - s.first);
            dmax = std::max(dmax, s.second - s.first);
        }
        out->pattern = dmax > 1.8 * dmin ? PATTERN_RHYTHM : PATTERN_BEEPS;
        // Pitch and timbre from the longest event.
        auto longest = *std::max_element(seg.begin(), seg.end(),
                                         [](auto & p, auto & q) { return p.second - p.first < q.second - q.first; });
        int i0 = longest.first * hop + hop * 2, i1 = longest.second * hop - hop * 2;
        if (i1 - i0 < hop * 3) {
            i0 = longest.first * hop;
            i1 = longest.second * hop;
        }
        auto p = power_spectrum(x, i0, i1, 8192, nfft);
        out->f0_hz = fundamental(p, bin_hz);
        out->pitch = nearest_pitch(out->f0_hz);
        out->timbre = timbre_from_spectrum(p, out->f0_hz, bin_hz);
        out->judgeable = true;
        return true;
    }
    // One event: noise, chord, chirp or tone.
    int i0 = seg[0].first * hop + hop * 2, i1 = seg[0].second * hop - hop * 2;
    if (i1 - i0 < 2048) {
        out->reason = "event too short to analyse";
        return true;
    }
    auto whole = power_spectrum(x, i0, i1, 8192, nfft);
    // Spectral flatness over 100 Hz .. 6 kHz.
    {
        int k0 = (int)(100 / bin_hz), k1 = std::min((int)whole.size() - 1, (int)(6000 / bin_hz));
        double lg = 0, ar = 0;
        for (int k = k0; k <= k1; ++k) {
            lg += std::log(whole[k] + 1e-20);
            ar += whole[k];
        }
        int n = k1 - k0 + 1;
        double flat = std::exp(lg / n) / (ar / n + 1e-30);
        if (flat > 0.2) {
            out->pattern = PATTERN_NOISE;
            out->judgeable = true;
            return true;
        }
    }
    // Pitch track on 64 ms windows: a glide shows as a slope of log2(f) over time.
    const int win = 1024, step = 512;
    std::vector<double> ts, lf;
    for (int s = i0; s + win <= i1; s += step) {
        auto p = power_spectrum(x, s, s + win, win, 8192);
        double f = fundamental(p, (double)rate / 8192);
        if (f > 0) {
            ts.push_back((s + win / 2.0) / rate);
            lf.push_back(std::log2(f));
        }
    }
    double slope = 0, mid_lf = 0;
    if (ts.size() >= 3) {
        double mt = 0, ml = 0;
        for (size_t i = 0; i < ts.size(); ++i) {
            mt += ts[i];
            ml += lf[i];
        }
        mt /= ts.size();
        ml /= ts.size();
        double sxy = 0, sxx = 0;
        for (size_t i = 0; i < ts.size(); ++i) {
            sxy += (ts[i] - mt) * (lf[i] - ml);
            sxx += (ts[i] - mt) * (ts[i] - mt);
        }
        slope = sxx > 0 ? sxy / sxx : 0;
        double tmid = 0.5 * (i0 + i1) / rate;
        mid_lf = ml + slope * (tmid - mt);
    }
    double glide = slope * (double)(i1 - i0) / rate;  // octaves over the analysed span
    if (std::fabs(glide) > 0.4) {
        out->pattern = glide > 0 ? PATTERN_CHIRP_UP : PATTERN_CHIRP_DOWN;
        out->f0_hz = std::pow(2.0, mid_lf);
        out->pitch = nearest_pitch(out->f0_hz);
        // Timbre from the middle window, where the glide is at the centre pitch.
        int c = (i0 + i1) / 2;
        auto p = power_spectrum(x, c - win / 2, c + win / 2, win, 8192);
        out->timbre = timbre_from_spectrum(p, fundamental(p, (double)rate / 8192), (double)rate / 8192);
        out->judgeable = true;
        return true;
    }
    double f0 = fundamental(whole, bin_hz);
    auto peaks = spectral_peaks(whole, bin_hz, 0.2);
    int inside = 0;
    for (double f : peaks)
        if (f > f0 * 1.1 && f < f0 * 1.9) ++inside;
    out->f0_hz = f0;
    out->pitch = nearest_pitch(f0);
    if (inside >= 2) {
        out->pattern = PATTERN_CHORD;
        out->timbre = TIMBRE_SINE;
    } else {
        out->pattern = PATTERN_TONE;
        out->timbre = timbre_from_spectrum(whole, f0, bin_hz);
    }
    out->judgeable = true;
    return true;
}

void judge_check_audio(const audio_judgement & j, const audio_truth & c, judge_tally * t) {
    t->add("judgeable", j.judgeable);
    t->add("pattern", j.judgeable && j.pattern == c.pattern);
    if (c.pattern != PATTERN_NOISE) {
        t->add("pitch", j.judgeable && j.pitch == c.pitch);
        t->add("timbre", j.judgeable && j.timbre == c.timbre);
    }
    t->add("count", j.judgeable && j.count == c.count);
    t->add("onset",
           j.judgeable && std::fabs(j.onset_s - c.onset_s) < 0.05 && std::fabs(j.offset_s - c.offset_s) < 0.05);
}

bool judge_audio_matches(const audio_judgement & j, const audio_truth & c) {
    judge_tally t;
    judge_check_audio(j, c, &t);
    for (const auto & kv : t.counts)
        if (kv.second.first != kv.second.second) return false;
    return true;
}

// ---- video ---------------------------------------------------------------------------------------------------

bool judge_video(const video_u8 & v, video_judgement * out, std::string * err) {
    if (v.frames.size() < 2) {
        if (err) *err = "judge: video needs at least 2 frames";
        return false;
    }
    for (const auto & f : v.frames)
        if (!check_image_arg(f, err) || f.width != v.frames[0].width || f.height != v.frames[0].height) {
            if (err) *err = "judge: every video frame must be an RGB(A) image of the same size, at least 16x16";
            return false;
        }
    *out = video_judgement();
    const int W = v.frames[0].width, H = v.frames[0].height, N = (int)v.frames.size();
    std::vector<component> main(N);
    for (int f = 0; f < N; ++f) {
        frame_analysis fa = analyse_frame(v.frames[f]);
        if (!fa.ok) {
            out->reason = "frame " + std::to_string(f) + ": " + fa.reason;
            return true;
        }
        if (fa.comps.empty()) {
            out->reason = "frame " + std::to_string(f) + ": no object";
            return true;
        }
        main[f] = *std::max_element(fa.comps.begin(), fa.comps.end(),
                                    [](const component & a, const component & b) { return a.area < b.area; });
    }
    const component & a = main[0];
    const component & z = main[N - 1];
    detected_object first = to_object(a, W, H);
    out->shape = first.shape;
    out->colour = a.colour;
    out->colour_to = z.colour;
    double dx = z.sx / z.area - a.sx / a.area, dy = z.sy / z.area - a.sy / a.area;
    double ratio = (double)z.area / a.area;
    const double move = 0.15 * std::min(W, H);
    if (a.colour != z.colour) {
        out->motion = MOTION_RECOLOUR;
    } else if (std::max(std::fabs(dx), std::fabs(dy)) > move) {
        if (std::fabs(dx) >= std::fabs(dy))
            out->motion = dx < 0 ? MOTION_LEFT : MOTION_RIGHT;
        else
            out->motion = dy < 0 ? MOTION_UP : MOTION_DOWN;
    } else if (ratio > 1.8) {
        out->motion = MOTION_GROW;
    } else if (ratio < 1 / 1.8) {
        out->motion = MOTION_SHRINK;
    } else {
        // Rotation: the silhouette, re-centred, stops overlapping the first frame's.
        double min_iou = 1;
        for (int f = 1; f < N; ++f) {
            const component & b = main[f];
            int sx = (int)std::lround(b.sx / b.area - a.sx / a.area),
                sy = (int)std::lround(b.sy / b.area - a.sy / a.area);
            std::vector<uint8_t> ma((size_t)W * H, 0), mb((size_t)W * H, 0);
            for (int q : a.pixels) ma[q] = 1;
            for (int q : b.pixels) {
                int x = q % W - sx, y = q / W - sy;
                if (x >= 0 && x < W && y >= 0 && y < H) mb[(size_t)y * W + x] = 1;
            }
            min_iou = std::min(min_iou, mask_iou(ma, mb));
        }
        if (min_iou < 0.85) out->motion = MOTION_ROTATE;
    }
    if (out->motion < 0) {
        out->reason = "no motion detected";
        return true;
    }
    if (out->motion != MOTION_GROW && out->motion != MOTION_SHRINK) out->size = first.size;
    out->judgeable = true;
    return true;
}

void judge_check_video(const video_judgement & j, const video_truth & c, judge_tally * t) {
    t->add("judgeable", j.judgeable);
    t->add("motion", j.judgeable && j.motion == c.motion);
    t->add("shape", j.judgeable && j.shape == c.shape);
    t->add("colour", j.judgeable && j.colour == c.colour && j.colour_to == c.colour_to);
    if (c.motion != MOTION_GROW && c.motion != MOTION_SHRINK) t->add("size", j.judgeable && j.size == c.size);
}

bool judge_video_matches(const video_judgement & j, const video_truth & c) {
    judge_tally t;
    judge_check_video(j, c, &t);
    for (const auto & kv : t.counts)
        if (kv.second.first != kv.second.second) return false;
    return true;
}

// ---- consistency ---------------------------------------------------------------------------------------------

bool judge_consistent_image_video(const image_judgement & img, const video_judgement & vid, std::string * why) {
    if (!img.judgeable || !vid.judgeable) {
        if (why) *why = "an item is not judgeable";
        return false;
    }
    for (const auto & o : img.objects)
        if (o.shape == vid.shape && o.colour == vid.colour) return true;
    if (why)
        *why = std::string("the video shows a ") + colour_name(vid.colour) + " " + shape_name(vid.shape) +
               " that the image does not contain";
    return false;
}

bool judge_consistent_images(const image_judgement & a, const image_judgement & b, std::string * why) {
    if (!a.judgeable || !b.judgeable) {
        if (why) *why = "an item is not judgeable";
        return false;
    }
    std::vector<std::pair<int, int>> sa, sb;
    for (const auto & o : a.objects) sa.push_back({o.shape, o.colour});
    for (const auto & o : b.objects) sb.push_back({o.shape, o.colour});
    std::sort(sa.begin(), sa.end());
    std::sort(sb.begin(), sb.end());
    if (sa != sb) {
        if (why) *why = "the images show different sets of objects";
        return false;
    }
    return true;
}

// ---- text claims ---------------------------------------------------------------------------------------------

text_claims parse_text_claims(const std::string & text) {
    std::string s = " ";
    for (char c : text)
        s += (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (std::isalnum((unsigned char)c) || c == '-') ? c : ' ';
    s += " ";
    auto has = [&](const char * w) { return s.find(std::string(" ") + w + " ") != std::string::npos; };
    text_claims t;
    for (int c = 0; c < COLOUR_COUNT; ++c)
        if (has(colour_name(c))) t.colours.push_back(c);
    static const std::vector<std::vector<const char *>> shapes = {
        {"circle", "disc", "dot"}, {"square", "block"}, {"triangle"},
        {"diamond", "rhombus"},    {"cross", "plus"},   {"ring", "hoop", "donut"}};
    for (int k = 0; k < SHAPE_COUNT; ++k)
        for (const char * w : shapes[k])
            if (has(w)) {
                t.shapes.push_back(k);
                break;
            }
    static const std::vector<std::vector<const char *>> motions = {{"left"},
                                                                   {"right"},
                                                                   {"up", "upward"},
                                                                   {"down", "downward"},
                                                                   {"grows", "growing", "bigger"},
                                                                   {"shrinks", "shrinking", "smaller"},
                                                                   {"turning", "turns", "changing"},
                                                                   {"rotating", "rotates"}};
    for (int k = 0; k < MOTION_COUNT; ++k)
        for (const char * w : motions[k])
            if (has(w)) {
                t.motions.push_back(k);
                break;
            }
    static const std::vector<std::vector<const char *>> patterns = {{"tone"},
                                                                    {"rising", "upward", "ascending"},
                                                                    {"falling", "downward", "descending"},
                                                                    {"beeps"},
                                                                    {"noise", "hiss"},
                                                                    {"chord"},
                                                                    {"rhythm"}};
    for (int k = 0; k < PATTERN_COUNT; ++k)
        for (const char * w : patterns[k])
            if (has(w)) {
                t.patterns.push_back(k);
                break;
            }
    static const char * pitches[] = {"low", "mid-low", "mid", "mid-high", "high"};
    for (int k = 0; k < PITCH_COUNT; ++k)
        if (has(pitches[k]) || s.find(std::string(" ") + pitches[k] + "-pitched ") != std::string::npos)
            t.pitches.push_back(k);
    return t;
}

}  // namespace spider
