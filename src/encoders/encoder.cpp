// Preprocessing (image, video frames, log-mel audio), the tiny built-in encoder and the input projector.
#include "encoders/encoder.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <random>

#include "core/ops.h"
#include "core/quants.h"
#include "io/gguf.h"

namespace spider {

static bool valid_image(const image_u8 & img, std::string * err) {
    if (img.width <= 0 || img.height <= 0 || (img.channels != 1 && img.channels != 3 && img.channels != 4) ||
        img.pixels.size() != static_cast<size_t>(img.width) * img.height * img.channels) {
        if (err) {
            *err = "[preprocess] bad image " + std::to_string(img.width) + "x" + std::to_string(img.height) + "x" +
                   std::to_string(img.channels) + " with " + std::to_string(img.pixels.size()) + " bytes";
        }
        return false;
    }
    return true;
}

// RGB value of pixel (x, y) channel c in [0, 1] (gray replicated, alpha ignored).
static float px(const image_u8 & img, int x, int y, int c) {
    const int ch = img.channels == 1 ? 0 : c;
    return img.pixels[(static_cast<size_t>(y) * img.width + x) * img.channels + ch] / 255.0f;
}

bool preprocess_image(const image_u8 & img, const image_prep_config & cfg, std::vector<float> * chw,
                      std::string * err) {
    if (!valid_image(img, err)) return false;
    if (cfg.size <= 0 || cfg.size > 4096) {
        if (err) *err = "[preprocess] bad target size " + std::to_string(cfg.size);
        return false;
    }
    const int S = cfg.size;
    // Shorter side -> S, keeping the aspect ratio; then a centre S x S crop of the resized image.
    const double scale = static_cast<double>(S) / std::min(img.width, img.height);
    const double rw = img.width * scale, rh = img.height * scale;
    const double off_x = (rw - S) / 2.0, off_y = (rh - S) / 2.0;
    // When shrinking, average over the footprint of the output pixel (box filter) to avoid aliasing.
    const int taps = std::max(1, static_cast<int>(std::ceil(1.0 / scale)));
    chw->assign(static_cast<size_t>(3) * S * S, 0.0f);
    for (int y = 0; y < S; ++y) {
        for (int x = 0; x < S; ++x) {
            float acc[3] = {0, 0, 0};
            for (int ty = 0; ty < taps; ++ty) {
                for (int tx = 0; tx < taps; ++tx) {
                    // source coordinate of this tap (half-pixel centres)
                    const double sx = (x + off_x + (tx + 0.5) / taps) / scale - 0.5;
                    const double sy = (y + off_y + (ty + 0.5) / taps) / scale - 0.5;
                    const double cx = std::clamp(sx, 0.0, img.width - 1.0), cy = std::clamp(sy, 0.0, img.height - 1.0);
                    const int x0 = static_cast<int>(std::floor(cx)), y0 = static_cast<int>(std::floor(cy));
                    const int x1 = std::min(x0 + 1, img.width - 1), y1 = std::min(y0 + 1, img.height - 1);
                    const float fx = static_cast<float>(cx - x0), fy = static_cast<float>(cy - y0);
                    for (int c = 0; c < 3; ++c) {
                        const float top = px(img, x0, y0, c) * (1 - fx) + px(img, x1, y0, c) * fx;
                        const float bot = px(img, x0, y1, c) * (1 - fx) + px(img, x1, y1, c) * fx;
                        acc[c] += top * (1 - fy) + bot * fy;
                    }
                }
            }
            for (int c = 0; c < 3; ++c) {
                const float v = acc[c] / (taps * taps);
                (*chw)[(static_cast<size_t>(c) * S + y) * S + x] = (v - cfg.mean[c]) / cfg.std[c];
            }
        }
    }
    return true;
}

bool sample_video_frames(const video_u8 & v, int n, std::vector<image_u8> * out, std::string * err) {
    if (v.frames.empty() || n <= 0) {
        if (err) *err = "[preprocess] video has no frames (or n = " + std::to_string(n) + ")";
        return false;
    }
    out->clear();
    const int nf = static_cast<int>(v.frames.size());
    for (int i = 0; i < n; ++i) {
        const int idx = n == 1 ? nf / 2 : static_cast<int>(std::lround(static_cast<double>(i) * (nf - 1) / (n - 1)));
        out->push_back(v.frames[std::clamp(idx, 0, nf - 1)]);
    }
    return true;
}

bool audio_to_mono(const audio_f32 & a, int rate, std::vector<float> * out, std::string * err) {
    if (a.channels <= 0 || a.sample_rate <= 0 || rate <= 0 || a.samples.size() % a.channels != 0) {
        if (err) {
            *err = "[preprocess] bad audio: " + std::to_string(a.channels) + " channel(s) at " +
                   std::to_string(a.sample_rate) + " Hz with " + std::to_string(a.samples.size()) + " samples";
        }
        return false;
    }
    const size_t n = a.samples.size() / a.channels;
    std::vector<float> mono(n);
    for (size_t i = 0; i < n; ++i) {
        float s = 0;
        for (int c = 0; c < a.channels; ++c) s += a.samples[i * a.channels + c];
        mono[i] = s / a.channels;
    }
    if (a.sample_rate == rate) {
        *out = std::move(mono);
        return true;
    }
    const size_t m = static_cast<size_t>(std::llround(static_cast<double>(n) * rate / a.sample_rate));
    out->assign(m, 0.0f);
    for (size_t i = 0; i < m && n > 0; ++i) {
        const double src = static_cast<double>(i) * a.sample_rate / rate;
        const size_t i0 = std::min(static_cast<size_t>(src), n - 1), i1 = std::min(i0 + 1, n - 1);
        const float f = static_cast<float>(src - i0);
        (*out)[i] = mono[i0] * (1 - f) + mono[i1] * f;
    }
    return true;
}

static double hz_to_mel(double f) {
    return 2595.0 * std::log10(1.0 + f / 700.0);
}
static double mel_to_hz(double m) {
    return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0);
}

