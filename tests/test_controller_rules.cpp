// Controller rules: one test per rule showing it enforced on a scripted answer and recorded in the response
// (allowed modalities, max items per modality, max items per answer, blocked words, quality retry / drop / keep,
// needs-review flag), plus config parsing errors and request-tightens-config merging.
#include <gtest/gtest.h>

#include "pipeline/pipeline.h"

using namespace spider;

static bool has_decision(const response_item & it, const std::string & rule, const std::string & action) {
    for (const auto & d : it.decisions) {
        if (d.rule == rule && d.action == action) return true;
    }
    return false;
}

struct rules_fixture {
    pipeline_components c;
    pipeline_config cfg;
    rules_fixture() {
        make_tiny_components(&c, 32, 3);
        cfg.image_size = 24;
        cfg.audio_seconds = 0.1f;
        cfg.video_seconds = 0.25f;
    }
    response run(const std::string & rules_json, const std::string & script, const std::string & request_rules = "") {
        std::string err;
        EXPECT_TRUE(rules_from_json(rules_json, &c.rules, &err)) << err;
        run_request req;
        req.prompt = "p";
        req.seed = 1;
        if (!request_rules.empty()) {
            req.has_rules = true;
            EXPECT_TRUE(rules_from_json(request_rules, &req.rules, &err)) << err;
        }
        auto gen = make_scripted_generator(script, 32, 0, c.tmpl);
        response r;
        EXPECT_TRUE(run_pipeline(c, cfg, *gen, req, nullptr, &r, &err)) << err;
        return r;
    }
};

TEST(controller_rules, allowed_modalities) {
    rules_fixture f;
    response r = f.run(R"({"allowed_modalities": ["image"]})",
                       "[OUTPUT]<IMAGE>a cat[IMAGE0]</IMAGE><AUDIO>a meow[AUDIO0]</AUDIO>[END]");
    ASSERT_EQ(r.items.size(), 2u);
    EXPECT_EQ(r.items[0].status, "ok");
    EXPECT_EQ(r.items[1].status, "blocked");
    EXPECT_TRUE(has_decision(r.items[1], "allowed_modalities", "block"));
    EXPECT_NE(r.rules_json.find("allowed_modalities"), std::string::npos);
}

TEST(controller_rules, max_items_per_modality) {
    rules_fixture f;
    response r = f.run(R"({"max_items_per_modality": {"image": 1}})",
                       "[OUTPUT]<IMAGE>one[IMAGE0]</IMAGE><AUDIO>hum[AUDIO0]</AUDIO><IMAGE>two[IMAGE0]</IMAGE>[END]");
    ASSERT_EQ(r.items.size(), 3u);
    EXPECT_EQ(r.items[0].status, "ok");
    EXPECT_EQ(r.items[1].status, "ok");
    EXPECT_EQ(r.items[2].status, "blocked");
    EXPECT_TRUE(has_decision(r.items[2], "max_items_per_modality", "block"));
    EXPECT_TRUE(has_decision(r.items[0], "admission", "allow"));
}

TEST(controller_rules, max_items_per_answer) {
    rules_fixture f;
    response r = f.run(R"({"max_items": 2})",
                       "[OUTPUT]<IMAGE>a[IMAGE0]</IMAGE><AUDIO>b[AUDIO0]</AUDIO><BOX>c[BOX0]</BOX>"
                       "<IMAGE>d[IMAGE0]</IMAGE>[END]");
    ASSERT_EQ(r.items.size(), 4u);
    EXPECT_EQ(r.items[1].status, "ok");
    EXPECT_EQ(r.items[2].status, "blocked");
    EXPECT_EQ(r.items[3].status, "blocked");
    EXPECT_TRUE(has_decision(r.items[3], "max_items", "block"));
}

