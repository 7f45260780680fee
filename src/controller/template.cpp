// The Any-to-Many Instruction Template: token spellings, input layout, grammar text and the streaming parser.
#include "controller/template.h"

#include <algorithm>
#include <cctype>

namespace spider {

static const char * k_names[MODALITY_COUNT] = {"IMAGE", "VIDEO", "AUDIO", "BOX", "MASK"};
static const char * k_names_lower[MODALITY_COUNT] = {"image", "video", "audio", "box", "mask"};

const char * modality_name(modality m) {
    return (m >= 0 && m < MODALITY_COUNT) ? k_names[m] : "UNKNOWN";
}
const char * modality_name_lower(modality m) {
    return (m >= 0 && m < MODALITY_COUNT) ? k_names_lower[m] : "unknown";
}

bool modality_from_name(const std::string & name, modality * out) {
    std::string up;
    for (char c : name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        if (up == k_names[i]) {
            *out = static_cast<modality>(i);
            return true;
        }
    }
    return false;
}

static std::string trim(const std::string & s) {
    size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
}

bool modality_list_from_string(const std::string & s, std::vector<modality> * out, std::string * err) {
    out->clear();
    size_t start = 0;
    while (start <= s.size()) {
        size_t comma = s.find(',', start);
        if (comma == std::string::npos) comma = s.size();
        std::string item = trim(s.substr(start, comma - start));
        if (!item.empty()) {
            modality m;
            if (!modality_from_name(item, &m)) {
                if (err)
                    *err = "[modalities] unknown modality '" + item + "' (expected image, video, audio, box, mask)";
                return false;
            }
            if (std::find(out->begin(), out->end(), m) == out->end()) out->push_back(m);
        }
        start = comma + 1;
    }
    return true;
}

template_config template_config::class_default() {
    template_config c;
    c.n_signal[MODALITY_IMAGE] = 4;
    c.n_signal[MODALITY_VIDEO] = 24;
    c.n_signal[MODALITY_AUDIO] = 8;
    c.n_signal[MODALITY_BOX] = 1;
    c.n_signal[MODALITY_MASK] = 1;
    return c;
}

std::string tag_open(modality m) {
    return std::string("<") + modality_name(m) + ">";
}
std::string tag_close(modality m) {
    return std::string("</") + modality_name(m) + ">";
}
std::string signal_token(modality m, int i) {
    return std::string("[") + modality_name(m) + std::to_string(i) + "]";
}
std::string placeholder_token(modality m) {
    return std::string("<") + modality_name(m) + "-Placeholder>";
}
std::string task_token(modality m) {
    return std::string("[") + modality_name(m) + "]";
}

static bool is_input_modality(modality m) {
    return m == MODALITY_IMAGE || m == MODALITY_VIDEO || m == MODALITY_AUDIO;
}

std::vector<std::string> template_added_tokens(const template_config & cfg) {
    std::vector<std::string> t;
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        modality m = static_cast<modality>(i);
        t.push_back(tag_open(m));
        t.push_back(tag_close(m));
        for (int k = 0; k < cfg.n_signal[i]; ++k) t.push_back(signal_token(m, k));
    }
    t.push_back(TOKEN_INPUT);
    t.push_back(TOKEN_OUTPUT);
    t.push_back(TOKEN_END);
    t.push_back(TOKEN_TASK_TEXT);
    for (int i = 0; i < MODALITY_COUNT; ++i) t.push_back(task_token(static_cast<modality>(i)));
    t.push_back(TOKEN_TASK_SMART);
    t.push_back(TOKEN_TASK_SPECIFIC);
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        if (is_input_modality(static_cast<modality>(i))) t.push_back(placeholder_token(static_cast<modality>(i)));
    }
    return t;
}

std::string task_token_for(const std::vector<modality> & choices, bool smart) {
    if (smart) return TOKEN_TASK_SMART;
    std::vector<modality> uniq;
    for (modality m : choices) {
        if (std::find(uniq.begin(), uniq.end(), m) == uniq.end()) uniq.push_back(m);
    }
    if (uniq.empty()) return TOKEN_TASK_TEXT;
    if (uniq.size() == 1) return task_token(uniq[0]);
    return TOKEN_TASK_SPECIFIC;
}

