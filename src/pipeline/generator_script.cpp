// The scripted text generator: a fixed answer fed token by token through the same path as the LLM.
#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "pipeline/generator.h"

namespace spider {

static uint64_t mix_hash(uint64_t h, const std::string & s) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

std::vector<std::string> split_script(const std::string & script, const template_config & cfg) {
    std::vector<std::string> markers = {TOKEN_OUTPUT, TOKEN_END};
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        modality m = static_cast<modality>(i);
        markers.push_back(tag_open(m));
        markers.push_back(tag_close(m));
        for (int k = 0; k < std::max(1, cfg.n_signal[i]); ++k) markers.push_back(signal_token(m, k));
    }
    std::vector<std::string> out;
    std::string cur;
    auto flush = [&] {
        if (!cur.empty()) out.push_back(cur);
        cur.clear();
    };
    size_t i = 0;
    while (i < script.size()) {
        bool hit = false;
        for (const auto & mk : markers) {
            if (script.compare(i, mk.size(), mk) == 0) {
                flush();
                out.push_back(mk);
                i += mk.size();
                hit = true;
                break;
            }
        }
        if (hit) continue;
        const char c = script[i];
        // a new word starts at a space following a non-space
        if ((c == ' ' || c == '\n') && !cur.empty() && cur.back() != ' ' && cur.back() != '\n') flush();
        cur += c;
        ++i;
    }
    flush();
    return out;
}

namespace {

class scripted_generator : public text_generator {
public:
    scripted_generator(const std::string & script, int n_embd, int delay_ms, const template_config & cfg)
        : pieces_(split_script(script, cfg)), n_embd_(n_embd), delay_ms_(delay_ms) {}
    std::string name() const override { return "script"; }
    int n_embd() const override { return n_embd_; }
    bool begin(const input_layout & layout, const std::vector<std::vector<float>> & media_tokens,
               const std::vector<modality> &, uint64_t seed, std::string * err) override {
        for (const auto & t : media_tokens) {
            if (static_cast<int>(t.size()) != n_embd_) {
                if (err)
                    *err = "[script] media token of width " + std::to_string(t.size()) + ", expected " +
                           std::to_string(n_embd_);
                return false;
            }
        }
        // The context (prompt and media) seeds the states, as it would condition an LLM.
        ctx_hash_ = mix_hash(1469598103934665603ull ^ seed, layout.to_string());
        for (const auto & t : media_tokens) {
            for (float v : t) ctx_hash_ = mix_hash(ctx_hash_, std::to_string(static_cast<int>(v * 1000)));
        }
        next_ = 0;
        states_.clear();
        return true;
    }
    bool next(gen_token * out, std::string *) override {
        if (next_ >= pieces_.size()) {
            out->piece.clear();
            out->end = true;
            out->pos = static_cast<int>(next_);
            return true;
        }
        if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
        const std::string & p = pieces_[next_];
        ctx_hash_ = mix_hash(ctx_hash_, p);
        // hidden state seeded by everything so far, input embedding by the piece alone
        std::vector<float> row(n_embd_);
        std::mt19937_64 rh(ctx_hash_), re(mix_hash(1469598103934665603ull, p));
        std::normal_distribution<float> nd(0.0f, 1.0f);
        const float s = 1.0f / std::sqrt(static_cast<float>(n_embd_));
        for (auto & v : row) v = s * nd(rh) + s * nd(re);
        states_.push_back(std::move(row));
        out->piece = p;
        out->pos = static_cast<int>(next_);
        out->end = false;
        ++next_;
        return true;
    }
    bool m_prompt(const std::vector<int> & positions, std::vector<float> * out, std::string * err) override {
        out->clear();
        for (int p : positions) {
            if (p < 0 || p >= static_cast<int>(states_.size())) {
                if (err) *err = "[script] no state for output position " + std::to_string(p);
                return false;
            }
            out->insert(out->end(), states_[p].begin(), states_[p].end());
        }
        return true;
    }

private:
    std::vector<std::string> pieces_;
    int n_embd_;
    int delay_ms_;
    size_t next_ = 0;
    uint64_t ctx_hash_ = 0;
    std::vector<std::vector<float>> states_;
};

}  // namespace

std::unique_ptr<text_generator> make_scripted_generator(const std::string & script, int n_embd, int delay_ms,
                                                        const template_config & cfg) {
    return std::unique_ptr<text_generator>(new scripted_generator(script, n_embd, delay_ms, cfg));
}

}  // namespace spider
