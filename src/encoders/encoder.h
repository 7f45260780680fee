// Encoders side of Spider (SPIDER.md §1, §4): preprocessing (image resize / centre crop / normalise, 10 video
// frames, 16 kHz 128-bin log-mel audio), the encoder interface (one image / video / audio clip -> ONE embedding,
// ImageBind-class, 1024-d at full size), a tiny built-in encoder for tests, and the input projector
// (one shared Linear embedding -> d_model, so each media item becomes ONE LLM token at its placeholder).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/media.h"

namespace spider {

class gguf_file;

struct image_prep_config {
    int size = 224;  // output is size x size
    // CLIP / ImageBind normalisation
    float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
};
// Resizes the shorter side to cfg.size (bilinear, with box pre-filtering when shrinking), centre-crops to
// size x size, scales to [0, 1] and normalises: out = [3, size, size] channel-major floats.
bool preprocess_image(const image_u8 & img, const image_prep_config & cfg, std::vector<float> * chw, std::string * err);
// n frames at evenly spaced indices (first and last included when n > 1); fewer frames repeat.
bool sample_video_frames(const video_u8 & v, int n, std::vector<image_u8> * out, std::string * err);

struct mel_config {
    int sample_rate = 16000;
    int n_fft = 400;  // 25 ms window
    int hop = 160;    // 10 ms shift
    int n_mels = 128;
    float f_min = 0.0f, f_max = 8000.0f;
};
// Mixes to mono and resamples (linear interpolation) to `rate`.
bool audio_to_mono(const audio_f32 & a, int rate, std::vector<float> * out, std::string * err);
// Log-mel spectrogram (Hann window, power spectrum, HTK mel filters, log(x + 1e-6)):
// mel = [n_mels, n_frames] (row = one mel bin), n_frames = 1 + (n - n_fft) / hop (at least 1, zero-padded).
bool log_mel(const std::vector<float> & mono, const mel_config & cfg, std::vector<float> * mel, int * n_frames,
             std::string * err);

class encoder {
public:
    virtual ~encoder() = default;
    virtual int dim() const = 0;
    virtual std::string name() const = 0;
    virtual bool encode_image(const image_u8 & img, std::vector<float> * emb, std::string * err) = 0;
    // Default: 10 frames through the image path, mean-pooled.
    virtual bool encode_video(const video_u8 & v, std::vector<float> * emb, std::string * err);
    virtual bool encode_audio(const audio_f32 & a, std::vector<float> * emb, std::string * err) = 0;
};

// A tiny deterministic encoder: preprocessing as above at small sizes, average-pooled to a few numbers, then a
// fixed random projection to `dim`. Same input -> same embedding; different content -> different embedding.
std::unique_ptr<encoder> make_builtin_encoder(int dim, uint64_t seed = 42);

// Linear(emb_dim -> d_model): tensors spider.proj.weight (ne = {emb_dim, d_model}) and spider.proj.bias.
class input_projector {
public:
    static std::unique_ptr<input_projector> from_gguf(std::shared_ptr<gguf_file> f, std::string * err);
    static std::unique_ptr<input_projector> random(int emb_dim, int d_model, uint64_t seed);
    int emb_dim() const { return static_cast<int>(w_.ne[0]); }
    int d_model() const { return static_cast<int>(w_.ne[1]); }
    bool project(const std::vector<float> & emb, std::vector<float> * token, std::string * err) const;
    // Writes spider.proj.weight / spider.proj.bias (F32 copies) to a GGUF file.
    bool save(const std::string & path, std::string * err) const;
    // F32 copies of the parameters (what training starts from): w row-major [d_model][emb_dim], b [d_model].
    bool weights_f32(std::vector<float> * w, std::vector<float> * b, std::string * err) const;

private:
    std::shared_ptr<gguf_file> file_;
    std::vector<float> w_store_, b_store_;
    tensor w_, b_;
};

}  // namespace spider
