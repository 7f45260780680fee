// Media codecs: PNG / JPEG / WAV / MP4 / WebM round trips, metadata, determinism, ffprobe acceptance, and
// truncated or corrupted files giving errors (never crashes).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "io/media.h"

using namespace spider;

static std::string tmp_path(const std::string & name) {
    return std::string("/tmp/spider_test_media_") + std::to_string(getpid()) + "_" + name;
}

static image_u8 pattern_image(int w, int h, int c, int seed) {
    image_u8 img;
    img.width = w;
    img.height = h;
    img.channels = c;
    img.pixels.resize((size_t)w * h * c);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int k = 0; k < c; ++k) {
                // Smooth content (a lossy codec should keep it close) with a block that differs per seed.
                int v = (x * 4 + y * 2 + k * 60 + seed * 37) % 256;
                if (x >= w / 4 && x < w / 2 && y >= h / 4 && y < h / 2) v = (k == seed % c) ? 230 : 20;
                img.pixels[((size_t)y * w + x) * c + k] = (uint8_t)v;
            }
    return img;
}

static double mean_abs_diff(const image_u8 & a, const image_u8 & b) {
    if (a.pixels.size() != b.pixels.size()) return 1e9;
    double s = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) s += std::abs((int)a.pixels[i] - (int)b.pixels[i]);
    return s / a.pixels.size();
}

static bool have_ffprobe() {
    return std::system("ffprobe -version > /dev/null 2>&1") == 0;
}

static bool ffprobe_ok(const std::string & path) {
    std::string cmd = "ffprobe -v error -show_format -show_streams '" + path + "' > /dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
}

TEST(media, png_round_trip_all_channel_counts_and_text) {
    for (int c : {1, 3, 4}) {
        image_u8 img = pattern_image(37, 21, c, c);
        std::string p = tmp_path("rt.png"), err;
        media_metadata meta = {{"model", "spider-toy"}, {"seed", "42"}, {"ai_generated", "true"}};
        ASSERT_TRUE(image_write_png(p, img, meta, &err)) << err;
        image_u8 back;
        ASSERT_TRUE(image_read(p, &back, &err)) << err;
        EXPECT_EQ(back.width, 37);
        EXPECT_EQ(back.height, 21);
        EXPECT_EQ(back.channels, c);
        EXPECT_EQ(back.pixels, img.pixels);
        media_metadata txt;
        ASSERT_TRUE(image_read_png_text(p, &txt, &err)) << err;
        EXPECT_EQ(txt, meta);
        std::remove(p.c_str());
    }
}

TEST(media, png_rejects_bad_arguments) {
    image_u8 img = pattern_image(8, 8, 3, 0);
    std::string err;
    img.pixels.pop_back();
    EXPECT_FALSE(image_write_png(tmp_path("bad.png"), img, {}, &err));
    EXPECT_NE(err.find("pixel buffer"), std::string::npos) << err;
    image_u8 zero;
    EXPECT_FALSE(image_write_png(tmp_path("bad.png"), zero, {}, &err));
    EXPECT_NE(err.find("size"), std::string::npos) << err;
    EXPECT_FALSE(image_read("/nonexistent/x.png", &img, &err));
    EXPECT_NE(err.find("/nonexistent/x.png"), std::string::npos) << err;
}

TEST(media, jpeg_round_trip_is_close) {
    for (int c : {1, 3}) {
        image_u8 img = pattern_image(64, 48, c, 1);
        std::string p = tmp_path("rt.jpg"), err;
        ASSERT_TRUE(image_write_jpeg(p, img, 95, &err)) << err;
        image_u8 back;
        ASSERT_TRUE(image_read(p, &back, &err)) << err;
        EXPECT_EQ(back.width, 64);
        EXPECT_EQ(back.height, 48);
        EXPECT_EQ(back.channels, c);
        EXPECT_LT(mean_abs_diff(img, back), 6.0);
        std::remove(p.c_str());
    }
    image_u8 rgba = pattern_image(8, 8, 4, 0);
    std::string err;
    EXPECT_FALSE(image_write_jpeg(tmp_path("a.jpg"), rgba, 90, &err));
    EXPECT_FALSE(image_write_jpeg(tmp_path("a.jpg"), pattern_image(8, 8, 3, 0), 0, &err));
}