std::string input_layout::to_string() const {
    std::string s;
    for (const auto & seg : segments) s += seg.is_media ? placeholder_token(seg.media.m) : seg.text;
    return s;
}

static void push_text(input_layout * out, const std::string & s) {
    if (s.empty()) return;
    if (!out->segments.empty() && !out->segments.back().is_media) {
        out->segments.back().text += s;
        return;
    }
    layout_segment seg;
    seg.text = s;
    out->segments.push_back(seg);
}

static void push_media(input_layout * out, const input_media & im) {
    push_text(out, tag_open(im.m));
    layout_segment seg;
    seg.is_media = true;
    seg.media = im;
    out->segments.push_back(seg);
    push_text(out, tag_close(im.m));
}

bool build_input_layout(const std::string & question, const std::vector<input_media> & media, const std::string & task,
                        input_layout * out, std::string * err) {
    *out = input_layout();
    out->task = task;
    for (const auto & im : media) {
        if (!is_input_modality(im.m)) {
            if (err)
                *err = std::string("[layout] ") + modality_name(im.m) + " cannot be an input (image, video, audio)";
            return false;
        }
    }
    // Explicit markers in the question take media of their kind in order; the rest go in front.
    static const char * markers[3] = {"<image>", "<video>", "<audio>"};
    static const modality marker_m[3] = {MODALITY_IMAGE, MODALITY_VIDEO, MODALITY_AUDIO};
    std::vector<bool> used(media.size(), false);
    struct hit {
        size_t pos;
        int kind;
    };
    std::vector<hit> hits;
    for (int k = 0; k < 3; ++k) {
        for (size_t p = question.find(markers[k]); p != std::string::npos; p = question.find(markers[k], p + 1)) {
            hits.push_back({p, k});
        }
    }
    std::sort(hits.begin(), hits.end(), [](const hit & a, const hit & b) { return a.pos < b.pos; });
    std::vector<int> assign(hits.size(), -1);
    for (size_t h = 0; h < hits.size(); ++h) {
        for (size_t i = 0; i < media.size(); ++i) {
            if (!used[i] && media[i].m == marker_m[hits[h].kind]) {
                used[i] = true;
                assign[h] = static_cast<int>(i);
                break;
            }
        }
        if (assign[h] < 0) {
            if (err)
                *err = std::string("[layout] the question has more ") + markers[hits[h].kind] + " markers than " +
                       modality_name_lower(marker_m[hits[h].kind]) + " inputs";
            return false;
        }
    }
    push_text(out, TOKEN_INPUT);
    bool front = false;
    for (size_t i = 0; i < media.size(); ++i) {
        if (!used[i]) {
            push_media(out, media[i]);
            front = true;
        }
    }
    // Media placed in front are separated from the question by one space, as in the TMM records the LLM is tuned on
    // (`<IMAGE><IMAGE-Placeholder></IMAGE> Write ...`, src/world/tmm_build.cpp).
    if (front && !question.empty() && !std::isspace(static_cast<unsigned char>(question[0]))) push_text(out, " ");
    size_t cur = 0;
    for (size_t h = 0; h < hits.size(); ++h) {
        push_text(out, question.substr(cur, hits[h].pos - cur));
        push_media(out, media[assign[h]]);
        cur = hits[h].pos + std::string(markers[hits[h].kind]).size();
    }
    push_text(out, question.substr(cur));
    push_text(out, task);
    return true;
}

static std::string gbnf_literal(const std::string & s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        o += c;
    }
    return o + "\"";
}