bool log_mel(const std::vector<float> & mono, const mel_config & cfg, std::vector<float> * mel, int * n_frames,
             std::string * err) {
    if (cfg.n_fft <= 0 || cfg.hop <= 0 || cfg.n_mels <= 0 || cfg.n_fft > 65536 || cfg.f_max <= cfg.f_min ||
        cfg.f_max > cfg.sample_rate / 2.0f + 1e-3f) {
        if (err) *err = "[log_mel] bad configuration";
        return false;
    }
    if (mono.empty()) {
        if (err) *err = "[log_mel] empty audio";
        return false;
    }
    const int N = cfg.n_fft, n_bins = N / 2 + 1;
    const int nf = mono.size() < static_cast<size_t>(N) ? 1 : 1 + static_cast<int>((mono.size() - N) / cfg.hop);
    // HTK mel filterbank: triangles between n_mels + 2 points equally spaced in mel.
    std::vector<double> pts(cfg.n_mels + 2);
    const double m0 = hz_to_mel(cfg.f_min), m1 = hz_to_mel(cfg.f_max);
    for (int i = 0; i < cfg.n_mels + 2; ++i) pts[i] = mel_to_hz(m0 + (m1 - m0) * i / (cfg.n_mels + 1));
    std::vector<float> fb(static_cast<size_t>(cfg.n_mels) * n_bins, 0.0f);
    for (int m = 0; m < cfg.n_mels; ++m) {
        for (int k = 0; k < n_bins; ++k) {
            const double f = static_cast<double>(k) * cfg.sample_rate / N;
            const double up = (f - pts[m]) / (pts[m + 1] - pts[m]), down = (pts[m + 2] - f) / (pts[m + 2] - pts[m + 1]);
            fb[static_cast<size_t>(m) * n_bins + k] = static_cast<float>(std::max(0.0, std::min(up, down)));
        }
    }
    std::vector<double> win(N);
    for (int i = 0; i < N; ++i) win[i] = 0.5 - 0.5 * std::cos(2.0 * M_PI * i / N);  // periodic Hann
    // DFT by a precomputed twiddle table: n_fft = 400 is not a power of two and the clips are short.
    std::vector<std::complex<double>> tw(N);
    for (int i = 0; i < N; ++i) tw[i] = std::polar(1.0, -2.0 * M_PI * i / N);
    std::vector<double> frame(N), power(n_bins);
    mel->assign(static_cast<size_t>(cfg.n_mels) * nf, 0.0f);
    for (int t = 0; t < nf; ++t) {
        for (int i = 0; i < N; ++i) {
            const size_t s = static_cast<size_t>(t) * cfg.hop + i;
            frame[i] = (s < mono.size() ? mono[s] : 0.0f) * win[i];
        }
        for (int k = 0; k < n_bins; ++k) {
            std::complex<double> acc = 0;
            for (int i = 0; i < N; ++i) acc += frame[i] * tw[(static_cast<long>(k) * i) % N];
            power[k] = std::norm(acc);
        }
        for (int m = 0; m < cfg.n_mels; ++m) {
            double e = 0;
            for (int k = 0; k < n_bins; ++k) e += fb[static_cast<size_t>(m) * n_bins + k] * power[k];
            (*mel)[static_cast<size_t>(m) * nf + t] = static_cast<float>(std::log(e + 1e-6));
        }
    }
    *n_frames = nf;
    return true;
}

