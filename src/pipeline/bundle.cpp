// Response bundle writer: media files with provenance, manifest.json (schema v1) and a self-contained index.html.
#include "pipeline/bundle.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace spider {

using nlohmann::json;

bool bundle_make_dirs(const std::string & dir, std::string * err) {
    if (dir.empty()) return true;
    std::string cur;
    std::stringstream ss(dir);
    std::string part;
    if (dir[0] == '/') cur = "/";
    while (std::getline(ss, part, '/')) {
        if (part.empty()) continue;
        cur += part + "/";
        if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
            if (err) *err = "[bundle] cannot create directory " + cur + ": " + std::strerror(errno);
            return false;
        }
    }
    return true;
}

bool bundle_write_file_atomic(const std::string & path, const std::string & data, std::string * err) {
    const size_t slash = path.rfind('/');
    if (slash != std::string::npos && !bundle_make_dirs(path.substr(0, slash), err)) return false;
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    FILE * f = std::fopen(tmp.c_str(), "wb");
    if (!f) {
        if (err) *err = "[bundle] cannot write " + tmp + ": " + std::strerror(errno);
        return false;
    }
    const bool ok =
        std::fwrite(data.data(), 1, data.size(), f) == data.size() && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
    std::fclose(f);
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        if (err) *err = "[bundle] cannot write " + path + ": " + std::strerror(errno);
        std::remove(tmp.c_str());
        return false;
    }
    return true;
}

std::string response::text() const {
    std::string t;
    for (const auto & p : parts) {
        if (!p.is_item) {
            t += p.text;
        } else if (p.item >= 0 && p.item < static_cast<int>(items.size())) {
            t += std::string("[") + modality_name_lower(items[p.item].m) + " #" + std::to_string(p.item) + "]";
        }
    }
    return t;
}

static json decisions_json(const std::vector<rule_decision> & d) {
    json a = json::array();
    for (const auto & x : d) a.push_back({{"rule", x.rule}, {"action", x.action}, {"detail", x.detail}});
    return a;
}

std::string manifest_json(const response & r) {
    json j;
    j["schema"] = "spider.response";
    j["version"] = r.version;
    j["id"] = r.id;
    j["model"] = r.model;
    j["generator"] = r.generator;
    j["ai_generated"] = true;
    json req;
    req["prompt"] = r.prompt;
    req["task_token"] = r.task_token;
    req["seed"] = r.seed;
    json inputs = json::array();
    for (const auto & in : r.inputs) inputs.push_back({{"modality", in.first}, {"path", in.second}});
    req["inputs"] = inputs;
    j["request"] = req;
    j["text"] = r.text();
    json parts = json::array();
    for (const auto & p : r.parts) {
        if (p.is_item) {
            parts.push_back({{"type", "item"}, {"item", p.item}});
        } else {
            parts.push_back({{"type", "text"}, {"text", p.text}});
        }
    }
    j["answer"] = parts;
    json items = json::array();
    for (const auto & it : r.items) {
        json ji;
        ji["id"] = it.id;
        ji["group"] = it.group_index;
        ji["modality"] = modality_name_lower(it.m);
        ji["t_prompt"] = it.t_prompt;
        ji["status"] = it.status;
        if (!it.error.empty()) ji["error"] = it.error;
        ji["seed"] = it.seed;
        ji["attempts"] = it.attempts;
        if (it.quality >= 0) ji["quality_score"] = it.quality;
        ji["needs_review"] = it.needs_review;
        if (!it.decoder.empty()) ji["decoder"] = it.decoder;
        ji["decisions"] = decisions_json(it.decisions);
        if (!it.router_weights.empty()) ji["router_weights"] = it.router_weights;
        json files = json::array();
        for (const auto & f : it.files) files.push_back({{"role", f.role}, {"path", f.path}, {"mime", f.mime}});
        ji["files"] = files;
        if (!it.boxes.empty()) {
            json bx = json::array();
            for (const auto & b : it.boxes) {
                bx.push_back(
                    {{"x0", b.x0}, {"y0", b.y0}, {"x1", b.x1}, {"y1", b.y1}, {"score", b.score}, {"label", b.label}});
            }
            ji["boxes"] = bx;
        }
        ji["timings_ms"] = it.timings_ms;
        items.push_back(ji);
    }
    j["items"] = items;
    j["warnings"] = r.warnings;
    j["decisions"] = decisions_json(r.decisions);
    j["needs_review"] = r.needs_review;
    j["review_reasons"] = r.review_reasons;
    j["rules"] = json::parse(r.rules_json, nullptr, false);
    j["timings_ms"] = r.timings_ms;
    return j.dump(2);
}

