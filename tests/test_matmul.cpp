// Tests of the optimised matmul / get_rows against the reference (ref::matmul / ref::get_rows) at every CPU
// dispatch level this machine supports, plus an opt-in benchmark (SPIDER_BENCH=1).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/huge_buffer.h"
#include "core/matmul_kernels.h"
#include "core/ops.h"
#include "core/quants.h"

using namespace spider;

namespace {

// Activation format the kernels pair with each weight type (mirrors matmul_vec_dot_type, restated here so a
// change there is caught).
dtype act_type_for(dtype t) {
    switch (t) {
        case DTYPE_Q4_0:
        case DTYPE_Q5_0:
        case DTYPE_Q8_0:
            return DTYPE_Q8_0;
        case DTYPE_Q4_K:
        case DTYPE_Q5_K:
        case DTYPE_Q6_K:
            return DTYPE_Q8_K;
        default:
            return DTYPE_F32;
    }
}

struct weights {
    std::vector<uint8_t> bytes;
    tensor t;
    std::vector<float> deq;  // dequantized, [n_out][n_in]
};

weights make_weights(dtype type, int64_t n_in, int64_t n_out, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    weights w;
    const size_t rb = dtype_row_bytes(type, n_in);
    w.bytes.resize(rb * static_cast<size_t>(n_out));
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t o = 0; o < n_out; ++o) {
        const float scale = 0.02f * (1 + (o % 5));  // rows of different magnitude
        for (auto & v : row) v = nd(rng) * scale;
        EXPECT_TRUE(quantize_row(type, row.data(), w.bytes.data() + o * rb, n_in));
    }
    w.t = make_tensor(type, w.bytes.data(), n_in, n_out);
    w.t.name = "w";
    w.deq.resize(static_cast<size_t>(n_in * n_out));
    for (int64_t o = 0; o < n_out; ++o) dequantize_row(type, w.bytes.data() + o * rb, w.deq.data() + o * n_in, n_in);
    return w;
}

std::vector<float> make_acts(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n));
    for (auto & v : x) v = nd(rng);
    if (n > 40) x[37] = 30.0f;  // an outlier, as real activations have
    return x;
}

// x after the kernel's activation quantization (what the kernel actually multiplies).
std::vector<float> quantized_acts(dtype wtype, const std::vector<float> & x, int64_t n_in, int64_t n_tok) {
    const dtype at = act_type_for(wtype);
    if (at == DTYPE_F32) return x;
    std::vector<float> out(x.size());
    std::vector<uint8_t> q(dtype_row_bytes(at, n_in));
    for (int64_t t = 0; t < n_tok; ++t) {
        quantize_row(at, x.data() + t * n_in, q.data(), n_in);
        dequantize_row(at, q.data(), out.data() + t * n_in, n_in);
    }
    return out;
}

std::vector<cpu_level> supported_levels() {
    std::vector<cpu_level> v = {CPU_LEVEL_PORTABLE};
    if (cpu_level_detected() >= CPU_LEVEL_AVX2) v.push_back(CPU_LEVEL_AVX2);
    if (cpu_level_detected() >= CPU_LEVEL_AVX512) v.push_back(CPU_LEVEL_AVX512);
    return v;
}

struct level_guard {
    ~level_guard() { cpu_features_reset(); }
};

const dtype ALL_TYPES[] = {DTYPE_Q8_0, DTYPE_Q4_0, DTYPE_Q4_K, DTYPE_Q6_K, DTYPE_Q5_0,
                           DTYPE_F16,  DTYPE_BF16, DTYPE_F32,  DTYPE_Q5_K};

int64_t block_of(dtype t) {
    return dtype_get_traits(t)->block_size;
}

}  // namespace

TEST(cpu_features, force_levels) {
    level_guard g;
    const cpu_level det = cpu_level_detected();
    std::printf("detected CPU level: %s\n", cpu_level_name(det));
    EXPECT_TRUE(cpu_features_force(CPU_LEVEL_PORTABLE));
    EXPECT_EQ(cpu_level_active(), CPU_LEVEL_PORTABLE);
    if (det < CPU_LEVEL_AVX512) {
        EXPECT_FALSE(cpu_features_force(CPU_LEVEL_AVX512));
    }
    EXPECT_FALSE(cpu_features_force(static_cast<cpu_level>(7)));
    EXPECT_EQ(cpu_level_active(), CPU_LEVEL_PORTABLE);  // a refused force changes nothing
    cpu_features_reset();
    EXPECT_LE(cpu_level_active(), det);
}

