// Tests of the reference quantizers / dequantizers (byte-exact against gguf-py goldens where gguf-py implements
// the type, round-trip error bounds for every type, bad arguments) and of the thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/quants.h"
#include "core/threadpool.h"

using namespace spider;

namespace {

std::vector<float> random_row(int64_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto & f : v) f = nd(rng);
    return v;
}

std::vector<uint8_t> quantize(dtype t, const std::vector<float> & x) {
    std::vector<uint8_t> q(dtype_row_bytes(t, static_cast<int64_t>(x.size())));
    EXPECT_TRUE(quantize_row(t, x.data(), q.data(), static_cast<int64_t>(x.size()))) << dtype_name(t);
    return q;
}

std::vector<float> dequantize(dtype t, const std::vector<uint8_t> & q, int64_t n) {
    std::vector<float> y(static_cast<size_t>(n));
    EXPECT_TRUE(dequantize_row(t, q.data(), y.data(), n)) << dtype_name(t);
    return y;
}

bool read_file(const std::string & path, std::vector<uint8_t> * out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return true;
}

}  // namespace

// ---- thread pool ----

TEST(thread_pool, every_index_runs_once_per_call) {
    for (int n : {1, 2, 3, 4}) {
        thread_pool pool(n);
        ASSERT_EQ(pool.size(), n);
        for (int rep = 0; rep < 200; ++rep) {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
            for (auto & h : hits) h = 0;
            std::atomic<int> bad_nth{0};
            pool.run([&](int ith, int nth) {
                if (nth != n) bad_nth++;
                hits[static_cast<size_t>(ith)]++;
            });
            ASSERT_EQ(bad_nth.load(), 0);
            for (int i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n " << n << " i " << i;
        }
    }
}

TEST(thread_pool, results_visible_after_run_and_survives_idle_sleep) {
    thread_pool pool(3);
    std::vector<long long> out(3000, 0);
    for (int rep = 0; rep < 3; ++rep) {
        pool.run([&](int ith, int nth) {
            long long b, e;
            split_range(static_cast<long long>(out.size()), ith, nth, b, e);
            for (long long i = b; i < e; ++i) out[static_cast<size_t>(i)] += i;
        });
        // Sleep past the spin window so workers block on the condition variable, then wake them again.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 3 * static_cast<long long>(i));
}

// run_any: the caller and whichever workers join pull items from a shared queue; every item runs exactly once,
// thread indices are distinct and in range, the caller is index 0, and run() keeps working in between.
TEST(thread_pool, run_any_finishes_a_shared_queue_and_mixes_with_run) {
    for (int n : {1, 2, 3, 4}) {
        thread_pool pool(n);
        for (int rep = 0; rep < 300; ++rep) {
            const int n_items = 1 + rep % 37;
            std::vector<std::atomic<int>> hits(static_cast<size_t>(n_items));
            for (auto & h : hits) h = 0;
            std::vector<std::atomic<int>> by_thread(static_cast<size_t>(n));
            for (auto & b : by_thread) b = 0;
            std::atomic<int> next{0}, bad{0};
            bool caller_ran = false;
            const std::thread::id me = std::this_thread::get_id();
            pool.run_any([&](int ith, int nth) {
                if (nth != n || ith < 0 || ith >= n) {
                    bad++;
                    return;
                }
                if (by_thread[static_cast<size_t>(ith)]++ != 0) bad++;  // each index at most once
                if (ith == 0) caller_ran = std::this_thread::get_id() == me;
                for (int i; (i = next.fetch_add(1)) < n_items;) hits[static_cast<size_t>(i)]++;
            });
            ASSERT_EQ(bad.load(), 0);
            ASSERT_TRUE(caller_ran);
            for (int i = 0; i < n_items; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n << " " << i;
            if (rep % 10 == 0) {
                std::atomic<int> calls{0};
                pool.run([&](int, int) { calls++; });
                ASSERT_EQ(calls.load(), n);
            }
        }
    }
}

TEST(thread_pool, zero_or_negative_threads_means_one) {
    thread_pool pool(0);
    EXPECT_EQ(pool.size(), 1);
    int calls = 0;
    pool.run([&](int ith, int nth) {
        EXPECT_EQ(ith, 0);
        EXPECT_EQ(nth, 1);
        ++calls;
    });
    EXPECT_EQ(calls, 1);
}

TEST(thread_pool, split_range_covers_everything_once) {
    for (long long n : {0LL, 1LL, 5LL, 64LL, 1001LL}) {
        for (int nth = 1; nth <= 5; ++nth) {
            long long covered = 0, prev_end = 0;
            for (int ith = 0; ith < nth; ++ith) {
                long long b, e;
                split_range(n, ith, nth, b, e);
                ASSERT_EQ(b, prev_end);
                ASSERT_LE(b, e);
                covered += e - b;
                prev_end = e;
            }
            ASSERT_EQ(covered, n);
        }
    }
}

// ---- quantization: bad arguments ----

TEST(quants, rejects_bad_arguments) {
    std::vector<float> x(64, 1.0f);
    std::vector<uint8_t> q(1024);
    EXPECT_FALSE(quantize_row(DTYPE_Q4_0, x.data(), q.data(), 33));             // not a multiple of 32
    EXPECT_FALSE(quantize_row(DTYPE_Q4_K, x.data(), q.data(), 64));             // not a multiple of 256
    EXPECT_FALSE(quantize_row(DTYPE_Q8_0, x.data(), q.data(), -32));            // negative
    EXPECT_FALSE(quantize_row(static_cast<dtype>(3), x.data(), q.data(), 32));  // Q4_1: unsupported
    EXPECT_FALSE(quantize_row(DTYPE_I32, x.data(), q.data(), 32));              // not a float type
    EXPECT_FALSE(quantize_row(DTYPE_Q8_0, nullptr, q.data(), 32));
    EXPECT_FALSE(dequantize_row(DTYPE_Q6_K, q.data(), x.data(), 32));
    EXPECT_FALSE(dequantize_row(DTYPE_Q8_0, nullptr, x.data(), 32));
    EXPECT_TRUE(quantize_row(DTYPE_Q8_0, x.data(), q.data(), 0));  // empty row is fine
}

// ---- round trips ----

struct rt_case {
    dtype t;
    int64_t n;
    double max_rel;   // max |x - x'| / (max |x| of the block), per block of `blk` elements
    double rmse_rel;  // RMS(x - x') / RMS(x) over the row
    int blk;
};

// Max-error bounds follow from the formats. Q8_0: d = amax/127, error <= d/2 plus the fp16 rounding of d times
// 127 (2^-11 relative) -> 0.0045 amax. Q5_0: d = amax/16, error <= d/2, except the value of opposite sign to the
// extreme that clamps 16 -> 15 (error d) -> 1/16 amax + fp16 slack. Q4_0 likewise 1/8 amax. K-quants quantize the
// per-group scales too (6/8 bit) against a searched fit, so their max bound is half a step of the coarsest group
// scale. RMSE bounds: uniform rounding gives step/sqrt(12); for Gaussian rows (block amax ~2.1 sigma over 32,
// ~2.8 sigma over 256) that is 0.0048 (Q8_0), 0.038 (Q5_0), 0.076 (Q4_0), 0.0064 (Q8_K); bounds are ~25% above
// those and above what llama.cpp's quantizers reach (Q6_K 0.018, Q5_K 0.036, Q4_K 0.073).
TEST(quants, round_trip_error_bounds) {
    const rt_case cases[] = {
        {DTYPE_F32, 512, 0.0, 0.0, 32},
        {DTYPE_F16, 512, 1.0 / 1024, 1.0 / 2048, 32},
        {DTYPE_BF16, 512, 1.0 / 128, 1.0 / 256, 32},
        {DTYPE_Q8_0, 512, 0.0045, 0.0065, 32},
        {DTYPE_Q5_0, 512, 0.0665, 0.05, 32},
        {DTYPE_Q4_0, 512, 0.129, 0.11, 32},
        {DTYPE_Q8_K, 1024, 0.0045, 0.0085, 256},
        {DTYPE_Q6_K, 1024, 0.06, 0.023, 256},
        {DTYPE_Q5_K, 1024, 0.08, 0.045, 256},
        {DTYPE_Q4_K, 1024, 0.15, 0.09, 256},
    };
    for (const rt_case & c : cases) {
        for (uint32_t seed = 1; seed <= 4; ++seed) {
            std::vector<float> x = random_row(c.n, seed * 77 + c.t, seed == 4 ? 1000.0f : 1.0f);
            if (seed == 3) {  // blocks of all zeros and a lone outlier exercise the degenerate paths
                for (int i = 0; i < c.blk; ++i) x[static_cast<size_t>(i)] = 0.0f;
                x[static_cast<size_t>(c.blk + 3)] = 25.0f;
            }
            const std::vector<float> y = dequantize(c.t, quantize(c.t, x), c.n);
            double se = 0, sx = 0;
            for (int64_t b = 0; b < c.n; b += c.blk) {
                double amax = 0;
                for (int i = 0; i < c.blk; ++i) amax = std::fmax(amax, std::fabs(x[static_cast<size_t>(b + i)]));
                for (int i = 0; i < c.blk; ++i) {
                    const size_t k = static_cast<size_t>(b + i);
                    const double e = std::fabs(static_cast<double>(x[k]) - y[k]);
                    ASSERT_LE(e, c.max_rel * amax + 1e-30)
                        << dtype_name(c.t) << " seed " << seed << " index " << k << " x " << x[k] << " y " << y[k];
                    se += e * e;
                    sx += static_cast<double>(x[k]) * x[k];
                }
            }
            if (seed != 3) {
                EXPECT_LE(std::sqrt(se / sx), c.rmse_rel) << dtype_name(c.t) << " seed " << seed;
            }
        }
    }
}

TEST(quants, q8_K_bsums_match_quants) {
    const std::vector<float> x = random_row(512, 5);
    const std::vector<uint8_t> q = quantize(DTYPE_Q8_K, x);
    const block_q8_K * b = reinterpret_cast<const block_q8_K *>(q.data());
    for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < QK_K / 16; ++j) {
            int s = 0;
            for (int k = 0; k < 16; ++k) s += b[i].qs[j * 16 + k];
            EXPECT_EQ(b[i].bsums[j], s);
        }
    }
}

// ---- goldens from gguf-py (tests/reference/make_quant_goldens.py) ----

TEST(quants, match_gguf_py_goldens) {
    const char * names[] = {"f16", "bf16", "q4_0", "q5_0", "q8_0", "q4_K", "q5_K", "q6_K"};
    for (const char * name : names) {
        const std::string path = std::string(SPIDER_SOURCE_DIR) + "/tests/data/quants/" + name + ".bin";
        std::vector<uint8_t> buf;
        ASSERT_TRUE(read_file(path, &buf)) << "missing golden " << path;
        ASSERT_GE(buf.size(), 20u);
        ASSERT_EQ(std::memcmp(buf.data(), "SPQG", 4), 0) << path;
        uint32_t hdr[4];
        std::memcpy(hdr, buf.data() + 4, sizeof(hdr));
        const dtype t = static_cast<dtype>(hdr[0]);
        const int64_t n = hdr[1];
        const size_t nbytes = hdr[2];
        const bool has_quant = hdr[3] != 0;
        ASSERT_EQ(buf.size(), 20 + static_cast<size_t>(n) * 8 + nbytes) << path;
        ASSERT_EQ(dtype_row_bytes(t, n), nbytes) << path;
        std::vector<float> x(static_cast<size_t>(n)), deq(static_cast<size_t>(n));
        std::vector<uint8_t> q(buf.begin() + 20 + n * 4, buf.begin() + 20 + n * 4 + static_cast<long>(nbytes));
        std::memcpy(x.data(), buf.data() + 20, static_cast<size_t>(n) * 4);
        std::memcpy(deq.data(), buf.data() + 20 + n * 4 + nbytes, static_cast<size_t>(n) * 4);

        if (has_quant) {  // our quantizer must write the same bytes as llama.cpp's reference
            const std::vector<uint8_t> ours = quantize(t, x);
            size_t first_diff = nbytes;
            for (size_t i = 0; i < nbytes; ++i) {
                if (ours[i] != q[i]) {
                    first_diff = i;
                    break;
                }
            }
            EXPECT_EQ(first_diff, nbytes) << name << ": quantized bytes differ first at byte " << first_diff;
        }
        // ... and our dequantizer must reproduce gguf-py's floats exactly (bit for bit).
        const std::vector<float> ours = dequantize(t, q, n);
        int64_t n_bad = 0;
        for (int64_t i = 0; i < n; ++i) {
            if (std::memcmp(&ours[static_cast<size_t>(i)], &deq[static_cast<size_t>(i)], 4) != 0 && n_bad++ < 3) {
                ADD_FAILURE() << name << " element " << i << ": ours " << ours[static_cast<size_t>(i)] << " gguf-py "
                              << deq[static_cast<size_t>(i)];
            }
        }
        EXPECT_EQ(n_bad, 0) << name;
    }
}
