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

std::vector<uint8_t> make_file(const std::string & header, size_t data_bytes) {
    std::vector<uint8_t> b(8 + header.size());
    const uint64_t n = header.size();
    std::memcpy(b.data(), &n, 8);
    std::memcpy(b.data() + 8, header.data(), header.size());
    for (size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<uint8_t>(i));
    return b;
}

std::string err_of(const std::vector<uint8_t> & b) {
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

void write_file(const std::string & path, const std::string & s) {
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
    const st_tensor * a = f->find("a.f32");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->dtype, ST_F32);
    EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
    std::vector<float> x(6);
    ASSERT_TRUE(safetensors_model::read_f32(*a, x.data(), &err)) << err;
    for (int i = 0; i < 6; ++i) EXPECT_EQ(x[i], 0.5f * i);
    const st_tensor * b = f->find("b.f16");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->dtype, ST_F16);
    ASSERT_TRUE(safetensors_model::read_f32(*b, x.data(), &err));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(x[i], i - 1.5f);
    const st_tensor * c = f->find("c.bf16");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->dtype, ST_BF16);
    ASSERT_TRUE(safetensors_model::read_f32(*c, x.data(), &err));
    EXPECT_EQ(x[0], 1.0f);
    EXPECT_EQ(x[1], -2.5f);
    EXPECT_EQ(x[2], 3.140625f);
    EXPECT_EQ(x[3], 0.0f);
    const st_tensor * d = f->find("d.i64");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->shape, (std::vector<int64_t>{1, 2}));
    ASSERT_TRUE(safetensors_model::read_f32(*d, x.data(), &err));
    EXPECT_EQ(x[0], -3.0f);
    EXPECT_EQ(x[1], 4.0f);
    const st_tensor * e = f->find("e.u8");
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
    const st_tensor * t = m->find("model.layers.1.w");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->shard, 1);
    std::vector<float> x(4);
    ASSERT_TRUE(safetensors_model::read_f32(*t, x.data(), &err));
    EXPECT_EQ(x[3], 2.0f);
    const st_tensor * l = m->find("lm_head.weight");
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
    for (const char * s : {"/s1.safetensors", "/s2.safetensors"}) {
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
    for (const char * s : {"/s1.safetensors", "/s2.safetensors", "/model.safetensors.index.json"}) {
        std::remove((dir + s).c_str());
    }
    rmdir(dir.c_str());
}

// ---------------------------------------------------------------------------------------------------------------
// HF checkpoint -> GGUF (io/hf_convert.h), on the tiny checkpoints of tests/data/llm (made by
// tests/reference/make_tiny_llms.py with transformers) and SentencePiece goldens from the reference library.

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/hf_convert.h"

namespace {

const std::string llm_dir = std::string(SPIDER_SOURCE_DIR) + "/tests/data/llm";

nlohmann::json load_json_file(const std::string & p) {
    std::ifstream f(p);
    return nlohmann::json::parse(f, nullptr, false);
}

void expect_pieces_match(const gguf_file & f, const std::string & golden) {
    const nlohmann::json g = load_json_file(golden);
    ASSERT_FALSE(g.is_discarded()) << golden;
    const gguf_value * toks = f.find("tokenizer.ggml.tokens");
    const gguf_value * scores = f.find("tokenizer.ggml.scores");
    const gguf_value * types = f.find("tokenizer.ggml.token_type");
    ASSERT_TRUE(toks && scores && types);
    ASSERT_EQ(toks->arr_str.size(), g["pieces"].size());
    for (size_t i = 0; i < g["pieces"].size(); ++i) {
        EXPECT_EQ(toks->arr_str[i], g["pieces"][i][0].get<std::string>()) << i;
        EXPECT_EQ(scores->arr_float[i], g["pieces"][i][1].get<double>()) << i;
        EXPECT_EQ(types->arr_int[i], g["pieces"][i][2].get<int>()) << i;
    }
}

std::string conv_tmp(const std::string & name) {
    return "/tmp/spider_test_conv_" + std::to_string(getpid()) + "_" + name;
}

}  // namespace

