// Training driver: config validation, deterministic data sampling, steps, checkpoints, resume, data parallelism.
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "train/checkpoint.h"
#include "train/stage.h"

namespace spider::train {

using json = nlohmann::json;

bool train_config_parse(const std::string & json_text, train_config * out, std::string * err) {
    json j;
    try {
        j = json::parse(json_text);
    } catch (const std::exception & e) {
        *err = std::string("config: not valid JSON: ") + e.what();
        return false;
    }
    if (!j.is_object()) {
        *err = "config: the top level must be a JSON object";
        return false;
    }
    train_config c;
    c.raw_json = json_text;
    // The generic fields; everything else belongs to the stage.
    static const char * const generic[] = {"stage", "steps",     "batch",     "grad_accum", "clip",
                                           "seed",  "log_every", "optimizer", "schedule",   "checkpoint"};
    config_reader top{j, "", err};
    top.get("stage", &c.stage);
    top.get("steps", &c.steps);
    top.get("batch", &c.batch);
    top.get("grad_accum", &c.grad_accum);
    top.get("clip", &c.clip);
    top.get("seed", &c.seed);
    top.get("log_every", &c.log_every);
    if (const json * o = top.object("optimizer")) {
        config_reader r{*o, "optimizer.", err};
        std::vector<float> betas = {c.adam.beta1, c.adam.beta2};
        float lr = c.schedule.base_lr, wd = 0.0f;
        r.get("kind", &c.optimizer);
        r.get("lr", &lr);
        r.get("betas", &betas);
        r.get("eps", &c.adam.eps);
        r.get("weight_decay", &wd);
        r.get("momentum", &c.sgd_p.momentum);
        r.get("nesterov", &c.sgd_p.nesterov);
        if (!r.finish()) return false;
        if (betas.size() != 2) {
            *err = "config: 'optimizer.betas' must have two numbers";
            return false;
        }
        c.adam.beta1 = betas[0];
        c.adam.beta2 = betas[1];
        c.adam.weight_decay = c.sgd_p.weight_decay = wd;
        c.adam.lr = c.sgd_p.lr = c.schedule.base_lr = lr;
    }
    if (const json * s = top.object("schedule")) {
        config_reader r{*s, "schedule.", err};
        std::string kind = "cosine";
        r.get("kind", &kind);
        r.get("warmup", &c.schedule.warmup);
        r.get("min_lr", &c.schedule.min_lr);
        if (!r.finish()) return false;
        if (!parse_schedule_kind(kind, &c.schedule.kind)) {
            *err = "config: 'schedule.kind' must be constant, cosine or linear (got '" + kind + "')";
            return false;
        }
    }
    if (const json * k = top.object("checkpoint")) {
        config_reader r{*k, "checkpoint.", err};
        r.get("dir", &c.out_dir);
        r.get("every", &c.checkpoint_every);
        if (!r.finish()) return false;
    }
    if (!top.ok) return false;

    std::unique_ptr<stage> st = make_stage(c.stage);
    if (!st) {
        *err =
            "config: stage '" + c.stage + "' is not available; available: " + stage_names() + " (see docs/TRAINING.md)";
        return false;
    }
    json sections = json::object();
    for (auto it = j.begin(); it != j.end(); ++it)
        if (std::find(std::begin(generic), std::end(generic), it.key()) == std::end(generic))
            sections[it.key()] = it.value();
    if (!st->parse(sections, &c, err)) return false;
    c.stage_sections = sections.dump();

    if (c.optimizer != "adamw" && c.optimizer != "sgd") {
        *err = "config: 'optimizer.kind' must be adamw or sgd (got '" + c.optimizer + "')";
        return false;
    }
    if (!config_positive(c.steps, "steps", err) || !config_positive(c.batch, "batch", err) ||
        !config_positive(c.grad_accum, "grad_accum", err) ||
        !config_positive(c.checkpoint_every, "checkpoint.every", err) ||
        !config_positive(c.log_every, "log_every", err))
        return false;
    c.schedule.total = c.steps;
    *out = c;
    return true;
}

namespace {

std::string ckpt_path(const std::string & dir) {
    return dir + "/checkpoint.gguf";
}

void progress(int64_t step, int64_t total, float loss, float lr, double elapsed, int64_t done_this_run) {
    const int width = 30;
    const int filled = static_cast<int>(width * step / total);
    const double per = done_this_run > 0 ? elapsed / done_this_run : 0;
    const double eta = per * (total - step);
    std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld loss %.4f lr %.2e ETA %.0fs ", filled, "##############################",
                 width - filled, "", static_cast<long long>(step), static_cast<long long>(total), loss, lr, eta);
    std::fflush(stderr);
}

}  // namespace

