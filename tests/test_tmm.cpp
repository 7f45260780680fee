// TMM builders: every family produces well-formed records, determinism, held-out phrasings in the test split,
// targets that match the groups and the world truth; importers for caption lists and media folders.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "world/tmm.h"

using namespace spider;

static std::vector<world_entry> make_entries(world_split split, int n) {
    world_params p;
    p.split = split;
    std::vector<world_entry> v;
    for (int i = 0; i < n; ++i) {
        world_entry e;
        e.split = split;
        e.index = i;
        image_item im;
        world_make_image(21, i, p, &im);
        e.kind = KIND_IMAGE;
        e.id = "im" + std::to_string(i);
        e.file = "image/" + e.id + ".png";
        e.mask_file = "image/" + e.id + "_mask.png";
        e.image = im.truth;
        e.captions = im.captions;
        v.push_back(e);
        audio_item au;
        world_make_audio(21, i, p, &au);
        world_entry a;
        a.split = split;
        a.kind = KIND_AUDIO;
        a.id = "au" + std::to_string(i);
        a.file = "audio/" + a.id + ".wav";
        a.audio = au.truth;
        a.captions = au.captions;
        v.push_back(a);
        video_item vi;
        world_make_video(21, i, p, &vi);
        world_entry w;
        w.split = split;
        w.kind = KIND_VIDEO;
        w.id = "vi" + std::to_string(i);
        w.file = "video/" + w.id + ".mp4";
        w.video = vi.truth;
        w.captions = vi.captions;
        v.push_back(w);
    }
    return v;
}

TEST(tmm, every_family_builds_valid_deterministic_records) {
    auto items = make_entries(SPLIT_TRAIN, 30);
    tmm_build_options o;
    o.count = 17 * 40;
    std::vector<tmm_record> a, b;
    std::string err;
    ASSERT_TRUE(tmm_build_records(items, o, &a, &err)) << err;
    ASSERT_TRUE(tmm_build_records(items, o, &b, &err)) << err;
    ASSERT_EQ(a.size(), o.count);
    std::map<std::string, int> fam;
    for (size_t i = 0; i < a.size(); ++i) {
        nlohmann::json j = tmm_record_json(a[i]);
        EXPECT_EQ(j.dump(), tmm_record_json(b[i]).dump()) << "same seed must give the same record";
        std::string why;
        EXPECT_TRUE(tmm_check_record(j, &why)) << a[i].id << ": " << why << "\n" << j.dump();
        fam[a[i].family]++;
    }
    EXPECT_EQ(fam.size(), tmm_family_names().size());
    o.seed = 2;
    ASSERT_TRUE(tmm_build_records(items, o, &b, &err));
    int differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += tmm_record_json(a[i]).dump() != tmm_record_json(b[i]).dump();
    EXPECT_GT(differ, (int)a.size() / 2);
}

TEST(tmm, family_shapes) {
    auto items = make_entries(SPLIT_TRAIN, 20);
    std::string err;
    for (const std::string fam : {"multi_item", "long_form", "box", "mask", "t2tmm_specific", "box_tmm", "v2tmm"}) {
        tmm_build_options o;
        o.count = 60;
        o.families = {fam};
        std::vector<tmm_record> recs;
        ASSERT_TRUE(tmm_build_records(items, o, &recs, &err)) << err;
        std::set<size_t> group_counts;
        for (const auto & r : recs) {
            EXPECT_EQ(r.family, fam);
            group_counts.insert(r.targets.size());
            if (fam == "long_form") {
                EXPECT_NE(r.answer.find("1. Shapes"), std::string::npos);
                EXPECT_NE(r.answer.find("3. Motion"), std::string::npos);
                EXPECT_GE(r.targets.size(), 3u);
            }
            if (fam == "box" || fam == "mask") {
                ASSERT_EQ(r.inputs.size(), 1u);
                ASSERT_EQ(r.targets.size(), 1u);
                // The target box is the truth box of an object of the input image.
                bool found = false;
                for (const auto & e : items)
                    if (e.file == r.inputs[0].file)
                        for (const auto & ob : e.image.objects)
                            found |= ob.box.x0 == r.targets[0].box[0] && ob.box.y0 == r.targets[0].box[1] &&
                                     ob.box.x1 == r.targets[0].box[2] && ob.box.y1 == r.targets[0].box[3];
                EXPECT_TRUE(found) << r.id;
                EXPECT_EQ(r.targets[0].width, 64);
                if (fam == "mask") {
                    EXPECT_GE(r.targets[0].label, 1);
                }
            }
            if (fam == "t2tmm_specific" && r.targets.size() > 1) {
                EXPECT_EQ(r.task_prompt, "[SPECIFICMULTIMODAL]");
            }
        }
        if (fam == "multi_item") {
            EXPECT_EQ(*group_counts.begin(), 1u);
            EXPECT_EQ(*group_counts.rbegin(), 5u);
        }
    }
}

TEST(tmm, test_split_uses_held_out_phrasings) {
    // t2i pool: the last two phrasings ("Paint ...", "Render an image with ...") are test-only.
    std::string err;
    for (world_split split : {SPLIT_TRAIN, SPLIT_TEST}) {
        auto items = make_entries(split, 20);
        tmm_build_options o;
        o.split = split;
        o.count = 200;
        o.families = {"t2i"};
        std::vector<tmm_record> recs;
        ASSERT_TRUE(tmm_build_records(items, o, &recs, &err)) << err;
        for (const auto & r : recs) {
            bool held = r.question.rfind("Paint ", 0) == 0 || r.question.rfind("Render an image with ", 0) == 0;
            EXPECT_EQ(held, split == SPLIT_TEST) << r.question;
        }
    }
    // A family whose world kind is missing is an error, not a crash.
    std::vector<world_entry> only_images;
    for (const auto & e : make_entries(SPLIT_TRAIN, 3))
        if (e.kind == KIND_IMAGE) only_images.push_back(e);
    tmm_build_options o;
    o.families = {"t2a"};
    std::vector<tmm_record> recs;
    EXPECT_FALSE(tmm_build_records(only_images, o, &recs, &err));
    EXPECT_NE(err.find("audio"), std::string::npos);
    o.families = {"nonsense"};
    EXPECT_FALSE(tmm_build_records(only_images, o, &recs, &err));
}

