// Tests that need the real default model (gemma-3-270m Q4_K_M, installed by scripts/setup.sh) FAIL when it is
// absent, so a run can never pass with them silently skipped. On a build made without setup, set
// SPIDER_TESTS_WITHOUT_MODEL=1 to have them skipped instead (the summary then lists them as skipped).
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

namespace spider::test {

inline bool default_model_optional() {
    const char * e = std::getenv("SPIDER_TESTS_WITHOUT_MODEL");
    return e && *e && std::strcmp(e, "0") != 0;
}

}  // namespace spider::test

// Use in a void test body or SetUp() when the model is missing; `why` is streamed into the message.
#define SPIDER_DEFAULT_MODEL_MISSING(why)                                                                   \
    do {                                                                                                    \
        if (::spider::test::default_model_optional()) GTEST_SKIP() << why;                                  \
        FAIL() << why << " (scripts/setup.sh installs it; SPIDER_TESTS_WITHOUT_MODEL=1 skips these tests)"; \
    } while (0)
