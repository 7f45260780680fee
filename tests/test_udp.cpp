// UDP and TM-Fusion forward passes against the PyTorch reference (tests/reference/make_udp_goldens.py writes
// tests/data/controller/udp_tiny.gguf + udp_golden.gguf), plus GGUF round trip and validation errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "controller/udp.h"
#include "io/gguf.h"

using namespace spider;

static const std::string k_dir = std::string(SPIDER_SOURCE_DIR) + "/tests/data/controller/";

static double nmse(const float * a, const float * ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        num += (a[i] - ref[i]) * static_cast<double>(a[i] - ref[i]);
        den += ref[i] * static_cast<double>(ref[i]);
    }
    return num / (den > 0 ? den : 1.0);
}

static std::vector<float> golden(const gguf_file & g, const std::string & name, int64_t * rows = nullptr) {
    const gguf_tensor_info * info = g.find_tensor(name);
    EXPECT_NE(info, nullptr) << name;
    if (!info) return {};
    tensor t = g.view(*info);
    if (rows) *rows = t.ne[1];
    const float * p = static_cast<const float *>(t.data);
    return std::vector<float>(p, p + t.nelements());
}

TEST(udp, matches_pytorch_reference) {
    std::string err;
    auto udp = udp_model::load(k_dir + "udp_tiny.gguf", &err);
    ASSERT_TRUE(udp) << err;
    auto g = gguf_file::open(k_dir + "udp_golden.gguf", &err);
    ASSERT_TRUE(g) << err;
    EXPECT_TRUE(udp->hparams().tmf_learned);
    EXPECT_FALSE(udp->has(MODALITY_BOX));
    int checked = 0;
    for (modality m : {MODALITY_IMAGE, MODALITY_VIDEO, MODALITY_AUDIO, MODALITY_MASK}) {
        SCOPED_TRACE(modality_name(m));
        ASSERT_TRUE(udp->has(m));
        int64_t n_tok = 0;
        std::string b = std::string("golden.") + modality_name_lower(m) + ".";
        auto x = golden(*g, b + "x", &n_tok);
        auto y_ref = golden(*g, b + "y");
        auto r_ref = golden(*g, b + "router");
        auto text = golden(*g, b + "text");
        auto blend_ref = golden(*g, b + "blend");
        auto cond_ref = golden(*g, b + "cond");
        std::vector<float> y, rw, blend, cond;
        ASSERT_TRUE(udp->forward(m, x.data(), static_cast<int>(n_tok), &y, &rw, &err)) << err;
        ASSERT_EQ(y.size(), y_ref.size());
        const double e_y = nmse(y.data(), y_ref.data(), y.size());
        std::printf("%s: udp nmse %.3g\n", modality_name(m), e_y);
        EXPECT_LT(e_y, 1e-5);
        ASSERT_EQ(rw.size(), 3u);
        EXPECT_LT(nmse(rw.data(), r_ref.data(), 3), 1e-5);
        const int T = udp->hparams().t_out[m];
        // the fixed blend (reference Spider) and the learned cross-attention variant, both on the reference y
        ASSERT_TRUE(udp->fuse(m, y_ref.data(), text.data(), T, &cond, &err)) << err;
        const double e_c = nmse(cond.data(), cond_ref.data(), cond.size());
        std::printf("%s: tm-fusion (learned) nmse %.3g\n", modality_name(m), e_c);
        EXPECT_LT(e_c, 1e-5);
        // the reference blend itself
        for (size_t i = 0; i < blend_ref.size(); ++i) {
            ASSERT_NEAR(0.1f * y_ref[i] + 0.9f * text[i], blend_ref[i], 1e-5f);
        }
        // and the learned term really contributes (the gate is 0.7 in the golden model)
        EXPECT_GT(nmse(cond.data(), blend_ref.data(), cond.size()), 1e-4);
        ++checked;
    }
    EXPECT_EQ(checked, 4);
}

