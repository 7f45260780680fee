// Helpers shared by the LLM subcommands (see common.h).
#include "common.h"

#include <cstdio>
#include <thread>

#include "llm/default_model.h"

namespace spider_cli {

spider_model* load_model_or_report(const std::string& model_arg, int n_threads) {
    std::string path = model_arg;
    if (path.empty()) {
        std::string err;
        if (!spider::find_default_model(&path, &err)) {
            std::fprintf(stderr, "error: %s\n", err.c_str());
            return nullptr;
        }
    }
    spider_model_params mp = spider_model_default_params();
    mp.n_threads = n_threads;
    spider_model* model = nullptr;
    spider_status st = spider_model_load(path.c_str(), mp, &model);
    if (st != SPIDER_STATUS_OK) {
        std::fprintf(stderr, "error: %s (%s)\n", spider_last_error(), spider_status_name(st));
        return nullptr;
    }
    return model;
}

std::string format_speed(const spider_timings& t) {
    char buf[256];
    const double pp = t.t_prompt_ms > 0 ? t.n_prompt * 1000.0 / t.t_prompt_ms : 0.0;
    const double tg = t.t_eval_ms > 0 ? t.n_eval * 1000.0 / t.t_eval_ms : 0.0;
    std::snprintf(buf, sizeof buf,
                  "prompt eval: %.2f tok/s (%d tokens, %.1f ms), eval: %.2f tok/s (%d tokens, %.1f ms)", pp, t.n_prompt,
                  t.t_prompt_ms, tg, t.n_eval, t.t_eval_ms);
    return buf;
}

int default_threads() {
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : (int)n;
}

}  // namespace spider_cli

#include <algorithm>
#include <cmath>

namespace spider_cli {

token_picker::token_picker(const sampling_options& o) : o_(o) {
    rng_.seed(o.seed == 0xFFFFFFFFu ? std::random_device{}() : o.seed);
}

void token_picker::accept(int32_t token) {
    if (o_.repeat_last_n <= 0) return;
    recent_.push_back(token);
    if ((int)recent_.size() > o_.repeat_last_n) recent_.erase(recent_.begin());
}

int32_t token_picker::pick(const float* logits, int32_t n_vocab) {
    cand_.resize(n_vocab);
    for (int32_t i = 0; i < n_vocab; i++) cand_[i] = {logits[i], i};
    if (o_.repeat_penalty != 1.0f) {
        for (int32_t t : recent_) {
            if (t < 0 || t >= n_vocab) continue;
            float& l = cand_[t].first;
            l = l > 0 ? l / o_.repeat_penalty : l * o_.repeat_penalty;
        }
    }
    auto by_logit = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
        return a.first > b.first;
    };
    if (o_.temp <= 0) return std::min_element(cand_.begin(), cand_.end(), by_logit)->second;  // by_logit orders best first
    size_t k = cand_.size();
    if (o_.top_k > 0 && (size_t)o_.top_k < k) k = (size_t)o_.top_k;
    std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), by_logit);
    cand_.resize(k);
    // probabilities at temperature 1 for top-p / min-p (as llama.cpp's chain does before temperature)
    std::vector<double> p(k);
    double sum = 0;
    for (size_t i = 0; i < k; i++) sum += p[i] = std::exp((double)cand_[i].first - cand_[0].first);
    size_t keep = k;
    if (o_.top_p < 1.0f) {
        double c = 0;
        for (size_t i = 0; i < k; i++) {
            c += p[i] / sum;
            if (c >= o_.top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (o_.min_p > 0) {
        size_t j = 1;
        while (j < keep && p[j] >= o_.min_p * p[0]) j++;
        keep = j;
    }
    std::vector<double> w(keep);
    for (size_t i = 0; i < keep; i++) w[i] = std::exp(((double)cand_[i].first - cand_[0].first) / o_.temp);
    std::discrete_distribution<size_t> dist(w.begin(), w.end());
    return cand_[dist(rng_)].second;
}

std::string stop_filter::feed(const std::string& piece, bool* stopped) {
    *stopped = false;
    pending_ += piece;
    size_t cut = std::string::npos;
    for (const auto& s : stops_) {
        if (s.empty()) continue;
        size_t at = pending_.find(s);
        if (at != std::string::npos && at < cut) cut = at;
    }
    if (cut != std::string::npos) {
        *stopped = true;
        std::string out = pending_.substr(0, cut);
        pending_.clear();
        return out;
    }
    // Hold back the longest tail that is a prefix of some stop string.
    size_t hold = 0;
    for (const auto& s : stops_) {
        for (size_t len = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); len > hold; len--) {
            if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
                hold = len;
                break;
            }
        }
    }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string stop_filter::flush() {
    std::string out;
    out.swap(pending_);
    return out;
}

}  // namespace spider_cli
