// Training stages of `spider train` (train/stage.h): the registry, the UDP on the tape against the pipeline's UDP,
// and the `udp_align` stage (loss falls, exported UDP loads in the pipeline with the same forward, bad config and
// data stop with named errors).
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "controller/udp.h"
#include "encoders/encoder.h"
#include "io/gguf.h"
#include "io/hf_convert.h"
#include "io/media.h"
#include "train/stage.h"
#include "train/udp_tape.h"
#include "world/world.h"

#include "grad_check.h"

using namespace spider;
using namespace spider::train;
namespace fs = std::filesystem;

namespace {

std::string tmpdir(const std::string & name) {
    fs::path p = fs::temp_directory_path() / ("spider_test_stages_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

double nmse(const std::vector<float> & a, const std::vector<float> & b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
        den += static_cast<double>(b[i]) * b[i];
    }
    return num / std::max(den, 1e-30);
}

udp_hparams tiny_udp() {
    udp_hparams hp;
    hp.d_model = 8;
    hp.d_hidden = 16;
    hp.n_expert = 2;
    hp.n_enc_layer = 1;
    hp.n_dec_layer = 1;
    hp.n_head = 2;
    hp.d_ff = 24;
    hp.t_out[MODALITY_IMAGE] = 3;
    hp.d_out[MODALITY_IMAGE] = 6;
    hp.t_out[MODALITY_AUDIO] = 1;
    hp.d_out[MODALITY_AUDIO] = 4;
    return hp;
}

// Synthetic alignment pairs: M-Prompts of 1-3 random tokens; targets a fixed nonlinear function of their mean
// (what a decoder's text encoder would give for the caption the M-Prompt stands for).
void write_pairs(const std::string & path, int n) {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    std::vector<float> A(8 * 6 * 3), B(8 * 4);
    for (auto & v : A) v = nd(rng) * 0.5f;
    for (auto & v : B) v = nd(rng) * 0.5f;
    std::ofstream f(path);
    for (int i = 0; i < n; ++i) {
        const bool audio = i % 3 == 2;
        const int n_tok = 1 + i % 3;
        nlohmann::json mp = nlohmann::json::array();
        std::vector<float> mean(8, 0.0f);
        for (int t = 0; t < n_tok; ++t) {
            std::vector<float> row(8);
            for (int k = 0; k < 8; ++k) {
                row[k] = nd(rng);
                mean[k] += row[k] / n_tok;
            }
            mp.push_back(row);
        }
        nlohmann::json tg = nlohmann::json::array();
        const int T = audio ? 1 : 3, D = audio ? 4 : 6;
        for (int t = 0; t < T; ++t) {
            std::vector<float> row(D);
            for (int d = 0; d < D; ++d) {
                float acc = 0;
                for (int k = 0; k < 8; ++k) acc += mean[k] * (audio ? B[k * 4 + d] : A[(k * 6 + d) * 3 + t]);
                row[d] = std::tanh(acc);
            }
            tg.push_back(row);
        }
        f << nlohmann::json{{"modality", audio ? "audio" : "image"}, {"mprompt", mp}, {"target", tg}}.dump() << "\n";
    }
}

std::string udp_config(const std::string & dir, const std::string & data, int steps, const std::string & extra = "") {
    return R"({"stage": "udp_align", "steps": )" + std::to_string(steps) +
           R"(, "batch": 4, "grad_accum": 1, "clip": 1.0, "seed": 5, "log_every": 5,
      "udp": {"d_model": 8, "d_hidden": 16, "n_expert": 2, "n_enc_layer": 1, "n_dec_layer": 1, "n_head": 2,
              "d_ff": 24, "heads": {"image": [3, 6], "audio": [1, 4]})" +
           extra + R"(},
      "data": {"path": ")" +
           data + R"("},
      "loss": {"l2": 1.0, "info_nce": 0.1},
      "optimizer": {"kind": "adamw", "lr": 0.003},
      "schedule": {"kind": "constant", "warmup": 2},
      "checkpoint": {"dir": ")" +
           dir + R"(", "every": 10}})";
}

}  // namespace

TEST(stages, registry_lists_the_stages) {
    EXPECT_NE(make_stage("lm_scratch"), nullptr);
    EXPECT_NE(make_stage("udp_align"), nullptr);
    EXPECT_EQ(make_stage("nope"), nullptr);
    EXPECT_NE(stage_names().find("udp_align"), std::string::npos);
}

