// gather_rows (train/autograd_dist.h).
#include "train/autograd_dist.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <string>

#include "train/autograd_internal.h"

namespace spider::train {

using detail::fail;
using detail::gbuf;
using detail::make;
using detail::shape_str;

value gather_rows(comm & c, const std::vector<value> & rows, const std::vector<int64_t> & keys, int64_t width) {
    if (rows.size() != keys.size())
        fail("gather_rows", std::to_string(rows.size()) + " rows but " + std::to_string(keys.size()) + " keys");
    if (width <= 0) fail("gather_rows", "width must be > 0 (got " + std::to_string(width) + ")");
    std::vector<float> local(rows.size() * static_cast<size_t>(width));
    for (size_t i = 0; i < rows.size(); ++i) {
        if (!rows[i] || rows[i]->numel() != width)
            fail("gather_rows", "row " + std::to_string(i) + " has shape " +
                                    (rows[i] ? shape_str(rows[i]->shape) : std::string("(null)")) + ", expected " +
                                    std::to_string(width) + " elements");
        std::copy(rows[i]->data.begin(), rows[i]->data.end(), local.begin() + static_cast<int64_t>(i) * width);
    }
    std::vector<int64_t> all_keys;
    std::vector<size_t> counts;
    c.allgatherv(keys.data(), keys.size(), &all_keys, &counts);
    std::vector<float> all_rows;
    c.allgatherv(local.data(), local.size(), &all_rows, nullptr);
    const int64_t n = static_cast<int64_t>(all_keys.size());
    if (static_cast<int64_t>(all_rows.size()) != n * width)
        fail("gather_rows", "the ranks disagree on the row width (" + std::to_string(all_rows.size()) + " values for " +
                                std::to_string(n) + " rows of " + std::to_string(width) + ")");

    // Rank order -> key order, so the result does not depend on how the examples were dealt to the ranks.
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return all_keys[a] < all_keys[b]; });
    for (int64_t p = 1; p < n; ++p)
        if (all_keys[order[p]] == all_keys[order[p - 1]])
            fail("gather_rows", "key " + std::to_string(all_keys[order[p]]) + " is held by two rows");
    size_t offset = 0;  // this rank's first row in rank order
    for (int r = 0; r < c.rank(); ++r) offset += counts[static_cast<size_t>(r)];

    value y = make("gather_rows", {n, width}, rows);
    auto place = std::make_shared<std::vector<int64_t>>(rows.size());  // local row -> its row of y
    for (int64_t p = 0; p < n; ++p) {
        const int64_t src = order[p];
        std::copy_n(all_rows.data() + src * width, width, y->data.data() + p * width);
        if (src >= static_cast<int64_t>(offset) && src < static_cast<int64_t>(offset + rows.size()))
            (*place)[static_cast<size_t>(src) - offset] = p;
    }
    const float n_ranks = static_cast<float>(c.size());
    y->backward_fn = [place, width, n_ranks](node & s) {
        for (size_t i = 0; i < s.inputs.size(); ++i) {
            float * g = gbuf(s.inputs[i]);
            if (!g) continue;
            const float * gy = s.grad.data() + (*place)[i] * width;
            for (int64_t j = 0; j < width; ++j) g[j] += n_ranks * gy[j];
        }
    };
    return y;
}

}  // namespace spider::train
