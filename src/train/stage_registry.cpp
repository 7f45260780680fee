// The stage registry: ONE table mapping `stage` names of `spider train` configs to factories. Adding a stage is one
// declaration line and one table line here, plus its own file src/train/stage_<name>.cpp.
#include "train/stage.h"

namespace spider::train {

// Factories, one per stage file.
std::unique_ptr<stage> make_stage_lm_scratch();
std::unique_ptr<stage> make_stage_encoder_align();
std::unique_ptr<stage> make_stage_udp_align();
std::unique_ptr<stage> make_stage_diffusion_scratch();
std::unique_ptr<stage> make_stage_encoder_scratch();
std::unique_ptr<stage> make_stage_instruct();

const std::vector<stage_info> & stage_registry() {
    static const std::vector<stage_info> table = {
        {"lm_scratch", "a Llama-architecture LM trained from scratch on bytes", make_stage_lm_scratch},
        {"encoder_align", "Spider stage 1: the input projector, X -> caption through the frozen LLM",
         make_stage_encoder_align},
        {"udp_align", "Spider stage 2: the UDP against the decoders' text embeddings", make_stage_udp_align},
        {"diffusion_scratch", "a tiny conv denoiser trained from scratch on ToyWorld images (epsilon or v)",
         make_stage_diffusion_scratch},
        {"encoder_scratch", "a tiny conv image encoder trained from scratch, CLIP-style, on ToyWorld captions",
         make_stage_encoder_scratch},
        {"instruct", "Spider stage 3: LoRA + new-token rows of a frozen GGUF LLM on TMM data", make_stage_instruct},
    };
    return table;
}

}  // namespace spider::train