TEST(stages, udp_tape_forward_equals_pipeline_udp) {
    std::string err;
    auto t = udp_tape::create(tiny_udp(), 9, &err);
    ASSERT_TRUE(t) << err;
    const std::string d = tmpdir("udpfwd");
    ASSERT_TRUE(t->save(d + "/udp.gguf", &err)) << err;
    auto m = udp_model::load(d + "/udp.gguf", &err);
    ASSERT_TRUE(m) << err;
    std::mt19937 rng(4);
    for (modality mod : {MODALITY_IMAGE, MODALITY_AUDIO}) {
        const auto x = randv(3 * 8, rng);
        std::vector<float> y, rw;
        ASSERT_TRUE(m->forward(mod, x.data(), 3, &y, &rw, &err)) << err;
        value router;
        value yt = t->forward(mod, constant({3, 8}, x), &router);
        EXPECT_LT(nmse(yt->data, y), 1e-10) << modality_name(mod);
        std::printf("%s: tape vs pipeline UDP NMSE %.3g\n", modality_name(mod), nmse(yt->data, y));
        EXPECT_LT(nmse(router->data, rw), 1e-10);
    }
    // And back: the tape loaded from the file is the same function.
    auto t2 = udp_tape::load(d + "/udp.gguf", &err);
    ASSERT_TRUE(t2) << err;
    value x = constant({2, 8}, randv(16, rng));
    EXPECT_EQ(t2->forward(MODALITY_IMAGE, x)->data, t->forward(MODALITY_IMAGE, x)->data);
    fs::remove_all(d);
}

TEST(stages, udp_tape_gradients_match_finite_differences) {
    udp_hparams hp = tiny_udp();
    hp.d_hidden = 4;
    hp.d_ff = 6;
    hp.d_model = 3;
    std::string err;
    auto t = udp_tape::create(hp, 2, &err);
    ASSERT_TRUE(t) << err;
    std::mt19937 rng(6);
    value x = parameter({2, 3}, randv(6, rng));
    std::vector<value> ps = {x};
    for (auto & [name, v] : t->named_params())
        if (name.find("router_up.weight") != std::string::npos ||
            name.find("expert.1.dec.0.cross_qkv.weight") != std::string::npos ||
            name.find("image.query") != std::string::npos)
            ps.push_back(v);
    grad_check(
        "udp_tape", ps, [&] { return t->forward(MODALITY_IMAGE, x); }, 2e-3f, 3e-2f, 3e-3f);
}

TEST(stages, udp_align_loss_falls_and_export_loads_in_pipeline) {
    auto c = comm_create(nullptr, nullptr);
    const std::string d = tmpdir("align");
    write_pairs(d + "/pairs.jsonl", 12);
    std::string err;
    train_config first, cfg;
    ASSERT_TRUE(train_config_parse(udp_config(d + "/run1", d + "/pairs.jsonl", 1), &first, &err)) << err;
    train_result r1, r2;
    ASSERT_TRUE(train_run(first, *c, false, true, &r1, &err)) << err;
    ASSERT_TRUE(train_config_parse(udp_config(d + "/run", d + "/pairs.jsonl", 60), &cfg, &err)) << err;
    ASSERT_TRUE(train_run(cfg, *c, false, true, &r2, &err)) << err;
    EXPECT_LT(r2.last_loss, 0.5f * r1.last_loss) << r1.last_loss << " -> " << r2.last_loss;

    // The exported UDP loads with the pipeline's loader and computes what the trained tape computes.
    auto m = udp_model::load(d + "/run/udp.gguf", &err);
    ASSERT_TRUE(m) << err;
    auto t = udp_tape::load(d + "/run/udp.gguf", &err);
    ASSERT_TRUE(t) << err;
    std::mt19937 rng(8);
    const auto x = randv(2 * 8, rng);
    std::vector<float> y;
    ASSERT_TRUE(m->forward(MODALITY_IMAGE, x.data(), 2, &y, nullptr, &err)) << err;
    const double e = nmse(t->forward(MODALITY_IMAGE, constant({2, 8}, x))->data, y);
    EXPECT_LT(e, 1e-10);
    std::printf("udp_align: loss %.4f (step 1) -> %.4f (step 60); exported UDP vs tape NMSE %.3g\n", r1.last_loss,
                r2.last_loss, e);
    fs::remove_all(d);
}