bool encoder::encode_video(const video_u8 & v, std::vector<float> * emb, std::string * err) {
    std::vector<image_u8> frames;
    if (!sample_video_frames(v, 10, &frames, err)) return false;
    std::vector<float> acc, e;
    for (const auto & f : frames) {
        if (!encode_image(f, &e, err)) return false;
        if (acc.empty()) acc.assign(e.size(), 0.0f);
        for (size_t i = 0; i < e.size(); ++i) acc[i] += e[i] / frames.size();
    }
    *emb = acc;
    return true;
}

namespace {

class builtin_encoder : public encoder {
public:
    builtin_encoder(int dim, uint64_t seed) : dim_(dim) {
        // features: image 3 x 4 x 4 pooled cells; audio 16 pooled mel bands x 4 time quarters
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        proj_img_.resize(static_cast<size_t>(dim) * k_img);
        proj_aud_.resize(static_cast<size_t>(dim) * k_aud);
        for (auto & v : proj_img_) v = nd(rng) / std::sqrt(static_cast<float>(k_img));
        for (auto & v : proj_aud_) v = nd(rng) / std::sqrt(static_cast<float>(k_aud));
    }
    int dim() const override { return dim_; }
    std::string name() const override { return "builtin-encoder"; }
    bool encode_image(const image_u8 & img, std::vector<float> * emb, std::string * err) override {
        image_prep_config cfg;
        cfg.size = 32;
        std::vector<float> chw;
        if (!preprocess_image(img, cfg, &chw, err)) return false;
        std::vector<float> f(k_img, 0.0f);
        for (int c = 0; c < 3; ++c)
            for (int y = 0; y < 32; ++y)
                for (int x = 0; x < 32; ++x) f[(c * 4 + y / 8) * 4 + x / 8] += chw[(c * 32 + y) * 32 + x] / 64.0f;
        apply(proj_img_, f, emb);
        return true;
    }
    bool encode_audio(const audio_f32 & a, std::vector<float> * emb, std::string * err) override {
        std::vector<float> mono, mel;
        mel_config cfg;
        int nf = 0;
        if (!audio_to_mono(a, cfg.sample_rate, &mono, err) || !log_mel(mono, cfg, &mel, &nf, err)) return false;
        std::vector<float> f(k_aud, 0.0f);
        for (int m = 0; m < cfg.n_mels; ++m)
            for (int t = 0; t < nf; ++t) f[(m / 8) * 4 + (t * 4) / nf] += mel[static_cast<size_t>(m) * nf + t];
        float mx = 0;
        for (auto v : f) mx = std::max(mx, std::fabs(v));
        for (auto & v : f) v /= (mx > 0 ? mx : 1.0f);
        apply(proj_aud_, f, emb);
        return true;
    }

private:
    static constexpr int k_img = 48, k_aud = 64;
    void apply(const std::vector<float> & P, const std::vector<float> & f, std::vector<float> * emb) const {
        const size_t k = f.size();
        emb->assign(dim_, 0.0f);
        for (int o = 0; o < dim_; ++o) {
            double acc = 0;
            for (size_t i = 0; i < k; ++i) acc += P[o * k + i] * f[i];
            (*emb)[o] = static_cast<float>(std::tanh(acc));
        }
    }
    int dim_;
    std::vector<float> proj_img_, proj_aud_;
};

}  // namespace