TEST(controller_rules, blocked_words_whole_words_case_insensitive) {
    rules_fixture f;
    response r = f.run(R"({"blocked_words": ["gore", "blood bath"]})",
                       "[OUTPUT]<IMAGE>Gore everywhere[IMAGE0]</IMAGE><IMAGE>a gorest bird[IMAGE0]</IMAGE>"
                       "<AUDIO>a BLOOD bath sound[AUDIO0]</AUDIO>[END]");
    ASSERT_EQ(r.items.size(), 3u);
    EXPECT_EQ(r.items[0].status, "blocked");
    EXPECT_TRUE(has_decision(r.items[0], "blocked_words", "block"));
    EXPECT_NE(r.items[0].error.find("gore"), std::string::npos);
    EXPECT_EQ(r.items[1].status, "ok");  // "gorest" is not the word "gore"
    EXPECT_EQ(r.items[2].status, "blocked");
}

TEST(controller_rules, quality_retry_then_accept_with_another_seed) {
    rules_fixture f;
    // a scorer that fails the first attempt of each item
    std::map<std::string, int> calls;
    std::mutex mu;
    f.c.scorer = [&](const decode_result &, const std::string & t) {
        std::lock_guard<std::mutex> lk(mu);
        return ++calls[t] == 1 ? 0.1f : 0.9f;
    };
    response r = f.run(R"({"quality": {"min_score": 0.5, "max_retries": 2, "on_fail": "drop"}})",
                       "[OUTPUT]<IMAGE>a cat[IMAGE0]</IMAGE>[END]");
    ASSERT_EQ(r.items.size(), 1u);
    EXPECT_EQ(r.items[0].status, "ok");
    EXPECT_EQ(r.items[0].attempts, 2);
    EXPECT_TRUE(has_decision(r.items[0], "quality", "retry"));
    EXPECT_TRUE(has_decision(r.items[0], "quality", "accept"));
    EXPECT_FLOAT_EQ(r.items[0].quality, 0.9f);
    // the accepted attempt used a different seed than the first one
    response plain = f.run("{}", "[OUTPUT]<IMAGE>a cat[IMAGE0]</IMAGE>[END]");
    EXPECT_NE(r.items[0].seed, plain.items[0].seed);
}

TEST(controller_rules, quality_drop_and_keep_for_review) {
    rules_fixture f;
    f.c.scorer = [](const decode_result &, const std::string &) { return 0.2f; };
    response r = f.run(R"({"quality": {"min_score": 0.5, "max_retries": 1, "on_fail": "drop"}})",
                       "[OUTPUT]<AUDIO>rain[AUDIO0]</AUDIO>text[END]");
    ASSERT_EQ(r.items.size(), 1u);
    EXPECT_EQ(r.items[0].status, "dropped");
    EXPECT_EQ(r.items[0].attempts, 2);
    EXPECT_TRUE(r.items[0].files.empty());
    EXPECT_TRUE(has_decision(r.items[0], "quality", "drop"));
    EXPECT_EQ(r.text(), "[audio #0]text");

    r = f.run(R"({"quality": {"min_score": 0.5, "max_retries": 0, "on_fail": "keep"}})",
              "[OUTPUT]<AUDIO>rain[AUDIO0]</AUDIO>[END]");
    EXPECT_EQ(r.items[0].status, "ok");
    EXPECT_TRUE(r.items[0].needs_review);
    EXPECT_TRUE(r.needs_review);
    EXPECT_TRUE(has_decision(r.items[0], "quality", "keep"));
}

TEST(controller_rules, builtin_quality_scorer_checks_colour_words) {
    rules_fixture f;
    f.c.scorer = nullptr;  // builtin_quality_score
    response r = f.run(R"({"quality": {"min_score": 0.5}})", "[OUTPUT]<IMAGE>a red circle[IMAGE0]</IMAGE>[END]");
    EXPECT_EQ(r.items[0].status, "ok");
    EXPECT_FLOAT_EQ(r.items[0].quality, 1.0f);
    decode_result fake;
    fake.m = MODALITY_IMAGE;
    fake.image.width = fake.image.height = 4;
    fake.image.channels = 3;
    fake.image.pixels.assign(48, 0);
    for (int i = 0; i < 16; ++i) fake.image.pixels[i * 3 + 2] = static_cast<uint8_t>(i * 15);  // shades of blue
    EXPECT_FLOAT_EQ(builtin_quality_score(fake, "a red thing"), 0.25f);
    fake.image.pixels.assign(48, 9);
    EXPECT_FLOAT_EQ(builtin_quality_score(fake, "anything"), 0.0f);  // flat image
}