// Two checks per output y[t, o]:
//  1. Against the exact (double) dot product of the dequantized weights with the activations *as the kernel
//     quantized them* (Q8_0 / Q8_K levels times fp16 / f32 scales). The kernel sums exact integer block dot
//     products scaled in float, so the only error is float rounding: a few ulp per block sum, bounded by
//     3e-5 * sum |w * x'| (n_in / 32 <= 100 float additions of relative error 6e-8, with margin).
//  2. Against ref::matmul with the original float activations. The difference is then dominated by the
//     activation quantization, and |sum w (x - x')| <= sum |w| |x - x'| exactly (triangle inequality), so that
//     bound plus the float slack of check 1 is a tolerance that no correct kernel can exceed.
TEST(matmul, matches_reference_at_every_level) {
    level_guard g;
    thread_pool pool3(3);
    for (cpu_level lvl : supported_levels()) {
        ASSERT_TRUE(cpu_features_force(lvl));
        for (dtype type : ALL_TYPES) {
            const int64_t blk = block_of(type);
            // n_in: one block, several blocks, and (for 32-blocks) a length that is not a multiple of 256;
            // float types also get an odd length to exercise the vector tail.
            std::vector<int64_t> n_ins;
            if (blk == 256) {
                n_ins = {256, 768};
            } else if (blk == 32) {
                n_ins = {32, 640, 1056};
            } else {
                n_ins = {37, 640};
            }
            for (int64_t n_in : n_ins) {
                for (int64_t n_out : {1, 13, 32}) {
                    const weights w = make_weights(type, n_in, n_out, static_cast<uint32_t>(n_in * 7 + n_out));
                    for (int64_t n_tok : {1, 2, 7, 64}) {
                        if (n_tok == 64 && n_out != 13) continue;  // keep the portable level quick
                        const std::vector<float> x = make_acts(n_in * n_tok, static_cast<uint32_t>(n_tok + n_in));
                        const std::vector<float> xq = quantized_acts(type, x, n_in, n_tok);
                        std::vector<float> y(static_cast<size_t>(n_tok * n_out), -1.0f);
                        std::vector<float> y_ref(y.size()), y_mt(y.size(), -2.0f);
                        matmul(w.t, x.data(), y.data(), n_tok, nullptr);
                        matmul(w.t, x.data(), y_mt.data(), n_tok, &pool3);
                        ref::matmul(w.t, x.data(), y_ref.data(), n_tok, nullptr);
                        int n_bad = 0;
                        for (int64_t t = 0; t < n_tok; ++t) {
                            for (int64_t o = 0; o < n_out; ++o) {
                                const float * wr = w.deq.data() + o * n_in;
                                const float * xr = x.data() + t * n_in;
                                const float * xqr = xq.data() + t * n_in;
                                double exact_q = 0, mag_q = 0, qerr = 0, mag = 0;
                                for (int64_t i = 0; i < n_in; ++i) {
                                    exact_q += static_cast<double>(wr[i]) * xqr[i];
                                    mag_q += std::fabs(static_cast<double>(wr[i]) * xqr[i]);
                                    qerr += std::fabs(static_cast<double>(wr[i])) * std::fabs(xr[i] - xqr[i]);
                                    mag += std::fabs(static_cast<double>(wr[i]) * xr[i]);
                                }
                                const size_t k = static_cast<size_t>(t * n_out + o);
                                const double tol1 = 3e-5 * mag_q + 1e-6;
                                const double tol2 = qerr + 3e-5 * mag + 1e-6;
                                const double e1 = std::fabs(y[k] - exact_q);
                                const double e2 = std::fabs(static_cast<double>(y[k]) - y_ref[k]);
                                if ((!(e1 <= tol1) || !(e2 <= tol2)) && n_bad++ < 3) {
                                    ADD_FAILURE()
                                        << cpu_level_name(lvl) << " " << dtype_name(type) << " n_in " << n_in
                                        << " n_out " << n_out << " n_tok " << n_tok << " t " << t << " o " << o
                                        << ": y " << y[k] << " exact(quantized x) " << exact_q << " (tol " << tol1
                                        << ") ref " << y_ref[k] << " (tol " << tol2 << ")";
                                }
                                // Threads split whole rows, so the result does not depend on the thread count.
                                if (y_mt[k] != y[k] && n_bad++ < 3) {
                                    ADD_FAILURE() << cpu_level_name(lvl) << " " << dtype_name(type)
                                                  << ": 3 threads gave " << y_mt[k] << " vs " << y[k];
                                }
                            }
                        }
                        ASSERT_EQ(n_bad, 0);
                    }
                }
            }
        }
    }
}

