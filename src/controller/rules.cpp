// Controller rules: JSON parsing with field-naming errors, merging (request tightens config), admission.
#include "controller/rules.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace spider {

using nlohmann::json;

bool controller_rules::allows(modality m) const {
    return !restrict_modalities || std::find(allowed.begin(), allowed.end(), m) != allowed.end();
}

static bool mod_list(const json & j, const char * field, std::vector<modality> * out, std::string * err) {
    if (!j.is_array()) {
        *err = std::string("[rules] ") + field + " must be an array of modality names";
        return false;
    }
    out->clear();
    for (const auto & v : j) {
        modality m;
        if (!v.is_string() || !modality_from_name(v.get<std::string>(), &m)) {
            *err = std::string("[rules] ") + field + ": bad modality " + v.dump();
            return false;
        }
        if (std::find(out->begin(), out->end(), m) == out->end()) out->push_back(m);
    }
    return true;
}

static bool word_list(const json & j, const char * field, std::vector<std::string> * out, std::string * err) {
    if (!j.is_array()) {
        *err = std::string("[rules] ") + field + " must be an array of strings";
        return false;
    }
    for (const auto & v : j) {
        if (!v.is_string() || v.get<std::string>().empty()) {
            *err = std::string("[rules] ") + field + ": bad entry " + v.dump();
            return false;
        }
        out->push_back(v.get<std::string>());
    }
    return true;
}

static bool int_field(const json & j, const char * field, int lo, int hi, int * out, std::string * err) {
    if (!j.is_number_integer() || j.get<long long>() < lo || j.get<long long>() > hi) {
        *err = std::string("[rules] ") + field + " must be an integer in [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "], got " + j.dump();
        return false;
    }
    *out = static_cast<int>(j.get<long long>());
    return true;
}

bool rules_from_json(const std::string & json_text, controller_rules * out, std::string * err) {
    std::string e;
    std::string * er = err ? err : &e;
    json j;
    try {
        j = json::parse(json_text);
    } catch (const std::exception & ex) {
        *er = std::string("[rules] invalid JSON: ") + ex.what();
        return false;
    }
    if (!j.is_object()) {
        *er = "[rules] the rules must be a JSON object";
        return false;
    }
    controller_rules r;
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string & k = it.key();
        const json & v = it.value();
        if (k == "allowed_modalities") {
            r.restrict_modalities = true;
            if (!mod_list(v, "allowed_modalities", &r.allowed, er)) return false;
        } else if (k == "max_items") {
            if (!int_field(v, "max_items", -1, 1000000, &r.max_items, er)) return false;
        } else if (k == "max_items_per_modality") {
            if (!v.is_object()) {
                *er = "[rules] max_items_per_modality must be an object {modality: count}";
                return false;
            }
            for (auto m = v.begin(); m != v.end(); ++m) {
                modality mm;
                if (!modality_from_name(m.key(), &mm)) {
                    *er = "[rules] max_items_per_modality: bad modality \"" + m.key() + "\"";
                    return false;
                }
                if (!int_field(m.value(), "max_items_per_modality", -1, 1000000, &r.max_per_modality[mm], er)) {
                    return false;
                }
            }
        } else if (k == "blocked_words") {
            if (!word_list(v, "blocked_words", &r.blocked_words, er)) return false;
        } else if (k == "quality") {
            if (!v.is_object()) {
                *er = "[rules] quality must be an object";
                return false;
            }
            r.quality.enabled = true;
            for (auto q = v.begin(); q != v.end(); ++q) {
                if (q.key() == "min_score") {
                    if (!q.value().is_number() || q.value().get<double>() < 0 || q.value().get<double>() > 1) {
                        *er = "[rules] quality.min_score must be a number in [0, 1]";
                        return false;
                    }
                    r.quality.min_score = q.value().get<float>();
                } else if (q.key() == "max_retries") {
                    if (!int_field(q.value(), "quality.max_retries", 0, 16, &r.quality.max_retries, er)) return false;
                } else if (q.key() == "on_fail") {
                    std::string s = q.value().is_string() ? q.value().get<std::string>() : "";
                    if (s != "drop" && s != "keep") {
                        *er = "[rules] quality.on_fail must be \"drop\" or \"keep\"";
                        return false;
                    }
                    r.quality.drop_on_fail = s == "drop";
                } else if (q.key() == "enabled") {
                    if (!q.value().is_boolean()) {
                        *er = "[rules] quality.enabled must be a boolean";
                        return false;
                    }
                    r.quality.enabled = q.value().get<bool>();
                } else {
                    *er = "[rules] unknown field quality." + q.key();
                    return false;
                }
            }
        } else if (k == "review") {
            if (!v.is_object()) {
                *er = "[rules] review must be an object";
                return false;
            }
            for (auto q = v.begin(); q != v.end(); ++q) {
                if (q.key() == "all") {
                    if (!q.value().is_boolean()) {
                        *er = "[rules] review.all must be a boolean";
                        return false;
                    }
                    r.review_all = q.value().get<bool>();
                } else if (q.key() == "words") {
                    if (!word_list(q.value(), "review.words", &r.review_words, er)) return false;
                } else if (q.key() == "modalities") {
                    if (!mod_list(q.value(), "review.modalities", &r.review_modalities, er)) return false;
                } else {
                    *er = "[rules] unknown field review." + q.key();
                    return false;
                }
            }
        } else {
            *er = "[rules] unknown field \"" + k + "\"";
            return false;
        }
    }
    *out = r;
    return true;
}