TEST(controller_rules, needs_review_flag) {
    rules_fixture f;
    response r = f.run(R"({"review": {"words": ["face"], "modalities": ["video"]}})",
                       "[OUTPUT]<IMAGE>a smiling face[IMAGE0]</IMAGE><IMAGE>a tree[IMAGE0]</IMAGE>"
                       "<VIDEO>a river[VIDEO0]</VIDEO>[END]");
    ASSERT_EQ(r.items.size(), 3u);
    EXPECT_TRUE(r.items[0].needs_review);
    EXPECT_FALSE(r.items[1].needs_review);
    EXPECT_TRUE(r.items[2].needs_review);
    EXPECT_TRUE(has_decision(r.items[0], "review", "flag"));
    EXPECT_TRUE(r.needs_review);
    EXPECT_EQ(r.review_reasons.size(), 2u);
    r = f.run("{}", "[OUTPUT]<IMAGE>a smiling face[IMAGE0]</IMAGE>[END]");
    EXPECT_FALSE(r.needs_review);
}

TEST(controller_rules, request_can_only_tighten_config) {
    rules_fixture f;
    response r = f.run(R"({"allowed_modalities": ["image", "audio"], "max_items": 3})",
                       "[OUTPUT]<IMAGE>a[IMAGE0]</IMAGE><AUDIO>b[AUDIO0]</AUDIO><VIDEO>c[VIDEO0]</VIDEO>[END]",
                       R"({"allowed_modalities": ["audio", "video"], "max_items": 10})");
    ASSERT_EQ(r.items.size(), 3u);
    EXPECT_EQ(r.items[0].status, "blocked");  // the request removed image
    EXPECT_EQ(r.items[1].status, "ok");
    EXPECT_EQ(r.items[2].status, "blocked");  // the request cannot add video
    controller_rules a, b;
    std::string err;
    ASSERT_TRUE(rules_from_json(R"({"max_items": 3, "blocked_words": ["x"]})", &a, &err));
    ASSERT_TRUE(rules_from_json(R"({"max_items": 10, "blocked_words": ["y"]})", &b, &err));
    controller_rules m = rules_merge(a, b);
    EXPECT_EQ(m.max_items, 3);
    EXPECT_EQ(m.blocked_words.size(), 2u);
}

TEST(controller_rules, config_errors_name_the_field) {
    controller_rules r;
    std::string err;
    EXPECT_FALSE(rules_from_json("{", &r, &err));
    EXPECT_NE(err.find("invalid JSON"), std::string::npos);
    EXPECT_FALSE(rules_from_json(R"({"allowed_modalities": ["smell"]})", &r, &err));
    EXPECT_NE(err.find("allowed_modalities"), std::string::npos);
    EXPECT_FALSE(rules_from_json(R"({"max_items": "3"})", &r, &err));
    EXPECT_NE(err.find("max_items"), std::string::npos);
    EXPECT_FALSE(rules_from_json(R"({"quality": {"min_score": 2}})", &r, &err));
    EXPECT_NE(err.find("min_score"), std::string::npos);
    EXPECT_FALSE(rules_from_json(R"({"quality": {"on_fail": "explode"}})", &r, &err));
    EXPECT_FALSE(rules_from_json(R"({"colour": "red"})", &r, &err));
    EXPECT_NE(err.find("colour"), std::string::npos);
    EXPECT_FALSE(rules_load("/nonexistent/rules.json", &r, &err));
    ASSERT_TRUE(rules_load(std::string(SPIDER_SOURCE_DIR) + "/tests/data/controller/rules_example.json", &r, &err))
        << err;
    EXPECT_TRUE(r.restrict_modalities);
    EXPECT_TRUE(r.quality.enabled);
}
