// Shared pieces of the stage interface: the strict config reader and registry lookups.
#include "train/stage.h"

namespace spider::train {

const nlohmann::json * config_reader::object(const char * key) {
    used.insert(key);
    if (!ok || !j.contains(key)) return nullptr;
    if (!j.at(key).is_object()) {
        *err = "config: field '" + where + key + "' must be an object";
        ok = false;
        return nullptr;
    }
    return &j.at(key);
}

bool config_reader::require(const char * key) {
    used.insert(key);
    if (!ok) return false;
    if (j.contains(key)) return true;
    *err = "config: '" + where + key + "' is required";
    ok = false;
    return false;
}

bool config_reader::finish() {
    if (!ok) return false;
    for (auto it = j.begin(); it != j.end(); ++it)
        if (!used.count(it.key())) {
            *err = "config: unknown field '" + where + it.key() + "'";
            return false;
        }
    return true;
}

bool config_positive(int64_t v, const std::string & name, std::string * err) {
    if (v > 0) return true;
    *err = "config: '" + name + "' must be > 0 (got " + std::to_string(v) + ")";
    return false;
}

std::unique_ptr<stage> make_stage(const std::string & name) {
    for (const auto & s : stage_registry())
        if (name == s.name) return s.make();
    return nullptr;
}

std::string stage_names() {
    std::string out;
    for (const auto & s : stage_registry()) out += (out.empty() ? "" : ", ") + std::string(s.name);
    return out;
}

}  // namespace spider::train