TEST(media, wav_round_trip_and_metadata) {
    audio_f32 a;
    a.sample_rate = 16000;
    a.channels = 1;
    for (int i = 0; i < 16000; ++i) a.samples.push_back(0.5f * std::sin(2 * M_PI * 440.0 * i / 16000.0));
    std::string p = tmp_path("rt.wav"), err;
    ASSERT_TRUE(audio_write_wav(p, a, {{"title", "a tone"}, {"seed", "7"}, {"ai_generated", "true"}}, &err)) << err;
    audio_f32 back;
    ASSERT_TRUE(audio_read(p, &back, &err)) << err;
    EXPECT_EQ(back.sample_rate, 16000);
    EXPECT_EQ(back.channels, 1);
    ASSERT_EQ(back.samples.size(), a.samples.size());
    double maxd = 0;
    for (size_t i = 0; i < a.samples.size(); ++i)
        maxd = std::max(maxd, (double)std::fabs(a.samples[i] - back.samples[i]));
    EXPECT_LT(maxd, 1.0 / 16000);  // 16-bit quantisation
    media_metadata meta;
    ASSERT_TRUE(audio_read_metadata(p, &meta, &err)) << err;
    bool title = false, comment = false;
    for (auto & kv : meta) {
        if (kv.first == "title" && kv.second == "a tone") title = true;
        if (kv.first == "comment" && kv.second.find("seed=7") != std::string::npos &&
            kv.second.find("ai_generated=true") != std::string::npos)
            comment = true;
    }
    EXPECT_TRUE(title);
    EXPECT_TRUE(comment);
    if (have_ffprobe()) {
        EXPECT_TRUE(ffprobe_ok(p));
    }
    std::remove(p.c_str());
}

static video_u8 moving_square_video(int n) {
    video_u8 v;
    v.width = 64;
    v.height = 48;
    v.fps = 8;
    for (int f = 0; f < n; ++f) {
        image_u8 img;
        img.width = 64;
        img.height = 48;
        img.channels = 3;
        img.pixels.assign(64 * 48 * 3, 40);
        for (int y = 16; y < 32; ++y)
            for (int x = 4 + f * 2; x < 20 + f * 2; ++x) {
                img.pixels[(y * 64 + x) * 3 + 0] = 220;
                img.pixels[(y * 64 + x) * 3 + 1] = 30;
                img.pixels[(y * 64 + x) * 3 + 2] = 30;
            }
        v.frames.push_back(img);
    }
    return v;
}

TEST(media, video_round_trip_mp4_and_webm_deterministic) {
    video_u8 v = moving_square_video(16);
    for (const char * ext : {"mp4", "webm"}) {
        std::string p = tmp_path(std::string("rt.") + ext), p2 = tmp_path(std::string("rt2.") + ext), err;
        ASSERT_TRUE(video_write(p, v, {{"comment", "spider test"}, {"ai_generated", "true"}}, &err)) << ext << err;
        ASSERT_TRUE(video_write(p2, v, {{"comment", "spider test"}, {"ai_generated", "true"}}, &err)) << err;
        std::vector<uint8_t> d1, d2;
        ASSERT_TRUE(file_read_all(p, &d1, &err));
        ASSERT_TRUE(file_read_all(p2, &d2, &err));
        EXPECT_EQ(d1, d2) << ext << ": same frames must give byte-identical files";
        EXPECT_EQ(media_sniff(d1.data(), d1.size()), ext);
        video_u8 back;
        ASSERT_TRUE(video_read(p, &back, &err)) << ext << ": " << err;
        EXPECT_EQ(back.width, 64);
        EXPECT_EQ(back.height, 48);
        EXPECT_NEAR(back.fps, 8.0, 1e-6);
        ASSERT_EQ(back.frames.size(), 16u) << ext;
        for (int f = 0; f < 16; ++f)
            EXPECT_LT(mean_abs_diff(v.frames[f], back.frames[f]), 8.0) << ext << " frame " << f;
        if (have_ffprobe()) {
            EXPECT_TRUE(ffprobe_ok(p)) << ext;
        }
        std::remove(p.c_str());
        std::remove(p2.c_str());
    }
}

TEST(media, video_rejects_bad_arguments) {
    video_u8 v = moving_square_video(2);
    std::string err;
    EXPECT_FALSE(video_write(tmp_path("x.avi"), v, {}, &err));
    EXPECT_NE(err.find("extension"), std::string::npos);
    v.width = 63;
    EXPECT_FALSE(video_write(tmp_path("x.mp4"), v, {}, &err));
    v = moving_square_video(2);
    v.frames[1].pixels.resize(10);
    EXPECT_FALSE(video_write(tmp_path("x.mp4"), v, {}, &err));
    EXPECT_NE(err.find("frame 1"), std::string::npos) << err;
    video_u8 out;
    EXPECT_FALSE(video_decode(nullptr, 0, &out, &err));
    const uint8_t junk[] = "this is not a video at all, just text";
    EXPECT_FALSE(video_decode(junk, sizeof(junk), &out, &err));
}