bool rules_load(const std::string & path, controller_rules * out, std::string * err) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (err) *err = "[rules] cannot open " + path;
        return false;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    std::string e;
    if (!rules_from_json(ss.str(), out, &e)) {
        if (err) *err = path + ": " + e;
        return false;
    }
    return true;
}

static int tighter(int a, int b) {
    if (a < 0) return b;
    if (b < 0) return a;
    return std::min(a, b);
}

controller_rules rules_merge(const controller_rules & base, const controller_rules & req) {
    controller_rules r = base;
    if (req.restrict_modalities) {
        std::vector<modality> inter;
        for (modality m : req.allowed) {
            if (base.allows(m)) inter.push_back(m);
        }
        r.restrict_modalities = true;
        r.allowed = inter;
    }
    r.max_items = tighter(base.max_items, req.max_items);
    for (int i = 0; i < MODALITY_COUNT; ++i)
        r.max_per_modality[i] = tighter(base.max_per_modality[i], req.max_per_modality[i]);
    r.blocked_words.insert(r.blocked_words.end(), req.blocked_words.begin(), req.blocked_words.end());
    if (req.quality.enabled) {
        if (base.quality.enabled) {
            r.quality.min_score = std::max(base.quality.min_score, req.quality.min_score);
            r.quality.max_retries = req.quality.max_retries;
            r.quality.drop_on_fail = base.quality.drop_on_fail || req.quality.drop_on_fail;
        } else {
            r.quality = req.quality;
        }
    }
    r.review_all = base.review_all || req.review_all;
    r.review_words.insert(r.review_words.end(), req.review_words.begin(), req.review_words.end());
    r.review_modalities.insert(r.review_modalities.end(), req.review_modalities.begin(), req.review_modalities.end());
    return r;
}

std::string rules_to_json(const controller_rules & r) {
    json j = json::object();
    if (r.restrict_modalities) {
        json a = json::array();
        for (modality m : r.allowed) a.push_back(modality_name_lower(m));
        j["allowed_modalities"] = a;
    }
    if (r.max_items >= 0) j["max_items"] = r.max_items;
    json per = json::object();
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        if (r.max_per_modality[i] >= 0) per[modality_name_lower(static_cast<modality>(i))] = r.max_per_modality[i];
    }
    if (!per.empty()) j["max_items_per_modality"] = per;
    if (!r.blocked_words.empty()) j["blocked_words"] = r.blocked_words;
    if (r.quality.enabled) {
        j["quality"] = {{"min_score", r.quality.min_score},
                        {"max_retries", r.quality.max_retries},
                        {"on_fail", r.quality.drop_on_fail ? "drop" : "keep"}};
    }
    json rev = json::object();
    if (r.review_all) rev["all"] = true;
    if (!r.review_words.empty()) rev["words"] = r.review_words;
    if (!r.review_modalities.empty()) {
        json a = json::array();
        for (modality m : r.review_modalities) a.push_back(modality_name_lower(m));
        rev["modalities"] = a;
    }
    if (!rev.empty()) j["review"] = rev;
    return j.dump();
}

static std::string lower(const std::string & s) {
    std::string o = s;
    for (auto & c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
}

std::string find_listed_word(const std::string & text, const std::vector<std::string> & words) {
    const std::string t = lower(text);
    auto is_word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    for (const auto & w0 : words) {
        const std::string w = lower(w0);
        if (w.empty()) continue;
        for (size_t p = t.find(w); p != std::string::npos; p = t.find(w, p + 1)) {
            const bool left = p == 0 || !is_word_char(t[p - 1]);
            const bool right = p + w.size() >= t.size() || !is_word_char(t[p + w.size()]);
            if (left && right) return w0;
        }
    }
    return "";
}

bool rule_engine::admit(modality m, const std::string & t_prompt, std::vector<rule_decision> * d) {
    if (!r_.allows(m)) {
        d->push_back({"allowed_modalities", "block", std::string(modality_name_lower(m)) + " is not allowed"});
        return false;
    }
    const std::string w = find_listed_word(t_prompt, r_.blocked_words);
    if (!w.empty()) {
        d->push_back({"blocked_words", "block", "T-Prompt contains blocked word \"" + w + "\""});
        return false;
    }
    if (r_.max_per_modality[m] >= 0 && n_mod_[m] >= r_.max_per_modality[m]) {
        d->push_back({"max_items_per_modality", "block",
                      std::string("already ") + std::to_string(n_mod_[m]) + " " + modality_name_lower(m) +
                          " item(s), the limit is " + std::to_string(r_.max_per_modality[m])});
        return false;
    }
    if (r_.max_items >= 0 && n_items_ >= r_.max_items) {
        d->push_back(
            {"max_items", "block",
             "already " + std::to_string(n_items_) + " item(s), the limit is " + std::to_string(r_.max_items)});
        return false;
    }
    ++n_items_;
    ++n_mod_[m];
    d->push_back({"admission", "allow", std::string(modality_name_lower(m)) + " item " + std::to_string(n_items_)});
    return true;
}

bool rule_engine::review(modality m, const std::string & t_prompt, std::vector<rule_decision> * d) const {
    if (r_.review_all) {
        d->push_back({"review", "flag", "every item needs review"});
        return true;
    }
    if (std::find(r_.review_modalities.begin(), r_.review_modalities.end(), m) != r_.review_modalities.end()) {
        d->push_back({"review", "flag", std::string(modality_name_lower(m)) + " items need review"});
        return true;
    }
    const std::string w = find_listed_word(t_prompt, r_.review_words);
    if (!w.empty()) {
        d->push_back({"review", "flag", "T-Prompt mentions \"" + w + "\""});
        return true;
    }
    return false;
}

}  // namespace spider