bool manifest_parse(const std::string & text, response * out, std::string * err) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        if (err) *err = "[manifest] not a JSON object";
        return false;
    }
    try {
        if (j.value("schema", "") != "spider.response") {
            if (err) *err = "[manifest] schema is not spider.response";
            return false;
        }
        if (j.at("version").get<int>() != BUNDLE_VERSION) {
            if (err) *err = "[manifest] unsupported version " + j.at("version").dump();
            return false;
        }
        response r;
        r.id = j.value("id", "");
        r.model = j.value("model", "");
        r.generator = j.value("generator", "");
        r.prompt = j.at("request").value("prompt", "");
        r.task_token = j.at("request").value("task_token", "");
        r.seed = j.at("request").value("seed", 0ull);
        for (const auto & p : j.at("answer")) {
            answer_part ap;
            ap.is_item = p.at("type") == "item";
            if (ap.is_item) {
                ap.item = p.at("item").get<int>();
            } else {
                ap.text = p.at("text").get<std::string>();
            }
            r.parts.push_back(ap);
        }
        for (const auto & ji : j.at("items")) {
            response_item it;
            it.id = ji.at("id").get<int>();
            it.group_index = ji.value("group", 0);
            if (!modality_from_name(ji.at("modality").get<std::string>(), &it.m)) {
                if (err) *err = "[manifest] bad modality " + ji.at("modality").dump();
                return false;
            }
            it.t_prompt = ji.value("t_prompt", "");
            it.status = ji.at("status").get<std::string>();
            it.error = ji.value("error", "");
            it.seed = ji.value("seed", 0ull);
            it.attempts = ji.value("attempts", 0);
            it.quality = ji.value("quality_score", -1.0f);
            it.needs_review = ji.value("needs_review", false);
            it.decoder = ji.value("decoder", "");
            for (const auto & d : ji.at("decisions")) {
                it.decisions.push_back({d.at("rule"), d.at("action"), d.at("detail")});
            }
            for (const auto & f : ji.at("files")) it.files.push_back({f.at("role"), f.at("path"), f.at("mime")});
            if (ji.contains("boxes")) {
                for (const auto & b : ji.at("boxes")) {
                    box_item bi;
                    bi.x0 = b.at("x0");
                    bi.y0 = b.at("y0");
                    bi.x1 = b.at("x1");
                    bi.y1 = b.at("y1");
                    bi.score = b.at("score");
                    bi.label = b.value("label", "");
                    it.boxes.push_back(bi);
                }
            }
            it.timings_ms = ji.at("timings_ms").get<std::map<std::string, double>>();
            r.items.push_back(it);
        }
        r.warnings = j.at("warnings").get<std::vector<std::string>>();
        for (const auto & d : j.at("decisions")) r.decisions.push_back({d.at("rule"), d.at("action"), d.at("detail")});
        r.needs_review = j.at("needs_review").get<bool>();
        r.review_reasons = j.at("review_reasons").get<std::vector<std::string>>();
        r.rules_json = j.at("rules").dump();
        r.timings_ms = j.at("timings_ms").get<std::map<std::string, double>>();
        *out = r;
    } catch (const std::exception & e) {
        if (err) *err = std::string("[manifest] ") + e.what();
        return false;
    }
    return true;
}

