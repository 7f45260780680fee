// Training parity with PyTorch (goldens from tests/reference/make_train_goldens.py):
// - AdamW and SGD trajectories on fixed gradients;
// - a tiny Llama (train/tiny_lm.h, same weight names as transformers) trained 50 steps with AdamW + warm-up + clipping
// follows PyTorch's loss curve.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "train/autograd.h"
#include "train/optim.h"
#include "train/tiny_lm.h"

using namespace spider;
using namespace spider::train;
using json = nlohmann::json;

static json load_json(const std::string & rel) {
    std::ifstream f(std::string(SPIDER_SOURCE_DIR) + "/" + rel);
    EXPECT_TRUE(f.good()) << rel;
    return json::parse(f);
}

TEST(train_parity, optimisers_match_pytorch) {
    json g = load_json("tests/data/train/optim.json");
    const auto p0 = g["p0"].get<std::vector<float>>();
    for (const auto & c : g["cases"]) {
        value p = parameter({static_cast<int64_t>(p0.size())}, p0);
        const auto & kw = c["params"];
        std::unique_ptr<adamw> a;
        std::unique_ptr<sgd> s;
        float lr = kw["lr"].get<float>();
        if (c["kind"] == "adamw") {
            adamw_params ap;
            ap.beta1 = kw["betas"][0].get<float>();
            ap.beta2 = kw["betas"][1].get<float>();
            ap.eps = kw["eps"].get<float>();
            ap.weight_decay = kw["weight_decay"].get<float>();
            a = std::make_unique<adamw>(std::vector<value>{p}, ap);
        } else {
            sgd_params sp;
            sp.momentum = kw["momentum"].get<float>();
            sp.weight_decay = kw["weight_decay"].get<float>();
            sp.nesterov = kw["nesterov"].get<bool>();
            s = std::make_unique<sgd>(std::vector<value>{p}, sp);
        }
        for (size_t step = 0; step < g["grads"].size(); ++step) {
            p->grad = g["grads"][step].get<std::vector<float>>();
            if (a)
                a->step(lr);
            else
                s->step(lr);
            const auto want = c["trajectory"][step].get<std::vector<float>>();
            for (size_t i = 0; i < want.size(); ++i)
                ASSERT_NEAR(p->data[i], want[i], 1e-6) << c["kind"] << " step " << step << " element " << i;
        }
    }
}

TEST(train_parity, tiny_llama_follows_pytorch_loss_curve) {
    json meta = load_json("tests/data/train/tiny_llama.json");
    std::ifstream bin(std::string(SPIDER_SOURCE_DIR) + "/tests/data/train/tiny_llama_init.bin", std::ios::binary);
    ASSERT_TRUE(bin.good());
    std::vector<char> blob((std::istreambuf_iterator<char>(bin)), std::istreambuf_iterator<char>());

    const auto & c = meta["config"];
    tiny_lm_config cfg;
    cfg.vocab = c["vocab"];
    cfg.n_embd = c["n_embd"];
    cfg.n_ff = c["n_ff"];
    cfg.n_layer = c["n_layer"];
    cfg.n_head = c["n_head"];
    cfg.n_head_kv = c["n_head_kv"];
    cfg.eps = c["eps"];
    cfg.rope_theta = c["rope_theta"];
    tiny_lm m(cfg);
    std::vector<value> params;
    for (const auto & t : meta["tensors"]) {
        std::vector<int64_t> shape = t["shape"].get<std::vector<int64_t>>();
        int64_t numel = 1;
        for (int64_t d : shape) numel *= d;
        const size_t off = t["offset"].get<size_t>();
        ASSERT_LE(off + numel * 4, blob.size());
        std::vector<float> data(static_cast<size_t>(numel));
        std::memcpy(data.data(), blob.data() + off, data.size() * 4);
        value p = parameter(shape, std::move(data));
        m.set_param(t["name"].get<std::string>(), p);
        params.push_back(p);
    }

    const auto & tr = meta["train"];
    adamw_params ap;
    ap.beta1 = tr["betas"][0].get<float>();
    ap.beta2 = tr["betas"][1].get<float>();
    ap.eps = tr["eps"].get<float>();
    adamw opt(params, ap);
    lr_schedule sched;
    sched.kind = SCHEDULE_CONSTANT;
    sched.base_lr = tr["lr"].get<float>();
    sched.warmup = tr["warmup"].get<int64_t>();
    sched.total = tr["steps"].get<int64_t>();

    const auto want = meta["losses"].get<std::vector<double>>();
    double max_rel = 0;
    for (int64_t s = 0; s < tr["steps"].get<int64_t>(); ++s) {
        opt.zero_grad();
        const auto & batch = meta["data"][s];
        // Both sequences have the same number of scored tokens, so the batch mean is the mean of the two means.
        value loss = scale(add(m.forward_loss(batch[0].get<std::vector<int32_t>>()),
                               m.forward_loss(batch[1].get<std::vector<int32_t>>())),
                           0.5f);
        backward(loss);
        clip_grad_norm(params, tr["clip"].get<float>());
        opt.step(sched.at(s));
        const double rel = std::fabs(loss->data[0] - want[s]) / want[s];
        max_rel = std::max(max_rel, rel);
        // Tolerance: F32 both sides, different summation orders; the error grows slowly through 50 Adam steps.
        ASSERT_LT(rel, 1e-5) << "step " << s << ": ours " << loss->data[0] << ", PyTorch " << want[s];
    }
    std::printf("tiny llama: PyTorch loss %.4f -> %.4f, max relative difference %.2e\n", want.front(), want.back(),
                max_rel);
    EXPECT_LT(want.back(), want.front() * 0.5);  // the run really trains
}
