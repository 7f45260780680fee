// Media I/O through well-kept libraries: PNG (libpng), JPEG (libjpeg), WAV (libsndfile), MP4/H.264 and WebM/VP9
// (libavformat/libavcodec). Every writer is atomic (temp file + rename) and embeds provenance metadata (PNG tEXt,
// WAV INFO chunk, container metadata). Every reader validates and returns an error naming the file and problem;
// a truncated or corrupt file never crashes.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace spider {

struct image_u8 {
    int width = 0, height = 0, channels = 0;  // channels: 1 (gray), 3 (RGB) or 4 (RGBA)
    std::vector<uint8_t> pixels;              // row-major, interleaved: pixels[(y * width + x) * channels + c]
};

struct audio_f32 {
    int sample_rate = 16000;
    int channels = 1;
    std::vector<float> samples;  // interleaved, in [-1, 1]
};

struct video_u8 {
    int width = 0, height = 0;
    double fps = 8.0;
    std::vector<image_u8> frames;  // RGB frames of width x height
};

// Provenance / descriptive key-value pairs, e.g. {"model", ...}, {"seed", "42"}, {"prompt", ...},
// {"ai_generated", "true"}.
using media_metadata = std::vector<std::pair<std::string, std::string>>;

bool image_read(const std::string & path, image_u8 * out, std::string * err);  // PNG or JPEG, by content
bool image_decode(const uint8_t * data, size_t size, image_u8 * out, std::string * err);
bool image_write_png(const std::string & path, const image_u8 & img, const media_metadata & meta, std::string * err);
bool image_write_jpeg(const std::string & path, const image_u8 & img, int quality, std::string * err);
bool image_read_png_text(const std::string & path, media_metadata * out, std::string * err);

bool audio_read(const std::string & path, audio_f32 * out, std::string * err);  // WAV (any libsndfile format)
bool audio_decode(const uint8_t * data, size_t size, audio_f32 * out, std::string * err);
bool audio_write_wav(const std::string & path, const audio_f32 & a, const media_metadata & meta, std::string * err);

// Container chosen by extension: .mp4 -> H.264 (yuv420p), .webm -> VP9. Both play in browsers.
bool video_write(const std::string & path, const video_u8 & v, const media_metadata & meta, std::string * err);
bool video_read(const std::string & path, video_u8 * out, std::string * err);  // decodes to RGB frames
bool video_decode(const uint8_t * data, size_t size, video_u8 * out, std::string * err);

// WAV metadata (INFO chunk: title, comment, software, ...) as written by audio_write_wav; keys are the libsndfile
// string names ("title", "comment", "software", ...). Provenance pairs are stored in "comment" as key=value lines.
bool audio_read_metadata(const std::string & path, media_metadata * out, std::string * err);

// Sanity limits every reader enforces before allocating (a hostile header cannot make us allocate gigabytes).
constexpr int MEDIA_MAX_DIM = 8192;                   // image / video width or height
constexpr int64_t MEDIA_MAX_PIXELS = 64ll << 20;      // per image or frame
constexpr int64_t MEDIA_MAX_SAMPLES = 64ll << 20;     // per audio clip, all channels
constexpr int64_t MEDIA_MAX_VIDEO_BYTES = 1ll << 30;  // decoded RGB bytes of a whole video
constexpr int MEDIA_MAX_CHANNELS = 16;

// Small file helpers shared by the codecs (and usable by anyone writing bundles).
bool file_read_all(const std::string & path, std::vector<uint8_t> * out, std::string * err);
// Writes to `path`.tmp.<pid> then renames, so readers never see a half-written file.
bool file_write_atomic(const std::string & path, const void * data, size_t size, std::string * err);
// "png", "jpeg", "wav", "mp4", "webm", "mkv" or "" from the first bytes of a file.
std::string media_sniff(const uint8_t * data, size_t size);

}  // namespace spider
