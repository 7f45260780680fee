// GGUF checkpoints for training runs.
#include "train/checkpoint.h"

#include <cstring>

#include "io/gguf.h"

namespace spider::train {

bool checkpoint_save(const std::string & path, const std::vector<std::pair<std::string, value>> & params,
                     const adamw & opt, const checkpoint_meta & meta, std::string * err, const sgd * sgd_opt) {
    gguf_writer w;
    w.set_string("general.architecture", "spider-train-checkpoint");
    w.set_i64("spider.train.step", meta.step);
    w.set_i64("spider.train.adam_t", opt.steps());
    w.set_string("spider.train.config", meta.config_json);
    for (const auto & [name, p] : params) {
        int64_t ne[4] = {1, 1, 1, 1};
        const int nd = static_cast<int>(p->shape.size());
        for (int i = 0; i < nd; ++i) ne[i] = p->shape[nd - 1 - i];  // GGUF: innermost first
        if (!w.add_tensor("param." + name, DTYPE_F32, ne, nd, p->data.data(), err)) return false;
    }
    const int64_t n = static_cast<int64_t>(opt.m().size());
    if (n > 0) {
        if (!w.add_tensor("adam.m", DTYPE_F32, &n, 1, opt.m().data(), err)) return false;
        if (!w.add_tensor("adam.v", DTYPE_F32, &n, 1, opt.v().data(), err)) return false;
    }
    if (sgd_opt) {
        w.set_i64("spider.train.sgd_started", sgd_opt->started() ? 1 : 0);
        const int64_t nb = static_cast<int64_t>(sgd_opt->momentum_buffer().size());
        if (nb > 0 && !w.add_tensor("sgd.momentum", DTYPE_F32, &nb, 1, sgd_opt->momentum_buffer().data(), err))
            return false;
    }
    return w.write(path, err);
}

bool checkpoint_load(const std::string & path, const std::vector<std::pair<std::string, value>> & params, adamw * opt,
                     checkpoint_meta * meta, std::string * err, sgd * sgd_opt) {
    auto f = gguf_file::open(path, err);
    if (!f) return false;
    std::string arch;
    if (!f->get_string("general.architecture", &arch) || arch != "spider-train-checkpoint") {
        *err = "checkpoint " + path + ": not a Spider training checkpoint (general.architecture = '" + arch + "')";
        return false;
    }
    int64_t step = 0, adam_t = 0;
    if (!f->get_int("spider.train.step", &step) || !f->get_int("spider.train.adam_t", &adam_t) || step < 0) {
        *err = "checkpoint " + path + ": missing or bad spider.train.step";
        return false;
    }
    for (const auto & [name, p] : params) {
        const gguf_tensor_info * ti = f->find_tensor("param." + name);
        if (!ti) {
            *err = "checkpoint " + path + ": no tensor for parameter '" + name + "'";
            return false;
        }
        const int nd = static_cast<int>(p->shape.size());
        bool same = ti->type == DTYPE_F32 && ti->n_dims == nd;
        for (int i = 0; same && i < nd; ++i) same = ti->ne[i] == p->shape[nd - 1 - i];
        if (!same) {
            std::string got;
            for (int i = ti->n_dims - 1; i >= 0; --i) got += std::to_string(ti->ne[i]) + (i ? "x" : "");
            std::string want;
            for (int i = 0; i < nd; ++i) want += std::to_string(p->shape[i]) + (i + 1 < nd ? "x" : "");
            *err = "checkpoint " + path + ": shape mismatch for '" + name + "': checkpoint has " + got +
                   ", config expects " + want;
            return false;
        }
        std::memcpy(p->data.data(), f->data_section() + ti->offset, p->data.size() * sizeof(float));
    }
    if (opt) {
        const gguf_tensor_info * m = f->find_tensor("adam.m");
        const gguf_tensor_info * v = f->find_tensor("adam.v");
        const size_t n = opt->m().size();
        if (n > 0) {
            if (!m || !v || m->ne[0] != static_cast<int64_t>(n) || v->ne[0] != static_cast<int64_t>(n)) {
                *err = "checkpoint " + path + ": optimiser state does not match the parameters";
                return false;
            }
            std::memcpy(opt->m().data(), f->data_section() + m->offset, n * sizeof(float));
            std::memcpy(opt->v().data(), f->data_section() + v->offset, n * sizeof(float));
        }
        opt->set_steps(adam_t);
    }
    if (sgd_opt) {
        int64_t started = 0;
        const gguf_tensor_info * b = f->find_tensor("sgd.momentum");
        const size_t n = sgd_opt->momentum_buffer().size();
        if (!f->get_int("spider.train.sgd_started", &started) ||
            (n > 0 && (!b || b->type != DTYPE_F32 || b->ne[0] != static_cast<int64_t>(n)))) {
            *err = "checkpoint " + path + ": no SGD momentum buffer matching the parameters";
            return false;
        }
        if (n > 0) std::memcpy(sgd_opt->momentum_buffer().data(), f->data_section() + b->offset, n * sizeof(float));
        sgd_opt->set_started(started != 0);
    }
    if (meta) {
        meta->step = step;
        f->get_string("spider.train.config", &meta->config_json);
    }
    return true;
}

}  // namespace spider::train