// Packed (row-interleaved) Q4_0 / Q5_0 / Q8_0 / Q4_K / Q6_K weights: the same values through another kernel. Checked
// like the test above (exact dot product of the quantized activations, and ref::matmul), plus: a token alone gives
// bit-identical results to the same token in a batch, and the thread count changes nothing. Shapes that cannot be
// packed are refused.
TEST(matmul, packed_matches_reference) {
    level_guard g;
    thread_pool pool3(3);
    {
        const weights odd = make_weights(DTYPE_Q4_0, 64, 13, 1);  // 13 rows: not a multiple of 8
        EXPECT_EQ(matmul_pack_bytes(odd.t), 0u);
        const weights k5 = make_weights(DTYPE_Q5_K, 256, 16, 1);
        EXPECT_EQ(matmul_pack_bytes(k5.t), 0u);
        if (cpu_level_detected() >= CPU_LEVEL_AVX2) {
            ASSERT_TRUE(cpu_features_force(CPU_LEVEL_AVX2));
            const weights q8 = make_weights(DTYPE_Q8_0, 64, 16, 1);
            EXPECT_EQ(matmul_pack_bytes(q8.t), 0u) << "AVX2's maddubs would saturate on packed Q8_0";
            for (dtype t : {DTYPE_Q4_K, DTYPE_Q6_K}) {
                const weights k = make_weights(t, 256, 16, 1);
                EXPECT_EQ(matmul_pack_bytes(k.t), 0u) << "packed K-quants need AVX512-VNNI";
            }
        }
        ASSERT_TRUE(cpu_features_force(CPU_LEVEL_PORTABLE));
        const weights q4 = make_weights(DTYPE_Q4_0, 64, 16, 1);
        EXPECT_EQ(matmul_pack_bytes(q4.t), 0u) << "no packed kernel at the portable level";
    }
    for (cpu_level lvl : supported_levels()) {
        if (lvl == CPU_LEVEL_PORTABLE) continue;
        ASSERT_TRUE(cpu_features_force(lvl));
        for (dtype type : {DTYPE_Q4_0, DTYPE_Q5_0, DTYPE_Q8_0, DTYPE_Q4_K, DTYPE_Q6_K})
            for (int64_t blocks : {1, 20, 33}) {
                const bool kq = type == DTYPE_Q4_K || type == DTYPE_Q6_K;
                const int64_t n_in = kq ? 256 * (blocks / 8 + 1) : 32 * blocks;  // K-quants: 256, 768, 1280
                for (int64_t n_out : {8, 40}) {
                    weights w = make_weights(type, n_in, n_out, static_cast<uint32_t>(n_in + 3 * n_out));
                    if (n_out == 40) {  // every level at its extremes in some blocks (all bits set, all clear)
                        const size_t bb = dtype_get_traits(type)->block_bytes;
                        for (size_t off = 0, k = 0; off < w.bytes.size(); off += bb * 7, ++k) {
                            if (type == DTYPE_Q4_K) {  // levels and 6-bit scales / mins; d and dmin stay finite
                                std::memset(&w.bytes[off + 4], k % 2 ? 0xFF : 0x00, bb - 4);
                                continue;
                            }
                            if (type == DTYPE_Q6_K) {  // levels, and scales at -1 / 0 / -128 (d stays finite)
                                std::memset(&w.bytes[off], k % 2 ? 0xFF : 0x00, bb - 2);
                                if (k % 3 == 2) std::memset(&w.bytes[off + 192], 0x80, 16);
                                continue;
                            }
                            std::memset(&w.bytes[off + 2], k % 2 ? 0xFF : 0x00, bb - 2);
                            if (type == DTYPE_Q8_0 && k % 3 == 2) std::memset(&w.bytes[off + 2], 0x80, 32);  // -128
                        }
                        dequantize_row(type, w.bytes.data(), w.deq.data(), n_in * n_out);
                    }
                    const size_t pb = matmul_pack_bytes(w.t);
                    if ((type == DTYPE_Q8_0 || kq) && lvl < CPU_LEVEL_AVX512) {
                        EXPECT_EQ(pb, 0u);
                        continue;
                    }
                    ASSERT_EQ(pb, w.bytes.size()) << cpu_level_name(lvl) << " " << dtype_name(type);
                    std::vector<uint8_t> packed(pb);
                    matmul_pack(w.t, packed.data());
                    tensor wp = w.t;
                    wp.packed = packed.data();
                    {  // embedding rows read from the packed copy (a tied output matrix) equal the original's exactly
                        const int32_t ids[] = {0, 7, static_cast<int32_t>(n_out - 1), 3};
                        std::vector<float> g(4 * static_cast<size_t>(n_in)), g_ref(g.size());
                        std::vector<uint8_t> zeros(w.bytes.size(), 0);
                        tensor only_packed = wp;  // its unpacked bytes are zeros: only the packed copy gives the values
                        only_packed.data = zeros.data();
                        get_rows(only_packed, ids, 4, g.data());
                        ref::get_rows(w.t, ids, 4, g_ref.data());
                        for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], g_ref[i]) << dtype_name(type) << " " << i;
                    }
                    for (int64_t n_tok : {1, 2, 3, 5, 70}) {
                        const std::vector<float> x = make_acts(n_in * n_tok, static_cast<uint32_t>(n_tok * 5 + n_in));
                        const std::vector<float> xq = quantized_acts(type, x, n_in, n_tok);
                        std::vector<float> y(static_cast<size_t>(n_tok * n_out)), y_ref(y.size()), y_mt(y.size());
                        matmul(wp, x.data(), y.data(), n_tok, nullptr);
                        matmul(wp, x.data(), y_mt.data(), n_tok, &pool3);
                        ref::matmul(w.t, x.data(), y_ref.data(), n_tok, nullptr);
                        for (int64_t t = 0; t < n_tok; ++t) {
                            std::vector<float> y1(static_cast<size_t>(n_out));
                            matmul(wp, x.data() + t * n_in, y1.data(), 1, nullptr);
                            for (int64_t o = 0; o < n_out; ++o) {
                                const float * wr = w.deq.data() + o * n_in;
                                double exact_q = 0, mag_q = 0, qerr = 0, mag = 0;
                                for (int64_t i = 0; i < n_in; ++i) {
                                    const double wi = wr[i], xi = x[t * n_in + i], xqi = xq[t * n_in + i];
                                    exact_q += wi * xqi;
                                    mag_q += std::fabs(wi * xqi);
                                    qerr += std::fabs(wi) * std::fabs(xi - xqi);
                                    mag += std::fabs(wi * xi);
                                }
                                const size_t k = static_cast<size_t>(t * n_out + o);
                                ASSERT_LE(std::fabs(y[k] - exact_q), 3e-5 * mag_q + 1e-6)
                                    << cpu_level_name(lvl) << " " << dtype_name(type) << " n_in " << n_in << " n_out "
                                    << n_out << " n_tok " << n_tok << " t " << t << " o " << o;
                                ASSERT_LE(std::fabs(static_cast<double>(y[k]) - y_ref[k]), qerr + 3e-5 * mag + 1e-6);
                                ASSERT_EQ(y_mt[k], y[k]) << "3 threads";
                                ASSERT_EQ(y1[o], y[k]) << "token " << t << " alone vs in a batch of " << n_tok;
                            }
                        }
                    }
                }
            }
    }
}

