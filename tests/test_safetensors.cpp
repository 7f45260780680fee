// Tests of the safetensors reader: goldens written by the reference safetensors library (single file with
// F32/F16/BF16/I64/U8 + metadata, and a two-shard checkpoint with its index), and broken inputs built here, each
// refused with its specific error.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "io/safetensors.h"

using namespace spider;

namespace {

const std::string data_dir = std::string(SPIDER_SOURCE_DIR) + "/tests/data/safetensors";

std::vector<uint8_t> make_file(const std::string &header, size_t data_bytes) {
    std::vector<uint8_t> b(8);
    const uint64_t n = header.size();
    std::memcpy(b.data(), &n, 8);
    b.insert(b.end(), header.begin(), header.end());
    for (size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<uint8_t>(i));
    return b;
}

std::string err_of(const std::vector<uint8_t> &b) {
    std::string err;
    auto f = safetensors_file::open_buffer(b.data(), b.size(), &err);
    if (f) return "(opened)";
    return err;
}

#define EXPECT_ST_ERR(header, nbytes, needle)                                 \
    do {                                                                      \
        const std::string e_ = err_of(make_file(header, nbytes));             \
        EXPECT_NE(e_.find(needle), std::string::npos) << "error was: " << e_; \
    } while (0)

void write_file(const std::string &path, const std::string &s) {
    std::ofstream f(path, std::ios::binary);
    f << s;
}

}  // namespace

TEST(safetensors, reads_reference_single_file) {
    std::string err;
    auto f = safetensors_file::open(data_dir + "/single.safetensors", &err);
    ASSERT_TRUE(f) << err;
    EXPECT_EQ(f->tensors().size(), 5u);
    EXPECT_EQ(f->metadata().at("note"), "spider golden");
    EXPECT_EQ(f->metadata().at("format"), "pt");
    const st_tensor *a = f->find("a.f32");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->dtype, ST_F32);
    EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
    std::vector<float> x(6);
    ASSERT_TRUE(safetensors_model::read_f32(*a, x.data(), &err)) << err;
    for (int i = 0; i < 6; ++i) EXPECT_EQ(x[i], 0.5f * i);
    const st_tensor *b = f->find("b.f16");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->dtype, ST_F16);
    ASSERT_TRUE(safetensors_model::read_f32(*b, x.data(), &err));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(x[i], i - 1.5f);
    const st_tensor *c = f->find("c.bf16");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->dtype, ST_BF16);
    ASSERT_TRUE(safetensors_model::read_f32(*c, x.data(), &err));
    EXPECT_EQ(x[0], 1.0f);
    EXPECT_EQ(x[1], -2.5f);
    EXPECT_EQ(x[2], 3.140625f);
    EXPECT_EQ(x[3], 0.0f);
    const st_tensor *d = f->find("d.i64");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->shape, (std::vector<int64_t>{1, 2}));
    ASSERT_TRUE(safetensors_model::read_f32(*d, x.data(), &err));
    EXPECT_EQ(x[0], -3.0f);
    EXPECT_EQ(x[1], 4.0f);
    const st_tensor *e = f->find("e.u8");
    ASSERT_TRUE(e);
    ASSERT_TRUE(safetensors_model::read_f32(*e, x.data(), &err));
    EXPECT_EQ(x[2], 255.0f);
    EXPECT_EQ(f->find("nope"), nullptr);
}

TEST(safetensors, reads_sharded_checkpoint) {
    std::string err;
    auto m = safetensors_model::open(data_dir + "/sharded", &err);
    ASSERT_TRUE(m) << err;
    EXPECT_EQ(m->n_shards(), 2u);
    EXPECT_EQ(m->tensors().size(), 3u);
    const st_tensor *t = m->find("model.layers.1.w");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->shard, 1);
    std::vector<float> x(4);
    ASSERT_TRUE(safetensors_model::read_f32(*t, x.data(), &err));
    EXPECT_EQ(x[3], 2.0f);
    const st_tensor *l = m->find("lm_head.weight");
    ASSERT_TRUE(l);
    ASSERT_TRUE(safetensors_model::read_f32(*l, x.data(), &err));
    EXPECT_EQ(x, (std::vector<float>{1, 0, 0, 1}));
    // A single file opened as a model, directly and through its directory.
    auto s = safetensors_model::open(data_dir + "/single.safetensors", &err);
    ASSERT_TRUE(s) << err;
    EXPECT_EQ(s->n_shards(), 1u);
    EXPECT_EQ(s->tensors().size(), 5u);
}

