// The stages' shared data helpers (train/data_records.h): JSON Lines records with strict fields and errors naming
// file and line, and the per-example random stream.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "train/data_records.h"

using namespace spider::train;

namespace {

std::string write_file(const std::string & name, const std::string & text) {
    const std::string p = (std::filesystem::temp_directory_path() / ("spider_train_data_" + name)).string();
    std::ofstream(p) << text;
    return p;
}

// Reads `text` as a records file accepting fields a and b; returns the error ("" when it succeeded) and the values
// of field a in order.
std::string read(const std::string & name, const std::string & text, std::vector<int> * seen) {
    const std::string p = write_file(name, text);
    std::string err;
    const bool ok = read_jsonl_records(
        p, {"a", "b"},
        [&](const nlohmann::json & j, const std::string & where, std::string * e) {
            if (!j.contains("a")) {
                *e = where + "needs 'a'";
                return false;
            }
            seen->push_back(j["a"].get<int>());
            return true;
        },
        &err);
    std::filesystem::remove(p);
    EXPECT_EQ(ok, err.empty()) << err;
    return err;
}

}  // namespace

TEST(train_data, jsonl_records_in_order_blank_lines_skipped) {
    std::vector<int> seen;
    EXPECT_EQ(read("ok.jsonl", "{\"a\": 1}\n\n  \t\r\n{\"a\": 2, \"b\": \"x\"}\n{\"a\": 3}", &seen), "");
    EXPECT_EQ(seen, std::vector<int>({1, 2, 3}));
}

TEST(train_data, jsonl_errors_name_file_line_and_problem) {
    std::vector<int> seen;
    const std::string dir = std::filesystem::temp_directory_path().string() + "/spider_train_data_";
    EXPECT_EQ(read("bad1.jsonl", "{\"a\": 1}\n\n{\"a\": 2, \"c\": 0}\n", &seen),
              "data: " + dir + "bad1.jsonl:3: unknown field 'c'");
    EXPECT_EQ(read("bad2.jsonl", "[1, 2]\n", &seen), "data: " + dir + "bad2.jsonl:1: a record must be a JSON object");
    EXPECT_EQ(read("bad3.jsonl", "{\"a\": 1}\n{\"b\": 1}\n", &seen), "data: " + dir + "bad3.jsonl:2: needs 'a'");
    EXPECT_EQ(read("bad4.jsonl", "\n \n", &seen), "data: '" + dir + "bad4.jsonl' holds no records");
    const std::string e = read("bad5.jsonl", "{\"a\": 1,\n", &seen);
    EXPECT_EQ(e.rfind("data: " + dir + "bad5.jsonl:1: not valid JSON (", 0), 0u) << e;
    std::string err;
    EXPECT_FALSE(read_jsonl_records(dir + "missing.jsonl", {"a"}, nullptr, &err));
    EXPECT_EQ(err, "data: cannot open '" + dir + "missing.jsonl'");
}

// The stream is the stages' historical one (runs and committed models reproduce) and differs between steps and
// examples.
TEST(train_data, example_rng_is_the_stages_hash) {
    rng64 want{7 ^ (0x9e37ull * 4) ^ (0xc2b2ae35ull * 6)};
    want.next();
    rng64 got = example_rng(7, 3, 5);
    EXPECT_EQ(got.next(), want.next());
    EXPECT_NE(example_rng(7, 3, 5).next(), example_rng(7, 3, 6).next());
    EXPECT_NE(example_rng(7, 3, 5).next(), example_rng(7, 4, 5).next());
}
