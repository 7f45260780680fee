// JSON Lines records and the per-example random stream (train/data_records.h).
#include "train/data_records.h"

#include <algorithm>
#include <cstring>
#include <fstream>

namespace spider::train {

bool read_jsonl_records(const std::string & path, std::initializer_list<const char *> fields,
                        const std::function<bool(const nlohmann::json &, const std::string &, std::string *)> & each,
                        std::string * err) {
    std::ifstream f(path);
    if (!f) {
        *err = "data: cannot open '" + path + "'";
        return false;
    }
    std::string line;
    int64_t ln = 0, records = 0;
    while (std::getline(f, line)) {
        ++ln;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = "data: " + path + ":" + std::to_string(ln) + ": ";
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const std::exception & e) {
            *err = where + "not valid JSON (" + e.what() + ")";
            return false;
        }
        if (!j.is_object()) {
            *err = where + "a record must be a JSON object";
            return false;
        }
        for (auto it = j.begin(); it != j.end(); ++it)
            if (std::none_of(fields.begin(), fields.end(), [&](const char * k) { return it.key() == k; })) {
                *err = where + "unknown field '" + it.key() + "'";
                return false;
            }
        if (!each(j, where, err)) return false;
        ++records;
    }
    if (records == 0) {
        *err = "data: '" + path + "' holds no records";
        return false;
    }
    return true;
}

rng64 example_rng(uint64_t seed, int64_t step, int64_t example) {
    rng64 r{seed ^ (0x9e37ull * static_cast<uint64_t>(step + 1)) ^
            (0xc2b2ae35ull * static_cast<uint64_t>(example + 1))};
    r.next();  // skipped as the stages always did, so runs from before this helper reproduce
    return r;
}

}  // namespace spider::train