std::string template_grammar(const std::vector<modality> & allowed, const template_config & cfg) {
    std::string g;
    g += "# Spider Any-to-Many output template (generated by spider::template_grammar)\n";
    g += "root ::= " + gbnf_literal(TOKEN_OUTPUT) + " text";
    std::vector<modality> mods;
    for (modality m : allowed) {
        if (m >= 0 && m < MODALITY_COUNT && std::find(mods.begin(), mods.end(), m) == mods.end()) mods.push_back(m);
    }
    if (!mods.empty()) g += " ( group text )*";
    g += " " + gbnf_literal(TOKEN_END) + "\n";
    g += "text ::= [^<\\[]*\n";
    g += "tprompt ::= [^<\\[\\n]+\n";
    if (!mods.empty()) {
        g += "group ::= ";
        for (size_t i = 0; i < mods.size(); ++i) {
            if (i) g += " | ";
            g += std::string(modality_name_lower(mods[i])) + "-group";
        }
        g += "\n";
        for (modality m : mods) {
            g += std::string(modality_name_lower(m)) + "-group ::= " + gbnf_literal(tag_open(m)) + " tprompt";
            int n = std::max(1, cfg.n_signal[m]);
            for (int k = 0; k < n; ++k) g += " " + gbnf_literal(signal_token(m, k));
            g += " " + gbnf_literal(tag_close(m)) + "\n";
        }
    }
    return g;
}

// ---- streaming parser ----

output_parser::output_parser(const template_config & cfg) : cfg_(cfg) {
    markers_.push_back(TOKEN_OUTPUT);
    markers_.push_back(TOKEN_END);
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        modality m = static_cast<modality>(i);
        markers_.push_back(tag_open(m));
        markers_.push_back(tag_close(m));
        for (int k = 0; k < std::max(1, cfg_.n_signal[i]); ++k) markers_.push_back(signal_token(m, k));
    }
}

std::vector<parse_event> output_parser::feed(const std::string & piece, int pos) {
    std::vector<parse_event> ev;
    for (char c : piece) on_char(c, pos, ev);
    // Stream answer text as soon as it cannot be part of a marker.
    if (!in_group_) flush_text(ev);
    return ev;
}

void output_parser::on_char(char c, int pos, std::vector<parse_event> & ev) {
    if (pending_.empty() && c != '<' && c != '[') {
        on_text(std::string(1, c), ev);
        return;
    }
    if (pending_.empty()) pending_pos_ = pos;
    pending_ += c;
    bool prefix = false;
    for (const auto & mk : markers_) {
        if (mk == pending_) {
            std::string m = pending_;
            pending_.clear();
            // A marker's position is the position of the piece that completes it: with one token per marker
            // (added tokens) that is the marker's own token.
            on_marker(m, pos, ev);
            return;
        }
        if (mk.compare(0, pending_.size(), pending_) == 0) prefix = true;
    }
    if (prefix) return;
    // Not a marker: its first character is text; the rest may still start one.
    std::string rest = pending_.substr(1);
    on_text(pending_.substr(0, 1), ev);
    pending_.clear();
    for (char r : rest) on_char(r, pos, ev);
}

static bool all_space(const std::string & s) {
    for (char c : s) {
        if (!std::isspace(static_cast<unsigned char>(c))) return false;
    }
    return true;
}

static void warn(std::vector<parse_event> & ev, const std::string & msg) {
    parse_event e;
    e.kind = parse_event::WARNING;
    e.text = msg;
    ev.push_back(e);
}

void output_parser::on_text(const std::string & s, std::vector<parse_event> & ev) {
    if (ended_) {
        if (!all_space(s) && !warned_after_end_) {
            warned_after_end_ = true;
            warn(ev, "text after [END] ignored");
        }
        return;
    }
    if (in_group_) {
        if (after_signal_) {
            if (!all_space(s) && group_err_.empty()) group_err_ = "text after the signal tokens";
            return;
        }
        cur_.t_prompt += s;
        return;
    }
    if (!started_ && !all_space(s) && !warned_no_output_) {
        warned_no_output_ = true;
        warn(ev, "answer text before [OUTPUT]");
    }
    text_ += s;
}

void output_parser::flush_text(std::vector<parse_event> & ev) {
    if (text_.empty()) return;
    parse_event e;
    e.kind = parse_event::TEXT;
    e.text = text_;
    text_.clear();
    ev.push_back(e);
}