// Packed Q5_0 keeps the unpacked kernel's summation order (models pack it, and the llama.cpp parity checks depend on
// that order): every output must equal the unpacked kernel's bit for bit, alone or in a batch.
// The SIMD activation preparations must write exactly what the portable definitions write: the kernels' integer
// corrections (nsum, xsum) and the results' equality across levels rest on it. Rows include all-zero blocks, values
// whose scaled level lands exactly on .5 (round half away from zero), huge and tiny magnitudes.
TEST(matmul, simd_activations_equal_the_portable_ones) {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t n = 32 * 40;
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) x[i] = nd(rng);
    for (int64_t i = 0; i < 32; ++i) x[32 + i] = 0.0f;                                             // block 1: zeros
    for (int64_t i = 0; i < 32; ++i) x[64 + i] = static_cast<float>(i - 16) * 0.5f * 127.0f / 16;  // .5 levels
    x[64 + 31] = 127.0f;  // sets amax = 127: id = 1
    for (int64_t i = 0; i < 32; ++i) x[96 + i] = static_cast<float>(i % 2 ? 1 : -1) * (i + 0.5f);
    for (int64_t i = 0; i < 32; ++i) x[128 + i] *= 1e30f;
    for (int64_t i = 0; i < 32; ++i) x[160 + i] *= 1e-30f;
    x[200] = -1e6f;                                   // a negative maximum
    for (int64_t i = 256; i < 512; ++i) x[i] = 0.0f;  // a whole Q8_K block of zeros
    x[600] = 3.0f;                                    // two elements of the largest magnitude: the first one
    x[700] = -3.0f;                                   // (positive) sets the scale's sign
    for (int64_t i = 768; i < 1024; ++i) x[i] = static_cast<float>(i % 7) * 0.5f - 1.5f;  // .5 levels again
    std::vector<uint8_t> want(matmul_q8_0x_bytes(n)), got(want.size());
    matmul_prep_q8_0x(x.data(), n, want.data());
    int checked = 0;
    for (cpu_level lvl : {CPU_LEVEL_AVX2, CPU_LEVEL_AVX512}) {
        if (cpu_level_detected() < lvl) continue;
        matmul_kernel k;
        ASSERT_TRUE(lvl == CPU_LEVEL_AVX2 ? matmul_kernel_avx2(DTYPE_Q4_0, &k) : matmul_kernel_avx512(DTYPE_Q4_0, &k));
        ASSERT_NE(k.prep, nullptr);
        std::fill(got.begin(), got.end(), 0xAB);
        k.prep(x.data(), n, got.data());
        for (size_t i = 0; i < want.size(); ++i) {
            ASSERT_EQ(got[i], want[i]) << cpu_level_name(lvl) << ": byte " << i << " of " << want.size();
        }
        // The K-quant kernels' activations: quantize_row(DTYPE_Q8_K), byte for byte.
        matmul_kernel kk;
        ASSERT_TRUE(lvl == CPU_LEVEL_AVX2 ? matmul_kernel_avx2(DTYPE_Q4_K, &kk)
                                          : matmul_kernel_avx512(DTYPE_Q4_K, &kk));
        ASSERT_NE(kk.prep, nullptr);
        std::vector<uint8_t> want_k(dtype_row_bytes(DTYPE_Q8_K, 256 * 5)), got_k(want_k.size(), 0xAB);
        ASSERT_TRUE(quantize_row(DTYPE_Q8_K, x.data(), want_k.data(), 256 * 5));
        ASSERT_EQ(kk.x_bytes(256 * 5), want_k.size());
        kk.prep(x.data(), 256 * 5, got_k.data());
        for (size_t i = 0; i < want_k.size(); ++i) {
            ASSERT_EQ(got_k[i], want_k[i]) << cpu_level_name(lvl) << ": Q8_K byte " << i << " of " << want_k.size();
        }
        ++checked;
    }
    if (checked == 0) GTEST_SKIP() << "no AVX2 on this CPU";
}

