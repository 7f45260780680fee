// The stage registry: ONE table mapping `stage` names of `spider train` configs to factories. Adding a stage is one
// declaration line and one table line here, plus its own file src/train/stage_<name>.cpp.
#include "train/stage.h"

namespace spider::train {

// Factories, one per stage file.
std::unique_ptr<stage> make_stage_lm_scratch();
std::unique_ptr<stage> make_stage_instruct();

const std::vector<stage_info> & stage_registry() {
    static const std::vector<stage_info> table = {
        {"lm_scratch", "a Llama-architecture LM trained from scratch on bytes", make_stage_lm_scratch},
        {"instruct", "Spider stage 3: LoRA + new-token rows of a frozen GGUF LLM on TMM data", make_stage_instruct},
    };
    return table;
}

}  // namespace spider::train
