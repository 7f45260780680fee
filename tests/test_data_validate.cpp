// `spider data validate` core: a corpus of broken records (unclosed group, unknown modality, missing file,
// truncated PNG / WAV / MP4, bad UTF-8, ...) is rejected line by line with the problem named, valid records pass,
// and randomly mutated records never crash the checker.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "world/rng.h"
#include "world/tmm.h"

using namespace spider;

namespace {

std::string g_dir;

struct world_fixture : public ::testing::Test {
    static void SetUpTestSuite() {
        g_dir = "/tmp/spider_test_validate_" + std::to_string(getpid());
        world_write_options o;
        o.seed = 3;
        o.count = 4;
        o.threads = 1;
        std::string err;
        ASSERT_TRUE(world_write(g_dir, o, nullptr, &err)) << err;
        tmm_build_options b;
        b.count = 170;
        ASSERT_TRUE(tmm_build(g_dir, g_dir + "/tmm_train.jsonl", b, nullptr, &err)) << err;
        // Truncated copies of real media.
        for (const char * f :
             {"image/train_image_000000.png", "audio/train_audio_000000.wav", "video/train_video_000000.mp4"}) {
            std::vector<uint8_t> d;
            ASSERT_TRUE(file_read_all(g_dir + "/" + f, &d, &err));
            std::string name = std::string(f);
            name = name.substr(0, name.find('.')) + "_cut" + name.substr(name.find('.'));
            ASSERT_TRUE(file_write_atomic(g_dir + "/" + name, d.data(), d.size() * 2 / 3, &err));
        }
    }
    static void TearDownTestSuite() { std::system(("rm -rf " + g_dir).c_str()); }
};

std::string rec(const std::string & q, const std::string & task, const std::string & answer,
                const std::string & inputs = "[]", const std::string & targets = "[]") {
    nlohmann::json j = {{"id", "r"}, {"Question", q}, {"TaskPrompt", task}, {"Answer", answer}};
    j["Inputs"] = nlohmann::json::parse(inputs);
    j["Targets"] = nlohmann::json::parse(targets);
    return j.dump();
}

}  // namespace

TEST_F(world_fixture, built_dataset_is_valid) {
    tmm_validate_result r;
    std::string err;
    ASSERT_TRUE(tmm_validate_file(g_dir + "/tmm_train.jsonl", tmm_validate_options(), &r, &err)) << err;
    EXPECT_EQ(r.records, 170);
    EXPECT_EQ(r.bad_records, 0) << (r.issues.empty() ? "" : r.issues[0].reason);
    tmm_stats s;
    ASSERT_TRUE(tmm_stats_file(g_dir + "/tmm_train.jsonl", &s, &err));
    EXPECT_EQ(s.records, 170);
    EXPECT_EQ(s.per_family.size(), tmm_family_names().size());
    EXPECT_GT(s.groups_per_modality["IMAGE"], 0);
    EXPECT_GT(s.groups_per_modality["MASK"], 0);
}

