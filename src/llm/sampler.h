// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition / frequency / presence penalties, a seeded
// RNG that gives the same tokens on every run and platform, applied as a chain in llama.cpp's order
// (penalties -> top-k -> top-p -> min-p -> temperature -> draw); plus stop strings with partial-match holdback for
// streaming. Each filter is a plain function over a candidate list so tests can check it alone.
//
//   spider::sampler s(spider::sampler_default_params());
//   int32_t tok = s.sample(logits, n_vocab, /*allowed=*/nullptr);   // allowed: grammar mask or nullptr
//   s.accept(tok);
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace spider {

struct sampler_params {
    uint64_t seed = 0;
    float temperature = 0.8f;        // <= 0: greedy (argmax after penalties)
    int32_t top_k = 40;              // <= 0: off
    float top_p = 0.95f;             // >= 1: off
    float min_p = 0.05f;             // <= 0: off
    float repeat_penalty = 1.0f;     // 1: off; > 1 discourages tokens seen in the last penalty_last_n
    float frequency_penalty = 0.0f;  // subtracted once per occurrence
    float presence_penalty = 0.0f;   // subtracted once if present at all
    int32_t penalty_last_n = 64;     // history window for penalties (0: off)
};
sampler_params sampler_default_params();

struct token_candidate {
    int32_t id;
    float logit;
    float p;  // filled by candidates_softmax
};
using candidates = std::vector<token_candidate>;

// The filters (reference implementations; each keeps at least min_keep candidates).
void candidates_from_logits(const float * logits, int32_t n_vocab, const uint8_t * allowed, candidates * c);
void candidates_softmax(candidates * c);  // sorts by logit, descending, and fills p
void candidates_penalties(candidates * c, const std::deque<int32_t> & history, float repeat, float freq,
                          float presence);
void candidates_top_k(candidates * c, int32_t k, size_t min_keep = 1);
void candidates_top_p(candidates * c, float p, size_t min_keep = 1);
void candidates_min_p(candidates * c, float p, size_t min_keep = 1);
void candidates_temperature(candidates * c, float t);
int32_t candidates_greedy(const candidates & c);  // highest logit, TOKEN_NULL (-1) if empty

// Deterministic RNG (splitmix64 seeding + xoshiro256**): the same seed gives the same numbers everywhere.
class sampler_rng {
public:
    explicit sampler_rng(uint64_t seed = 0) { seed_with(seed); }
    void seed_with(uint64_t seed);
    uint64_t next();
    double uniform();  // [0, 1) with 53 random bits
private:
    uint64_t s_[4];
};

class sampler {
public:
    explicit sampler(const sampler_params & p);
    // logits[n_vocab]; allowed: n_vocab flags (0 = forbidden, e.g. by a grammar) or nullptr. Returns -1 only if no
    // token is allowed.
    int32_t sample(const float * logits, int32_t n_vocab, const uint8_t * allowed = nullptr);
    void accept(int32_t token);  // adds to the penalty history
    void reset();                // clears history and re-seeds
    const sampler_params & params() const { return p_; }
    const candidates & last_candidates() const { return cur_; }  // after the chain of the last sample()

private:
    sampler_params p_;
    sampler_rng rng_;
    std::deque<int32_t> history_;
    candidates cur_;
};

// Stop strings for streaming output: feed each new piece; text is released as soon as it cannot be the start of
// a stop string (and is not an unfinished UTF-8 sequence). When a stop string completes, everything before it is
// released, *stopped is set, and the stop string itself is not emitted.
class stop_detector {
public:
    explicit stop_detector(std::vector<std::string> stops);
    std::string feed(const std::string & piece, bool * stopped);
    std::string flush();  // end of generation: whatever is still held back
    bool stopped() const { return stopped_; }
    const std::string & matched() const { return matched_; }  // the stop string that ended generation

private:
    std::vector<std::string> stops_;
    std::string pending_;
    bool stopped_ = false;
    std::string matched_;
};

}  // namespace spider
