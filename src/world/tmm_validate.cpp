// TMM record validation (`spider data validate`) and statistics (`spider data stats`): UTF-8, JSON, fields, the
// answer grammar [OUTPUT] text ( <M> T-Prompt [M0]..[M{n-1}] </M> text )* [END], input placeholders, task-token
// consistency, targets, and referenced media files that must exist and decode. Every bad record is reported by
// line with the first problem found; the scan never stops early and never throws.
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "world/tmm.h"

namespace spider {

namespace {

// Returns the byte offset of the first invalid UTF-8 sequence, or -1.
int64_t utf8_invalid_at(const std::string & s) {
    size_t i = 0, n = s.size();
    while (i < n) {
        unsigned char c = s[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return (int64_t)i;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        for (int k = 1; k < len; ++k) {
            unsigned char d = s[i + k];
            if ((d >> 6) != 2) return (int64_t)i;
            cp = (cp << 6) | (d & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are invalid.
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return (int64_t)i;
        i += len;
    }
    return -1;
}

bool is_upper_word(const std::string & s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!((c >= 'A' && c <= 'Z') || c == '_' || c == '-')) return false;
    return true;
}

struct answer_group {
    int modality;
    std::string t_prompt;
    int n_signal;
};

// Parses an answer; fills groups, returns false with the reason.
bool parse_answer(const std::string & a, std::vector<answer_group> * groups, std::string * why) {
    groups->clear();
    const std::string OUT = "[OUTPUT]", END = "[END]";
    if (a.compare(0, OUT.size(), OUT) != 0) {
        *why = "answer does not start with [OUTPUT]";
        return false;
    }
    if (a.size() < OUT.size() + END.size() || a.compare(a.size() - END.size(), END.size(), END) != 0) {
        *why = "answer does not end with [END]";
        return false;
    }
    const std::string body = a.substr(OUT.size(), a.size() - OUT.size() - END.size());
    int open = -1;  // modality of the open group
    int state = 0;  // in group: 0 = reading T-Prompt, 1 = reading signals
    std::string t_prompt;
    int next_signal = 0;
    for (size_t i = 0; i < body.size();) {
        char c = body[i];
        if (c == '<' || c == '[') {
            char close = c == '<' ? '>' : ']';
            size_t e = body.find(close, i + 1);
            std::string inner = e == std::string::npos ? "" : body.substr(i + 1, e - i - 1);
            bool closing = c == '<' && !inner.empty() && inner[0] == '/';
            std::string name = closing ? inner.substr(1) : inner;
            if (c == '<' && is_upper_word(name)) {
                int m;
                if (!tmm_modality_from_name(name, &m)) {
                    *why = "unknown modality <" + inner + ">";
                    return false;
                }
                if (!closing) {
                    if (open >= 0) {
                        *why = "group <" + name + "> opened inside the open <" + tmm_modality_name(open) + "> group";
                        return false;
                    }
                    open = m;
                    state = 0;
                    t_prompt.clear();
                    next_signal = 0;
                } else {
                    if (open < 0) {
                        *why = "closing </" + name + "> without an open group";
                        return false;
                    }
                    if (m != open) {
                        *why = "group <" + std::string(tmm_modality_name(open)) + "> closed by </" + name + ">";
                        return false;
                    }
                    if (next_signal == 0) {
                        *why = "group <" + name + "> has no signal token [" + name + "0]";
                        return false;
                    }
                    groups->push_back({open, t_prompt, next_signal});
                    open = -1;
                }
                i = e + 1;
                continue;
            }
            if (c == '[' && e != std::string::npos) {
                // [M<k>] signal tokens, [OUTPUT]/[END] out of place, other upper-case tokens unknown.
                size_t d = inner.size();
                while (d > 0 && inner[d - 1] >= '0' && inner[d - 1] <= '9') --d;
                std::string base = inner.substr(0, d), num = inner.substr(d);
                int m;
                if (!num.empty() && tmm_modality_from_name(base, &m)) {
                    if (open < 0) {
                        *why = "signal token [" + inner + "] outside a group";
                        return false;
                    }
                    if (m != open) {
                        *why = "signal token [" + inner + "] inside a <" + tmm_modality_name(open) + "> group";
                        return false;
                    }
                    if (num != std::to_string(next_signal)) {
                        *why = "signal token [" + inner + "] out of order (expected [" + base +
                               std::to_string(next_signal) + "])";
                        return false;
                    }
                    size_t a0 = t_prompt.find_first_not_of(" \t"), a1 = t_prompt.find_last_not_of(" \t");
                    if (next_signal == 0) {
                        if (a0 == std::string::npos) {
                            *why = "group <" + base + "> has an empty T-Prompt";
                            return false;
                        }
                        t_prompt = t_prompt.substr(a0, a1 - a0 + 1);
                    }
                    state = 1;
                    ++next_signal;
                    i = e + 1;
                    continue;
                }
                if (inner == "OUTPUT" || inner == "END") {
                    *why = "[" + inner + "] in the middle of the answer";
                    return false;
                }
                if (is_upper_word(base) && !base.empty()) {
                    *why = "unknown token [" + inner + "]";
                    return false;
                }
            }
        }
        if (open >= 0) {
            if (state == 1) {
                if (c != ' ') {
                    *why = std::string("text after the signal tokens of a <") + tmm_modality_name(open) + "> group";
                    return false;
                }
            } else {
                if (c == '\n') {
                    *why = std::string("line break inside the T-Prompt of a <") + tmm_modality_name(open) + "> group";
                    return false;
                }
                t_prompt += c;
            }
        }
        ++i;
    }
    if (open >= 0) {
        *why = std::string("unclosed <") + tmm_modality_name(open) + "> group";
        return false;
    }
    return true;
}

// Input placeholders of a question, in order; false with the reason for a malformed one.
bool parse_question(const std::string & q, std::vector<int> * inputs, std::string * why) {
    inputs->clear();
    for (const char * tok : {"[OUTPUT]", "[END]"})
        if (q.find(tok) != std::string::npos) {
            *why = std::string("question contains ") + tok;
            return false;
        }
    for (size_t i = 0; i < q.size(); ++i) {
        if (q[i] != '<') continue;
        size_t e = q.find('>', i + 1);
        if (e == std::string::npos) break;
        std::string inner = q.substr(i + 1, e - i - 1);
        bool closing = !inner.empty() && inner[0] == '/';
        std::string name = closing ? inner.substr(1) : inner;
        bool ph = name.size() > 12 && name.compare(name.size() - 12, 12, "-Placeholder") == 0;
        if (ph) {
            // Wrapped placeholders are skipped whole below, so any placeholder seen here is bare or misplaced.
            *why = "placeholder <" + inner + "> outside an <" + name.substr(0, name.size() - 12) + "> wrapper";
            return false;
        }
        if (!is_upper_word(name)) continue;
        int m;
        if (!tmm_modality_from_name(name, &m)) {
            *why = "unknown tag <" + inner + "> in the question";
            return false;
        }
        if (closing || (m != TMM_IMAGE && m != TMM_VIDEO && m != TMM_AUDIO)) {
            *why = "tag <" + inner + "> in the question is not an input placeholder";
            return false;
        }
        std::string want = "<" + name + "><" + name + "-Placeholder></" + name + ">";
        if (q.compare(i, want.size(), want) != 0) {
            *why = "malformed placeholder for " + name + " (expected " + want + ")";
            return false;
        }
        inputs->push_back(m);
        i += want.size() - 1;
    }
    return true;
}

bool check_media_entry(const nlohmann::json & m, bool is_input, int * modality, std::string * why) {
    if (!m.is_object() || !m.contains("modality") || !m["modality"].is_string()) {
        *why = std::string(is_input ? "input" : "target") + " entry without a \"modality\" string";
        return false;
    }
    std::string name = m["modality"].get<std::string>();
    if (!tmm_modality_from_name(name, modality)) {
        *why = "unknown modality \"" + name + "\" in " + (is_input ? "Inputs" : "Targets");
        return false;
    }
    if (is_input && (*modality == TMM_BOX || *modality == TMM_MASK)) {
        *why = name + " cannot be an input";
        return false;
    }
    if (m.contains("file") && !m["file"].is_string()) {
        *why = "\"file\" must be a string";
        return false;
    }
    if (is_input && (!m.contains("file") || m["file"].get<std::string>().empty())) {
        *why = "input " + name + " without a file";
        return false;
    }
    if (!is_input && *modality == TMM_BOX) {
        const auto & b = m.contains("box") ? m["box"] : nlohmann::json();
        if (!b.is_array() || b.size() != 4) {
            *why = "BOX target without a 4-number \"box\"";
            return false;
        }
        int v[4];
        for (int k = 0; k < 4; ++k) {
            if (!b[k].is_number_integer()) {
                *why = "BOX target coordinates must be integers";
                return false;
            }
            v[k] = b[k].get<int>();
        }
        if (v[0] < 0 || v[1] < 0 || v[2] < v[0] || v[3] < v[1]) {
            *why = "BOX target [x0,y0,x1,y1] is not a valid box";
            return false;
        }
        if (m.contains("size") && m["size"].is_array() && m["size"].size() == 2 && m["size"][0].is_number_integer() &&
            m["size"][1].is_number_integer() && (v[2] >= m["size"][0].get<int>() || v[3] >= m["size"][1].get<int>())) {
            *why = "BOX target lies outside the image size";
            return false;
        }
    }
    if (!is_input && *modality == TMM_MASK && m.contains("file") &&
        (!m.contains("label") || !m["label"].is_number_integer() || m["label"].get<int>() < 1 ||
         m["label"].get<int>() > 255)) {
        *why = "MASK target needs an integer \"label\" 1..255";
        return false;
    }
    return true;
}

}  // namespace

bool utf8_valid(const std::string & s) {
    return utf8_invalid_at(s) < 0;
}

bool tmm_check_record(const nlohmann::json & j, std::string * why) {
    if (!j.is_object()) {
        *why = "record is not a JSON object";
        return false;
    }
    for (const char * k : {"Question", "TaskPrompt", "Answer"})
        if (!j.contains(k) || !j[k].is_string()) {
            *why = std::string("missing string field \"") + k + "\"";
            return false;
        }
    if (j.contains("id") && !j["id"].is_string()) {
        *why = "\"id\" must be a string";
        return false;
    }
    const std::string task = j["TaskPrompt"].get<std::string>();
    static const char * tasks[] = {"[TEXT]", "[IMAGE]", "[VIDEO]",           "[AUDIO]",
                                   "[BOX]",  "[MASK]",  "[SMARTMULTIMODAL]", "[SPECIFICMULTIMODAL]"};
    int task_idx = -1;
    for (int i = 0; i < 8; ++i)
        if (task == tasks[i]) task_idx = i;
    if (task_idx < 0) {
        *why = "unknown TaskPrompt \"" + task + "\"";
        return false;
    }
    std::vector<answer_group> groups;
    std::string w;
    if (!parse_answer(j["Answer"].get<std::string>(), &groups, &w)) {
        *why = w;
        return false;
    }
    // One signal count per modality within a record.
    int n_sig[TMM_MODALITY_COUNT] = {0};
    for (const auto & g : groups) {
        if (n_sig[g.modality] && n_sig[g.modality] != g.n_signal) {
            *why = std::string("<") + tmm_modality_name(g.modality) + "> groups with different signal token counts";
            return false;
        }
        n_sig[g.modality] = g.n_signal;
    }
    if (task_idx == 0 && !groups.empty()) {
        *why = "TaskPrompt [TEXT] but the answer has media groups";
        return false;
    }
    if (task_idx >= 1 && task_idx <= 5) {
        int want = task_idx == 1   ? TMM_IMAGE
                   : task_idx == 2 ? TMM_VIDEO
                   : task_idx == 3 ? TMM_AUDIO
                   : task_idx == 4 ? TMM_BOX
                                   : TMM_MASK;
        if (groups.empty()) {
            *why = "TaskPrompt " + task + " but the answer has no group";
            return false;
        }
        for (const auto & g : groups)
            if (g.modality != want) {
                *why = "TaskPrompt " + task + " but the answer has a <" + tmm_modality_name(g.modality) + "> group";
                return false;
            }
    }
    if (task_idx == 7 && groups.empty()) {
        *why = "TaskPrompt [SPECIFICMULTIMODAL] but the answer has no group";
        return false;
    }
    std::vector<int> placeholders;
    if (!parse_question(j["Question"].get<std::string>(), &placeholders, &w)) {
        *why = w;
        return false;
    }
    std::vector<int> input_mods, target_mods;
    if (j.contains("Inputs")) {
        if (!j["Inputs"].is_array()) {
            *why = "\"Inputs\" must be an array";
            return false;
        }
        for (const auto & m : j["Inputs"]) {
            int mod;
            if (!check_media_entry(m, true, &mod, why)) return false;
            input_mods.push_back(mod);
        }
    }
    if (input_mods != placeholders) {
        *why = "the question has " + std::to_string(placeholders.size()) + " input placeholder(s) but Inputs lists " +
               std::to_string(input_mods.size()) + " item(s) (or their modalities differ)";
        return false;
    }
    if (j.contains("Targets")) {
        if (!j["Targets"].is_array()) {
            *why = "\"Targets\" must be an array";
            return false;
        }
        for (const auto & m : j["Targets"]) {
            int mod;
            if (!check_media_entry(m, false, &mod, why)) return false;
            target_mods.push_back(mod);
        }
        if (!target_mods.empty()) {
            std::vector<int> gm;
            for (const auto & g : groups) gm.push_back(g.modality);
            if (gm != target_mods) {
                *why = "Targets do not match the answer's groups (count or modality order)";
                return false;
            }
        }
    }
    return true;
}

static std::string dir_of(const std::string & path) {
    size_t s = path.find_last_of('/');
    return s == std::string::npos ? "." : s == 0 ? "/" : path.substr(0, s);
}

bool tmm_validate_file(const std::string & path, const tmm_validate_options & o, tmm_validate_result * out,
                       std::string * err) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (err) *err = "cannot open '" + path + "'";
        return false;
    }
    *out = tmm_validate_result();
    const std::string base = dir_of(path);
    std::unordered_map<std::string, std::string> decoded;  // path -> "" (ok) or the decode error
    auto check_file = [&](const std::string & file, int modality, std::string * why) {
        std::string full = !file.empty() && file[0] == '/' ? file : base + "/" + file;
        auto it = decoded.find(full);
        if (it == decoded.end()) {
            std::string e;
            bool ok = false;
            std::vector<uint8_t> bytes;
            if (!file_read_all(full, &bytes, &e)) {
                e = "missing file '" + file + "'";
            } else if (!o.decode_media) {
                ok = true;
            } else if (modality == TMM_IMAGE || modality == TMM_MASK) {
                image_u8 img;
                ok = image_decode(bytes.data(), bytes.size(), &img, &e);
            } else if (modality == TMM_AUDIO) {
                audio_f32 a;
                ok = audio_decode(bytes.data(), bytes.size(), &a, &e);
            } else {
                video_u8 v;
                ok = video_decode(bytes.data(), bytes.size(), &v, &e);
            }
            if (!ok && e.find(file) == std::string::npos) e = "file '" + file + "' does not decode: " + e;
            it = decoded.emplace(full, ok ? std::string() : e).first;
        }
        if (!it->second.empty()) {
            *why = it->second;
            return false;
        }
        return true;
    };
    std::string line;
    int64_t ln = 0;
    while (std::getline(f, line)) {
        ++ln;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        ++out->records;
        std::string why, id;
        int64_t bad_utf8 = utf8_invalid_at(line);
        bool ok = true;
        if (bad_utf8 >= 0) {
            why = "invalid UTF-8 at byte " + std::to_string(bad_utf8);
            ok = false;
        }
        nlohmann::json j;
        if (ok) {
            j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_discarded()) {
                why = "not valid JSON";
                ok = false;
            }
        }
        if (ok && j.is_object() && j.contains("id") && j["id"].is_string()) id = j["id"].get<std::string>();
        if (ok) ok = tmm_check_record(j, &why);
        if (ok) {
            for (const char * key : {"Inputs", "Targets"}) {
                if (!ok || !j.contains(key)) continue;
                for (const auto & m : j[key]) {
                    if (!m.contains("file")) continue;
                    int mod = 0;
                    tmm_modality_from_name(m["modality"].get<std::string>(), &mod);
                    if (!check_file(m["file"].get<std::string>(), mod, &why)) {
                        ok = false;
                        break;
                    }
                }
            }
        }
        if (!ok) {
            ++out->bad_records;
            if ((int)out->issues.size() < o.max_issues) out->issues.push_back({ln, id, why});
        }
    }
    return true;
}