TEST_F(world_fixture, broken_corpus_is_reported_line_by_line) {
    const std::string img = "<IMAGE><IMAGE-Placeholder></IMAGE>";
    const std::string good_in = R"([{"modality":"IMAGE","file":"image/train_image_000001.png"}])";
    // Each broken line with a substring its reason must contain.
    std::vector<std::pair<std::string, std::string>> cases = {
        {rec("Draw it.", "[IMAGE]", "[OUTPUT]<IMAGE>a red circle[IMAGE0][END]"), "unclosed <IMAGE>"},
        {rec("Draw it.", "[SMARTMULTIMODAL]", "[OUTPUT]<SMELL>roses[SMELL0]</SMELL>[END]"), "unknown modality"},
        {rec("Draw it.", "[SMARTMULTIMODAL]", "[OUTPUT]a red circle[IMAGE0][END]"), "outside a group"},
        {rec("Draw it.", "[IMAGE]", "[OUTPUT]<IMAGE> [IMAGE0]</IMAGE>[END]"), "empty T-Prompt"},
        {rec("Draw it.", "[IMAGE]", "[OUTPUT]<IMAGE>x</IMAGE>[END]"), "no signal token"},
        {rec("Draw it.", "[IMAGE]", "[OUTPUT]<IMAGE>x[IMAGE1]</IMAGE>[END]"), "out of order"},
        {rec("Draw it.", "[IMAGE]", "[OUTPUT]<IMAGE>x[IMAGE0]</VIDEO>[END]"), "closed by"},
        {rec("Draw it.", "[IMAGE]", "[OUTPUT]<IMAGE>x<VIDEO>y[VIDEO0]</VIDEO>[IMAGE0]</IMAGE>[END]"),
         "inside the open"},
        {rec("Draw it.", "[IMAGE]", "[OUTPUT]<IMAGE>x[IMAGE0]</IMAGE>"), "[END]"},
        {rec("Draw it.", "[IMAGE]", "<IMAGE>x[IMAGE0]</IMAGE>[END]"), "[OUTPUT]"},
        {rec("Draw it.", "[TEXT]", "[OUTPUT]<IMAGE>x[IMAGE0]</IMAGE>[END]"), "[TEXT]"},
        {rec("Draw it.", "[AUDIO]", "[OUTPUT]<IMAGE>x[IMAGE0]</IMAGE>[END]"), "[AUDIO]"},
        {rec("Draw it.", "[MAGIC]", "[OUTPUT]x[END]"), "unknown TaskPrompt"},
        {rec("Draw it.", "[IMAGE]", "[OUTPUT]<IMAGE>x[IMAGE0]</IMAGE>[END]", "[]",
             R"([{"modality":"AUDIO","caption":"x"}])"),
         "Targets do not match"},
        {rec("<IMAGE-Placeholder> what?", "[TEXT]", "[OUTPUT]x[END]", good_in), "outside an <IMAGE> wrapper"},
        {rec(img + " what?", "[TEXT]", "[OUTPUT]x[END]"), "placeholder"},
        {rec("what?", "[TEXT]", "[OUTPUT]x[END]", good_in), "placeholder"},
        {rec(img + " what?", "[TEXT]", "[OUTPUT]x[END]", R"([{"modality":"IMAGE","file":"image/nope.png"}])"),
         "missing file"},
        {rec(img + " what?", "[TEXT]", "[OUTPUT]x[END]",
             R"([{"modality":"IMAGE","file":"image/train_image_000000_cut.png"}])"),
         "png"},
        {rec("<AUDIO><AUDIO-Placeholder></AUDIO> what?", "[TEXT]", "[OUTPUT]x[END]",
             R"([{"modality":"AUDIO","file":"audio/train_audio_000000_cut.wav"}])"),
         "truncated"},
        {rec("<VIDEO><VIDEO-Placeholder></VIDEO> what?", "[TEXT]", "[OUTPUT]x[END]",
             R"([{"modality":"VIDEO","file":"video/train_video_000000_cut.mp4"}])"),
         "truncated"},
        {rec(img + " what?", "[TEXT]", "[OUTPUT]x[END]", R"([{"modality":"BOX","file":"a.png"}])"),
         "cannot be an input"},
        {rec(img + " where?", "[BOX]", "[OUTPUT]<BOX>it[BOX0]</BOX>[END]", good_in,
             R"([{"modality":"BOX","box":[10,10,80,20],"size":[64,64]}])"),
         "outside the image"},
        {rec(img + " where?", "[BOX]", "[OUTPUT]<BOX>it[BOX0]</BOX>[END]", good_in,
             R"([{"modality":"BOX","box":[10,10,5,20]}])"),
         "not a valid box"},
        {"{\"Question\": \"caf\xc3\", \"TaskPrompt\": \"[TEXT]\", \"Answer\": \"[OUTPUT]x[END]\"}", "UTF-8"},
        {"{\"Question\": \"x\", \"TaskPrompt\": \"[TEXT]\", \"Answer\": \"[OUTPUT]x[END]\"", "JSON"},
        {"[1, 2, 3]", "not a JSON object"},
        {"{\"TaskPrompt\": \"[TEXT]\", \"Answer\": \"[OUTPUT]x[END]\"}", "Question"},
        {rec("x", "[IMAGE]", "[OUTPUT]<IMAGE>a[IMAGE0]</IMAGE><IMAGE>b[IMAGE0][IMAGE1]</IMAGE>[END]"),
         "different signal token counts"},
        {rec("x", "[SMARTMULTIMODAL]", "[OUTPUT]x[FOO0][END]"), "unknown token"},
        {rec("x", "[SMARTMULTIMODAL]", "[OUTPUT]x[END] more [END]"), "[END] in the middle"},
        {rec("x", "[IMAGE]", "[OUTPUT]<IMAGE>a\nb[IMAGE0]</IMAGE>[END]"), "line break"},
    };
    std::vector<std::string> good = {
        rec("Draw a red circle.", "[IMAGE]", "[OUTPUT]<IMAGE>a red circle[IMAGE0]</IMAGE>[END]"),
        rec(img + " Describe it.", "[TEXT]", "[OUTPUT]A red circle.[END]", good_in),
        rec(img + " Box it.", "[BOX]", "[OUTPUT]<BOX>the circle[BOX0]</BOX>[END]", good_in,
            R"([{"modality":"BOX","box":[1,2,10,12],"size":[64,64]}])"),
        rec("Both.", "[SPECIFICMULTIMODAL]",
            "[OUTPUT]Look: <IMAGE>a[IMAGE0]</IMAGE> and [1] <AUDIO>b[AUDIO0]</AUDIO> done.[END]"),
    };
    std::string path = g_dir + "/broken.jsonl";
    {
        std::ofstream f(path, std::ios::binary);
        f << good[0] << "\n";
        for (const auto & c : cases) f << c.first << "\n";
        f << "\n";  // blank lines are skipped, not records
        for (size_t i = 1; i < good.size(); ++i) f << good[i] << "\n";
    }
    tmm_validate_result r;
    std::string err;
    ASSERT_TRUE(tmm_validate_file(path, tmm_validate_options(), &r, &err)) << err;
    EXPECT_EQ(r.records, (int64_t)(cases.size() + good.size()));
    EXPECT_EQ(r.bad_records, (int64_t)cases.size());
    ASSERT_EQ(r.issues.size(), cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
        EXPECT_EQ(r.issues[i].line, (int64_t)i + 2) << "case " << i;
        EXPECT_NE(r.issues[i].reason.find(cases[i].second), std::string::npos)
            << "case " << i << " (line " << i + 2 << "): reason '" << r.issues[i].reason << "' should mention '"
            << cases[i].second << "'";
    }
    EXPECT_FALSE(tmm_validate_file(g_dir + "/none.jsonl", tmm_validate_options(), &r, &err));
}