TEST(sentencepiece, parses_reference_model) {
    sp_model m;
    std::string err;
    ASSERT_TRUE(sentencepiece_model_load(llm_dir + "/tiny_gemma3_hf/tokenizer.model", &m, &err)) << err;
    const nlohmann::json g = load_json_file(data_dir + "/../gguf/tiny_gemma3_sp_pieces.json");
    ASSERT_EQ(m.pieces.size(), g["pieces"].size());
    for (size_t i = 0; i < m.pieces.size(); ++i) {
        EXPECT_EQ(m.pieces[i].piece, g["pieces"][i][0].get<std::string>());
        EXPECT_EQ(m.pieces[i].score, g["pieces"][i][1].get<float>());
        EXPECT_EQ(m.pieces[i].type, g["pieces"][i][2].get<int>());
    }
    EXPECT_EQ(m.unk_id, g["unk_id"].get<int>());
    EXPECT_EQ(m.bos_id, g["bos_id"].get<int>());
    EXPECT_EQ(m.eos_id, g["eos_id"].get<int>());
    EXPECT_EQ(m.pad_id, g["pad_id"].get<int>());
}

TEST(sentencepiece, broken_models) {
    std::vector<uint8_t> b;
    {
        std::ifstream f(llm_dir + "/tiny_llama_hf/tokenizer.model", std::ios::binary);
        b.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    ASSERT_GT(b.size(), 1000u);
    sp_model m;
    std::string err;
    // Every prefix either parses (a cut at a field boundary is a valid shorter message) or fails with a message.
    for (size_t n = 0; n < b.size(); n += 7) {
        err.clear();
        if (!sentencepiece_model_parse(b.data(), n, &m, &err)) {
            EXPECT_FALSE(err.empty()) << n;
        }
    }
    EXPECT_FALSE(sentencepiece_model_parse(nullptr, 0, &m, &err));
    EXPECT_NE(err.find("no pieces"), std::string::npos) << err;
    const std::vector<uint8_t> bad_wire = {0x0b};  // field 1, wire type 3 (group)
    EXPECT_FALSE(sentencepiece_model_parse(bad_wire.data(), bad_wire.size(), &m, &err));
    EXPECT_NE(err.find("field 1 has wire type 3"), std::string::npos) << err;
    const std::vector<uint8_t> long_len = {0x0a, 0xff, 0x01};  // piece of 255 bytes, none present
    EXPECT_FALSE(sentencepiece_model_parse(long_len.data(), long_len.size(), &m, &err));
    EXPECT_NE(err.find("length 255 goes beyond the end"), std::string::npos) << err;
    const std::vector<uint8_t> bad_type = {0x0a, 0x05, 0x0a, 0x01, 'a', 0x18, 0x09};  // piece "a", type 9
    EXPECT_FALSE(sentencepiece_model_parse(bad_type.data(), bad_type.size(), &m, &err));
    EXPECT_NE(err.find("unknown piece type 9"), std::string::npos) << err;
    // One piece, trainer_spec with bos_id = 5: outside the vocabulary.
    const std::vector<uint8_t> bad_id = {0x0a, 0x03, 0x0a, 0x01, 'a', 0x12, 0x03, 0xc8, 0x02, 0x05};
    EXPECT_FALSE(sentencepiece_model_parse(bad_id.data(), bad_id.size(), &m, &err));
    EXPECT_NE(err.find("special token id 5 is outside the 1 pieces"), std::string::npos) << err;
    const std::vector<uint8_t> endless = {0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
    EXPECT_FALSE(sentencepiece_model_parse(endless.data(), endless.size(), &m, &err));
    EXPECT_NE(err.find("varint longer than 10 bytes"), std::string::npos) << err;
}

TEST(hf_convert, tiny_llama) {
    const std::string out = conv_tmp("llama.gguf");
    hf_convert_params p;
    p.out_type = DTYPE_F32;
    std::string err;
    ASSERT_TRUE(hf_convert(llm_dir + "/tiny_llama_hf", out, p, &err)) << err;
    auto f = gguf_file::open(out, &err);
    ASSERT_TRUE(f) << err;
    std::string s;
    int64_t i = 0;
    double d = 0;
    ASSERT_TRUE(f->get_string("general.architecture", &s));
    EXPECT_EQ(s, "llama");
    const std::pair<const char *, int64_t> ints[] = {
        {"llama.context_length", 128},      {"llama.embedding_length", 64},     {"llama.block_count", 2},
        {"llama.feed_forward_length", 256}, {"llama.attention.head_count", 4},  {"llama.attention.head_count_kv", 2},
        {"llama.rope.dimension_count", 16}, {"llama.vocab_size", 320},          {"general.file_type", 0},
        {"tokenizer.ggml.bos_token_id", 1}, {"tokenizer.ggml.eos_token_id", 2}, {"tokenizer.ggml.unknown_token_id", 0}};
    for (const auto & kv : ints) {
        ASSERT_TRUE(f->get_int(kv.first, &i)) << kv.first;
        EXPECT_EQ(i, kv.second) << kv.first;
    }
    EXPECT_EQ(f->find("tokenizer.ggml.padding_token_id"), nullptr);  // the tiny Llama has no pad token
    ASSERT_TRUE(f->get_float("llama.rope.freq_base", &d));
    EXPECT_EQ(d, 10000.0);
    ASSERT_TRUE(f->get_float("llama.attention.layer_norm_rms_epsilon", &d));
    EXPECT_FLOAT_EQ(static_cast<float>(d), 1e-5f);
    ASSERT_TRUE(f->get_string("tokenizer.ggml.model", &s));
    EXPECT_EQ(s, "llama");
    bool b = false;
    ASSERT_TRUE(f->get_bool("tokenizer.ggml.add_bos_token", &b));
    EXPECT_TRUE(b);
    expect_pieces_match(*f, std::string(SPIDER_SOURCE_DIR) + "/tests/data/gguf/tiny_llama_sp_pieces.json");
    EXPECT_EQ(f->tensors().size(), 2u + 2u * 9u + 1u);  // embd, output_norm, output + 9 per layer
    ASSERT_TRUE(f->find_tensor("output.weight"));       // not tied

    // q/k rows follow llama.cpp's permutation: GGUF row h*hd + 2j + t = HF row h*hd + t*hd/2 + j.
    auto st = safetensors_model::open(llm_dir + "/tiny_llama_hf", &err);
    ASSERT_TRUE(st) << err;
    for (const char * which : {"q", "k"}) {
        const int64_t nh = which[0] == 'q' ? 4 : 2, hd = 16, cols = 64;
        const st_tensor * src = st->find(std::string("model.layers.1.self_attn.") + which + "_proj.weight");
        ASSERT_TRUE(src);
        std::vector<float> x(static_cast<size_t>(src->nelements()));
        ASSERT_TRUE(safetensors_model::read_f32(*src, x.data(), &err));
        const gguf_tensor_info * t = f->find_tensor(std::string("blk.1.attn_") + which + ".weight");
        ASSERT_TRUE(t);
        EXPECT_EQ(t->ne[0], cols);
        EXPECT_EQ(t->ne[1], nh * hd);
        const float * y = static_cast<const float *>(f->view(*t).data);
        for (int64_t h = 0; h < nh; ++h) {
            for (int64_t tt = 0; tt < 2; ++tt) {
                for (int64_t j = 0; j < hd / 2; ++j) {
                    const int64_t to = h * hd + 2 * j + tt, from = h * hd + tt * hd / 2 + j;
                    for (int64_t c = 0; c < cols; c += 13) ASSERT_EQ(y[to * cols + c], x[from * cols + c]);
                }
            }
        }
    }
    // v is copied unchanged.
    const st_tensor * v = st->find("model.layers.0.self_attn.v_proj.weight");
    std::vector<float> xv(static_cast<size_t>(v->nelements()));
    ASSERT_TRUE(safetensors_model::read_f32(*v, xv.data(), &err));
    EXPECT_EQ(std::memcmp(f->view(*f->find_tensor("blk.0.attn_v.weight")).data, xv.data(), xv.size() * 4), 0);
    std::remove(out.c_str());
}

TEST(hf_convert, tiny_gemma3) {
    const std::string out = conv_tmp("gemma.gguf");
    hf_convert_params p;  // f16 default
    std::string err;
    ASSERT_TRUE(hf_convert(llm_dir + "/tiny_gemma3_hf/", out, p, &err)) << err;
    auto f = gguf_file::open(out, &err);
    ASSERT_TRUE(f) << err;
    std::string s;
    int64_t i = 0;
    double d = 0;
    ASSERT_TRUE(f->get_string("general.architecture", &s));
    EXPECT_EQ(s, "gemma3");
    const std::pair<const char *, int64_t> ints[] = {{"gemma3.block_count", 4},
                                                     {"gemma3.attention.key_length", 16},
                                                     {"gemma3.attention.head_count_kv", 2},
                                                     {"gemma3.attention.sliding_window", 8},
                                                     {"gemma3.attention.sliding_window_pattern", 2},
                                                     {"general.file_type", 1},
                                                     {"tokenizer.ggml.bos_token_id", 2},
                                                     {"tokenizer.ggml.eos_token_id", 1},
                                                     {"tokenizer.ggml.unknown_token_id", 3},
                                                     {"tokenizer.ggml.padding_token_id", 0}};
    for (const auto & kv : ints) {
        ASSERT_TRUE(f->get_int(kv.first, &i)) << kv.first;
        EXPECT_EQ(i, kv.second) << kv.first;
    }
    ASSERT_TRUE(f->get_float("gemma3.rope.freq_base", &d));
    EXPECT_EQ(d, 1000000.0);
    ASSERT_TRUE(f->get_float("gemma3.rope.freq_base_swa", &d));
    EXPECT_EQ(d, 10000.0);
    EXPECT_EQ(f->find("gemma3.rope.dimension_count"), nullptr);
    expect_pieces_match(*f, std::string(SPIDER_SOURCE_DIR) + "/tests/data/gguf/tiny_gemma3_sp_pieces.json");
    EXPECT_EQ(f->find_tensor("output.weight"), nullptr);  // tied
    const gguf_tensor_info * emb = f->find_tensor("token_embd.weight");
    ASSERT_TRUE(emb);
    EXPECT_EQ(emb->type, DTYPE_F16);
    EXPECT_EQ(emb->ne[1], 320);
    // Norms are F32 and stored as 1 + w.
    auto st = safetensors_model::open(llm_dir + "/tiny_gemma3_hf", &err);
    ASSERT_TRUE(st) << err;
    const std::pair<const char *, const char *> norms[] = {
        {"model.layers.2.input_layernorm.weight", "blk.2.attn_norm.weight"},
        {"model.layers.2.pre_feedforward_layernorm.weight", "blk.2.ffn_norm.weight"},
        {"model.layers.2.post_feedforward_layernorm.weight", "blk.2.post_ffw_norm.weight"},
        {"model.layers.2.post_attention_layernorm.weight", "blk.2.post_attention_norm.weight"},
        {"model.layers.2.self_attn.q_norm.weight", "blk.2.attn_q_norm.weight"},
        {"model.norm.weight", "output_norm.weight"}};
    for (const auto & n : norms) {
        const st_tensor * src = st->find(n.first);
        ASSERT_TRUE(src) << n.first;
        const gguf_tensor_info * t = f->find_tensor(n.second);
        ASSERT_TRUE(t) << n.second;
        EXPECT_EQ(t->type, DTYPE_F32);
        std::vector<float> x(static_cast<size_t>(src->nelements()));
        ASSERT_TRUE(safetensors_model::read_f32(*src, x.data(), &err));
        const float * y = static_cast<const float *>(f->view(*t).data);
        for (size_t k = 0; k < x.size(); ++k) EXPECT_EQ(y[k], x[k] + 1.0f) << n.second;
    }
    // Gemma q/k are not permuted (NEOX-style RoPE in both); F16 of the source.
    const st_tensor * q = st->find("model.layers.0.self_attn.q_proj.weight");
    std::vector<float> xq(static_cast<size_t>(q->nelements()));
    ASSERT_TRUE(safetensors_model::read_f32(*q, xq.data(), &err));
    const uint16_t * yq = static_cast<const uint16_t *>(f->view(*f->find_tensor("blk.0.attn_q.weight")).data);
    for (size_t k = 0; k < xq.size(); ++k) ASSERT_EQ(yq[k], fp32_to_fp16(xq[k])) << k;
    std::remove(out.c_str());
}

// A byte-level BPE tokenizer.json (Llama 3 style) next to the tiny Llama weights.
TEST(hf_convert, bpe_tokenizer_json) {
    const std::string dir = conv_tmp("bpe_dir");
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    for (const char * fn : {"/config.json", "/model.safetensors"}) {
        std::ifstream in(llm_dir + "/tiny_llama_hf" + fn, std::ios::binary);
        std::ofstream o(dir + fn, std::ios::binary);
        o << in.rdbuf();
    }
    nlohmann::json vocab = nlohmann::json::object();
    for (int k = 0; k < 300; ++k) vocab["t" + std::to_string(k)] = k;
    const std::string regex =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    nlohmann::json tj = {
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"t 1", nlohmann::json::array({"t1", "0"})}}}},
        {"added_tokens",
         {{{"id", 300}, {"content", "<|begin_of_text|>"}, {"special", true}},
          {{"id", 301}, {"content", "<|end_of_text|>"}, {"special", true}},
          {{"id", 302}, {"content", "hello world"}, {"special", false}}}},
        {"pre_tokenizer",
         {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}}}}}}};
    write_file(dir + "/tokenizer.json", tj.dump());
    write_file(dir + "/tokenizer_config.json",
               R"({"bos_token": "<|begin_of_text|>", "add_bos_token": true, "chat_template": "{{ messages }}"})");
    const std::string out = conv_tmp("bpe.gguf");
    hf_convert_params p;
    std::string err;
    ASSERT_TRUE(hf_convert(dir, out, p, &err)) << err;
    auto f = gguf_file::open(out, &err);
    ASSERT_TRUE(f) << err;
    std::string s;
    ASSERT_TRUE(f->get_string("tokenizer.ggml.model", &s));
    EXPECT_EQ(s, "gpt2");
    ASSERT_TRUE(f->get_string("tokenizer.ggml.pre", &s));
    EXPECT_EQ(s, "llama-bpe");
    ASSERT_TRUE(f->get_string("tokenizer.chat_template", &s));
    EXPECT_EQ(s, "{{ messages }}");
    const gguf_value * toks = f->find("tokenizer.ggml.tokens");
    ASSERT_TRUE(toks);
    ASSERT_EQ(toks->arr_str.size(), 320u);  // config vocab_size; ids 303.. are padding
    EXPECT_EQ(toks->arr_str[7], "t7");
    EXPECT_EQ(toks->arr_str[301], "<|end_of_text|>");
    EXPECT_EQ(toks->arr_str[310], "[PAD310]");
    const gguf_value * types = f->find("tokenizer.ggml.token_type");
    EXPECT_EQ(types->arr_int[7], 1);
    EXPECT_EQ(types->arr_int[300], 3);
    EXPECT_EQ(types->arr_int[302], 4);
    EXPECT_EQ(types->arr_int[310], 5);
    EXPECT_EQ(f->find("tokenizer.ggml.merges")->arr_str, (std::vector<std::string>{"t 1", "t1 0"}));
    EXPECT_EQ(f->find("tokenizer.ggml.scores"), nullptr);
    int64_t id = -1;
    ASSERT_TRUE(f->get_int("tokenizer.ggml.bos_token_id", &id));
    EXPECT_EQ(id, 1);  // config.json's bos_token_id wins over the tokenizer_config text, as in gguf-py
    std::remove(out.c_str());
    for (const char * fn : {"/config.json", "/model.safetensors", "/tokenizer.json", "/tokenizer_config.json"}) {
        std::remove((dir + fn).c_str());
    }
    rmdir(dir.c_str());
}

