// Data helpers shared by the stages that read JSON Lines files (udp_align, encoder_align) and draw a record per
// example from a hash (those two and encoder_scratch).
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>

#include "train/tiny_lm.h"

namespace spider::train {

// Reads `path` as JSON Lines, one record per non-blank line. A line that is not valid JSON, not a JSON object, or
// holds a field outside `fields` stops with an error prefixed "data: <path>:<line>: "; each(record, prefix, err)
// handles a valid record and returns false (with *err set, usually prefix + what is wrong) to stop. A file that
// cannot be opened or holds no records is an error naming it.
bool read_jsonl_records(const std::string & path, std::initializer_list<const char *> fields,
                        const std::function<bool(const nlohmann::json &, const std::string &, std::string *)> & each,
                        std::string * err);

// The random stream of example `example` of optimiser step `step`: a hash of (seed, step, example), so what a stage
// draws for an example does not depend on the number of ranks or on resumes. The first draw picks the record.
rng64 example_rng(uint64_t seed, int64_t step, int64_t example);

}  // namespace spider::train