// Packed Q4_K and Q6_K (decode) too: gemma-3-270m's attn_output is Q4_K, its ffn_down Q4_K or Q6_K.
TEST(matmul, packed_q5_0_and_k_quants_are_bit_identical_to_unpacked) {
    level_guard g;
    for (cpu_level lvl : supported_levels()) {
        if (lvl == CPU_LEVEL_PORTABLE) continue;
        ASSERT_TRUE(cpu_features_force(lvl));
        for (int64_t n_in : {32, 640, 2048, 256, 1024, 2560, 512, 1536}) {
            const dtype type = n_in == 256 || n_in == 1024 || n_in == 2560 ? DTYPE_Q4_K
                               : n_in == 512 || n_in == 1536               ? DTYPE_Q6_K
                                                                           : DTYPE_Q5_0;
            const int64_t n_out = 24;
            const weights w = make_weights(type, n_in, n_out, static_cast<uint32_t>(n_in + 1));
            if (type != DTYPE_Q5_0 && lvl < CPU_LEVEL_AVX512) {
                EXPECT_EQ(matmul_pack_bytes(w.t), 0u);
                continue;
            }
            ASSERT_EQ(matmul_pack_bytes(w.t), w.bytes.size());
            std::vector<uint8_t> packed(w.bytes.size());
            matmul_pack(w.t, packed.data());
            tensor wp = w.t;
            wp.packed = packed.data();
            for (int64_t n_tok : {1, 2, 3, 4, 7}) {
                const std::vector<float> x = make_acts(n_in * n_tok, static_cast<uint32_t>(n_tok + 7 * n_in));
                std::vector<float> y(static_cast<size_t>(n_tok * n_out)), y_plain(y.size());
                matmul(wp, x.data(), y.data(), n_tok, nullptr);
                matmul(w.t, x.data(), y_plain.data(), n_tok, nullptr);
                for (size_t i = 0; i < y.size(); ++i) {
                    ASSERT_EQ(y[i], y_plain[i]) << cpu_level_name(lvl) << " " << dtype_name(type) << " n_in " << n_in
                                                << " n_tok " << n_tok << " i " << i;
                }
            }
        }
    }
}

// The 512-bit decode kernels (cpu_wide_vectors_fast: two blocks or two level groups per vector) against the 256-bit
// ones they replace, bit for bit: odd and even block counts, one token (the wide path) and several (the same 8-row
// kernels either way). Runs wherever the CPU has the AVX-512 level, whatever the vendor.
TEST(matmul, packed_512_bit_kernels_are_bit_identical_to_256_bit) {
    level_guard g;
    if (cpu_level_detected() < CPU_LEVEL_AVX512) GTEST_SKIP() << "no AVX-512 level on this CPU";
    ASSERT_TRUE(cpu_features_force(CPU_LEVEL_AVX512));
    struct wide_guard {
        ~wide_guard() { cpu_wide_vectors_force(-1); }
    } wg;
    for (dtype type : {DTYPE_Q4_0, DTYPE_Q5_0, DTYPE_Q8_0, DTYPE_Q4_K, DTYPE_Q6_K}) {
        const bool kquant = type == DTYPE_Q4_K || type == DTYPE_Q6_K;
        for (int64_t n_in : {32, 96, 640, 2048}) {
            if (kquant && n_in % 256 != 0) n_in = n_in == 640 ? 1024 : 256;
            const int64_t n_out = 40;
            const weights w = make_weights(type, n_in, n_out, static_cast<uint32_t>(n_in * 3 + type));
            ASSERT_EQ(matmul_pack_bytes(w.t), w.bytes.size());
            std::vector<uint8_t> packed(w.bytes.size());
            matmul_pack(w.t, packed.data());
            tensor wp = w.t;
            wp.packed = packed.data();
            for (int64_t n_tok : {1, 3}) {
                const std::vector<float> x = make_acts(n_in * n_tok, static_cast<uint32_t>(n_tok + 5 * n_in));
                std::vector<float> y_wide(static_cast<size_t>(n_tok * n_out)), y_narrow(y_wide.size());
                cpu_wide_vectors_force(1);
                matmul(wp, x.data(), y_wide.data(), n_tok, nullptr);
                cpu_wide_vectors_force(0);
                matmul(wp, x.data(), y_narrow.data(), n_tok, nullptr);
                for (size_t i = 0; i < y_wide.size(); ++i) {
                    ASSERT_EQ(y_wide[i], y_narrow[i])
                        << dtype_name(type) << " n_in " << n_in << " n_tok " << n_tok << " i " << i;
                }
            }
        }
    }
}