// Truncation at many points must give an error; byte flips may decode (codecs conceal damage) but never crash.
TEST(media, truncated_and_corrupted_files_fail_cleanly) {
    std::string err;
    std::vector<std::pair<std::string, std::vector<uint8_t>>> files;
    {
        std::string p = tmp_path("c.png");
        ASSERT_TRUE(image_write_png(p, pattern_image(32, 32, 3, 2), {{"k", "v"}}, &err));
        std::vector<uint8_t> d;
        ASSERT_TRUE(file_read_all(p, &d, &err));
        files.push_back({"png", d});
        std::remove(p.c_str());
    }
    {
        std::string p = tmp_path("c.jpg");
        ASSERT_TRUE(image_write_jpeg(p, pattern_image(32, 32, 3, 2), 90, &err));
        std::vector<uint8_t> d;
        ASSERT_TRUE(file_read_all(p, &d, &err));
        files.push_back({"jpeg", d});
        std::remove(p.c_str());
    }
    {
        audio_f32 a;
        for (int i = 0; i < 4000; ++i) a.samples.push_back(0.3f * std::sin(i * 0.1f));
        std::string p = tmp_path("c.wav");
        ASSERT_TRUE(audio_write_wav(p, a, {}, &err));
        std::vector<uint8_t> d;
        ASSERT_TRUE(file_read_all(p, &d, &err));
        files.push_back({"wav", d});
        std::remove(p.c_str());
    }
    for (const char * ext : {"mp4", "webm"}) {
        std::string p = tmp_path(std::string("c.") + ext);
        ASSERT_TRUE(video_write(p, moving_square_video(8), {}, &err));
        std::vector<uint8_t> d;
        ASSERT_TRUE(file_read_all(p, &d, &err));
        files.push_back({ext, d});
        std::remove(p.c_str());
    }
    auto decode = [](const std::string & kind, const std::vector<uint8_t> & d, std::string * e) {
        if (kind == "png" || kind == "jpeg") {
            image_u8 img;
            return image_decode(d.data(), d.size(), &img, e);
        }
        if (kind == "wav") {
            audio_f32 a;
            return audio_decode(d.data(), d.size(), &a, e);
        }
        video_u8 v;
        return video_decode(d.data(), d.size(), &v, e);
    };
    for (const auto & f : files) {
        std::string e;
        ASSERT_TRUE(decode(f.first, f.second, &e)) << f.first << ": " << e;
        // Truncate in the header, the middle and just before the end.
        for (double frac : {0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.97}) {
            size_t n = (size_t)(f.second.size() * frac);
            // WebM/MP4 trailers hold only index data; cutting the last few bytes can leave every frame intact.
            std::vector<uint8_t> t(f.second.begin(), f.second.begin() + n);
            e.clear();
            EXPECT_FALSE(decode(f.first, t, &e)) << f.first << " truncated to " << n << " of " << f.second.size();
            EXPECT_FALSE(e.empty());
        }
        // Deterministic byte flips over the whole file.
        uint32_t s = 12345;
        for (int trial = 0; trial < 60; ++trial) {
            std::vector<uint8_t> c = f.second;
            for (int k = 0; k < 4; ++k) {
                s = s * 1664525u + 1013904223u;
                c[s % c.size()] ^= (uint8_t)(1u + (s >> 24) % 255u);
            }
            e.clear();
            decode(f.first, c, &e);  // must return, either way
        }
    }
}

// Regression (fuzzer): a 66-byte PNG declaring a 1.5 GB tEXt chunk made libpng allocate and clear 1.5 GB.
TEST(media, png_with_huge_declared_chunk_is_refused) {
    const uint8_t d[] = {0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
                         0x44, 0x52, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x40, 0x08, 0x02, 0x00, 0x00,
                         0x00, 0x25, 0x0b, 0xe6, 0x89, 0x5b, 0x00, 0x00, 0x15, 0x74, 0x45, 0x58, 0x74, 0x73,
                         0x6f, 0x66, 0x74, 0x77, 0x61, 0x72, 0x65, 0x00, 0x73, 0x70, 0x69, 0x2e, 0xb0, 0xe5,
                         0x7d, 0x8f, 0xfc, 0x71, 0xcc, 0xa1, 0xa7, 0x3f, 0x60, 0x82};
    image_u8 img;
    std::string err;
    EXPECT_FALSE(image_decode(d, sizeof(d), &img, &err));
    EXPECT_NE(err.find("implausible"), std::string::npos) << err;
}