void output_parser::close_group(bool ok, const std::string & error, std::vector<parse_event> & ev) {
    cur_.t_prompt = trim(cur_.t_prompt);
    cur_.ok = ok;
    cur_.error = error;
    parse_event e;
    e.kind = parse_event::GROUP;
    e.group = cur_;
    ev.push_back(e);
    ++n_groups_;
    in_group_ = false;
    after_signal_ = false;
    group_err_.clear();
    cur_ = parsed_group();
}

void output_parser::on_marker(const std::string & mk, int pos, std::vector<parse_event> & ev) {
    if (ended_) {
        if (!warned_after_end_) {
            warned_after_end_ = true;
            warn(ev, "output after [END] ignored (" + mk + ")");
        }
        return;
    }
    if (mk == TOKEN_OUTPUT) {
        if (started_) warn(ev, "repeated [OUTPUT] ignored");
        started_ = true;
        return;
    }
    if (mk == TOKEN_END) {
        if (in_group_) close_group(false, std::string("group ") + tag_open(cur_.m) + " not closed before [END]", ev);
        flush_text(ev);
        ended_ = true;
        parse_event e;
        e.kind = parse_event::END;
        ev.push_back(e);
        return;
    }
    for (int i = 0; i < MODALITY_COUNT; ++i) {
        modality m = static_cast<modality>(i);
        if (mk == tag_open(m)) {
            if (in_group_) {
                close_group(false, std::string("group ") + tag_open(cur_.m) + " not closed before " + mk, ev);
            }
            flush_text(ev);
            cur_ = parsed_group();
            cur_.index = n_groups_;
            cur_.m = m;
            in_group_ = true;
            after_signal_ = false;
            group_err_.clear();
            return;
        }
        if (mk == tag_close(m)) {
            if (!in_group_) {
                warn(ev, "stray " + mk + " outside a group ignored");
                return;
            }
            std::string e = group_err_;
            if (e.empty() && m != cur_.m) e = std::string("group ") + tag_open(cur_.m) + " closed by " + mk;
            int want = std::max(1, cfg_.n_signal[cur_.m]);
            if (e.empty() && static_cast<int>(cur_.signal_positions.size()) != want) {
                e = "expected " + std::to_string(want) + " signal token(s) " + signal_token(cur_.m, 0) + "..., got " +
                    std::to_string(cur_.signal_positions.size());
            }
            if (e.empty() && trim(cur_.t_prompt).empty()) e = "empty T-Prompt";
            close_group(e.empty(), e, ev);
            return;
        }
        for (int k = 0; k < std::max(1, cfg_.n_signal[i]); ++k) {
            if (mk != signal_token(m, k)) continue;
            if (!in_group_) {
                warn(ev, "signal token " + mk + " outside a group ignored");
                return;
            }
            if (m != cur_.m) {
                if (group_err_.empty()) group_err_ = "signal token " + mk + " inside a " + tag_open(cur_.m) + " group";
                return;
            }
            if (k != static_cast<int>(cur_.signal_positions.size())) {
                if (group_err_.empty()) group_err_ = "signal token " + mk + " out of order";
                return;
            }
            cur_.signal_positions.push_back(pos);
            after_signal_ = true;
            return;
        }
    }
}

std::vector<parse_event> output_parser::finish() {
    std::vector<parse_event> ev;
    if (!pending_.empty()) {
        std::string p = pending_;
        pending_.clear();
        on_text(p, ev);
    }
    if (in_group_) close_group(false, std::string("output ended inside a ") + tag_open(cur_.m) + " group", ev);
    flush_text(ev);
    if (!ended_) warn(ev, "output ended without [END]");
    return ev;
}

std::vector<parse_event> parse_output(const std::string & answer, const template_config & cfg) {
    output_parser p(cfg);
    std::vector<parse_event> all = p.feed(answer, -1);
    std::vector<parse_event> tail = p.finish();
    all.insert(all.end(), tail.begin(), tail.end());
    return all;
}

}  // namespace spider