TEST(stages, udp_align_bad_config_and_data_are_named) {
    auto c = comm_create(nullptr, nullptr);
    const std::string d = tmpdir("bad");
    write_pairs(d + "/pairs.jsonl", 4);
    std::string err;
    train_config cfg;
    EXPECT_FALSE(train_config_parse(udp_config(d, d + "/pairs.jsonl", 2, R"(, "n_layerz": 2)"), &cfg, &err));
    EXPECT_NE(err.find("unknown field 'udp.n_layerz'"), std::string::npos) << err;
    EXPECT_FALSE(train_config_parse(udp_config(d, d + "/pairs.jsonl", 2, R"(, "heads": {"box": [1, 4]})"), &cfg, &err));
    EXPECT_NE(err.find("udp.heads.box"), std::string::npos) << err;

    // A record whose M-Prompt rows have the wrong width, on line 3.
    {
        std::ifstream in(d + "/pairs.jsonl");
        std::string l1, l2;
        std::getline(in, l1);
        std::getline(in, l2);
        std::ofstream out(d + "/bad.jsonl");
        out << l1 << "\n"
            << l2 << "\n"
            << R"({"modality": "image", "mprompt": [[1, 2]], "target": [[0]]})"
            << "\n";
    }
    ASSERT_TRUE(train_config_parse(udp_config(d + "/o", d + "/bad.jsonl", 2), &cfg, &err)) << err;
    EXPECT_FALSE(train_run(cfg, *c, false, true, nullptr, &err));
    EXPECT_NE(err.find("bad.jsonl:3"), std::string::npos) << err;
    EXPECT_NE(err.find("mprompt"), std::string::npos) << err;
    {
        std::ofstream out(d + "/bad2.jsonl");
        out << R"({"modality": "image", "mprompt": [[1, 2, 3, 4, 5, 6, 7, 8]], "target": [[0]], "extra": 1})"
            << "\n";
    }
    ASSERT_TRUE(train_config_parse(udp_config(d + "/o", d + "/bad2.jsonl", 2), &cfg, &err)) << err;
    EXPECT_FALSE(train_run(cfg, *c, false, true, nullptr, &err));
    EXPECT_NE(err.find("bad2.jsonl:1: unknown field 'extra'"), std::string::npos) << err;
    fs::remove_all(d);
}

namespace {

// Captions with an embedding each: the embedding identifies the caption (a random vector per caption).
const char * const kCaps[] = {"a red ball", "two cats", "the sea", "a tall tree"};

void write_captions(const std::string & path) {
    std::mt19937 rng(21);
    std::normal_distribution<float> nd;
    std::ofstream f(path);
    for (const char * c : kCaps) {
        std::vector<float> e(6);
        for (auto & v : e) v = nd(rng);
        f << nlohmann::json{{"embedding", e}, {"caption", c}}.dump() << "\n";
    }
}

// The frozen LLM of stage 1 knows the language: a byte-level lm_scratch model trained briefly on the captions.
std::string train_caption_lm(const std::string & dir) {
    std::mt19937 rng(1);
    {
        std::ofstream f(dir + "/corpus.txt");
        for (int i = 0; i < 400; ++i) f << kCaps[rng() % 4] << "\n";
    }
    const std::string cfg = R"({"stage": "lm_scratch", "steps": 150, "batch": 8, "seed": 1, "log_every": 50,
      "model": {"vocab": 256, "n_embd": 16, "n_ff": 32, "n_layer": 1, "n_head": 2, "n_head_kv": 1, "init_std": 0.1},
      "data": {"path": ")" + dir +
                            R"(/corpus.txt", "seq_len": 16},
      "optimizer": {"kind": "adamw", "lr": 0.01}, "schedule": {"kind": "cosine", "warmup": 5},
      "checkpoint": {"dir": ")" +
                            dir + R"(/lm", "every": 150}})";
    auto c = comm_create(nullptr, nullptr);
    train_config tc;
    std::string err;
    EXPECT_TRUE(train_config_parse(cfg, &tc, &err)) << err;
    EXPECT_TRUE(train_run(tc, *c, false, true, nullptr, &err)) << err;
    return dir + "/lm/checkpoint.gguf";
}

std::string enc_config(const std::string & dir, const std::string & data, int steps,
                       const std::string & llm_extra = "") {
    return R"({"stage": "encoder_align", "steps": )" + std::to_string(steps) +
           R"(, "batch": 4, "grad_accum": 2, "clip": 1.0, "seed": 3, "log_every": 5,
      "llm": {"model": {"vocab": 256, "n_embd": 16, "n_ff": 32, "n_layer": 1, "n_head": 2, "n_head_kv": 1})" +
           llm_extra + R"(},
      "projector": {"emb_dim": 6, "init_std": 0.1},
      "data": {"path": ")" +
           data + R"("},
      "optimizer": {"kind": "adamw", "lr": 0.03},
      "schedule": {"kind": "constant"},
      "checkpoint": {"dir": ")" +
           dir + R"(", "every": 20}})";
}

}  // namespace