// Weights written by other tools may use levels the reference quantizers never produce (Q8_0 level -128, Q6_K
// scale -128, all-max nibbles); every level must still match the reference exactly.
TEST(matmul, extreme_levels_match_reference) {
    level_guard g;
    const int64_t n_in = 512, n_out = 5, n_tok = 3;
    const std::vector<float> x = make_acts(n_in * n_tok, 9);
    for (dtype type : {DTYPE_Q8_0, DTYPE_Q4_0, DTYPE_Q5_0, DTYPE_Q4_K, DTYPE_Q5_K, DTYPE_Q6_K}) {
        std::vector<uint8_t> bytes(dtype_row_bytes(type, n_in) * n_out);
        std::mt19937 rng(77);
        for (auto & b : bytes) b = static_cast<uint8_t>(rng());
        const size_t bb = dtype_get_traits(type)->block_bytes;
        for (size_t off = 0; off < bytes.size(); off += bb) {
            // finite fp16 scales; the rest random or all-ones (every level at its maximum)
            const uint16_t d = fp32_to_fp16(0.01f), dmin = fp32_to_fp16(0.003f);
            if ((off / bb) % 3 == 0) std::memset(&bytes[off], 0xFF, bb);
            if ((off / bb) % 3 == 1 && type == DTYPE_Q8_0) std::memset(&bytes[off + 2], 0x80, 32);  // all -128
            if (type == DTYPE_Q6_K) {
                std::memcpy(&bytes[off + bb - 2], &d, 2);
                if ((off / bb) % 3 == 1) std::memset(&bytes[off + 192], 0x80, 16);  // scales -128
            } else {
                std::memcpy(&bytes[off], &d, 2);
                if (type == DTYPE_Q4_K || type == DTYPE_Q5_K) std::memcpy(&bytes[off + 2], &dmin, 2);
            }
        }
        const tensor W = make_tensor(type, bytes.data(), n_in, n_out);
        std::vector<float> y_ref(n_tok * n_out);
        ref::matmul(W, x.data(), y_ref.data(), n_tok, nullptr);
        for (cpu_level lvl : supported_levels()) {
            ASSERT_TRUE(cpu_features_force(lvl));
            std::vector<float> y(y_ref.size());
            matmul(W, x.data(), y.data(), n_tok, nullptr);
            for (int64_t t = 0; t < n_tok; ++t) {
                for (int64_t o = 0; o < n_out; ++o) {
                    std::vector<float> wr(n_in);
                    dequantize_row(type, W.row(o), wr.data(), n_in);
                    double qerr = 0, mag = 0;
                    const std::vector<float> xq = quantized_acts(
                        type, std::vector<float>(x.begin() + t * n_in, x.begin() + (t + 1) * n_in), n_in, 1);
                    for (int64_t i = 0; i < n_in; ++i) {
                        qerr += std::fabs(static_cast<double>(wr[i])) * std::fabs(x[t * n_in + i] - xq[i]);
                        mag += std::fabs(static_cast<double>(wr[i]) * x[t * n_in + i]);
                    }
                    const size_t k = static_cast<size_t>(t * n_out + o);
                    ASSERT_LE(std::fabs(static_cast<double>(y[k]) - y_ref[k]), qerr + 3e-5 * mag + 1e-6)
                        << cpu_level_name(lvl) << " " << dtype_name(type) << " t " << t << " o " << o;
                }
            }
        }
    }
}

TEST(matmul, zero_tokens_and_bad_weights) {
    const weights w = make_weights(DTYPE_Q8_0, 64, 3, 1);
    std::vector<float> x(64, 1.0f), y(3, 5.0f);
    matmul(w.t, x.data(), y.data(), 0, nullptr);  // nothing to do, nothing written
    EXPECT_EQ(y[0], 5.0f);

    std::string err;
    tensor bad = w.t;
    bad.type = DTYPE_I32;
    EXPECT_FALSE(matmul_check(bad, 1, &err));
    EXPECT_NE(err.find("unsupported weight type i32"), std::string::npos) << err;
    matmul(bad, x.data(), y.data(), 1, nullptr);  // must not crash; poisons the output
    EXPECT_TRUE(std::isnan(y[0]));

    bad = w.t;
    bad.ne[0] = 48;  // not a multiple of the Q8_0 block
    EXPECT_FALSE(matmul_check(bad, 1, &err));
    EXPECT_NE(err.find("not a multiple"), std::string::npos) << err;
    bad = w.t;
    bad.data = nullptr;
    EXPECT_FALSE(matmul_check(bad, 1, &err));
    EXPECT_FALSE(matmul_check(w.t, -1, &err));
    EXPECT_TRUE(matmul_check(w.t, 4, &err));
}

TEST(get_rows, matches_reference_and_rejects_bad_ids) {
    for (dtype type : ALL_TYPES) {
        const int64_t n = block_of(type) == 256 ? 512 : 96;
        const weights w = make_weights(type, n, 10, 3);
        const int32_t ids[] = {9, 0, 4, 4};
        std::vector<float> y(4 * static_cast<size_t>(n)), y_ref(y.size());
        get_rows(w.t, ids, 4, y.data());
        ref::get_rows(w.t, ids, 4, y_ref.data());
        for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], y_ref[i]) << dtype_name(type) << " " << i;
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[static_cast<size_t>(i)], w.deq[static_cast<size_t>(9 * n + i)]);
        std::string err;
        const int32_t bad_ids[] = {1, 10};
        EXPECT_FALSE(get_rows_check(w.t, bad_ids, 2, &err));
        EXPECT_NE(err.find("id 10"), std::string::npos) << err;
        get_rows(w.t, bad_ids, 2, y.data());  // no out-of-bounds read; NaN rows
        EXPECT_TRUE(std::isnan(y[0]));
    }
}