// Random byte edits of valid records: the checker must return (valid or not), never crash or throw.
TEST_F(world_fixture, mutated_records_never_crash) {
    std::ifstream f(g_dir + "/tmm_train.jsonl");
    std::vector<std::string> lines;
    std::string l;
    while (std::getline(f, l)) lines.push_back(l);
    ASSERT_FALSE(lines.empty());
    world_rng rng(99);
    const char alphabet[] = "<>[]/{}\",:IMAGEVIDOUBXSK0123\\ \n\xff\xc3";
    int rejected = 0;
    for (int t = 0; t < 3000; ++t) {
        std::string s = lines[rng.below((int)lines.size())];
        int edits = 1 + rng.below(4);
        for (int e = 0; e < edits && !s.empty(); ++e) {
            size_t p = rng.below((int)s.size());
            switch (rng.below(3)) {
                case 0:
                    s[p] = alphabet[rng.below(sizeof(alphabet) - 1)];
                    break;
                case 1:
                    s.erase(p, 1 + rng.below(8));
                    break;
                default:
                    s.insert(p, 1, alphabet[rng.below(sizeof(alphabet) - 1)]);
                    break;
            }
        }
        nlohmann::json j = nlohmann::json::parse(s, nullptr, false);
        std::string why;
        if (j.is_discarded() || !tmm_check_record(j, &why)) ++rejected;
    }
    EXPECT_GT(rejected, 1000);
}
