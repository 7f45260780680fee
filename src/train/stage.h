// Training stages: what `spider train` trains. The generic loop in trainer.cpp (steps, micro-batches, accumulation,
// clipping, schedule, checkpoints, resume, NaN stop, logs, progress, MPI all-reduce) drives a `stage`, which owns
// its config section, its data, its model, its loss and its exported artefacts. Each stage lives in its own file
// `src/train/stage_<name>.cpp`; the names are mapped to factories by ONE table in `stage_registry.cpp`.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "train/autograd.h"
#include "train/trainer.h"

namespace spider::train {

// Reads a JSON object's fields strictly: every field read is remembered, and finish() reports any field left over
// as unknown, naming it with its dotted path ("udp.n_layerz").
struct config_reader {
    const nlohmann::json & j;
    std::string where;  // prefix for messages, e.g. "model."
    std::string * err;
    std::set<std::string> used;
    bool ok = true;

    config_reader(const nlohmann::json & obj, std::string prefix, std::string * e)
        : j(obj), where(std::move(prefix)), err(e) {}

    template <typename T>
    void get(const char * key, T * out) {
        used.insert(key);
        if (!ok || !j.contains(key)) return;
        try {
            *out = j.at(key).get<T>();
        } catch (const std::exception &) {
            *err = "config: field '" + where + key + "' has the wrong type (" + j.at(key).dump() + ")";
            ok = false;
        }
    }
    // A nested object, or nullptr when absent (or an error when it is not an object).
    const nlohmann::json * object(const char * key);
    // Marks a field as required: an error naming it when absent.
    bool require(const char * key);
    bool finish();
};

// Fails with "config: '<name>' must be > 0 (got v)" unless v > 0.
bool config_positive(int64_t v, const std::string & name, std::string * err);

// One micro-batch of one optimiser step on one rank. `examples` are indices into the step's global batch
// (0 .. batch-1): rank r takes r, r + ranks, ... so the union over ranks is the same global batch whatever the number
// of ranks, and a stage that derives its data from (seed, step, example) reproduces across resumes and rank counts.
struct micro_batch {
    int64_t step = 0;   // optimiser step, from 0
    int rank = 0;       // this process's rank
    int n_ranks = 1;    // data-parallel ranks
    int64_t micro = 0;  // micro-batch index on this rank within the step, 0 .. grad_accum-1
    std::vector<int64_t> examples;
    // The ranks' communicator, for a loss over the global micro-batch (the union over ranks of micro-batch `micro`):
    // see train/autograd_dist.h. nullptr outside the loop: one process.
    comm * dist = nullptr;
};

class stage {
public:
    virtual ~stage() = default;
    // Strictly parses the stage's own part of the config: `sections` holds every top-level field that is not one of
    // the generic ones (stage, steps, batch, grad_accum, clip, seed, log_every, optimizer, schedule, checkpoint).
    // Unknown or ill-typed fields are errors naming the field. May record settings in cfg (lm_scratch keeps its
    // model/data fields there for the C++ API); other stages keep theirs in the object.
    virtual bool parse(const nlohmann::json & sections, train_config * cfg, std::string * err) = 0;
    // Builds the model (initialised from cfg.seed, or loaded from files) and loads and validates the data; errors
    // name the file and the record or line.
    virtual bool setup(const train_config & cfg, std::string * err) = 0;
    // The trainable parameters in a fixed order with unique names; checkpoints and optimiser state follow it.
    virtual std::vector<std::pair<std::string, value>> trainable() = 0;
    // The SUM of the per-example losses of one micro-batch (the loop divides by the global batch). Must depend only
    // on (seed, step, examples) and the parameters, so runs are deterministic and resumable. A term over the whole
    // global micro-batch (contrastive) gathers the other ranks' rows through mb.dist and counts 1 / n_ranks of it
    // on each rank (train/autograd_dist.h), so the ranks' losses and gradients sum to one process's.
    virtual value loss(const micro_batch & mb) = 0;
    // Work per example for the throughput log: e.g. tokens per sequence; its unit names the log field
    // (`<unit>_per_s`).
    virtual double work_per_example() const { return 1; }
    virtual const char * work_unit() const { return "samples"; }
    // Writes the stage's artefacts (a projector, UDP or adapter GGUF the pipeline loads) into dir. Called on rank 0
    // at every checkpoint and after the last step; the checkpoint itself is written by the loop.
    virtual bool export_artifacts(const std::string & dir, int64_t step, std::string * err) {
        (void)dir;
        (void)step;
        (void)err;
        return true;
    }
};

struct stage_info {
    const char * name;
    const char * summary;
    std::unique_ptr<stage> (*make)();
};
// The registry table (stage_registry.cpp).
const std::vector<stage_info> & stage_registry();
// nullptr when no stage has that name.
std::unique_ptr<stage> make_stage(const std::string & name);
// "a, b, c": the registered names, for messages.
std::string stage_names();

}  // namespace spider::train