// matmul_multi (Q/K/V and gate/up in one dispatch) must give exactly what separate matmul() calls give: same
// tiles, same chunk boundaries whatever the thread count. Mixed weight types (two activation formats), outputs of
// different widths (so chunks of different sizes share the queue), decode and prompt sizes, 1 to 3 threads.
// A token's outputs do not depend on the batch it comes in: every output is the same sequence of operations for any
// tile shape. The LLM relies on this (a prompt decoded in one batch or token by token gives the same logits; on
// gemma-3-270m any rounding difference is amplified by the activation quantization of the following layers).
TEST(matmul, token_alone_is_bit_identical_to_token_in_batch) {
    level_guard g;
    for (cpu_level lvl : supported_levels()) {
        ASSERT_TRUE(cpu_features_force(lvl));
        for (dtype type : ALL_TYPES) {
            const int64_t n_in = block_of(type) == 256 ? 768 : 640, n_out = 13, n_tok = 7;
            const weights w = make_weights(type, n_in, n_out, 77);
            const std::vector<float> x = make_acts(n_in * n_tok, 78);
            std::vector<float> y_batch(static_cast<size_t>(n_out * n_tok)), y_one(static_cast<size_t>(n_out));
            matmul(w.t, x.data(), y_batch.data(), n_tok, nullptr);
            for (int64_t t = 0; t < n_tok; ++t) {
                matmul(w.t, x.data() + t * n_in, y_one.data(), 1, nullptr);
                for (int64_t o = 0; o < n_out; ++o) {
                    ASSERT_EQ(y_one[o], y_batch[t * n_out + o])
                        << cpu_level_name(lvl) << " " << dtype_name(type) << " token " << t << " output " << o;
                }
            }
        }
    }
}

TEST(matmul, multi_is_bit_identical_to_separate_calls) {
    level_guard g;
    for (cpu_level lvl : supported_levels()) {
        ASSERT_TRUE(cpu_features_force(lvl));
        const int64_t n_in = 512;
        const weights wq = make_weights(DTYPE_Q5_0, n_in, 1030, 21);  // many chunks, a partial last tile
        const weights wk = make_weights(DTYPE_Q8_0, n_in, 64, 22);
        const weights wv = make_weights(DTYPE_Q4_K, n_in, 70, 23);  // Q8_K activations
        const tensor * W[3] = {&wq.t, &wk.t, &wv.t};
        for (int64_t n_tok : {1, 5, 70}) {
            const std::vector<float> x = make_acts(n_in * n_tok, static_cast<uint32_t>(n_tok));
            std::vector<std::vector<float>> want(3);
            for (int i = 0; i < 3; ++i) {
                want[i].assign(static_cast<size_t>(W[i]->ne[1] * n_tok), 0.0f);
                matmul(*W[i], x.data(), want[i].data(), n_tok, nullptr);
            }
            for (int nth : {1, 2, 3}) {
                thread_pool pool(nth);
                std::vector<std::vector<float>> got(3);
                float * y[3];
                for (int i = 0; i < 3; ++i) {
                    got[i].assign(want[i].size(), -7.0f);
                    y[i] = got[i].data();
                }
                matmul_multi(3, W, x.data(), y, n_tok, &pool);
                for (int i = 0; i < 3; ++i) {
                    ASSERT_EQ(0, std::memcmp(got[i].data(), want[i].data(), want[i].size() * sizeof(float)))
                        << cpu_level_name(lvl) << " weight " << i << " n_tok " << n_tok << " threads " << nth;
                }
                // and the single-weight path with threads (dynamic chunks) against the single-thread result
                std::vector<float> y1(want[0].size(), -7.0f);
                matmul(*W[0], x.data(), y1.data(), n_tok, &pool);
                ASSERT_EQ(0, std::memcmp(y1.data(), want[0].data(), y1.size() * sizeof(float)));
            }
        }
        // A weight with a different n_in or a broken one: falls back to separate calls (the broken one poisoned).
        const weights w2 = make_weights(DTYPE_Q8_0, 2 * n_in, 8, 24);
        tensor bad = wk.t;
        bad.data = nullptr;
        const tensor * W2[3] = {&wq.t, &w2.t, &bad};
        const std::vector<float> x = make_acts(2 * n_in, 9);
        std::vector<float> a(1030), b(8), c(64), a_want(1030), b_want(8);
        float * y2[3] = {a.data(), b.data(), c.data()};
        thread_pool pool(2);
        matmul_multi(3, W2, x.data(), y2, 1, &pool);
        matmul(wq.t, x.data(), a_want.data(), 1, nullptr);
        matmul(w2.t, x.data(), b_want.data(), 1, nullptr);
        EXPECT_EQ(a, a_want);
        EXPECT_EQ(b, b_want);
        EXPECT_TRUE(std::isnan(c[0]));
    }
}

// Opt-in benchmark: SPIDER_BENCH=1 ./test_matmul --gtest_filter=matmul.bench   (SPIDER_BENCH_TYPES=q4_0,q8_0
// limits the types; SPIDER_BENCH_SHAPE=N_IN,N_OUT sets the matrix; SPIDER_BENCH_UNPACKED=1 times packable types
// unpacked). Decode: n_out 5632 x n_in 2048, one token, GB/s of weight bytes streamed; the weights are replicated past
// 96 MB (SPIDER_BENCH_MIB=N: N MiB, e.g. 1024 where the L3 is larger, as the Xeon's 480 MB) and the copies used in
// turn, so they come from memory and not from a 32 MB L3. Prompt: 512 tokens, GFLOP/s (2
// flops per multiply-add of the dense-equivalent product). Each row also reports the process CPU time per call, because
// on a shared machine wall time includes waiting for a core.
namespace {
double cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
}  // namespace