// ---- stats ---------------------------------------------------------------------------------------------------

bool tmm_stats_file(const std::string & path, tmm_stats * s, std::string * err) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (err) *err = "cannot open '" + path + "'";
        return false;
    }
    *s = tmm_stats();
    std::string line;
    while (std::getline(f, line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        std::vector<answer_group> groups;
        std::string why;
        if (j.is_discarded() || !j.is_object() || !j.contains("Answer") || !j["Answer"].is_string() ||
            !parse_answer(j["Answer"].get<std::string>(), &groups, &why)) {
            ++s->bad_lines;
            continue;
        }
        ++s->records;
        auto str = [&](const char * k) {
            return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string("(none)");
        };
        s->per_family[str("family")]++;
        s->per_task[str("TaskPrompt")]++;
        for (const auto & g : groups) s->groups_per_modality[tmm_modality_name(g.modality)]++;
        s->groups_per_record[(int)groups.size()]++;
        if (j.contains("Inputs") && j["Inputs"].is_array())
            for (const auto & m : j["Inputs"])
                if (m.is_object() && m.contains("modality") && m["modality"].is_string())
                    s->inputs_per_modality[m["modality"].get<std::string>()]++;
        const std::string a = j["Answer"].get<std::string>();
        s->answer_chars += (int64_t)a.size();
        s->answer_chars_max = std::max<int64_t>(s->answer_chars_max, (int64_t)a.size());
        if (j.contains("Question") && j["Question"].is_string())
            s->question_chars += (int64_t)j["Question"].get<std::string>().size();
        std::istringstream ws(a);
        std::string w;
        while (ws >> w) ++s->answer_words;
    }
    return true;
}