TEST(stages, encoder_align_loss_falls_and_projector_loads) {
    auto c = comm_create(nullptr, nullptr);
    const std::string d = tmpdir("enc");
    write_captions(d + "/caps.jsonl");
    const std::string llm = R"(, "checkpoint": ")" + train_caption_lm(d) + R"(")";
    std::string err;
    train_config first, cfg;
    ASSERT_TRUE(train_config_parse(enc_config(d + "/r1", d + "/caps.jsonl", 1, llm), &first, &err)) << err;
    train_result r1, r2;
    ASSERT_TRUE(train_run(first, *c, false, true, &r1, &err)) << err;
    ASSERT_TRUE(train_config_parse(enc_config(d + "/r", d + "/caps.jsonl", 60, llm), &cfg, &err)) << err;
    ASSERT_TRUE(train_run(cfg, *c, false, true, &r2, &err)) << err;
    // The caption loss through the frozen LLM falls as the projector learns to tell the captions apart.
    EXPECT_LT(r2.last_loss, 0.6f * r1.last_loss) << r1.last_loss << " -> " << r2.last_loss;
    std::printf("encoder_align: caption loss %.4f (step 1) -> %.4f (step 60)\n", r1.last_loss, r2.last_loss);

    // The exported projector loads with the pipeline's loader and projects like the checkpointed weights.
    std::string e;
    std::shared_ptr<gguf_file> f(gguf_file::open(d + "/r/proj.gguf", &e));
    ASSERT_TRUE(f) << e;
    auto proj = input_projector::from_gguf(f, &err);
    ASSERT_TRUE(proj) << err;
    EXPECT_EQ(proj->emb_dim(), 6);
    EXPECT_EQ(proj->d_model(), 16);
    std::vector<float> emb = {0.5f, -1, 0.25f, 2, 0, 1}, tok;
    ASSERT_TRUE(proj->project(emb, &tok, &err)) << err;
    std::shared_ptr<gguf_file> ck(gguf_file::open(d + "/r/checkpoint.gguf", &e));
    ASSERT_TRUE(ck) << e;
    const float * W = static_cast<const float *>(ck->view(*ck->find_tensor("param.spider.proj.weight")).data);
    const float * b = static_cast<const float *>(ck->view(*ck->find_tensor("param.spider.proj.bias")).data);
    for (int o = 0; o < 16; ++o) {
        float acc = b[o];
        for (int i = 0; i < 6; ++i) acc += W[o * 6 + i] * emb[i];
        EXPECT_NEAR(tok[o], acc, 1e-4f * (1 + std::fabs(acc))) << o;
    }
    fs::remove_all(d);
}

TEST(stages, encoder_align_bad_config_and_data_are_named) {
    auto c = comm_create(nullptr, nullptr);
    const std::string d = tmpdir("encbad");
    std::string err;
    train_config cfg;
    EXPECT_FALSE(train_config_parse(enc_config(d, d + "/x.jsonl", 2, R"(, "path": "x")"), &cfg, &err));
    EXPECT_NE(err.find("unknown field 'llm.path'"), std::string::npos) << err;
    {
        std::ofstream out(d + "/bad.jsonl");
        out << R"({"embedding": [1, 2, 3, 4, 5, 6], "caption": "ok"})"
            << "\n"
            << R"({"embedding": [1, 2, 3], "caption": "short"})"
            << "\n";
    }
    ASSERT_TRUE(train_config_parse(enc_config(d + "/o", d + "/bad.jsonl", 2), &cfg, &err)) << err;
    EXPECT_FALSE(train_run(cfg, *c, false, true, nullptr, &err));
    EXPECT_NE(err.find("bad.jsonl:2: 'embedding'"), std::string::npos) << err;
    // A frozen LLM checkpoint whose shapes do not match llm.model is reported naming the tensor.
    write_captions(d + "/caps.jsonl");
    ASSERT_TRUE(train_config_parse(enc_config(d + "/o2", d + "/caps.jsonl", 2), &cfg, &err)) << err;
    ASSERT_TRUE(train_run(cfg, *c, false, true, nullptr, &err)) << err;
    ASSERT_TRUE(train_config_parse(
        enc_config(d + "/o3", d + "/caps.jsonl", 2, R"(, "checkpoint": ")" + d + R"(/o2/checkpoint.gguf")"), &cfg,
        &err))
        << err;
    EXPECT_FALSE(train_run(cfg, *c, false, true, nullptr, &err));
    EXPECT_NE(err.find("llm: "), std::string::npos) << err;
    fs::remove_all(d);
}