TEST(hf_convert, bad_checkpoints) {
    const std::string dir = conv_tmp("bad_dir");
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    hf_convert_params p;
    std::string err;
    EXPECT_FALSE(hf_convert(dir, conv_tmp("never.gguf"), p, &err));
    EXPECT_NE(err.find("cannot open '" + dir + "/config.json'"), std::string::npos) << err;
    write_file(dir + "/config.json", R"({"architectures": ["MistralForCausalLM"]})");
    EXPECT_FALSE(hf_convert(dir, conv_tmp("never.gguf"), p, &err));
    EXPECT_NE(err.find("unsupported architecture 'MistralForCausalLM'"), std::string::npos) << err;
    write_file(dir + "/config.json", R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})");
    EXPECT_FALSE(hf_convert(dir, conv_tmp("never.gguf"), p, &err));
    EXPECT_NE(err.find("missing 'num_hidden_layers'"), std::string::npos) << err;
    {
        std::ifstream in(llm_dir + "/tiny_llama_hf/config.json");
        std::ofstream o(dir + "/config.json");
        o << in.rdbuf();
    }
    EXPECT_FALSE(hf_convert(dir, conv_tmp("never.gguf"), p, &err));
    EXPECT_NE(err.find("has neither model.safetensors nor model.safetensors.index.json"), std::string::npos) << err;
    // Weights present, tokenizer missing.
    const std::vector<uint8_t> st =
        make_file(R"({"model.layers.0.foo.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
    {
        std::ofstream o(dir + "/model.safetensors", std::ios::binary);
        o.write(reinterpret_cast<const char *>(st.data()), static_cast<long>(st.size()));
    }
    EXPECT_FALSE(hf_convert(dir, conv_tmp("never.gguf"), p, &err));
    EXPECT_NE(err.find("has neither tokenizer.model nor tokenizer.json"), std::string::npos) << err;
    // With a tokenizer, the unknown tensor name is refused.
    {
        std::ifstream in(llm_dir + "/tiny_llama_hf/tokenizer.model", std::ios::binary);
        std::ofstream o(dir + "/tokenizer.model", std::ios::binary);
        o << in.rdbuf();
    }
    EXPECT_FALSE(hf_convert(dir, conv_tmp("never.gguf"), p, &err));
    EXPECT_NE(err.find("tensor 'model.layers.0.foo.weight' is not part of a LlamaForCausalLM checkpoint"),
              std::string::npos)
        << err;
    p.out_type = DTYPE_Q8_0;
    EXPECT_FALSE(hf_convert(dir, conv_tmp("never.gguf"), p, &err));
    EXPECT_NE(err.find("output type must be f32, f16 or bf16"), std::string::npos) << err;
    EXPECT_NE(access(conv_tmp("never.gguf").c_str(), F_OK), 0);
    for (const char * fn : {"/config.json", "/model.safetensors", "/tokenizer.model"}) std::remove((dir + fn).c_str());
    rmdir(dir.c_str());
}
