// libFuzzer target: image_decode() on arbitrary bytes must return (success or an error message), never crash, hang or
// leak. Seed corpus: files written by `spider world` (see docs/WORLD.md, "Fuzzing").
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/media.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    spider::image_u8 out;
    std::string err;
    bool ok = spider::image_decode(data, size, &out, &err);
    // A failure always explains itself.
    if (!ok && err.empty()) __builtin_trap();
    return 0;
}