TEST(udp, blend_only_model_roundtrip_through_gguf) {
    udp_hparams hp;
    hp.d_model = 16;
    hp.d_hidden = 8;
    hp.n_expert = 3;
    hp.n_enc_layer = 1;
    hp.n_dec_layer = 1;
    hp.n_head = 2;
    hp.d_ff = 16;
    hp.t_out[MODALITY_AUDIO] = 2;
    hp.d_out[MODALITY_AUDIO] = 6;
    auto a = udp_model::random(hp, 99);
    std::string path = std::string(SPIDER_BINARY_DIR) + "/udp_roundtrip_test.gguf", err;
    ASSERT_TRUE(a->save(path, &err)) << err;
    auto b = udp_model::load(path, &err);
    ASSERT_TRUE(b) << err;
    std::vector<float> x(3 * 16);
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * i);
    std::vector<float> ya, yb, w;
    ASSERT_TRUE(a->forward(MODALITY_AUDIO, x.data(), 3, &ya, &w, &err));
    ASSERT_TRUE(b->forward(MODALITY_AUDIO, x.data(), 3, &yb, nullptr, &err));
    ASSERT_EQ(ya, yb);
    EXPECT_NEAR(w[0] + w[1] + w[2], 1.0f, 1e-6f);
    std::vector<float> text(12, 1.0f), cond;
    ASSERT_TRUE(b->fuse(MODALITY_AUDIO, ya.data(), text.data(), 2, &cond, &err));
    for (size_t i = 0; i < cond.size(); ++i) EXPECT_FLOAT_EQ(cond[i], 0.1f * ya[i] + 0.9f);
    std::remove(path.c_str());
}

TEST(udp, errors_name_the_problem) {
    std::string err;
    EXPECT_FALSE(udp_model::load("/nonexistent/udp.gguf", &err));
    EXPECT_NE(err.find("/nonexistent/udp.gguf"), std::string::npos);

    // a file with the keys but one tensor missing
    udp_hparams hp;
    hp.d_model = 8;
    hp.d_hidden = 8;
    hp.n_expert = 1;
    hp.n_enc_layer = 1;
    hp.n_dec_layer = 1;
    hp.n_head = 2;
    hp.d_ff = 8;
    hp.t_out[MODALITY_IMAGE] = 2;
    hp.d_out[MODALITY_IMAGE] = 4;
    gguf_writer w;
    w.set_u32("spider.udp.d_model", 8);
    w.set_u32("spider.udp.d_hidden", 8);
    w.set_u32("spider.udp.n_expert", 1);
    w.set_u32("spider.udp.n_enc_layer", 1);
    w.set_u32("spider.udp.n_dec_layer", 1);
    w.set_u32("spider.udp.n_head", 2);
    w.set_u32("spider.udp.d_ff", 8);
    w.set_u32("spider.udp.image.t_out", 2);
    w.set_u32("spider.udp.image.d_out", 4);
    std::vector<float> zeros(1024, 0.0f);
    auto specs = udp_tensor_specs(hp);
    for (size_t i = 0; i + 1 < specs.size(); ++i) {  // leave out the last one
        int64_t ne[4] = {1, 1, 1, 1};
        for (size_t d = 0; d < specs[i].ne.size(); ++d) ne[d] = specs[i].ne[d];
        ASSERT_TRUE(
            w.add_tensor(specs[i].name, DTYPE_F32, ne, static_cast<int>(specs[i].ne.size()), zeros.data(), &err))
            << err;
    }
    std::string path = std::string(SPIDER_BINARY_DIR) + "/udp_missing_test.gguf";
    ASSERT_TRUE(w.write(path, &err)) << err;
    EXPECT_FALSE(udp_model::load(path, &err));
    EXPECT_NE(err.find(specs.back().name), std::string::npos) << err;
    std::remove(path.c_str());

    auto m = udp_model::random(hp, 1);
    std::vector<float> x(8), y;
    EXPECT_FALSE(m->forward(MODALITY_BOX, x.data(), 1, &y, nullptr, &err));
    EXPECT_NE(err.find("BOX"), std::string::npos);
    EXPECT_FALSE(m->forward(MODALITY_IMAGE, x.data(), 0, &y, nullptr, &err));
    std::vector<float> text(8);
    ASSERT_TRUE(m->forward(MODALITY_IMAGE, x.data(), 1, &y, nullptr, &err));
    EXPECT_FALSE(m->fuse(MODALITY_IMAGE, y.data(), text.data(), 3, &y, &err));
    EXPECT_NE(err.find("3 tokens"), std::string::npos) << err;
}
