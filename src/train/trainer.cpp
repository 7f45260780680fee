// Training driver: config validation, deterministic data sampling, steps, checkpoints, resume, data parallelism.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "train/checkpoint.h"

namespace spider::train {

using json = nlohmann::json;

namespace {

// Reads a JSON object's fields, remembering which ones were used, so leftovers can be reported as unknown.
struct field_reader {
    const json &j;
    std::string where;
    std::string *err;
    std::set<std::string> used;
    bool ok = true;

    field_reader(const json & obj, std::string prefix, std::string * e) : j(obj), where(std::move(prefix)), err(e) {}

    template <typename T>
    void get(const char *key, T *out) {
        used.insert(key);
        if (!ok || !j.contains(key)) return;
        try {
            *out = j.at(key).get<T>();
        } catch (const std::exception &) {
            *err = "config: field '" + where + key + "' has the wrong type (" + j.at(key).dump() + ")";
            ok = false;
        }
    }
    const json *object(const char *key) {
        used.insert(key);
        if (!ok || !j.contains(key)) return nullptr;
        if (!j.at(key).is_object()) {
            *err = "config: field '" + where + key + "' must be an object";
            ok = false;
            return nullptr;
        }
        return &j.at(key);
    }
    bool finish() {
        if (!ok) return false;
        for (auto it = j.begin(); it != j.end(); ++it)
            if (!used.count(it.key())) {
                *err = "config: unknown field '" + where + it.key() + "'";
                return false;
            }
        return true;
    }
};

bool positive(int64_t v, const char *name, std::string *err) {
    if (v > 0) return true;
    *err = std::string("config: '") + name + "' must be > 0 (got " + std::to_string(v) + ")";
    return false;
}

}  // namespace

bool train_config_parse(const std::string &json_text, train_config *out, std::string *err) {
    json j;
    try {
        j = json::parse(json_text);
    } catch (const std::exception &e) {
        *err = std::string("config: not valid JSON: ") + e.what();
        return false;
    }
    if (!j.is_object()) {
        *err = "config: the top level must be a JSON object";
        return false;
    }
    train_config c;
    c.raw_json = json_text;
    field_reader top{j, "", err};
    top.get("stage", &c.stage);
    top.get("steps", &c.steps);
    top.get("batch", &c.batch);
    top.get("grad_accum", &c.grad_accum);
    top.get("clip", &c.clip);
    top.get("seed", &c.seed);
    top.get("log_every", &c.log_every);
    if (const json *m = top.object("model")) {
        field_reader r{*m, "model.", err};
        r.get("vocab", &c.model.vocab);
        r.get("n_embd", &c.model.n_embd);
        r.get("n_ff", &c.model.n_ff);
        r.get("n_layer", &c.model.n_layer);
        r.get("n_head", &c.model.n_head);
        r.get("n_head_kv", &c.model.n_head_kv);
        r.get("rms_eps", &c.model.eps);
        r.get("rope_theta", &c.model.rope_theta);
        r.get("init_std", &c.init_std);
        if (!r.finish()) return false;
    }
    if (const json *d = top.object("data")) {
        field_reader r{*d, "data.", err};
        r.get("path", &c.data_path);
        r.get("seq_len", &c.seq_len);
        if (!r.finish()) return false;
    }
    if (const json *o = top.object("optimizer")) {
        field_reader r{*o, "optimizer.", err};
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
    if (const json *s = top.object("schedule")) {
        field_reader r{*s, "schedule.", err};
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
    if (const json *k = top.object("checkpoint")) {
        field_reader r{*k, "checkpoint.", err};
        r.get("dir", &c.out_dir);
        r.get("every", &c.checkpoint_every);
        if (!r.finish()) return false;
    }
    if (!top.finish()) return false;

    if (c.stage != "lm_scratch") {
        *err = "config: stage '" + c.stage +
               "' is not available; available: lm_scratch (see docs/TRAINING.md for the planned Spider stages)";
        return false;
    }
    if (c.optimizer != "adamw" && c.optimizer != "sgd") {
        *err = "config: 'optimizer.kind' must be adamw or sgd (got '" + c.optimizer + "')";
        return false;
    }
    if (!positive(c.steps, "steps", err) || !positive(c.batch, "batch", err) ||
        !positive(c.grad_accum, "grad_accum", err) || !positive(c.seq_len, "data.seq_len", err) ||
        !positive(c.checkpoint_every, "checkpoint.every", err) || !positive(c.log_every, "log_every", err) ||
        !positive(c.model.n_embd, "model.n_embd", err) || !positive(c.model.n_layer, "model.n_layer", err) ||
        !positive(c.model.n_head, "model.n_head", err) || !positive(c.model.n_head_kv, "model.n_head_kv", err) ||
        !positive(c.model.n_ff, "model.n_ff", err))
        return false;
    if (c.model.vocab != 256) {
        *err = "config: 'model.vocab' must be 256 for the byte-level lm_scratch stage (got " +
               std::to_string(c.model.vocab) + ")";
        return false;
    }
    if (c.model.n_embd % c.model.n_head != 0 || c.model.n_head % c.model.n_head_kv != 0 ||
        (c.model.n_embd / c.model.n_head) % 2 != 0) {
        *err =
            "config: model.n_embd must split into n_head heads of even size, and n_head must be a multiple of "
            "n_head_kv";
        return false;
    }
    if (c.data_path.empty()) {
        *err = "config: 'data.path' is required";
        return false;
    }
    c.schedule.total = c.steps;
    *out = c;
    return true;
}

namespace {

std::string ckpt_path(const std::string &dir) {
    return dir + "/checkpoint.gguf";
}

// The sequence for global example b of step s: a window of the data chosen by a hash of (seed, s, b), so the data a
// rank sees depends neither on the number of ranks nor on whether the run was resumed.
std::vector<int32_t> sample(const std::string &data, uint64_t seed, int64_t step, int64_t b, int64_t len) {
    rng64 r{seed ^ (0x9e37ull * static_cast<uint64_t>(step + 1)) ^ (0xc2b2ae35ull * static_cast<uint64_t>(b + 1))};
    r.next();
    const uint64_t span = data.size() - static_cast<size_t>(len);
    const size_t start = static_cast<size_t>(r.next() % (span + 1));
    std::vector<int32_t> ids(static_cast<size_t>(len));
    for (int64_t i = 0; i < len; ++i) ids[i] = static_cast<unsigned char>(data[start + i]);
    return ids;
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

bool train_run(const train_config &cfg, comm &c, bool resume, bool quiet, train_result *res, std::string *err) {
    std::ifstream df(cfg.data_path, std::ios::binary);
    if (!df) {
        *err = "data: cannot open '" + cfg.data_path + "'";
        return false;
    }
    std::string data((std::istreambuf_iterator<char>(df)), std::istreambuf_iterator<char>());
    if (static_cast<int64_t>(data.size()) < cfg.seq_len + 1) {
        *err = "data: '" + cfg.data_path + "' has " + std::to_string(data.size()) +
               " bytes, fewer than seq_len + 1 = " + std::to_string(cfg.seq_len + 1);
        return false;
    }
    const int64_t per_step = cfg.batch;
    if (per_step % (c.size() * cfg.grad_accum) != 0) {
        *err = "config: batch " + std::to_string(cfg.batch) + " must be divisible by ranks (" +
               std::to_string(c.size()) + ") x grad_accum (" + std::to_string(cfg.grad_accum) + ")";
        return false;
    }

    tiny_lm model(cfg.model);
    model.init_random(cfg.seed, cfg.init_std);
    auto named = model.named_params();
    auto params = model.params();
    adamw opt(params, cfg.adam);
    sgd opt_sgd(params, cfg.sgd_p);

    std::error_code ec;
    std::filesystem::create_directories(cfg.out_dir, ec);
    int64_t start = 0;
    if (resume && std::filesystem::exists(ckpt_path(cfg.out_dir))) {
        checkpoint_meta meta;
        if (!checkpoint_load(ckpt_path(cfg.out_dir), named, &opt, &meta, err)) return false;
        start = meta.step;
        if (!quiet && c.rank() == 0) std::fprintf(stderr, "resuming from step %lld\n", static_cast<long long>(start));
    }
    std::ofstream log;
    if (c.rank() == 0) log.open(cfg.out_dir + "/log.jsonl", resume ? std::ios::app : std::ios::trunc);

    const int64_t local = per_step / c.size();  // examples per rank per step
    const int64_t micro = local / cfg.grad_accum;
    const auto t0 = std::chrono::steady_clock::now();
    float loss_v = 0;
    std::vector<float> flat;
    for (int64_t s = start; s < cfg.steps; ++s) {
        for (auto &p : params) p->zero_grad();
        double loss_sum = 0;
        for (int64_t a = 0; a < cfg.grad_accum; ++a) {
            for (int64_t m = 0; m < micro; ++m) {
                // rank r takes global examples r, r + size, ...: the union over ranks is the same global batch.
                const int64_t b = (a * micro + m) * c.size() + c.rank();
                value loss = model.forward_loss(sample(data, cfg.seed, s, b, cfg.seq_len));
                backward(scale(loss, 1.0f / static_cast<float>(per_step)));
                loss_sum += loss->data[0];
            }
        }
        // All-reduce the gradients (one flat buffer) and the loss.
        if (c.size() > 1) {
            flat.clear();
            for (auto &p : params) flat.insert(flat.end(), p->grad.begin(), p->grad.end());
            c.allreduce_sum(flat.data(), flat.size());
            size_t off = 0;
            for (auto &p : params) {
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
        if (c.rank() == 0) {
            if ((s + 1) % cfg.log_every == 0 || s + 1 == cfg.steps) {
                json rec = {{"step", s + 1},
                            {"loss", loss_v},
                            {"lr", lr},
                            {"tokens_per_s", done * per_step * cfg.seq_len / std::max(elapsed, 1e-9)}};
                log << rec.dump() << "\n";
                log.flush();
            }
            if (!quiet) progress(s + 1, cfg.steps, loss_v, lr, elapsed, done);
            if ((s + 1) % cfg.checkpoint_every == 0 || s + 1 == cfg.steps) {
                checkpoint_meta meta{s + 1, cfg.raw_json};
                if (!checkpoint_save(ckpt_path(cfg.out_dir), named, opt, meta, err)) return false;
            }
        }
        if (res) {
            res->steps_done = s + 1;
            res->last_loss = loss_v;
            res->tokens_per_second = done * per_step * cfg.seq_len / std::max(elapsed, 1e-9);
        }
    }
    if (!quiet && c.rank() == 0) std::fprintf(stderr, "\n");
    c.barrier();
    return true;
}

}  // namespace spider::train