// ---- media ----

static media_metadata provenance(const std::string & model, const response_item & it) {
    return {{"model", model},
            {"seed", std::to_string(it.seed)},
            {"prompt", it.t_prompt},
            {"modality", modality_name_lower(it.m)},
            {"ai_generated", "true"},
            {"generator", "spider"},
            // Standard keys as well: containers such as MP4 keep only the tags they know (title, comment).
            {"title", it.t_prompt},
            {"comment", "AI-generated by Spider; model=" + model + "; seed=" + std::to_string(it.seed) +
                            "; prompt=" + it.t_prompt}};
}

static image_u8 to_rgb(const image_u8 & in) {
    if (in.channels == 3) return in;
    image_u8 o;
    o.width = in.width;
    o.height = in.height;
    o.channels = 3;
    o.pixels.resize(static_cast<size_t>(in.width) * in.height * 3);
    for (size_t i = 0; i < static_cast<size_t>(in.width) * in.height; ++i) {
        for (int c = 0; c < 3; ++c) o.pixels[i * 3 + c] = in.pixels[i * in.channels + (in.channels == 1 ? 0 : c)];
    }
    return o;
}

static void draw_rect(image_u8 & im, const box_item & b, const uint8_t col[3]) {
    const int x0 = std::max(0, static_cast<int>(b.x0)), y0 = std::max(0, static_cast<int>(b.y0));
    const int x1 = std::min(im.width - 1, static_cast<int>(b.x1) - 1),
              y1 = std::min(im.height - 1, static_cast<int>(b.y1) - 1);
    if (x1 < x0 || y1 < y0) return;
    const int th = std::max(1, std::min(im.width, im.height) / 100);
    for (int y = y0; y <= y1; ++y) {
        for (int x = x0; x <= x1; ++x) {
            const bool edge = x - x0 < th || x1 - x < th || y - y0 < th || y1 - y < th;
            if (!edge) continue;
            for (int c = 0; c < 3; ++c) im.pixels[(static_cast<size_t>(y) * im.width + x) * 3 + c] = col[c];
        }
    }
}

static image_u8 blank_canvas(int w, int h) {
    image_u8 im;
    im.width = w;
    im.height = h;
    im.channels = 3;
    im.pixels.assign(static_cast<size_t>(w) * h * 3, 200);
    return im;
}

