// Encoder side: image resize / centre crop / normalise, 10 video frames, 16 kHz 128-bin log-mel, the built-in
// encoder and the input projector (one media item -> one LLM token).
#include <gtest/gtest.h>

#include <cmath>

#include "encoders/encoder.h"
#include "io/gguf.h"

using namespace spider;

static image_u8 solid(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    image_u8 im;
    im.width = w;
    im.height = h;
    im.channels = 3;
    im.pixels.resize(static_cast<size_t>(w) * h * 3);
    for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i) {
        im.pixels[i * 3] = r;
        im.pixels[i * 3 + 1] = g;
        im.pixels[i * 3 + 2] = b;
    }
    return im;
}

TEST(encoders, image_resize_crop_normalise) {
    image_prep_config cfg;
    cfg.size = 8;
    std::vector<float> chw;
    std::string err;
    ASSERT_TRUE(preprocess_image(solid(30, 20, 255, 0, 128), cfg, &chw, &err)) << err;
    ASSERT_EQ(chw.size(), 3u * 8 * 8);
    EXPECT_NEAR(chw[0], (1.0f - cfg.mean[0]) / cfg.std[0], 1e-5f);
    EXPECT_NEAR(chw[64], (0.0f - cfg.mean[1]) / cfg.std[1], 1e-5f);
    EXPECT_NEAR(chw[128 + 63], (128 / 255.0f - cfg.mean[2]) / cfg.std[2], 1e-5f);
    // a wide image: left quarter red, rest blue; the centre crop of the short-side resize drops the left edge
    image_u8 im = solid(60, 20, 0, 0, 255);
    for (int y = 0; y < 20; ++y)
        for (int x = 0; x < 15; ++x) im.pixels[(y * 60 + x) * 3 + 0] = 255, im.pixels[(y * 60 + x) * 3 + 2] = 0;
    ASSERT_TRUE(preprocess_image(im, cfg, &chw, &err));
    // the crop covers source x in [20, 40) (plus one pixel of filter support): all blue
    for (int i = 0; i < 64; ++i) EXPECT_NEAR(chw[i], (0.0f - cfg.mean[0]) / cfg.std[0], 0.05f) << i;
    image_u8 bad;
    bad.width = 4;
    bad.height = 4;
    bad.channels = 3;
    EXPECT_FALSE(preprocess_image(bad, cfg, &chw, &err));
    EXPECT_NE(err.find("bad image"), std::string::npos);
}

TEST(encoders, ten_video_frames_evenly_spaced) {
    video_u8 v;
    for (int i = 0; i < 25; ++i) v.frames.push_back(solid(4, 4, static_cast<uint8_t>(i), 0, 0));
    std::vector<image_u8> f;
    std::string err;
    ASSERT_TRUE(sample_video_frames(v, 10, &f, &err));
    ASSERT_EQ(f.size(), 10u);
    EXPECT_EQ(f[0].pixels[0], 0);
    EXPECT_EQ(f[9].pixels[0], 24);
    for (int i = 1; i < 10; ++i) EXPECT_GT(f[i].pixels[0], f[i - 1].pixels[0]);
    video_u8 empty;
    EXPECT_FALSE(sample_video_frames(empty, 10, &f, &err));
}

