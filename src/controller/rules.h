// Controller rules (ours, SPIDER.md §1): which modalities are allowed, how many items per modality and per
// answer, blocked words in T-Prompts, a per-item quality check (retry with another seed or drop / keep for
// review) and a "needs review" flag. Rules come from a JSON config file and can be tightened per request; every
// decision is recorded so the response manifest says why each item was made, changed or refused.
//
// JSON (every field optional):
// {
//   "allowed_modalities": ["image", "audio"],          // absent = all
//   "max_items": 4,                                     // per answer; absent or < 0 = unlimited
//   "max_items_per_modality": {"image": 2},
//   "blocked_words": ["gore"],                          // case-insensitive whole words (or phrases)
//   "quality": {"min_score": 0.5, "max_retries": 2, "on_fail": "drop" | "keep"},
//   "review": {"all": false, "words": ["face"], "modalities": ["video"]}
// }
#pragma once
#include <string>
#include <vector>

#include "controller/template.h"

namespace spider {

struct quality_rule {
    bool enabled = false;
    float min_score = 0.5f;
    int max_retries = 1;       // extra attempts with another seed
    bool drop_on_fail = true;  // false: keep the best attempt and flag it for review
};

struct controller_rules {
    bool restrict_modalities = false;
    std::vector<modality> allowed;  // used when restrict_modalities
    int max_items = -1;
    int max_per_modality[MODALITY_COUNT] = {-1, -1, -1, -1, -1};
    std::vector<std::string> blocked_words;
    quality_rule quality;
    bool review_all = false;
    std::vector<std::string> review_words;
    std::vector<modality> review_modalities;

    bool allows(modality m) const;
};

// Parses the JSON text above; unknown fields, wrong types and bad values are errors naming the field.
bool rules_from_json(const std::string & json_text, controller_rules * out, std::string * err);
bool rules_load(const std::string & path, controller_rules * out, std::string * err);
// A request can only tighten the configured rules: allowed sets intersect, limits take the minimum, word lists
// join, the quality rule of the request applies when it enables one, review flags OR.
controller_rules rules_merge(const controller_rules & base, const controller_rules & request);
std::string rules_to_json(const controller_rules & r);  // for the manifest

struct rule_decision {
    std::string rule;    // "allowed_modalities", "max_items", "max_items_per_modality", "blocked_words",
                         // "quality", "review", "grammar"
    std::string action;  // "allow", "block", "retry", "accept", "drop", "keep", "flag"
    std::string detail;
};

// Per-answer admission state: call admit() for each well-formed group in order.
class rule_engine {
public:
    explicit rule_engine(const controller_rules & r) : r_(r) {}
    // Decides whether a group may be generated; appends the decisions. Counts only admitted items.
    bool admit(modality m, const std::string & t_prompt, std::vector<rule_decision> * d);
    // Review flag of an item (words / modalities / all); appends a "review" decision when flagged.
    bool review(modality m, const std::string & t_prompt, std::vector<rule_decision> * d) const;
    const controller_rules & rules() const { return r_; }

private:
    controller_rules r_;
    int n_items_ = 0;
    int n_mod_[MODALITY_COUNT] = {0, 0, 0, 0, 0};
};

// Case-insensitive whole-word (or phrase) search; returns the first listed word found, or "".
std::string find_listed_word(const std::string & text, const std::vector<std::string> & words);

}  // namespace spider