TEST(tmm, signal_token_count_is_configurable) {
    auto items = make_entries(SPLIT_TRAIN, 5);
    tmm_build_options o;
    o.count = 50;
    o.n_signal = 4;
    std::vector<tmm_record> recs;
    std::string err;
    ASSERT_TRUE(tmm_build_records(items, o, &recs, &err));
    bool saw = false;
    for (const auto & r : recs) {
        std::string why;
        EXPECT_TRUE(tmm_check_record(tmm_record_json(r), &why)) << why;
        saw |= r.answer.find("[IMAGE3]</IMAGE>") != std::string::npos;
    }
    EXPECT_TRUE(saw);
}

static std::string tmp_dir() {
    std::string d = "/tmp/spider_test_tmm_" + std::to_string(getpid());
    std::string err;
    make_dirs(d, &err);
    return d;
}

TEST(tmm, importers_caption_lists_and_folders) {
    std::string d = tmp_dir(), err;
    // Media of three kinds.
    image_u8 img;
    img.width = img.height = 16;
    img.channels = 3;
    img.pixels.assign(16 * 16 * 3, 90);
    ASSERT_TRUE(image_write_png(d + "/cat.png", img, {}, &err)) << err;
    ASSERT_TRUE(image_write_jpeg(d + "/dog.jpg", img, 90, &err)) << err;
    audio_f32 a;
    a.samples.assign(8000, 0.1f);
    ASSERT_TRUE(audio_write_wav(d + "/bark.wav", a, {}, &err)) << err;
    {
        std::ofstream f(d + "/list.csv");
        f << "file,caption\n"
          << "cat.png,\"a cat, sitting\"\n"
          << "dog.jpg,\"a \"\"good\"\" dog\"\n"
          << "bark.wav,a dog barking\n"
          << "missing.png,not there\n"
          << "notes.txt,not media\n";
    }
    std::vector<import_row> rows;
    ASSERT_TRUE(import_read_caption_list(d + "/list.csv", &rows, &err)) << err;
    ASSERT_EQ(rows.size(), 5u);
    EXPECT_EQ(rows[0].caption, "a cat, sitting");
    EXPECT_EQ(rows[1].caption, "a \"good\" dog");
    int64_t n = 0;
    std::vector<std::string> skipped;
    import_options o;
    ASSERT_TRUE(import_build(rows, d, d + "/tmm.jsonl", o, &n, &skipped, &err)) << err;
    EXPECT_EQ(n, 9);  // 3 good rows x (T2X, X2T, T->TMM)
    EXPECT_EQ(skipped.size(), 2u);
    tmm_validate_result r;
    ASSERT_TRUE(tmm_validate_file(d + "/tmm.jsonl", tmm_validate_options(), &r, &err)) << err;
    EXPECT_EQ(r.records, 9);
    EXPECT_EQ(r.bad_records, 0) << (r.issues.empty() ? "" : r.issues[0].reason);

    {
        std::ofstream f(d + "/list.jsonl");
        f << "{\"file\": \"cat.png\", \"caption\": \"a cat\"}\n";
        f << "{\"file\": \"cat.png\"}\n";
    }
    EXPECT_FALSE(import_read_caption_list(d + "/list.jsonl", &rows, &err));
    EXPECT_NE(err.find(":2:"), std::string::npos) << err;
    {
        std::ofstream f(d + "/bad.csv");
        f << "name,text_only\nx,y\n";
    }
    EXPECT_FALSE(import_read_caption_list(d + "/bad.csv", &rows, &err));

    // Folder with sidecar captions: only captioned media become rows.
    std::string fd = d + "/folder";
    ASSERT_TRUE(make_dirs(fd, &err));
    ASSERT_TRUE(image_write_png(fd + "/a.png", img, {}, &err));
    ASSERT_TRUE(image_write_png(fd + "/b.png", img, {}, &err));
    { std::ofstream(fd + "/a.txt") << "a grey square\n"; }
    ASSERT_TRUE(import_scan_folder(fd, &rows, &err)) << err;
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].caption, "a grey square");
    ASSERT_TRUE(import_build(rows, fd, fd + "/tmm.jsonl", o, &n, &skipped, &err));
    ASSERT_TRUE(tmm_validate_file(fd + "/tmm.jsonl", tmm_validate_options(), &r, &err));
    EXPECT_EQ(r.bad_records, 0);
    // Captions that are not UTF-8 are skipped with a reason, never written (or thrown) into JSON.
    std::vector<import_row> bad_rows = {{fd + "/a.png", "caf\xc3"}, {fd + "/a.png", "ok caption"}};
    skipped.clear();
    ASSERT_TRUE(import_build(bad_rows, fd, fd + "/tmm2.jsonl", o, &n, &skipped, &err)) << err;
    EXPECT_EQ(n, 3);
    ASSERT_EQ(skipped.size(), 1u);
    EXPECT_NE(skipped[0].find("UTF-8"), std::string::npos);
    EXPECT_EQ(media_kind_from_path("x/y.WEBM"), TMM_VIDEO);
    EXPECT_EQ(media_kind_from_path("x/y.txt"), -1);
    std::system(("rm -rf " + d).c_str());
}