nlohmann::json tmm_stats::to_json() const {
    nlohmann::json hist = nlohmann::json::object();
    for (const auto & kv : groups_per_record) hist[std::to_string(kv.first)] = kv.second;
    double n = records ? (double)records : 1.0;
    return {{"records", records},
            {"bad_lines", bad_lines},
            {"per_family", per_family},
            {"per_task", per_task},
            {"groups_per_modality", groups_per_modality},
            {"inputs_per_modality", inputs_per_modality},
            {"groups_per_record", hist},
            {"answer_chars_mean", answer_chars / n},
            {"answer_chars_max", answer_chars_max},
            {"answer_words_mean", answer_words / n},
            {"question_chars_mean", question_chars / n}};
}

std::string tmm_stats::to_string() const {
    std::ostringstream o;
    double n = records ? (double)records : 1.0;
    o << "records: " << records << " (unparseable lines: " << bad_lines << ")\n";
    o << "families:\n";
    for (const auto & kv : per_family) o << "  " << kv.first << ": " << kv.second << "\n";
    o << "task prompts:\n";
    for (const auto & kv : per_task) o << "  " << kv.first << ": " << kv.second << "\n";
    o << "groups per modality:\n";
    for (const auto & kv : groups_per_modality) o << "  " << kv.first << ": " << kv.second << "\n";
    o << "inputs per modality:\n";
    for (const auto & kv : inputs_per_modality) o << "  " << kv.first << ": " << kv.second << "\n";
    o << "groups per record:";
    for (const auto & kv : groups_per_record) o << " " << kv.first << ":" << kv.second;
    o << "\nanswer length: mean " << answer_chars / n << " chars, max " << answer_chars_max << " chars, mean "
      << answer_words / n << " words\nquestion length: mean " << question_chars / n << " chars\n";
    return o.str();
}

}  // namespace spider