namespace {

std::string diff_config(const std::string & dir, int steps, const std::string & pred, const std::string & extra = "") {
    return R"({"stage": "diffusion_scratch", "steps": )" + std::to_string(steps) +
           R"(, "batch": 4, "seed": 2, "log_every": 1,
      "model": {"channels": 8, "image_size": 16, "t_embed": 16, "groups": 4)" +
           extra + R"(},
      "data": {"world_seed": 1, "n_images": 32, "world_size": 48},
      "diffusion": {"prediction": ")" +
           pred + R"(", "schedule": "linear", "n_steps": 1000, "beta_start": 0.0001, "beta_end": 0.02},
      "optimizer": {"kind": "adamw", "lr": 0.01}, "schedule": {"kind": "constant", "warmup": 5},
      "checkpoint": {"dir": ")" +
           dir + R"(", "every": 100}})";
}

// Mean loss of log.jsonl lines [from, to) (1-based steps).
double mean_logged_loss(const std::string & dir, int from, int to) {
    std::ifstream f(dir + "/log.jsonl");
    std::string line;
    double acc = 0;
    int n = 0;
    while (std::getline(f, line)) {
        auto j = nlohmann::json::parse(line);
        const int s = j["step"];
        if (s >= from && s < to) {
            acc += j["loss"].get<double>();
            ++n;
        }
    }
    EXPECT_EQ(n, to - from);
    return n ? acc / n : 0;
}

}  // namespace

TEST(stages, diffusion_scratch_loss_falls_for_epsilon_and_v) {
    auto c = comm_create(nullptr, nullptr);
    for (const char * pred : {"epsilon", "v"}) {
        const std::string d = tmpdir(std::string("diff_") + pred);
        std::string err;
        train_config cfg;
        ASSERT_TRUE(train_config_parse(diff_config(d, 60, pred), &cfg, &err)) << err;
        ASSERT_TRUE(train_run(cfg, *c, false, true, nullptr, &err)) << err;
        const double first = mean_logged_loss(d, 1, 11), last = mean_logged_loss(d, 51, 61);
        std::printf("diffusion_scratch (%s): mean loss of steps 1-10 %.4f, of steps 51-60 %.4f\n", pred, first, last);
        EXPECT_LT(last, 0.6 * first) << pred;
        std::string e;
        std::unique_ptr<gguf_file> f = gguf_file::open(d + "/diffusion.gguf", &e);
        ASSERT_TRUE(f) << e;
        EXPECT_NE(f->find_tensor("out.conv.weight"), nullptr);
        fs::remove_all(d);
    }
}

TEST(stages, diffusion_scratch_bad_config_is_named) {
    std::string err;
    train_config cfg;
    EXPECT_FALSE(train_config_parse(diff_config("/tmp/x", 2, "x0"), &cfg, &err));
    EXPECT_NE(err.find("diffusion.prediction"), std::string::npos) << err;
    EXPECT_FALSE(train_config_parse(diff_config("/tmp/x", 2, "v", R"(, "depth": 3)"), &cfg, &err));
    EXPECT_NE(err.find("unknown field 'model.depth'"), std::string::npos) << err;
    EXPECT_FALSE(train_config_parse(diff_config("/tmp/x", 2, "v", R"(, "image_size": 20)"), &cfg, &err));
    EXPECT_NE(err.find("model.image_size"), std::string::npos) << err;
}

TEST(stages, encoder_align_through_a_frozen_gguf_llm) {
    // The frozen LLM is a tiny random Llama (tests/data/llm/tiny_llama_hf) converted to GGUF by our converter and
    // run on the tape (train/llm_tape.h); the caption is tokenized by its SentencePiece tokenizer.
    auto c = comm_create(nullptr, nullptr);
    const std::string d = tmpdir("encgguf");
    std::string err;
    hf_convert_params hp;
    hp.out_type = DTYPE_F32;
    ASSERT_TRUE(hf_convert(std::string(SPIDER_SOURCE_DIR) + "/tests/data/llm/tiny_llama_hf", d + "/llm.gguf", hp, &err))
        << err;
    write_captions(d + "/caps.jsonl");
    auto cfg_of = [&](const std::string & dir, int steps) {
        return R"({"stage": "encoder_align", "steps": )" + std::to_string(steps) +
               R"(, "batch": 4, "seed": 3, "log_every": 1,
          "llm": {"gguf": ")" +
               d + R"(/llm.gguf", "n_threads": 1},
          "projector": {"emb_dim": 6, "init_std": 0.1}, "data": {"path": ")" +
               d + R"(/caps.jsonl"},
          "optimizer": {"kind": "adamw", "lr": 0.05}, "schedule": {"kind": "constant"},
          "checkpoint": {"dir": ")" +
               dir + R"(", "every": 100}})";
    };
    train_config first, cfg;
    ASSERT_TRUE(train_config_parse(cfg_of(d + "/r1", 1), &first, &err)) << err;
    train_result r1, r2;
    ASSERT_TRUE(train_run(first, *c, false, true, &r1, &err)) << err;
    ASSERT_TRUE(train_config_parse(cfg_of(d + "/r", 30), &cfg, &err)) << err;
    ASSERT_TRUE(train_run(cfg, *c, false, true, &r2, &err)) << err;
    std::printf("encoder_align (GGUF LLM): caption loss %.4f (step 1) -> %.4f (step 30)\n", r1.last_loss, r2.last_loss);
    EXPECT_LT(r2.last_loss, 0.9f * r1.last_loss) << r1.last_loss << " -> " << r2.last_loss;
    std::string e;
    std::shared_ptr<gguf_file> f(gguf_file::open(d + "/r/proj.gguf", &e));
    ASSERT_TRUE(f) << e;
    auto proj = input_projector::from_gguf(f, &err);
    ASSERT_TRUE(proj) << err;
    EXPECT_EQ(proj->d_model(), 64);
    EXPECT_FALSE(train_config_parse(
        cfg_of(d, 2).replace(cfg_of(d, 2).find(R"("n_threads")"), 11, R"("model": {}, "n_threads")"), &cfg, &err));
    EXPECT_NE(err.find("exclude each other"), std::string::npos) << err;
    fs::remove_all(d);
}

