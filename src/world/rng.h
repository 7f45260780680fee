// The world's own seeded PRNG (splitmix64 seeding + xoshiro256**). std:: distributions are not used anywhere in
// the world: their outputs differ between standard libraries, and the same seed must give the same dataset
// everywhere.
#pragma once
#include <cstdint>

namespace spider {

inline uint64_t splitmix64(uint64_t * state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Mixes several integers into one seed (e.g. {dataset seed, kind, item index}) so that every item has its own
// independent stream and can be generated in any order.
inline uint64_t seed_mix(uint64_t a, uint64_t b, uint64_t c = 0) {
    uint64_t s = a * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    uint64_t x = splitmix64(&s) ^ (b + 0x3C6EF372FE94F82Bull);
    s = x;
    x = splitmix64(&s) ^ (c + 0xA54FF53A5F1D36F1ull);
    s = x;
    return splitmix64(&s);
}

struct world_rng {
    uint64_t s[4];

    explicit world_rng(uint64_t seed) {
        uint64_t st = seed;
        for (uint64_t & v : s) v = splitmix64(&st);
    }
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t next() {
        uint64_t r = rotl(s[1] * 5, 7) * 9;
        uint64_t t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return r;
    }
    // Uniform integer in [0, n), n > 0 (multiply-shift; the bias is below 2^-32 for the small n used here).
    int below(int n) { return (int)(((next() >> 32) * (uint64_t)n) >> 32); }
    int range(int lo, int hi) { return lo + below(hi - lo + 1); }  // inclusive
    // Uniform double in [0, 1) from 53 random bits.
    double uniform() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    bool chance(double p) { return uniform() < p; }
    template <typename T>
    const T & pick(const T * items, int n) {
        return items[below(n)];
    }
};

}  // namespace spider
