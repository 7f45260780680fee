// ToyWorld judges against fresh ground truth: >= 99% per attribute on >= 1000 fresh items of each kind (new seeds
// every run; the seed is printed so a failure can be replayed with SPIDER_JUDGE_SEED), deliberately wrong items
// (other colour, other pitch, reversed motion, shifted box) judged wrong, and noise judged "not judgeable".
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <random>

#include "world/judges.h"
#include "world/rng.h"

using namespace spider;

static uint64_t fresh_seed() {
    if (const char * s = std::getenv("SPIDER_JUDGE_SEED")) return std::strtoull(s, nullptr, 10);
    std::random_device rd;  // fresh seeds every run, not a fixed fixture
    uint64_t s = ((uint64_t)rd() << 32) ^ rd() ^ (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count();
    return s % 1000000007ull;
}

static void expect_rates(const judge_tally & t, double min_rate, const std::string & what, uint64_t seed) {
    for (const auto & kv : t.counts)
        EXPECT_GE(t.rate(kv.first), min_rate) << what << " attribute '" << kv.first << "' (seed " << seed << ")\n"
                                              << t.to_string();
    std::printf("%s (seed %llu):\n%s", what.c_str(), (unsigned long long)seed, t.to_string().c_str());
}

TEST(judges, images_fresh_seeds_99_percent_per_attribute) {
    uint64_t seed = fresh_seed();
    world_params p;
    judge_tally t;
    for (int split = 0; split < 3; ++split) {
        p.split = (world_split)split;
        for (int i = 0; i < 400; ++i) {
            image_item it;
            world_make_image(seed, i, p, &it);
            image_judgement j;
            std::string err;
            ASSERT_TRUE(judge_image(it.image, &j, &err)) << err;
            judge_check_image(j, it.truth, it.labels, &t);
        }
    }
    EXPECT_GE(t.counts["shape"].second, 1000);
    expect_rates(t, 0.99, "image judge", seed);
}

TEST(judges, audio_fresh_seeds_99_percent_per_attribute) {
    uint64_t seed = fresh_seed();
    world_params p;
    judge_tally t;
    for (int split = 0; split < 3; ++split) {
        p.split = (world_split)split;
        for (int i = 0; i < 340; ++i) {
            audio_item it;
            world_make_audio(seed, i, p, &it);
            audio_judgement j;
            std::string err;
            ASSERT_TRUE(judge_audio(it.audio, &j, &err)) << err;
            judge_check_audio(j, it.truth, &t);
        }
    }
    EXPECT_GE(t.counts["pattern"].second, 1000);
    expect_rates(t, 0.99, "audio judge", seed);
}

TEST(judges, video_fresh_seeds_99_percent_per_attribute) {
    uint64_t seed = fresh_seed();
    world_params p;
    judge_tally t;
    for (int split = 0; split < 3; ++split) {
        p.split = (world_split)split;
        for (int i = 0; i < 340; ++i) {
            video_item it;
            world_make_video(seed, i, p, &it);
            video_judgement j;
            std::string err;
            ASSERT_TRUE(judge_video(it.video, &j, &err)) << err;
            judge_check_video(j, it.truth, &t);
        }
    }
    EXPECT_GE(t.counts["motion"].second, 1000);
    expect_rates(t, 0.99, "video judge", seed);
}

// The item's own truth passes; a claim with another colour, another shape or a shifted box fails; an image whose
// object was repainted fails the original claim.
TEST(judges, wrong_images_are_judged_wrong) {
    uint64_t seed = fresh_seed();
    world_params p;
    int n = 0;
    for (int i = 0; i < 200; ++i) {
        image_item it;
        world_make_image(seed, i, p, &it);
        image_judgement j;
        std::string err;
        ASSERT_TRUE(judge_image(it.image, &j, &err));
        if (!judge_image_matches(j, it.truth, it.labels)) continue;  // the rare miss is counted by the rate test
        ++n;
        image_truth other = it.truth;
        other.objects[0].colour = (other.objects[0].colour + 1 + i % (COLOUR_COUNT - 1)) % COLOUR_COUNT;
        EXPECT_FALSE(judge_image_matches(j, other, it.labels)) << "other colour, seed " << seed << " item " << i;
        other = it.truth;
        other.objects[0].shape = (other.objects[0].shape + 1 + i % (SHAPE_COUNT - 1)) % SHAPE_COUNT;
        EXPECT_FALSE(judge_image_matches(j, other, it.labels)) << "other shape, seed " << seed << " item " << i;
        other = it.truth;
        int dx = 3 + i % 3;
        other.objects[0].box.x0 += dx;
        other.objects[0].box.x1 += dx;
        EXPECT_FALSE(judge_image_matches(j, other, it.labels)) << "shifted box, seed " << seed << " item " << i;
        other = it.truth;
        other.objects.pop_back();
        EXPECT_FALSE(judge_image_matches(j, other, it.labels)) << "missing object, seed " << seed;
        // Repaint the first object's pixels in another palette colour.
        image_u8 painted = it.image;
        int newc = (it.truth.objects[0].colour + 3) % COLOUR_COUNT;
        uint8_t rgb[3];
        colour_rgb(newc, rgb);
        for (size_t q = 0; q < it.labels.size(); ++q)
            if (it.labels[q] == 1)
                for (int k = 0; k < 3; ++k) painted.pixels[q * 3 + k] = rgb[k];
        image_judgement j2;
        ASSERT_TRUE(judge_image(painted, &j2, &err));
        EXPECT_FALSE(judge_image_matches(j2, it.truth, it.labels)) << "repainted, seed " << seed << " item " << i;
    }
    EXPECT_GT(n, 190);
}

TEST(judges, wrong_audio_is_judged_wrong) {
    uint64_t seed = fresh_seed();
    world_params p;
    int n = 0;
    for (int i = 0; i < 150; ++i) {
        audio_item it;
        world_make_audio(seed, i, p, &it);
        audio_judgement j;
        std::string err;
        ASSERT_TRUE(judge_audio(it.audio, &j, &err));
        if (!judge_audio_matches(j, it.truth)) continue;
        ++n;
        audio_truth other = it.truth;
        other.pattern = (other.pattern + 1 + i % (PATTERN_COUNT - 1)) % PATTERN_COUNT;
        EXPECT_FALSE(judge_audio_matches(j, other)) << "other pattern, seed " << seed << " item " << i;
        if (it.truth.pattern != PATTERN_NOISE) {
            other = it.truth;
            other.pitch = (other.pitch + 1 + i % (PITCH_COUNT - 1)) % PITCH_COUNT;
            EXPECT_FALSE(judge_audio_matches(j, other)) << "other pitch, seed " << seed << " item " << i;
            // Resynthesise at another pitch: the original claim must fail on the new audio.
            world_params q = p;
            audio_item shifted;
            uint64_t s2 = seed;
            for (int tries = 0; tries < 50; ++tries) {
                world_make_audio(s2 + tries + 1, i, q, &shifted);
                if (shifted.truth.pattern == it.truth.pattern && shifted.truth.pitch != it.truth.pitch) break;
            }
            if (shifted.truth.pattern == it.truth.pattern && shifted.truth.pitch != it.truth.pitch) {
                audio_judgement j2;
                ASSERT_TRUE(judge_audio(shifted.audio, &j2, &err));
                other = shifted.truth;
                other.pitch = it.truth.pitch;
                EXPECT_FALSE(judge_audio_matches(j2, other)) << "resynthesised pitch, seed " << seed << " item " << i;
            }
        }
        if (it.truth.count > 1) {
            other = it.truth;
            other.count += 1;
            EXPECT_FALSE(judge_audio_matches(j, other)) << "other count";
        }
    }
    EXPECT_GT(n, 140);
}

TEST(judges, reversed_video_motion_is_judged_wrong) {
    uint64_t seed = fresh_seed();
    world_params p;
    int n = 0;
    for (int i = 0; i < 150; ++i) {
        video_item it;
        world_make_video(seed, i, p, &it);
        if (it.truth.motion == MOTION_ROTATE) continue;  // rotation direction is not judged
        video_u8 rev = it.video;
        std::reverse(rev.frames.begin(), rev.frames.end());
        video_judgement j;
        std::string err;
        ASSERT_TRUE(judge_video(rev, &j, &err));
        ++n;
        EXPECT_FALSE(judge_video_matches(j, it.truth))
            << "reversed " << motion_name(it.truth.motion) << ", seed " << seed;
        ASSERT_TRUE(judge_video(it.video, &j, &err));
        video_truth other = it.truth;
        other.colour = (other.colour + 1) % COLOUR_COUNT;
        if (other.motion != MOTION_RECOLOUR) other.colour_to = other.colour;
        EXPECT_FALSE(judge_video_matches(j, other)) << "other colour";
    }
    EXPECT_GT(n, 100);
}

TEST(judges, noise_is_not_judgeable) {
    world_rng rng(fresh_seed());
    for (int trial = 0; trial < 20; ++trial) {
        image_u8 img;
        img.width = img.height = 64;
        img.channels = 3;
        img.pixels.resize(64 * 64 * 3);
        for (auto & v : img.pixels) v = (uint8_t)rng.below(256);
        image_judgement j;
        std::string err;
        ASSERT_TRUE(judge_image(img, &j, &err));
        EXPECT_FALSE(j.judgeable);
        EXPECT_FALSE(j.reason.empty());

        audio_f32 a;
        a.samples.resize(16000 * 2);
        for (auto & s : a.samples) s = (float)rng.uniform(-0.5, 0.5);
        audio_judgement ja;
        ASSERT_TRUE(judge_audio(a, &ja, &err));
        EXPECT_FALSE(ja.judgeable);
        a.samples.assign(16000, 0.0f);
        ASSERT_TRUE(judge_audio(a, &ja, &err));
        EXPECT_FALSE(ja.judgeable) << "silence";

        video_u8 v;
        v.width = v.height = 64;
        for (int f = 0; f < 8; ++f) {
            for (auto & x : img.pixels) x = (uint8_t)rng.below(256);
            v.frames.push_back(img);
        }
        video_judgement jv;
        ASSERT_TRUE(judge_video(v, &jv, &err));
        EXPECT_FALSE(jv.judgeable);
    }
    // Bad arguments are errors, not crashes.
    image_u8 tiny;
    image_judgement j;
    std::string err;
    EXPECT_FALSE(judge_image(tiny, &j, &err));
    EXPECT_FALSE(err.empty());
    video_u8 empty;
    video_judgement jv;
    EXPECT_FALSE(judge_video(empty, &jv, &err));
}

TEST(judges, survive_mp4_round_trip) {
    uint64_t seed = fresh_seed();
    world_params p;
    judge_tally t;
    for (int i = 0; i < 60; ++i) {
        video_item it;
        world_make_video(seed, i, p, &it);
        std::string path = "/tmp/spider_judge_" + std::to_string(seed) + "_" + std::to_string(i) + ".mp4", err;
        ASSERT_TRUE(video_write(path, it.video, {}, &err)) << err;
        video_u8 back;
        ASSERT_TRUE(video_read(path, &back, &err)) << err;
        std::remove(path.c_str());
        video_judgement j;
        ASSERT_TRUE(judge_video(back, &j, &err));
        judge_check_video(j, it.truth, &t);
    }
    // 4:2:0 chroma at 64x64 erodes the thin parts of small rings and crosses, so shape is reported, not required,
    // after lossy coding (docs/WORLD.md); motion and colour must survive.
    std::printf("video judge after H.264 (seed %llu):\n%s", (unsigned long long)seed, t.to_string().c_str());
    for (const char * a : {"judgeable", "motion", "colour"}) EXPECT_GE(t.rate(a), 0.95) << a << " seed " << seed;
}

TEST(judges, consistency_and_text_claims) {
    world_params p;
    image_item im;
    world_make_image(7, 3, p, &im);
    image_judgement a, b;
    std::string err, why;
    ASSERT_TRUE(judge_image(im.image, &a, &err));
    ASSERT_TRUE(judge_image(im.image, &b, &err));
    EXPECT_TRUE(judge_consistent_images(a, b, &why)) << why;
    b.objects[0].colour = (b.objects[0].colour + 1) % COLOUR_COUNT;
    EXPECT_FALSE(judge_consistent_images(a, b, &why));
    text_claims c = parse_text_claims("A big red circle sliding left, then three high-pitched beeps.");
    EXPECT_EQ(c.colours, std::vector<int>{COLOUR_RED});
    EXPECT_EQ(c.shapes, std::vector<int>{SHAPE_CIRCLE});
    EXPECT_EQ(c.motions, std::vector<int>{MOTION_LEFT});
    EXPECT_EQ(c.patterns, std::vector<int>{PATTERN_BEEPS});
    EXPECT_EQ(c.pitches, std::vector<int>{PITCH_HIGH});
}