TEST(stages, udp_align_builds_features_from_a_gguf_llm_and_builtin_decoders) {
    // M-Prompts from a tiny random Llama GGUF (hidden state + input embedding at the last token of each text),
    // targets from the built-in decoders' text encoder of the caption.
    auto c = comm_create(nullptr, nullptr);
    const std::string d = tmpdir("udpfeat");
    std::string err;
    hf_convert_params hp;
    hp.out_type = DTYPE_F32;
    ASSERT_TRUE(hf_convert(std::string(SPIDER_SOURCE_DIR) + "/tests/data/llm/tiny_llama_hf", d + "/llm.gguf", hp, &err))
        << err;
    {
        const char * caps[] = {"a red circle",   "a blue square", "a green ring",
                               "a yellow cross", "a loud tone",   "a soft chirp"};
        std::ofstream f(d + "/pairs.jsonl");
        for (int i = 0; i < 6; ++i)
            f << nlohmann::json{{"modality", i < 4 ? "image" : "audio"},
                                {"text", std::string("Here is ") + caps[i] + " for you."},
                                {"caption", caps[i]}}
                     .dump()
              << "\n";
    }
    auto cfg_of = [&](const std::string & dir, int steps) {
        return R"({"stage": "udp_align", "steps": )" + std::to_string(steps) + R"(, "batch": 3, "seed": 4,
          "udp": {"d_model": 64, "d_hidden": 16, "n_expert": 2, "n_enc_layer": 1, "n_dec_layer": 1, "n_head": 2,
                  "d_ff": 24, "heads": {"image": [3, 6], "audio": [1, 4]}},
          "features": {"llm": ")" +
               d + R"(/llm.gguf", "n_signal": 1, "targets": "builtin", "n_threads": 1},
          "data": {"path": ")" +
               d + R"(/pairs.jsonl"}, "loss": {"l2": 1.0, "info_nce": 0.1},
          "optimizer": {"kind": "adamw", "lr": 0.003}, "schedule": {"kind": "constant"},
          "checkpoint": {"dir": ")" +
               dir + R"(", "every": 100}})";
    };
    train_config first, cfg;
    ASSERT_TRUE(train_config_parse(cfg_of(d + "/r1", 1), &first, &err)) << err;
    train_result r1, r2;
    ASSERT_TRUE(train_run(first, *c, false, true, &r1, &err)) << err;
    ASSERT_TRUE(train_config_parse(cfg_of(d + "/r", 40), &cfg, &err)) << err;
    ASSERT_TRUE(train_run(cfg, *c, false, true, &r2, &err)) << err;
    std::printf("udp_align (GGUF LLM features, builtin targets): loss %.4f (step 1) -> %.4f (step 40)\n", r1.last_loss,
                r2.last_loss);
    EXPECT_LT(r2.last_loss, 0.5f * r1.last_loss) << r1.last_loss << " -> " << r2.last_loss;
    ASSERT_TRUE(udp_model::load(d + "/r/udp.gguf", &err)) << err;
    // A caption without features.targets, and a text without features.llm, are named errors.
    {
        std::ofstream f(d + "/bad.jsonl");
        f << R"({"modality": "image", "mprompt": [[1, 2, 3, 4, 5, 6, 7, 8]], "caption": "x"})"
          << "\n";
    }
    ASSERT_TRUE(train_config_parse(udp_config(d + "/o", d + "/bad.jsonl", 2), &cfg, &err)) << err;
    EXPECT_FALSE(train_run(cfg, *c, false, true, nullptr, &err));
    EXPECT_NE(err.find("bad.jsonl:1: 'caption' needs features.targets"), std::string::npos) << err;
    fs::remove_all(d);
}

