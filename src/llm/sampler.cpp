// Sampling chain and stop strings (see sampler.h). The filters mirror llama.cpp's samplers: top-p and min-p run on
// temperature-1 probabilities, temperature only rescales what is left before the draw.
#include "llm/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "llm/unicode.h"

namespace spider {

sampler_params sampler_default_params() {
    return sampler_params();
}

void candidates_from_logits(const float * logits, int32_t n_vocab, const uint8_t * allowed, candidates * c) {
    c->clear();
    c->reserve(n_vocab);
    for (int32_t i = 0; i < n_vocab; ++i) {
        if (allowed && !allowed[i]) continue;
        float l = logits[i];
        if (std::isnan(l)) continue;  // a NaN logit can never be sampled
        c->push_back({i, l, 0.0f});
    }
}

void candidates_softmax(candidates * c) {
    if (c->empty()) return;
    std::sort(c->begin(), c->end(), [](const token_candidate & a, const token_candidate & b) {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    });
    const float mx = (*c)[0].logit;
    double sum = 0.0;
    for (auto & t : *c) {
        t.p = (t.logit == -std::numeric_limits<float>::infinity()) ? 0.0f : std::exp(t.logit - mx);
        sum += t.p;
    }
    for (auto & t : *c) t.p = static_cast<float>(t.p / sum);
}

void candidates_penalties(candidates * c, const std::deque<int32_t> & history, float repeat, float freq,
                          float presence) {
    if (history.empty() || (repeat == 1.0f && freq == 0.0f && presence == 0.0f)) return;
    std::unordered_map<int32_t, int> count;
    for (int32_t t : history) count[t]++;
    for (auto & t : *c) {
        auto it = count.find(t.id);
        if (it == count.end()) continue;
        // divide positive logits, multiply negative ones, so the penalty always lowers the token
        if (t.logit > 0) {
            t.logit /= repeat;
        } else {
            t.logit *= repeat;
        }
        t.logit -= static_cast<float>(it->second) * freq + presence;
    }
}

void candidates_top_k(candidates * c, int32_t k, size_t min_keep) {
    if (k <= 0) return;
    size_t keep = std::max(static_cast<size_t>(k), min_keep);
    if (keep >= c->size()) return;
    // partial sort: only the k best of a 262k vocabulary need ordering
    std::partial_sort(c->begin(), c->begin() + keep, c->end(),
                      [](const token_candidate & a, const token_candidate & b) {
                          return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
                      });
    c->resize(keep);
}

void candidates_top_p(candidates * c, float p, size_t min_keep) {
    if (p >= 1.0f || c->empty()) return;
    candidates_softmax(c);
    double cum = 0.0;
    size_t last = c->size();
    for (size_t i = 0; i < c->size(); ++i) {
        cum += (*c)[i].p;
        // smallest prefix whose mass reaches p
        if (cum >= p && i + 1 >= min_keep) {
            last = i + 1;
            break;
        }
    }
    c->resize(last);
}

void candidates_min_p(candidates * c, float p, size_t min_keep) {
    if (p <= 0.0f || c->empty()) return;
    candidates_softmax(c);
    const float threshold = (*c)[0].p * p;
    size_t keep = 0;
    while (keep < c->size() && ((*c)[keep].p >= threshold || keep < min_keep)) ++keep;
    c->resize(keep);
}

void candidates_temperature(candidates * c, float t) {
    if (t <= 0.0f) return;
    for (auto & x : *c) x.logit /= t;
}

int32_t candidates_greedy(const candidates & c) {
    int32_t best = -1;
    float bl = -std::numeric_limits<float>::infinity();
    for (const auto & t : c) {
        if (best < 0 || t.logit > bl || (t.logit == bl && t.id < best)) {
            best = t.id;
            bl = t.logit;
        }
    }
    return best;
}

// ---- RNG ----

static uint64_t splitmix64(uint64_t & x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sampler_rng::seed_with(uint64_t seed) {
    uint64_t x = seed;
    for (auto & s : s_) s = splitmix64(x);
}

uint64_t sampler_rng::next() {
    auto rotl = [](uint64_t v, int k) { return (v << k) | (v >> (64 - k)); };
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

double sampler_rng::uniform() {
    return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
}

// ---- sampler ----

sampler::sampler(const sampler_params & p) : p_(p), rng_(p.seed) {}

void sampler::reset() {
    history_.clear();
    rng_.seed_with(p_.seed);
}

void sampler::accept(int32_t token) {
    if (p_.penalty_last_n <= 0) return;
    history_.push_back(token);
    while (history_.size() > static_cast<size_t>(p_.penalty_last_n)) history_.pop_front();
}

int32_t sampler::sample(const float * logits, int32_t n_vocab, const uint8_t * allowed) {
    candidates_from_logits(logits, n_vocab, allowed, &cur_);
    if (cur_.empty()) return -1;
    candidates_penalties(&cur_, history_, p_.repeat_penalty, p_.frequency_penalty, p_.presence_penalty);
    if (p_.temperature <= 0.0f) {
        const int32_t t = candidates_greedy(cur_);
        return t;
    }
    candidates_top_k(&cur_, p_.top_k);
    candidates_top_p(&cur_, p_.top_p);
    candidates_min_p(&cur_, p_.min_p);
    candidates_temperature(&cur_, p_.temperature);
    candidates_softmax(&cur_);
    const double r = rng_.uniform();
    double cum = 0.0;
    for (const auto & t : cur_) {
        cum += t.p;
        if (r < cum) return t.id;
    }
    // rounding left r above the total: the last candidate with any mass
    for (size_t i = cur_.size(); i-- > 0;) {
        if (cur_[i].p > 0) return cur_[i].id;
    }
    return cur_[0].id;
}

// ---- stop strings ----

stop_detector::stop_detector(std::vector<std::string> stops) {
    for (auto & s : stops) {
        if (!s.empty()) stops_.push_back(std::move(s));
    }
}

std::string stop_detector::feed(const std::string & piece, bool * stopped) {
    if (stopped_) {
        if (stopped) *stopped = true;
        return "";
    }
    pending_ += piece;
    // earliest complete stop string
    size_t best = std::string::npos;
    for (const auto & s : stops_) {
        size_t at = pending_.find(s);
        if (at != std::string::npos && (best == std::string::npos || at < best)) {
            best = at;
            matched_ = s;
        }
    }
    if (best != std::string::npos) {
        std::string out = pending_.substr(0, best);
        pending_.clear();
        stopped_ = true;
        if (stopped) *stopped = true;
        return out;
    }
    // hold back the longest suffix that is a proper prefix of some stop string
    size_t hold = 0;
    for (const auto & s : stops_) {
        const size_t max_len = std::min(s.size() - 1, pending_.size());
        for (size_t len = max_len; len > hold; --len) {
            if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
                hold = len;
                break;
            }
        }
    }
    // never split a UTF-8 sequence between two releases
    hold = std::max(hold, utf8_incomplete_tail(pending_));
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    if (stopped) *stopped = false;
    return out;
}

std::string stop_detector::flush() {
    std::string out;
    out.swap(pending_);
    return out;
}

}  // namespace spider