std::unique_ptr<encoder> make_builtin_encoder(int dim, uint64_t seed) {
    return std::unique_ptr<encoder>(new builtin_encoder(dim, seed));
}

std::unique_ptr<input_projector> input_projector::from_gguf(std::shared_ptr<gguf_file> f, std::string * err) {
    const gguf_tensor_info * wi = f->find_tensor("spider.proj.weight");
    const gguf_tensor_info * bi = f->find_tensor("spider.proj.bias");
    if (!wi || !bi) {
        if (err) *err = "[projector] missing tensor spider.proj.weight or spider.proj.bias";
        return nullptr;
    }
    if (wi->n_dims != 2 || bi->ne[0] != wi->ne[1] || bi->type != DTYPE_F32) {
        if (err) *err = "[projector] spider.proj.bias must be F32 with ne[0] = d_model";
        return nullptr;
    }
    std::unique_ptr<input_projector> p(new input_projector);
    p->file_ = f;
    p->w_ = f->view(*wi);
    p->b_ = f->view(*bi);
    std::vector<float> probe(static_cast<size_t>(p->w_.ne[0]));
    if (p->w_.type != DTYPE_F32 && !dequantize_row(p->w_.type, p->w_.row(0), probe.data(), p->w_.ne[0])) {
        if (err) *err = std::string("[projector] unsupported weight type ") + dtype_name(p->w_.type);
        return nullptr;
    }
    return p;
}

std::unique_ptr<input_projector> input_projector::random(int emb_dim, int d_model, uint64_t seed) {
    std::unique_ptr<input_projector> p(new input_projector);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    p->w_store_.resize(static_cast<size_t>(emb_dim) * d_model);
    p->b_store_.resize(d_model);
    for (auto & v : p->w_store_) v = nd(rng) / std::sqrt(static_cast<float>(emb_dim));
    for (auto & v : p->b_store_) v = 0.01f * nd(rng);
    p->w_ = make_tensor(DTYPE_F32, p->w_store_.data(), emb_dim, d_model);
    p->b_ = make_tensor(DTYPE_F32, p->b_store_.data(), d_model);
    return p;
}

bool input_projector::project(const std::vector<float> & emb, std::vector<float> * token, std::string * err) const {
    if (static_cast<int>(emb.size()) != emb_dim()) {
        if (err) {
            *err = "[projector] embedding has " + std::to_string(emb.size()) + " values, the projector expects " +
                   std::to_string(emb_dim());
        }
        return false;
    }
    token->assign(d_model(), 0.0f);
    linear_forward(w_, &b_, emb.data(), token->data(), 1);
    return true;
}

bool input_projector::save(const std::string & path, std::string * err) const {
    const int64_t n_in = w_.ne[0], n_out = w_.ne[1];
    std::vector<float> w(static_cast<size_t>(n_in) * n_out);
    for (int64_t r = 0; r < n_out; ++r) {
        if (!dequantize_row(w_.type, w_.row(r), w.data() + r * n_in, n_in)) {
            if (err) *err = "[projector] cannot read its own weights";
            return false;
        }
    }
    gguf_writer g;
    g.set_string("general.architecture", "spider-projector");
    int64_t ne_w[2] = {n_in, n_out}, ne_b[1] = {n_out};
    if (!g.add_tensor("spider.proj.weight", DTYPE_F32, ne_w, 2, w.data(), err) ||
        !g.add_tensor("spider.proj.bias", DTYPE_F32, ne_b, 1, b_.data, err)) {
        return false;
    }
    return g.write(path, err);
}

bool input_projector::weights_f32(std::vector<float> * w, std::vector<float> * b, std::string * err) const {
    const int64_t n_in = w_.ne[0], n_out = w_.ne[1];
    w->assign(static_cast<size_t>(n_in * n_out), 0.0f);
    for (int64_t r = 0; r < n_out; ++r) {
        if (!dequantize_row(w_.type, w_.row(r), w->data() + r * n_in, n_in)) {
            if (err) *err = std::string("[projector] unsupported weight type ") + dtype_name(w_.type);
            return false;
        }
    }
    const float * bp = static_cast<const float *>(b_.data);
    b->assign(bp, bp + n_out);
    return true;
}

}  // namespace spider