bool train_run(const train_config & cfg, comm & c, bool resume, bool quiet, train_result * res, std::string * err) {
    std::unique_ptr<stage> st = make_stage(cfg.stage);
    if (!st) {
        *err = "config: stage '" + cfg.stage + "' is not available; available: " + stage_names();
        return false;
    }
    {
        json sections;
        try {
            sections = json::parse(cfg.stage_sections);
        } catch (const std::exception & e) {
            *err = std::string("config: stage sections are not valid JSON: ") + e.what();
            return false;
        }
        train_config scratch = cfg;  // the stage re-reads its sections; settings already in cfg stay as given
        if (!st->parse(sections, &scratch, err)) return false;
    }
    const int64_t per_step = cfg.batch;
    if (per_step % (c.size() * cfg.grad_accum) != 0) {
        *err = "config: batch " + std::to_string(cfg.batch) + " must be divisible by ranks (" +
               std::to_string(c.size()) + ") x grad_accum (" + std::to_string(cfg.grad_accum) + ")";
        return false;
    }
    if (!st->setup(cfg, err)) return false;

    auto named = st->trainable();
    std::vector<value> params;
    for (auto & np : named) params.push_back(np.second);
    adamw opt(params, cfg.adam);
    sgd opt_sgd(params, cfg.sgd_p);
    sgd * sgd_state = cfg.optimizer == "sgd" ? &opt_sgd : nullptr;  // its momentum buffer goes into checkpoints

    std::error_code ec;
    std::filesystem::create_directories(cfg.out_dir, ec);
    int64_t start = 0;
    if (resume && std::filesystem::exists(ckpt_path(cfg.out_dir))) {
        checkpoint_meta meta;
        if (!checkpoint_load(ckpt_path(cfg.out_dir), named, &opt, &meta, err, sgd_state)) return false;
        start = meta.step;
        if (!quiet && c.rank() == 0) std::fprintf(stderr, "resuming from step %lld\n", static_cast<long long>(start));
    }
    std::ofstream log;
    if (c.rank() == 0) log.open(cfg.out_dir + "/log.jsonl", resume ? std::ios::app : std::ios::trunc);

    const int64_t local = per_step / c.size();  // examples per rank per step
    const int64_t micro = local / cfg.grad_accum;
    const double work_per_step = static_cast<double>(per_step) * st->work_per_example();
    const std::string rate_key = std::string(st->work_unit()) + "_per_s";
    const auto t0 = std::chrono::steady_clock::now();
    float loss_v = 0;
    std::vector<float> flat;
    for (int64_t s = start; s < cfg.steps; ++s) {
        for (auto & p : params) p->zero_grad();
        double loss_sum = 0;
        for (int64_t a = 0; a < cfg.grad_accum; ++a) {
            micro_batch mb;
            mb.step = s;
            mb.rank = c.rank();
            mb.n_ranks = c.size();
            mb.micro = a;
            mb.dist = &c;
            // rank r takes global examples r, r + size, ...: the union over ranks is the same global batch.
            for (int64_t m = 0; m < micro; ++m) mb.examples.push_back((a * micro + m) * c.size() + c.rank());
            try {  // shape errors of model code throw (autograd ops name themselves): report, do not crash
                value loss = st->loss(mb);
                backward(scale(loss, 1.0f / static_cast<float>(per_step)));
                loss_sum += loss->data[0];
            } catch (const std::exception & e) {
                *err = "stage " + cfg.stage + ", step " + std::to_string(s + 1) + ": " + e.what();
                if (!quiet) std::fprintf(stderr, "\n");
                return false;
            }
        }
        // All-reduce the gradients (one flat buffer) and the loss.
        if (c.size() > 1) {
            flat.clear();
            for (auto & p : params) flat.insert(flat.end(), p->grad.begin(), p->grad.end());
            c.allreduce_sum(flat.data(), flat.size());
            size_t off = 0;
            for (auto & p : params) {
                std::copy_n(flat.data() + off, p->grad.size(), p->grad.data());
                off += p->grad.size();
            }
            c.allreduce_sum(&loss_sum, 1);
        }
        loss_v = static_cast<float>(loss_sum / per_step);
        if (!std::isfinite(loss_v) || grads_non_finite(params)) {
            *err = "non-finite " + std::string(std::isfinite(loss_v) ? "gradient" : "loss") + " at step " +
                   std::to_string(s + 1) + "; stopped, the last good checkpoint is kept in " + ckpt_path(cfg.out_dir);
            if (!quiet) std::fprintf(stderr, "\n");
            return false;
        }
        if (cfg.clip > 0) clip_grad_norm(params, cfg.clip);
        const float lr = cfg.schedule.at(s);
        if (cfg.optimizer == "adamw")
            opt.step(lr);
        else
            opt_sgd.step(lr);

        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const int64_t done = s + 1 - start;
        const double rate = done * work_per_step / std::max(elapsed, 1e-9);
        if (c.rank() == 0) {
            if ((s + 1) % cfg.log_every == 0 || s + 1 == cfg.steps) {
                json rec = {{"step", s + 1}, {"loss", loss_v}, {"lr", lr}, {rate_key, rate}};
                log << rec.dump() << "\n";
                log.flush();
            }
            if (!quiet) progress(s + 1, cfg.steps, loss_v, lr, elapsed, done);
            if ((s + 1) % cfg.checkpoint_every == 0 || s + 1 == cfg.steps) {
                checkpoint_meta meta{s + 1, cfg.raw_json};
                if (!checkpoint_save(ckpt_path(cfg.out_dir), named, opt, meta, err, sgd_state)) return false;
                if (!st->export_artifacts(cfg.out_dir, s + 1, err)) return false;
            }
        }
        if (res) {
            res->steps_done = s + 1;
            res->last_loss = loss_v;
            res->tokens_per_second = rate;
        }
    }
    if (!quiet && c.rank() == 0) std::fprintf(stderr, "\n");
    c.barrier();
    return true;
}

}  // namespace spider::train
