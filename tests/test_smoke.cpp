// Build smoke test: the dtype table matches the GGUF numbering.
#include <gtest/gtest.h>

#include "core/dtype.h"

TEST(dtype, gguf_numbers_and_sizes) {
    using namespace spider;
    ASSERT_NE(dtype_get_traits(DTYPE_Q4_K), nullptr);
    EXPECT_EQ(dtype_get_traits(DTYPE_Q4_K)->block_bytes, 144u);
    EXPECT_EQ(dtype_get_traits(DTYPE_Q8_0)->block_bytes, 34u);
    EXPECT_EQ(dtype_row_bytes(DTYPE_Q6_K, 512), 420u);
    EXPECT_EQ(dtype_get_traits(7), nullptr);  // Q5_1 is not supported: must be reported, not guessed
}