TEST(matmul, bench) {
    if (!std::getenv("SPIDER_BENCH")) GTEST_SKIP() << "set SPIDER_BENCH=1 to run";
    const char * only = std::getenv("SPIDER_BENCH_TYPES");
    // SPIDER_BENCH_SHAPE=N_IN,N_OUT replaces the default matrix (e.g. 640,262144: gemma-3-270m's output matrix).
    int64_t n_in = 2048, n_out = 5632;
    if (const char * shape = std::getenv("SPIDER_BENCH_SHAPE")) {
        long long a = 0, b = 0;
        ASSERT_EQ(std::sscanf(shape, "%lld,%lld", &a, &b), 2) << "SPIDER_BENCH_SHAPE=N_IN,N_OUT";
        ASSERT_TRUE(a > 0 && a % 32 == 0 && b > 0 && b % 8 == 0) << "N_IN a multiple of 32, N_OUT of 8";
        n_in = a, n_out = b;
    }
    const dtype types[] = {DTYPE_Q4_0, DTYPE_Q8_0, DTYPE_Q4_K, DTYPE_Q6_K, DTYPE_Q5_0, DTYPE_F16, DTYPE_F32};
    std::printf(
        "| level | type | threads | decode GB/s | decode ms | decode cpu ms | pp512 GFLOP/s | pp512 ms | "
        "pp512 cpu ms |\n|---|---|---|---|---|---|---|---|---|\n");
    for (dtype type : types) {
        if (only && !std::strstr(only, dtype_name(type))) continue;
        if (dtype_row_bytes(type, n_in) == 0) continue;  // K-quants need rows of whole 256-element blocks
        const weights w = make_weights(type, n_in, n_out, 11);
        const size_t mat_bytes = w.bytes.size();
        // SPIDER_BENCH_L3=1: one copy, so the weights stay in L3 and the kernel's own speed shows.
        const size_t rotation =
            (std::getenv("SPIDER_BENCH_MIB") ? std::strtoull(std::getenv("SPIDER_BENCH_MIB"), nullptr, 10) : 96) << 20;
        const int copies = std::getenv("SPIDER_BENCH_L3") ? 1 : static_cast<int>(rotation / mat_bytes + 1);
        // On huge pages, as models hold their weights (core/huge_buffer.h).
        huge_buffer big(mat_bytes * static_cast<size_t>(copies));
        ASSERT_NE(big.data(), nullptr);
        for (int c = 0; c < copies; ++c) std::memcpy(big.data() + c * mat_bytes, w.bytes.data(), mat_bytes);
        // Types with a packed layout (matmul_pack) are timed packed, as models load them; the row says so.
        const bool packed = matmul_pack_bytes(w.t) == mat_bytes && !std::getenv("SPIDER_BENCH_UNPACKED");
        huge_buffer big_packed(packed ? big.size() : 0);
        for (int c = 0; packed && c < copies; ++c) {
            matmul_pack(make_tensor(type, big.data() + c * mat_bytes, n_in, n_out), big_packed.data() + c * mat_bytes);
        }
        const std::vector<float> x = make_acts(n_in * 512, 5);
        std::vector<float> y(static_cast<size_t>(n_out * 512));
        for (int nth : {1, 2}) {
            thread_pool pool(nth);
            int next = 0;
            auto time_it = [&](int64_t n_tok, int reps, double * cpu) {
                double best = 1e30, best_cpu = 1e30;
                for (int r = 0; r < reps + 1; ++r) {  // first call warms up
                    const size_t off = static_cast<size_t>(next++ % copies) * mat_bytes;
                    tensor W = make_tensor(type, big.data() + off, n_in, n_out);
                    if (packed) W.packed = big_packed.data() + off;
                    const double c0 = cpu_seconds();
                    const auto t0 = std::chrono::steady_clock::now();
                    matmul(W, x.data(), y.data(), n_tok, &pool);
                    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                    const double c = cpu_seconds() - c0;
                    if (r > 0 && s < best) best = s;
                    if (r > 0 && c < best_cpu) best_cpu = c;
                }
                *cpu = best_cpu;
                return best;
            };
            double cd, cp;
            const double td = time_it(1, 30, &cd);
            const double tp = time_it(512, 3, &cp);
            std::printf("| %s | %s | %d | %.1f | %.3f | %.3f | %.1f | %.1f | %.1f |\n",
                        cpu_level_name(cpu_level_active()),
                        (std::string(dtype_name(type)) + (packed ? " packed" : "")).c_str(), nth, mat_bytes / td / 1e9,
                        td * 1e3, cd * 1e3, 2.0 * n_in * n_out * 512 / tp / 1e9, tp * 1e3, cp * 1e3);
            std::fflush(stdout);
        }
    }
}