bool bundle_write_item(const std::string & dir, const decode_result & res, const image_u8 * input_image,
                       const std::string & model, response_item * item, std::string * err,
                       const std::string & video_format) {
    char stem[64];
    std::snprintf(stem, sizeof stem, "items/item_%03d_%s", item->id, modality_name_lower(item->m));
    const std::string base = std::string(stem);
    if (!bundle_make_dirs(dir + "/items", err)) return false;
    const media_metadata meta = provenance(model, *item);
    std::string e;
    switch (res.m) {
        case MODALITY_IMAGE:
            if (!image_write_png(dir + "/" + base + ".png", res.image, meta, &e)) break;
            item->files.push_back({"media", base + ".png", "image/png"});
            return true;
        case MODALITY_AUDIO:
            if (!audio_write_wav(dir + "/" + base + ".wav", res.audio, meta, &e)) break;
            item->files.push_back({"media", base + ".wav", "audio/wav"});
            return true;
        case MODALITY_VIDEO:
            if (video_format != "mp4" && video_format != "webm") {
                e = "unknown video format " + video_format + " (mp4 or webm)";
                break;
            }
            if (!video_write(dir + "/" + base + "." + video_format, res.video, meta, &e)) break;
            item->files.push_back({"media", base + "." + video_format, "video/" + video_format});
            return true;
        case MODALITY_BOX:
        case MODALITY_MASK: {
            item->boxes = res.boxes;
            json bx = json::array();
            for (const auto & b : res.boxes) {
                bx.push_back(
                    {{"x0", b.x0}, {"y0", b.y0}, {"x1", b.x1}, {"y1", b.y1}, {"score", b.score}, {"label", b.label}});
            }
            // Boxes without an input image refer to the decoder's canvas.
            const int W =
                res.m == MODALITY_MASK ? res.mask.width : (input_image ? input_image->width : res.canvas_width);
            const int H =
                res.m == MODALITY_MASK ? res.mask.height : (input_image ? input_image->height : res.canvas_height);
            image_u8 over = input_image ? to_rgb(*input_image) : blank_canvas(W > 0 ? W : 64, H > 0 ? H : 64);
            if (res.m == MODALITY_BOX) {
                json doc = {{"ai_generated", true},
                            {"model", model},
                            {"seed", item->seed},
                            {"prompt", item->t_prompt},
                            {"image_width", over.width},
                            {"image_height", over.height},
                            {"boxes", bx}};
                if (!bundle_write_file_atomic(dir + "/" + base + ".json", doc.dump(2), &e)) break;
                item->files.push_back({"boxes", base + ".json", "application/json"});
                static const uint8_t red[3] = {255, 40, 40};
                for (const auto & b : res.boxes) draw_rect(over, b, red);
            } else {
                if (res.mask.width != over.width || res.mask.height != over.height) {
                    e = "mask size " + std::to_string(res.mask.width) + "x" + std::to_string(res.mask.height) +
                        " differs from the image " + std::to_string(over.width) + "x" + std::to_string(over.height);
                    break;
                }
                if (!image_write_png(dir + "/" + base + ".png", res.mask, meta, &e)) break;
                item->files.push_back({"mask", base + ".png", "image/png"});
                for (size_t i = 0; i < res.mask.pixels.size(); ++i) {
                    if (!res.mask.pixels[i]) continue;
                    uint8_t * p = &over.pixels[i * 3];
                    p[0] = static_cast<uint8_t>(p[0] / 2 + 20);
                    p[1] = static_cast<uint8_t>(p[1] / 2 + 110);
                    p[2] = static_cast<uint8_t>(p[2] / 2 + 120);
                }
            }
            if (!image_write_png(dir + "/" + base + "_overlay.png", over, meta, &e)) break;
            item->files.push_back({"overlay", base + "_overlay.png", "image/png"});
            return true;
        }
        default:
            e = "unknown modality";
    }
    if (err) *err = "[bundle] item " + std::to_string(item->id) + ": " + e;
    return false;
}

// ---- HTML ----

static std::string html_escape(const std::string & s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '<':
                o += "&lt;";
                break;
            case '>':
                o += "&gt;";
                break;
            case '&':
                o += "&amp;";
                break;
            case '"':
                o += "&quot;";
                break;
            case '\n':
                o += "<br>";
                break;
            default:
                o += c;
        }
    }
    return o;
}

static std::string base64(const std::string & in) {
    static const char * tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string o;
    o.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
        o += tbl[v >> 18];
        o += tbl[(v >> 12) & 63];
        o += tbl[(v >> 6) & 63];
        o += tbl[v & 63];
    }
    if (i + 1 == in.size()) {
        const uint32_t v = uint8_t(in[i]) << 16;
        o += tbl[v >> 18];
        o += tbl[(v >> 12) & 63];
        o += "==";
    } else if (i + 2 == in.size()) {
        const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
        o += tbl[v >> 18];
        o += tbl[(v >> 12) & 63];
        o += tbl[(v >> 6) & 63];
        o += '=';
    }
    return o;
}

static bool read_all(const std::string & path, std::string * out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::stringstream ss;
    ss << f.rdbuf();
    *out = ss.str();
    return true;
}

