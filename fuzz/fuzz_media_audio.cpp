// libFuzzer target: audio_decode() on arbitrary bytes must return (success or an error message), never crash, hang or
// leak. Seed corpus: files written by `spider world` (see docs/WORLD.md, "Fuzzing").
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/media.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    spider::audio_f32 out;
    std::string err;
    bool ok = spider::audio_decode(data, size, &out, &err);
    // A failure always explains itself.
    if (!ok && err.empty()) __builtin_trap();
    return 0;
}