TEST(encoders, log_mel_128_bins_at_16k) {
    // 1 kHz tone at 44.1 kHz stereo -> mono 16 kHz -> log-mel; the loudest bin is the one whose centre is 1 kHz
    audio_f32 a;
    a.sample_rate = 44100;
    a.channels = 2;
    for (int i = 0; i < 44100 / 2; ++i) {
        const float s = 0.5f * std::sin(2.0f * static_cast<float>(M_PI) * 1000.0f * i / 44100.0f);
        a.samples.push_back(s);
        a.samples.push_back(s);
    }
    std::vector<float> mono, mel;
    std::string err;
    ASSERT_TRUE(audio_to_mono(a, 16000, &mono, &err)) << err;
    EXPECT_NEAR(static_cast<double>(mono.size()), 8000.0, 1.0);
    mel_config cfg;
    int nf = 0;
    ASSERT_TRUE(log_mel(mono, cfg, &mel, &nf, &err)) << err;
    EXPECT_EQ(nf, 1 + (8000 - 400) / 160);
    ASSERT_EQ(mel.size(), static_cast<size_t>(128) * nf);
    const int t = nf / 2;
    int best = 0;
    for (int m = 1; m < 128; ++m) {
        if (mel[static_cast<size_t>(m) * nf + t] > mel[static_cast<size_t>(best) * nf + t]) best = m;
    }
    // HTK mel of 1 kHz = 1000.0; bins equally spaced in mel over [0, mel(8 kHz) = 2840] with 129 gaps
    const double centre = 2595.0 * std::log10(1.0 + 8000.0 / 700.0) / 129.0;
    EXPECT_NEAR(best + 1, 1000.0 / centre, 1.5);
    EXPECT_FALSE(log_mel({}, cfg, &mel, &nf, &err));
    audio_f32 broken;
    broken.channels = 0;
    EXPECT_FALSE(audio_to_mono(broken, 16000, &mono, &err));
}

TEST(encoders, builtin_encoder_and_projector_make_one_token) {
    auto enc = make_builtin_encoder(64, 5);
    std::vector<float> e1, e2, e3, tok;
    std::string err;
    ASSERT_TRUE(enc->encode_image(solid(20, 20, 200, 10, 10), &e1, &err));
    ASSERT_TRUE(enc->encode_image(solid(20, 20, 200, 10, 10), &e2, &err));
    ASSERT_TRUE(enc->encode_image(solid(20, 20, 10, 10, 200), &e3, &err));
    EXPECT_EQ(e1.size(), 64u);
    EXPECT_EQ(e1, e2);
    EXPECT_NE(e1, e3);
    video_u8 v;
    v.frames = {solid(8, 8, 1, 2, 3), solid(8, 8, 200, 2, 3)};
    ASSERT_TRUE(enc->encode_video(v, &e2, &err));
    EXPECT_EQ(e2.size(), 64u);
    audio_f32 a;
    a.samples.assign(16000, 0.0f);
    for (int i = 0; i < 16000; ++i) a.samples[i] = 0.3f * std::sin(0.2f * i);
    ASSERT_TRUE(enc->encode_audio(a, &e3, &err)) << err;
    EXPECT_EQ(e3.size(), 64u);

    auto proj = input_projector::random(64, 24, 9);
    ASSERT_TRUE(proj->project(e1, &tok, &err));
    EXPECT_EQ(tok.size(), 24u);
    EXPECT_FALSE(proj->project(std::vector<float>(10), &tok, &err));
    EXPECT_NE(err.find("10"), std::string::npos);

    // projector from GGUF: y = W x + b
    gguf_writer w;
    std::vector<float> W(3 * 2), b = {0.5f, -1.0f};
    for (int i = 0; i < 6; ++i) W[i] = static_cast<float>(i);  // rows: [0 1 2], [3 4 5]
    int64_t ne_w[2] = {3, 2}, ne_b[1] = {2};
    ASSERT_TRUE(w.add_tensor("spider.proj.weight", DTYPE_F32, ne_w, 2, W.data(), &err));
    ASSERT_TRUE(w.add_tensor("spider.proj.bias", DTYPE_F32, ne_b, 1, b.data(), &err));
    const std::string path = std::string(SPIDER_BINARY_DIR) + "/proj_test.gguf";
    ASSERT_TRUE(w.write(path, &err)) << err;
    std::shared_ptr<gguf_file> f(gguf_file::open(path, &err).release());
    ASSERT_TRUE(f) << err;
    auto p2 = input_projector::from_gguf(f, &err);
    ASSERT_TRUE(p2) << err;
    ASSERT_TRUE(p2->project({1, 1, 1}, &tok, &err));
    EXPECT_FLOAT_EQ(tok[0], 3.5f);
    EXPECT_FLOAT_EQ(tok[1], 11.0f);
}
