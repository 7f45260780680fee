// Spider's losses (train/losses.h): values and gradients against PyTorch goldens
// (tests/reference/make_loss_goldens.py, torch 2.15.0) and gradients against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "train/losses.h"

#include "grad_check.h"

using namespace spider::train;

namespace {

nlohmann::json goldens() {
    std::ifstream f(std::string(SPIDER_SOURCE_DIR) + "/tests/data/train/loss_goldens.json");
    EXPECT_TRUE(f.good()) << "missing tests/data/train/loss_goldens.json (tests/reference/make_loss_goldens.py)";
    return nlohmann::json::parse(f);
}

std::vector<float> fv(const nlohmann::json & j) {
    std::vector<float> v;
    for (double d : j) v.push_back(static_cast<float>(d));
    return v;
}

void expect_close(const std::vector<float> & got, const nlohmann::json & want, double tol, const char * what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], want[i].get<double>(), tol + tol * std::fabs(want[i].get<double>())) << what << " " << i;
}

}  // namespace

TEST(losses, info_nce_matches_pytorch) {
    const auto g = goldens();
    for (const auto & c : g["info_nce"]) {
        const int64_t B = c["B"], d = c["d"];
        value a = parameter({B, d}, fv(c["a"])), b = parameter({B, d}, fv(c["b"]));
        value ls = parameter({1}, {c["log_scale"].get<float>()});
        value L = info_nce(a, b, ls);
        EXPECT_NEAR(L->data[0], c["loss"].get<double>(), 1e-5 * std::fabs(c["loss"].get<double>()));
        backward(L);
        expect_close(a->grad, c["grad_a"], 2e-5, "grad a");
        expect_close(b->grad, c["grad_b"], 2e-5, "grad b");
        EXPECT_NEAR(ls->grad[0], c["grad_log_scale"].get<double>(), 2e-5);
    }
}

TEST(losses, info_nce_gradients_and_clamp) {
    std::mt19937 rng(31);
    value a = parameter({4, 5}, randv(20, rng)), b = parameter({4, 5}, randv(20, rng));
    value ls = parameter({1}, {kClipLogScaleInit});
    grad_check(
        "info_nce", {a, b, ls}, [&] { return info_nce(a, b, ls); }, 1e-3f);
    // Above ln 100 the scale is clamped: no gradient reaches the parameter (as torch.clamp).
    value hi = parameter({1}, {5.0f});
    backward(info_nce(a, b, hi));
    EXPECT_EQ(hi->grad[0], 0.0f);
    // Matching pairs give a lower loss than shuffled ones.
    value same = info_nce(a, a, ls);
    value other = info_nce(a, b, ls);
    EXPECT_LT(same->data[0], other->data[0]);
}

TEST(losses, token_l2_matches_pytorch_and_fd) {
    const auto g = goldens()["token_l2"];
    const int64_t T = g["T"], d = g["d"];
    value x = parameter({T, d}, fv(g["x"])), y = constant({T, d}, fv(g["y"]));
    EXPECT_NEAR(token_l2(x, y)->data[0], g["loss"].get<double>(), 1e-5 * g["loss"].get<double>());
    grad_check(
        "token_l2", {x}, [&] { return token_l2(x, y); }, 1e-3f);
}

TEST(losses, noise_schedules_match_pytorch) {
    const auto all = goldens();  // a local: a range-for over a temporary's member would dangle
    for (const auto & s : all["schedules"]) {
        noise_schedule ns;
        ns.kind = s["kind"];
        ns.n_steps = s["n_steps"];
        ns.beta_start = s["beta_start"];
        ns.beta_end = s["beta_end"];
        std::string err;
        ASSERT_TRUE(ns.build(&err)) << err;
        for (size_t i = 0; i < s["t"].size(); ++i) {
            const double want = s["alpha_bar"][i];
            EXPECT_NEAR(ns.alpha_bar[s["t"][i].get<size_t>()], want, 1e-6 * want + 1e-12) << ns.kind << " t " << i;
        }
    }
    noise_schedule bad;
    bad.kind = "quadratic";
    std::string err;
    EXPECT_FALSE(bad.build(&err));
    EXPECT_NE(err.find("quadratic"), std::string::npos) << err;
}

TEST(losses, diffusion_loss_epsilon_and_v) {
    const auto g = goldens()["diffusion"];
    const auto x0 = fv(g["x0"]), eps = fv(g["eps"]);
    const double ab = g["alpha_bar"];
    expect_close(diffusion_noisy(x0, eps, ab), g["x_t"], 1e-6, "x_t");
    value pred = parameter({2, 3, 4}, fv(g["pred"]));
    EXPECT_NEAR(diffusion_loss(pred, x0, eps, ab, PREDICT_EPSILON)->data[0], g["loss_epsilon"].get<double>(), 1e-5);
    EXPECT_NEAR(diffusion_loss(pred, x0, eps, ab, PREDICT_V)->data[0], g["loss_v"].get<double>(), 1e-5);
    grad_check(
        "diffusion eps", {pred}, [&] { return diffusion_loss(pred, x0, eps, ab, PREDICT_EPSILON); }, 1e-3f);
    grad_check(
        "diffusion v", {pred}, [&] { return diffusion_loss(pred, x0, eps, ab, PREDICT_V); }, 1e-3f);
    diffusion_prediction p;
    EXPECT_TRUE(parse_prediction("v", &p));
    EXPECT_EQ(p, PREDICT_V);
    EXPECT_FALSE(parse_prediction("x0", &p));
}