TEST(stages, udp_align_resume_equals_uninterrupted) {
    // The generic loop's resume holds for a stage with its own data sampling and an extra (logit scale) parameter.
    auto c = comm_create(nullptr, nullptr);
    const std::string d = tmpdir("udpresume");
    write_pairs(d + "/pairs.jsonl", 8);
    std::string err;
    train_config full, part, rest;
    ASSERT_TRUE(train_config_parse(udp_config(d + "/a", d + "/pairs.jsonl", 20), &full, &err)) << err;
    ASSERT_TRUE(train_run(full, *c, false, true, nullptr, &err)) << err;
    ASSERT_TRUE(train_config_parse(udp_config(d + "/b", d + "/pairs.jsonl", 20), &rest, &err)) << err;
    part = rest;
    part.steps = 13;  // checkpoints at 10 and 13; the resumed run continues from 13
    ASSERT_TRUE(train_run(part, *c, false, true, nullptr, &err)) << err;
    ASSERT_TRUE(train_run(rest, *c, true, true, nullptr, &err)) << err;
    // The second run really resumed: its log continues after step 13 (lines at 5, 10, 13, 15, 20).
    std::vector<int> logged;
    {
        std::ifstream lf(d + "/b/log.jsonl");
        std::string line;
        while (std::getline(lf, line)) logged.push_back(nlohmann::json::parse(line)["step"].get<int>());
    }
    EXPECT_EQ(logged, (std::vector<int>{5, 10, 13, 15, 20}));
    std::string e;
    std::unique_ptr<gguf_file> a = gguf_file::open(d + "/a/udp.gguf", &e), b = gguf_file::open(d + "/b/udp.gguf", &e);
    ASSERT_TRUE(a && b) << e;
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    for (const auto & ti : a->tensors()) {
        const gguf_tensor_info * tb = b->find_tensor(ti.name);
        ASSERT_TRUE(tb) << ti.name;
        const tensor x = a->view(ti), y = b->view(*tb);
        ASSERT_EQ(x.nelements(), y.nelements());
        const float * px = static_cast<const float *>(x.data);
        const float * py = static_cast<const float *>(y.data);
        for (int64_t i = 0; i < x.nelements(); ++i) ASSERT_EQ(px[i], py[i]) << ti.name << " " << i;  // bit-identical
    }
    fs::remove_all(d);
}

TEST(stages, encoder_scratch_contrastive_loss_falls) {
    auto c = comm_create(nullptr, nullptr);
    const std::string d = tmpdir("encscratch");
    const std::string cfg_text = R"({"stage": "encoder_scratch", "steps": 80, "batch": 8, "seed": 6, "log_every": 1,
      "model": {"channels": 8, "image_size": 16, "emb_dim": 32, "groups": 4},
      "data": {"world_seed": 1, "n_images": 32, "world_size": 48},
      "optimizer": {"kind": "adamw", "lr": 0.01}, "schedule": {"kind": "constant", "warmup": 5},
      "checkpoint": {"dir": ")" + d +
                                 R"(", "every": 100}})";
    std::string err;
    train_config cfg;
    ASSERT_TRUE(train_config_parse(cfg_text, &cfg, &err)) << err;
    ASSERT_TRUE(train_run(cfg, *c, false, true, nullptr, &err)) << err;
    const double first = mean_logged_loss(d, 1, 11), last = mean_logged_loss(d, 71, 81);
    std::printf("encoder_scratch: mean InfoNCE of steps 1-10 %.4f, of steps 71-80 %.4f\n", first, last);
    EXPECT_LT(last, 0.7 * first);
    std::string e;
    std::unique_ptr<gguf_file> f = gguf_file::open(d + "/encoder.gguf", &e);
    ASSERT_TRUE(f) << e;
    EXPECT_NE(f->find_tensor("out.weight"), nullptr);
    train_config bad;
    EXPECT_FALSE(train_config_parse(
        std::string(cfg_text).replace(cfg_text.find(R"("groups": 4)"), 11, R"("groups": 3)"), &bad, &err));
    EXPECT_NE(err.find("model.groups"), std::string::npos) << err;
    // One example per micro-batch cannot be contrasted: reported as an error of the step, not a crash.
    ASSERT_TRUE(train_config_parse(cfg_text, &bad, &err)) << err;
    bad.batch = 2;
    bad.grad_accum = 2;
    EXPECT_FALSE(train_run(bad, *c, false, true, nullptr, &err));
    EXPECT_NE(err.find("stage encoder_scratch, step 1: [encoder_scratch] a contrastive micro-batch needs at least 2"),
              std::string::npos)
        << err;
    fs::remove_all(d);
}

