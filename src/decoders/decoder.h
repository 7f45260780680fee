// The decoder interface and registry: typed requests (modality, T-Prompt, fused condition, seed, size or
// duration, the input image for box/mask) -> typed results (image, audio, video, boxes, mask). A registry loads
// each decoder once, on first use, and hands the same instance to every later request (the reference code
// reloaded decoders from disk on every call; we do not).
//
// Contract for implementations: decode() returns false with a message on failure; it may also throw (the
// pipeline catches and fails only that item). It should poll `cancel` between steps so a timed-out item stops
// early, and report progress through `progress`. decode() must be callable from several threads at once unless
// thread_safe() returns false, in which case the pipeline serialises calls to that decoder.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "controller/template.h"
#include "io/media.h"

namespace spider {

// An axis-aligned box in pixel coordinates of the image it refers to.
struct box_item {
    float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    float score = 0;
    std::string label;
};

struct decode_request {
    modality m = MODALITY_IMAGE;
    std::string t_prompt;
    // Fused condition (TM-Fusion output) [cond_tokens, cond_dim]; empty for decoders that read the text only.
    std::vector<float> cond;
    int cond_tokens = 0, cond_dim = 0;
    uint64_t seed = 0;
    int width = 64, height = 64;             // image, video, mask canvas (box/mask use the input image size when given)
    float duration_s = 1.0f;                 // audio, video
    float fps = 8.0f;                        // video
    int sample_rate = 16000;                 // audio
    const image_u8 * input_image = nullptr;  // box / mask: the image to look at (may be null)
    std::vector<box_item> prompt_boxes;      // mask: the box prompt (from the box decoder)
    std::function<void(int step, int n_steps)> progress;  // may be empty
    const std::atomic<bool> * cancel = nullptr;           // may be null
};

struct decode_result {
    modality m = MODALITY_IMAGE;
    image_u8 image;                           // IMAGE
    audio_f32 audio;                          // AUDIO
    video_u8 video;                           // VIDEO
    std::vector<box_item> boxes;              // BOX (and the box a MASK was made from)
    image_u8 mask;                            // MASK: 1-channel, 0 or 255, input-image size
    int steps = 0;                            // steps actually run
    int canvas_width = 0, canvas_height = 0;  // BOX: the image size the boxes refer to
};

class decoder {
public:
    virtual ~decoder() = default;
    virtual modality kind() const = 0;
    virtual std::string name() const = 0;
    // The decoder's own text encoding of a T-Prompt in its condition space, [n_tok, dim] (TM-Fusion's "text").
    // Decoders without a text-conditioned input (box) return false with a message.
    virtual bool encode_text(const std::string & t_prompt, std::vector<float> * out, int * n_tok, int * dim,
                             std::string * err) {
        if (err) *err = "[" + name() + "] has no text encoder";
        return false;
    }
    virtual bool thread_safe() const { return true; }
    virtual bool decode(const decode_request & req, decode_result * out, std::string * err) = 0;
};

using decoder_factory = std::function<std::unique_ptr<decoder>(std::string * err)>;

class decoder_registry {
public:
    // Registers (or replaces, before first use) the factory of a modality's decoder.
    void add(modality m, const std::string & name, decoder_factory f);
    bool has(modality m) const;
    std::string name_of(modality m) const;
    // Loads on first use (once, even when called from many threads) and returns the shared instance.
    // A failed load is remembered and reported again without retrying.
    std::shared_ptr<decoder> get(modality m, std::string * err);
    int load_count(modality m) const;  // how many times the factory ran (0 or 1)
    // Serialises calls for decoders that are not thread_safe().
    std::mutex & call_mutex(modality m);

private:
    struct slot {
        std::string name;
        decoder_factory factory;
        std::shared_ptr<decoder> instance;
        std::string load_error;
        int loads = 0;
        std::unique_ptr<std::mutex> call_mu{new std::mutex};
    };
    mutable std::mutex mu_;
    std::map<int, slot> slots_;
};

// ---- tiny built-in decoders ----
// Deterministic procedural generators conditioned on the fused vector and the T-Prompt: they stand in for the
// real decoders in tests and in the tiny built-in model (trained ToyWorld decoders replace them later). Their
// text encoder is a hashed bag of words, so the condition and the output depend on what the T-Prompt says
// (a colour word in the prompt colours the image's object, "high"/"low" move an audio tone).
struct builtin_decoder_config {
    // Condition shapes per modality (must match the UDP heads): [t, d]; MASK/AUDIO usually 1 token.
    int cond_tokens[MODALITY_COUNT] = {7, 7, 1, 0, 1};
    int cond_dim[MODALITY_COUNT] = {24, 16, 16, 0, 8};
    int n_steps = 6;  // "denoising" steps reported through progress
};
void register_builtin_decoders(decoder_registry & reg, const builtin_decoder_config & cfg);

// The hashed bag-of-words text encoder of the built-in decoders: [n_tok, dim], rows of unit norm.
std::vector<float> builtin_text_encode(const std::string & text, int n_tok, int dim);

// A simple per-item quality score in [0, 1] for the quality rule: 0 for degenerate output (flat image, silent
// audio, static video, no box, empty mask), otherwise 1, lowered to 0.25 when the T-Prompt names a colour and
// the image's object is not that colour.
float builtin_quality_score(const decode_result & r, const std::string & t_prompt);

}  // namespace spider