static std::string data_uri(const std::string & dir, const item_file & f) {
    std::string bytes;
    if (!read_all(dir + "/" + f.path, &bytes)) return "";
    return "data:" + f.mime + ";base64," + base64(bytes);
}

static std::string item_html(const std::string & dir, const response_item & it) {
    std::string h = "<figure class=\"item " + it.status + "\" id=\"item-" + std::to_string(it.id) + "\">";
    if (it.status == "ok") {
        for (const auto & f : it.files) {
            if (f.role == "mask") continue;  // the overlay shows it
            if (f.role == "boxes") continue;
            const std::string uri = data_uri(dir, f);
            if (uri.empty()) continue;
            if (f.mime == "image/png") {
                h += "<img alt=\"" + html_escape(it.t_prompt) + "\" src=\"" + uri + "\">";
            } else if (f.mime == "audio/wav") {
                h += "<audio controls src=\"" + uri + "\"></audio>";
            } else if (f.mime == "video/mp4" || f.mime == "video/webm") {
                h += "<video controls loop muted autoplay playsinline src=\"" + uri + "\"></video>";
            }
        }
    } else {
        h += "<div class=\"missing\">" + html_escape(std::string(modality_name_lower(it.m)) + " " + it.status) +
             (it.error.empty() ? "" : ": " + html_escape(it.error)) + "</div>";
    }
    h += "<figcaption><b>" + std::string(modality_name_lower(it.m)) + " #" + std::to_string(it.id) + "</b> " +
         html_escape(it.t_prompt);
    if (it.needs_review) h += " <span class=\"review\">needs review</span>";
    h += " <span class=\"meta\">seed " + std::to_string(it.seed) + "</span></figcaption></figure>";
    return h;
}

bool bundle_write(const std::string & dir, const response & r, std::string * err) {
    if (!bundle_make_dirs(dir, err)) return false;
    if (!bundle_write_file_atomic(dir + "/manifest.json", manifest_json(r), err)) return false;
    std::string h;
    h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Spider answer</title>\n<style>\n";
    h += "body{font-family:system-ui,sans-serif;max-width:860px;margin:2em auto;padding:0 1em;color:#222}\n";
    h += ".prompt{color:#555;border-left:3px solid #aaa;padding-left:.8em}\n";
    h += ".answer{line-height:1.6}\nfigure.item{display:inline-block;vertical-align:top;margin:.4em;padding:.4em;"
         "border:1px solid #ccc;border-radius:6px;max-width:340px}\n";
    h += "figure img,figure video{width:256px;max-width:320px;height:auto;image-rendering:pixelated;display:block}\n";
    h += "figcaption{font-size:.85em;color:#444}.meta{color:#888}.review{color:#b60;font-weight:bold}\n";
    h += ".missing{color:#a00;font-style:italic;padding:1em}\n.banner{background:#fff3cd;padding:.5em}\n";
    h += "footer{margin-top:2em;font-size:.8em;color:#777}\n</style></head><body>\n";
    h += "<h1>Spider answer</h1>\n<p class=\"prompt\">" + html_escape(r.prompt) + "</p>\n";
    if (r.needs_review) {
        h += "<p class=\"banner\">Needs review";
        for (const auto & s : r.review_reasons) h += " &middot; " + html_escape(s);
        h += "</p>\n";
    }
    h += "<div class=\"answer\">";
    for (const auto & p : r.parts) {
        if (!p.is_item) {
            h += html_escape(p.text);
        } else if (p.item >= 0 && p.item < static_cast<int>(r.items.size())) {
            h += item_html(dir, r.items[p.item]);
        }
    }
    h += "</div>\n<footer>AI-generated by Spider (model " + html_escape(r.model) + ", seed " + std::to_string(r.seed) +
         "). Manifest: manifest.json (schema v" + std::to_string(r.version) + ").</footer>\n</body></html>\n";
    return bundle_write_file_atomic(dir + "/index.html", h, err);
}

}  // namespace spider
