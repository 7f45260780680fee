// ToyWorld: a deterministic, seeded synthetic multimodal world whose ground truth is known. Images hold one to
// three coloured shapes on plain or textured grey backgrounds (with a box and a mask per object), audio clips hold
// one sound event (tone, chirp, beeps, noise burst, chord, rhythm) with a pitch and a timbre, videos hold one
// object that moves, grows, shrinks, changes colour or rotates. Every item carries its structured truth (JSON) and
// several natural-language captions. Items are generated from (seed, kind, index) alone, so any item can be
// regenerated without the others and the same seed always gives byte-identical data.
//
// Held-out combinations: some (shape, colour) pairs for images and videos and some (pattern, pitch) pairs for
// audio never appear in the train split; the test split draws at least one of them in every item, so a model has
// to generalise to unseen combinations of seen attributes.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/media.h"

namespace spider {

// ---- attribute vocabularies (the order is part of the data format: indices are stored in truth JSON) ----

enum world_shape : int {
    SHAPE_CIRCLE,
    SHAPE_SQUARE,
    SHAPE_TRIANGLE,
    SHAPE_DIAMOND,
    SHAPE_CROSS,
    SHAPE_RING,
    SHAPE_COUNT
};
enum world_colour : int {
    COLOUR_RED,
    COLOUR_GREEN,
    COLOUR_BLUE,
    COLOUR_YELLOW,
    COLOUR_CYAN,
    COLOUR_MAGENTA,
    COLOUR_ORANGE,
    COLOUR_PURPLE,
    COLOUR_WHITE,
    COLOUR_BLACK,
    COLOUR_COUNT
};
enum world_size : int { SIZE_SMALL, SIZE_MEDIUM, SIZE_LARGE, SIZE_COUNT };
// Positions are the cells of a 3x3 grid, row-major from the top left.
enum world_position : int { POS_COUNT = 9 };
enum world_background : int { BG_PLAIN, BG_STRIPES_H, BG_STRIPES_V, BG_CHECKER, BG_NOISE, BG_COUNT };

enum audio_pattern : int {
    PATTERN_TONE,
    PATTERN_CHIRP_UP,
    PATTERN_CHIRP_DOWN,
    PATTERN_BEEPS,
    PATTERN_NOISE,
    PATTERN_CHORD,
    PATTERN_RHYTHM,
    PATTERN_COUNT
};
enum audio_pitch : int { PITCH_LOW, PITCH_MIDLOW, PITCH_MID, PITCH_MIDHIGH, PITCH_HIGH, PITCH_COUNT };
enum audio_timbre : int { TIMBRE_SINE, TIMBRE_SQUARE, TIMBRE_SAW, TIMBRE_COUNT };

enum video_motion : int {
    MOTION_LEFT,
    MOTION_RIGHT,
    MOTION_UP,
    MOTION_DOWN,
    MOTION_GROW,
    MOTION_SHRINK,
    MOTION_RECOLOUR,
    MOTION_ROTATE,
    MOTION_COUNT
};

enum world_split : int { SPLIT_TRAIN, SPLIT_VALIDATION, SPLIT_TEST };
enum world_kind : int { KIND_IMAGE, KIND_AUDIO, KIND_VIDEO };

const char * shape_name(int s);
const char * colour_name(int c);
const char * size_name(int s);
const char * position_name(int p);  // "top left", "top", ..., "center", ..., "bottom right"
const char * background_name(int b);
const char * pattern_name(int p);
const char * pitch_name(int p);
const char * timbre_name(int t);
const char * motion_name(int m);
const char * split_name(int s);
const char * kind_name(int k);
bool split_from_name(const std::string & s, world_split * out);
bool kind_from_name(const std::string & s, world_kind * out);

void colour_rgb(int c, uint8_t rgb[3]);
double pitch_hz(int p);                // fundamental of each pitch class
int size_half_extent(int s, int img);  // half the side of the object's bounding square, in pixels

// True when the pair is held out of the train split.
bool held_out_shape_colour(int shape, int colour);
bool held_out_pattern_pitch(int pattern, int pitch);

// ---- generation parameters ----

struct world_params {
    int image_size = 64;    // square images, >= 48 and divisible by... anything: the 3x3 grid adapts
    int max_objects = 3;    // 1..3 objects per image
    bool textured = true;   // allow textured backgrounds (stripes, checker, noise)
    int video_size = 64;    // square frames, even
    int video_frames = 16;  // >= 8
    double video_fps = 8.0;
    int audio_rate = 16000;
    double audio_min_s = 1.0, audio_max_s = 4.0;
    int n_captions = 4;  // captions per item (varied phrasings)
    world_split split = SPLIT_TRAIN;
};

// Checks ranges; returns false with a message naming the bad field.
bool world_params_check(const world_params & p, std::string * err);

// ---- items ----

struct world_box {
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // inclusive pixel bounds
};

struct world_object {
    int shape = 0, colour = 0, size = 0, position = 0;
    int cx = 0, cy = 0, half = 0;  // centre and half extent in pixels
    world_box box;
};

struct image_truth {
    int width = 0, height = 0;  // image size in pixels
    int background = BG_PLAIN;
    int bg_level = 128;  // mean grey of the background
    std::vector<world_object> objects;
};

struct image_item {
    image_u8 image;               // RGB
    std::vector<uint8_t> labels;  // width*height, 0 = background, i+1 = objects[i] (the ground-truth masks)
    image_truth truth;
    std::vector<std::string> captions;
};

struct audio_truth {
    int pattern = PATTERN_TONE, pitch = PITCH_MID, timbre = TIMBRE_SINE;
    int count = 1;  // number of sound events (beeps / rhythm notes); 1 for the others
    double duration_s = 1.0;
    double onset_s = 0.0, offset_s = 0.0;  // where the sound starts and ends
};

struct audio_item {
    audio_f32 audio;
    audio_truth truth;
    std::vector<std::string> captions;
};

struct video_truth {
    int shape = 0, colour = 0, colour_to = 0, size = 0, motion = 0;
    int background = BG_PLAIN, bg_level = 128;
};

struct video_item {
    video_u8 video;
    video_truth truth;
    std::vector<std::string> captions;
};

// Generators: the item is a pure function of (seed, index, params).
void world_make_image(uint64_t seed, uint64_t index, const world_params & p, image_item * out);
void world_make_audio(uint64_t seed, uint64_t index, const world_params & p, audio_item * out);
void world_make_video(uint64_t seed, uint64_t index, const world_params & p, video_item * out);

// Renders one shape into an RGB image (and a label map when labels != nullptr) with hard edges; the judges use
// the same rasteriser to build their templates. angle in radians.
void world_draw_shape(image_u8 * img, std::vector<uint8_t> * labels, uint8_t label, int shape, const uint8_t rgb[3],
                      double cx, double cy, double half, double angle);
// True when pixel centre (x, y) is inside the shape centred at (cx, cy) with half extent `half`.
bool world_shape_contains(int shape, double cx, double cy, double half, double angle, double x, double y);

// Structured truth as JSON (stable field names: see docs/WORLD.md).
nlohmann::json image_truth_json(const image_truth & t);
nlohmann::json audio_truth_json(const audio_truth & t);
nlohmann::json video_truth_json(const video_truth & t);

// Captions: `n` different phrasings of the same truth, chosen by `rng_seed` (synonyms, word orders, sentence frames).
std::vector<std::string> caption_image(const image_truth & t, uint64_t rng_seed, int n);
std::vector<std::string> caption_audio(const audio_truth & t, uint64_t rng_seed, int n);
std::vector<std::string> caption_video(const video_truth & t, uint64_t rng_seed, int n);
// A short noun phrase for one object ("the small red circle"), used by referring expressions.
std::string describe_object(const world_object & o, uint64_t rng_seed, bool with_position);

}  // namespace spider