TEST(safetensors, broken_inputs) {
    const std::string ok = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    EXPECT_EQ(err_of(make_file(ok, 8)), "(opened)");
    EXPECT_NE(err_of({1, 2, 3}).find("too small for the 8-byte header length"), std::string::npos);
    EXPECT_ST_ERR(ok, 4, "data_offsets end 8 is beyond the data section (4 bytes): truncated");
    EXPECT_ST_ERR(ok, 12, "data section is 12 bytes but the tensors cover 8 (trailing bytes)");
    {
        std::vector<uint8_t> b = make_file(ok, 8);
        const uint64_t big = 1ull << 40;
        std::memcpy(b.data(), &big, 8);
        EXPECT_NE(err_of(b).find("exceeds the 100000000-byte limit"), std::string::npos) << err_of(b);
        const uint64_t over = b.size();
        std::memcpy(b.data(), &over, 8);
        EXPECT_NE(err_of(b).find("goes beyond the end of the file"), std::string::npos) << err_of(b);
    }
    EXPECT_ST_ERR("[1,2]", 0, "header is not a JSON object (it must start with '{')");
    EXPECT_ST_ERR("{\"t\":", 0, "header JSON does not parse");
    EXPECT_ST_ERR(
        R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
        16, "duplicate tensor name 't'");
    EXPECT_ST_ERR(R"({"t":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2, "unsupported dtype \"F8_E4M3\"");
    EXPECT_ST_ERR(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", 8, "tensor 't': missing or non-string \"dtype\"");
    EXPECT_ST_ERR(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", 8, "missing or non-array \"shape\"");
    EXPECT_ST_ERR(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8,
                  "shape entry -2 is not a non-negative integer");
    EXPECT_ST_ERR(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
                  "shape [4294967296,4294967296] overflows");
    EXPECT_ST_ERR(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8,
                  "\"data_offsets\" must be [begin, end]");
    EXPECT_ST_ERR(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "has begin > end");
    EXPECT_ST_ERR(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8,
                  "data_offsets span 8 bytes but dtype F32 x shape [3] needs 3 x 4");
    EXPECT_ST_ERR(
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
        12, "tensor 'b' data [4, 12) overlaps tensor 'a'");
    EXPECT_ST_ERR(
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
        12, "gap in the data section: bytes [4, 8) before tensor 'b'");
    EXPECT_ST_ERR(R"({"__metadata__":{"k":1},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8,
                  "__metadata__ value of 'k' is not a string");
    EXPECT_ST_ERR(R"({"t":[1,2]})", 0, "tensor 't': entry is not an object");
    // Zero-size tensors are legal (shape with a 0).
    EXPECT_EQ(err_of(make_file(R"({"z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})", 0)), "(opened)");
}

TEST(safetensors, every_truncation_is_an_error) {
    std::vector<uint8_t> b;
    {
        std::ifstream f(data_dir + "/single.safetensors", std::ios::binary);
        b.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    ASSERT_GT(b.size(), 100u);
    for (size_t n = 0; n < b.size(); ++n) {
        std::vector<uint8_t> p(b.begin(), b.begin() + static_cast<long>(n));
        std::string err;
        EXPECT_FALSE(safetensors_file::open_buffer(p.data(), p.size(), &err)) << n;
        EXPECT_FALSE(err.empty());
    }
}

TEST(safetensors, broken_index) {
    const std::string dir = "/tmp/spider_test_st_" + std::to_string(getpid());
    mkdir(dir.c_str(), 0755);
    std::string err;
    EXPECT_FALSE(safetensors_model::open(dir, &err));
    EXPECT_NE(err.find("has neither model.safetensors nor model.safetensors.index.json"), std::string::npos) << err;
    const std::string idx = dir + "/model.safetensors.index.json";
    write_file(idx, R"({"weight_map": {"w": "../etc/passwd"}})");
    EXPECT_FALSE(safetensors_model::open(dir, &err));
    EXPECT_NE(err.find("must be a plain file name in the same directory"), std::string::npos) << err;
    write_file(idx, R"({"weight_map": {"w": "missing.safetensors"}})");
    EXPECT_FALSE(safetensors_model::open(dir, &err));
    EXPECT_NE(err.find("cannot open '" + dir + "/missing.safetensors'"), std::string::npos) << err;
    write_file(idx, R"({"nothing": 1})");
    EXPECT_FALSE(safetensors_model::open(idx, &err));
    EXPECT_NE(err.find("no \"weight_map\" object"), std::string::npos) << err;
    write_file(idx, R"({"weight_map": )");
    EXPECT_FALSE(safetensors_model::open(idx, &err));
    EXPECT_NE(err.find("JSON does not parse"), std::string::npos) << err;
    // The index names a tensor the shard does not hold; and a tensor present in two shards.
    const std::vector<uint8_t> one = make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
    for (const char *s : {"/s1.safetensors", "/s2.safetensors"}) {
        std::ofstream f(dir + s, std::ios::binary);
        f.write(reinterpret_cast<const char *>(one.data()), static_cast<long>(one.size()));
    }
    write_file(idx, R"({"weight_map": {"w": "s1.safetensors", "v": "s1.safetensors"}})");
    EXPECT_FALSE(safetensors_model::open(idx, &err));
    EXPECT_NE(err.find("puts tensor 'v' in"), std::string::npos) << err;
    write_file(idx, R"({"weight_map": {"w": "s1.safetensors", "x": "s2.safetensors"}})");
    EXPECT_FALSE(safetensors_model::open(idx, &err));
    EXPECT_TRUE(err.find("puts tensor 'x'") != std::string::npos ||
                err.find("more than one shard") != std::string::npos)
        << err;
    for (const char *s : {"/s1.safetensors", "/s2.safetensors", "/model.safetensors.index.json"}) {
        std::remove((dir + s).c_str());
    }
    rmdir(dir.c_str());
}