TEST(stages, encoder_align_on_images_through_the_builtin_encoder) {
    // Records naming ToyWorld PNGs: the stage runs the pipeline's built-in encoder on them (what `spider run` feeds
    // the projector), then trains the projector through the frozen byte-level LM.
    auto c = comm_create(nullptr, nullptr);
    const std::string d = tmpdir("encimg");
    world_params wp;
    wp.image_size = 48;
    {
        std::ofstream f(d + "/imgs.jsonl");
        for (int i = 0; i < 4; ++i) {
            image_item it;
            world_make_image(3, static_cast<uint64_t>(i), wp, &it);
            std::string err;
            ASSERT_TRUE(image_write_png(d + "/img" + std::to_string(i) + ".png", it.image, {}, &err)) << err;
            f << nlohmann::json{{"image", "img" + std::to_string(i) + ".png"}, {"caption", kCaps[i]}}.dump() << "\n";
        }
        f << "\n";
    }
    const std::string llm = R"(, "checkpoint": ")" + train_caption_lm(d) + R"(")";
    std::string cfg_text = enc_config(d + "/r", d + "/imgs.jsonl", 60, llm);
    cfg_text.replace(cfg_text.find(R"("emb_dim": 6)"), 12, R"("emb_dim": 64)");
    std::string err;
    train_config first, cfg;
    ASSERT_TRUE(train_config_parse(cfg_text, &cfg, &err)) << err;
    train_result r;
    ASSERT_TRUE(train_run(cfg, *c, false, true, &r, &err)) << err;
    std::string one = cfg_text;
    one.replace(one.find(R"("steps": 60)"), 11, R"("steps": 1)");
    one.replace(one.find(d + "/r\""), d.size() + 3, d + "/r1\"");
    ASSERT_TRUE(train_config_parse(one, &first, &err)) << err;
    train_result r1;
    ASSERT_TRUE(train_run(first, *c, false, true, &r1, &err)) << err;
    std::printf("encoder_align on images (built-in encoder): caption loss %.4f (step 1) -> %.4f (step 60)\n",
                r1.last_loss, r.last_loss);
    EXPECT_LT(r.last_loss, 0.6f * r1.last_loss);
    // A missing image is named with its line.
    {
        std::ofstream f(d + "/bad.jsonl");
        f << R"({"image": "nope.png", "caption": "x"})"
          << "\n";
    }
    ASSERT_TRUE(train_config_parse(enc_config(d + "/o", d + "/bad.jsonl", 2, llm), &cfg, &err)) << err;
    EXPECT_FALSE(train_run(cfg, *c, false, true, nullptr, &err));
    EXPECT_NE(err.find("bad.jsonl:1: 'image'"), std::string::npos) << err;
    fs::remove_all(d);
}

TEST(stages, udp_tape_keeps_a_loaded_learned_fusion) {
    // A UDP file with learned TM-Fusion (the pipeline's built-in one has it) keeps its fusion tensors through
    // load -> save, and only the UDP proper is trainable.
    udp_hparams hp = tiny_udp();
    hp.tmf_learned = true;
    hp.tmf_n_head = 2;
    auto m = udp_model::random(hp, 5, 0.3f);
    const std::string d = tmpdir("tmf");
    std::string err;
    ASSERT_TRUE(m->save(d + "/in.gguf", &err)) << err;
    auto t = udp_tape::load(d + "/in.gguf", &err);
    ASSERT_TRUE(t) << err;
    for (const auto & [name, v] : t->named_params()) EXPECT_EQ(name.rfind("spider.tmf.", 0), std::string::npos) << name;
    ASSERT_TRUE(t->save(d + "/out.gguf", &err)) << err;
    auto m2 = udp_model::load(d + "/out.gguf", &err);
    ASSERT_TRUE(m2) << err;
    EXPECT_TRUE(m2->hparams().tmf_learned);
    std::mt19937 rng(2);
    const auto y = randv(3 * 6, rng), text = randv(3 * 6, rng);
    std::vector<float> c1, c2;
    ASSERT_TRUE(m->fuse(MODALITY_IMAGE, y.data(), text.data(), 3, &c1, &err)) << err;
    ASSERT_TRUE(m2->fuse(MODALITY_IMAGE, y.data(), text.data(), 3, &c2, &err)) << err;
    EXPECT_EQ(c1, c2);
    fs::remove_all(d);
}
