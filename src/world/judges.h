// ToyWorld judges: deterministic analysis of pixels and samples (no learned model) that recovers what an image,
// an audio clip or a video shows, compares it with what it should show, and says "not judgeable" instead of
// guessing when the input is not a ToyWorld-like item (noise, silence, a blank frame).
//
//   image: objects with shape, colour, size, 3x3 position, box and mask (palette classification + connected
//          components + template matching with the world's own rasteriser)
//   audio: pattern (tone, chirps, beeps, noise, chord, rhythm), pitch class, timbre and event count (energy
//          envelope segmentation + FFT peak / harmonic analysis)
//   video: motion (left, right, up, down, grow, shrink, change colour, rotate), shape and colour (per-frame image
//          analysis of the main object). Rotation direction is not judged.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "world/world.h"

namespace spider {

struct detected_object {
    int shape = -1, colour = -1, size = -1, position = -1;  // -1: could not be decided
    double shape_iou = 0;                                   // IoU of the best shape template
    world_box box;
    int area = 0;
    double cx = 0, cy = 0;      // pixel centroid
    std::vector<uint8_t> mask;  // width*height, 1 inside
};

struct image_judgement {
    bool judgeable = false;
    std::string reason;  // why not judgeable
    int width = 0, height = 0;
    std::vector<detected_object> objects;  // sorted top-to-bottom, left-to-right
};

struct audio_judgement {
    bool judgeable = false;
    std::string reason;
    int pattern = -1, pitch = -1, timbre = -1, count = 0;
    double f0_hz = 0;  // estimated (centre) fundamental; root for chords
    double onset_s = 0, offset_s = 0;
};

struct video_judgement {
    bool judgeable = false;
    std::string reason;
    int motion = -1, shape = -1, colour = -1, colour_to = -1, size = -1;
};

// Bad arguments (empty image, unsupported channel count) return false with err; unjudgeable content returns true
// with judgeable = false and a reason.
bool judge_image(const image_u8 & img, image_judgement * out, std::string * err);
bool judge_audio(const audio_f32 & a, audio_judgement * out, std::string * err);
bool judge_video(const video_u8 & v, video_judgement * out, std::string * err);

double box_iou(const world_box & a, const world_box & b);
double mask_iou(const std::vector<uint8_t> & a, const std::vector<uint8_t> & b);  // non-zero = inside

// Per-attribute tallies: name -> (correct, total).
struct judge_tally {
    std::map<std::string, std::pair<int64_t, int64_t>> counts;
    void add(const std::string & attr, bool ok) {
        auto & c = counts[attr];
        c.first += ok;
        c.second += 1;
    }
    double rate(const std::string & attr) const;  // 1.0 when no samples
    void merge(const judge_tally & o);
    std::string to_string() const;
};

// Compares a judgement with the truth the item claims. Every attribute is checked; `labels` (the ground-truth
// masks, may be empty) enables the mask check. Boxes pass at IoU >= 0.9, masks at IoU >= 0.9.
void judge_check_image(const image_judgement & j, const image_truth & claimed, const std::vector<uint8_t> & labels,
                       judge_tally * tally);
void judge_check_audio(const audio_judgement & j, const audio_truth & claimed, judge_tally * tally);
void judge_check_video(const video_judgement & j, const video_truth & claimed, judge_tally * tally);

// True when every attribute of the claim holds (convenience over the tallies).
bool judge_image_matches(const image_judgement & j, const image_truth & claimed, const std::vector<uint8_t> & labels);
bool judge_audio_matches(const audio_judgement & j, const audio_truth & claimed);
bool judge_video_matches(const video_judgement & j, const video_truth & claimed);

// Consistency between items that should show the same thing: an image and a video of the same object (shape and
// colour of the video's first frame), or two images (same multiset of shape+colour objects).
bool judge_consistent_image_video(const image_judgement & img, const video_judgement & vid, std::string * why);
bool judge_consistent_images(const image_judgement & a, const image_judgement & b, std::string * why);

// Attribute words a text mentions (colours, shapes, motions, patterns, pitches), read with the caption synonyms:
// lets an evaluator check that a generated item is faithful to its T-Prompt.
struct text_claims {
    std::vector<int> colours, shapes, motions, patterns, pitches;
};
text_claims parse_text_claims(const std::string & text);

}  // namespace spider
