// Read bandwidth probes for `spider bench`: the decode roofline's denominator.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace spider {
class thread_pool;
}

namespace spider_cli {

using byte_spans = std::vector<std::pair<const uint8_t *, size_t>>;

// A way of reading: software prefetch `ahead` bytes ahead of the loads (0 = the plain loop, hardware prefetch only),
// into L1 (level 1, prefetcht0) or L2 (level 2, prefetcht1).
struct read_way {
    int ahead = 0;
    int level = 0;
};
extern const read_way k_read_ways[9];

// One pass over every byte of `spans` (the threads split the total evenly, in 128-byte steps): 16-byte loads into
// eight independent sums, so neither the adder nor the load ports limit a core. Returns the wall seconds.
double read_pass(const byte_spans & spans, read_way way, spider::thread_pool & pool);

// The best GB/s of passes with one way of reading: at least `min_passes`, and more while under `seconds` spent.
double best_read_gbps(const byte_spans & spans, read_way way, spider::thread_pool & pool, int min_passes,
                      double seconds);

// `spider bench --membw`: for each buffer size (MiB) and thread count, the best GB/s over every way of reading.
int run_membw(const std::vector<int> & threads, const std::vector<int> & sizes_mib, int reps);

// `spider bench --roofline`: reads the very bytes a decode step reads (llm_model::decode_weight_spans), with the
// way of reading that was fastest when the probe was made, between the timed runs of a tgN test, for about as long
// as a run. The decode and its denominator are then measured over intervals of the same length, next to each other:
// on a shared machine the bandwidth drifts by 30% and more within minutes and swings by 10-20% from second to
// second, so a probe taken minutes before a run, or the best of a few short passes, measures the host's swings and
// not the decode (2026-12-05: a TinyLlama-shape Q8_0 decode ran at 85-110% of the best 0.2 s of reads around it).
class roofline_probe {
public:
    roofline_probe(byte_spans spans, spider::thread_pool & pool);
    size_t bytes() const { return bytes_; }
    read_way way() const { return way_; }
    struct reading {
        double mean_gbps = 0;  // bytes read / seconds spent, over every pass
        double best_gbps = 0;  // the fastest single pass
    };
    // Whole passes for about `seconds` (at least 2 passes).
    reading measure(double seconds);

private:
    byte_spans spans_;
    spider::thread_pool & pool_;
    size_t bytes_ = 0;
    read_way way_;
};

}  // namespace spider_cli
