// TMM builders over ToyWorld items: one function per family, instruction pools with held-out phrasings for the
// test split, and the record serialisation. Each record i is a pure function of (seed, i, items).
#include <limits.h>
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <cstring>

#include "world/rng.h"
#include "world/tmm.h"

namespace spider {

static const char * k_modalities[] = {"IMAGE", "VIDEO", "AUDIO", "BOX", "MASK"};
const char * tmm_modality_name(int m) {
    return m >= 0 && m < TMM_MODALITY_COUNT ? k_modalities[m] : "UNKNOWN";
}
bool tmm_modality_from_name(const std::string & s, int * m) {
    for (int i = 0; i < TMM_MODALITY_COUNT; ++i)
        if (s == k_modalities[i]) {
            *m = i;
            return true;
        }
    return false;
}

const std::vector<std::string> & tmm_family_names() {
    static const std::vector<std::string> names = {"t2i",        "t2a",       "t2v",   "i2t",         "a2t",
                                                   "v2t",        "box",       "mask",  "t2tmm_smart", "t2tmm_specific",
                                                   "multi_item", "long_form", "i2tmm", "a2tmm",       "v2tmm",
                                                   "box_tmm",    "mask_tmm"};
    return names;
}

nlohmann::json tmm_record_json(const tmm_record & r) {
    auto media = [](const tmm_media & m) {
        nlohmann::json j = {{"modality", tmm_modality_name(m.modality)}};
        if (!m.file.empty()) j["file"] = m.file;
        if (!m.caption.empty()) j["caption"] = m.caption;
        if (m.modality == TMM_BOX) j["box"] = {m.box[0], m.box[1], m.box[2], m.box[3]};
        if (m.modality == TMM_MASK) j["label"] = m.label;
        if (m.modality == TMM_BOX || m.modality == TMM_MASK) j["size"] = {m.width, m.height};
        return j;
    };
    nlohmann::json in = nlohmann::json::array(), out = nlohmann::json::array();
    for (const auto & m : r.inputs) in.push_back(media(m));
    for (const auto & m : r.targets) out.push_back(media(m));
    return {{"id", r.id},
            {"family", r.family},
            {"split", r.split},
            {"Question", r.question},
            {"TaskPrompt", r.task_prompt},
            {"Answer", r.answer},
            {"Inputs", in},
            {"Targets", out},
            {"Caption", r.caption}};
}

namespace {

using pool_t = std::vector<std::string>;

// Instruction phrasings: the last quarter of every pool (at least one) is held out for the test split.
const std::string & instr(const pool_t & pool, world_rng & r, world_split split) {
    int n = (int)pool.size(), held = std::max(1, n / 4);
    if (split == SPLIT_TEST) return pool[n - held + r.below(held)];
    return pool[r.below(n - held)];
}

std::string fill(std::string s, const std::string & key, const std::string & v) {
    size_t p = s.find(key);
    while (p != std::string::npos) {
        s.replace(p, key.size(), v);
        p = s.find(key, p + v.size());
    }
    return s;
}

// Caption without a final period, lower-cased first letter: fits inside sentences and T-Prompts.
std::string phrase(std::string c) {
    while (!c.empty() && (c.back() == '.' || c.back() == ' ')) c.pop_back();
    if (c.size() > 1 && c[0] >= 'A' && c[0] <= 'Z' && !(c[1] >= 'A' && c[1] <= 'Z')) c[0] = (char)(c[0] - 'A' + 'a');
    return c;
}
// The caption's content without its sentence frame ("There is ...", "An image of ..."), so that it reads well
// inside a request ("Show me {c}") and as a T-Prompt.
std::string core(const std::string & caption) {
    std::string c = phrase(caption);
    for (const char * f :
         {"there is ", "an image of ", "a picture showing ", "a video of ", "the sound of ", "a clip with "}) {
        size_t n = std::strlen(f);
        if (c.compare(0, n, f) == 0) return c.substr(n);
    }
    return c;
}

std::string sentence(std::string c) {
    c = phrase(c);
    if (!c.empty() && c[0] >= 'a' && c[0] <= 'z') c[0] = (char)(c[0] - 'a' + 'A');
    return c + ".";
}

const pool_t t2i_pool = {"Draw {c}.",
                         "Generate an image of {c}.",
                         "Please make a picture showing {c}.",
                         "Create an image: {c}.",
                         "I'd like a picture of {c}.",
                         "Can you draw {c}?",
                         "Paint {c} for me.",
                         "Render an image with {c}."};
const pool_t t2a_pool = {"Make the sound of {c}.",        "Generate audio: {c}.",    "Play {c}.",
                         "Create a sound clip with {c}.", "Let me hear {c}.",        "Can you synthesise {c}?",
                         "Produce {c} as audio.",         "I want to listen to {c}."};
const pool_t t2v_pool = {"Make a video of {c}.",
                         "Generate a clip showing {c}.",
                         "Animate {c}.",
                         "Create a short video: {c}.",
                         "I'd like to watch {c}.",
                         "Can you film {c}?",
                         "Produce a video where we see {c}.",
                         "Show {c} as a video."};
const pool_t x2t_pool = {"Describe this {k}.",
                         "What is in this {k}?",
                         "Write a caption for this {k}.",
                         "What does this {k} contain?",
                         "Tell me what you perceive in this {k}.",
                         "Give a short description of the {k}.",
                         "Caption the {k}.",
                         "Summarise this {k} in words."};
const pool_t box_pool = {"Where is {d}?",  "Find {d}.",         "Locate {d} in the image.", "Draw a box around {d}.",
                         "Point out {d}.", "Can you mark {d}?", "Show me where {d} is.",    "Box {d}."};
const pool_t mask_pool = {"Segment {d}.",
                          "Give me a mask of {d}.",
                          "Cut out {d}.",
                          "Outline {d} exactly.",
                          "Mask {d} in the image.",
                          "Which pixels belong to {d}?",
                          "Separate {d} from the background.",
                          "Produce a segmentation of {d}."};
const pool_t smart_image_pool = {
    "Show me {c}.",          "What does {c} look like?", "I want to see {c}.",  "Can you show {c}?",
    "Visualise {c} for me.", "Let me see {c}.",          "Picture {c} for me.", "Depict {c}."};
const pool_t smart_audio_pool = {"What does {c} sound like?", "Let me hear {c}.",       "I want to hear {c}.",
                                 "Can you play {c}?",         "Make me listen to {c}.", "How would {c} sound?",
                                 "Give me {c} to listen to.", "Sound out {c}."};
const pool_t smart_video_pool = {
    "Show me {c} in motion.", "What does it look like when {c}?", "I want to watch {c}.", "Can you show {c} happening?",
    "Play me a clip of {c}.", "Let me see {c} as it happens.",    "Demonstrate {c}.",     "Film {c} for me."};
const pool_t multi_pool = {
    "Show me these: {l}.", "I need several things: {l}.",  "Please produce {l}.", "Make all of the following: {l}.",
    "Can you create {l}?", "Generate {l}, in that order.", "Give me {l}.",        "One by one: {l}."};
const pool_t tour_pool = {"Give me a guided tour of the toy world.",
                          "Walk me through the toy world.",
                          "Describe the toy world with examples of what it holds.",
                          "Write a short guide to the toy world.",
                          "What can I find in the toy world? Show me.",
                          "Introduce the toy world, section by section.",
                          "Take me on a tour of the toy world.",
                          "Present the toy world's shapes, sounds and motions."};
const pool_t i2tmm_pool = {"Make a video where {d} moves {m}.",
                           "Animate {d} so that it moves {m}.",
                           "Turn this into a clip: {d} going {m}.",
                           "Bring {d} to life, moving {m}.",
                           "Create a video of {d} from this picture moving {m}.",
                           "Let {d} travel {m} in a video.",
                           "Make {d} slide {m} in a short video.",
                           "Show {d} moving {m}."};
const pool_t a2tmm_pool = {"Describe this sound and make a {h} version.",
                           "What is this? Then play it {h2}.",
                           "Tell me what you hear and give me the same thing {h2}.",
                           "Caption this clip and produce a {h} variant.",
                           "Explain the sound, then make it {h2}.",
                           "What does this sound like? Also create a {h} copy.",
                           "Name this sound and redo it {h2}.",
                           "Describe it and synthesise a {h} one."};
const pool_t v2tmm_pool = {"Show me the first and the last frame as images.",
                           "Draw how it starts and how it ends.",
                           "Give me two pictures: the beginning and the end.",
                           "What are the start and end states? Draw them.",
                           "Summarise this video with a picture of its first and last moment.",
                           "Make images of the opening and the closing frame.",
                           "Before and after, as two images.",
                           "Illustrate the start and the finish."};
const pool_t box_tmm_pool = {
    "Find {d} and make a video of it {m}.",    "Locate {d}, then animate it {m}.",
    "Box {d} and show it {m} in a clip.",      "Where is {d}? Also make it move {m} in a video.",
    "Mark {d} and create a video of it {m}.",  "Point to {d} and film it {m}.",
    "Detect {d}; then show a clip of it {m}.", "Box {d}, and animate it {m}."};
const pool_t mask_tmm_pool = {"Segment {d} and draw it alone on a plain background.",
                              "Cut out {d} and show it by itself.",
                              "Mask {d}, then give me an image of just it.",
                              "Separate {d} and paint it on an empty background.",
                              "Outline {d} and make a clean picture of it.",
                              "Give me a mask of {d} and an isolated image of it.",
                              "Extract {d} and redraw it alone.",
                              "Segment {d}; also draw it without the rest."};

const char * k_modality_word[] = {"an image", "a video", "a sound"};

struct builder {
    const std::vector<world_entry> * by_kind[3];
    const tmm_build_options * o;
    int n_signal = 1;

    std::string group(int m, const std::string & t_prompt) const {
        std::string g = std::string("<") + k_modalities[m] + ">" + t_prompt;
        for (int i = 0; i < n_signal; ++i) g += std::string("[") + k_modalities[m] + std::to_string(i) + "]";
        return g + "</" + k_modalities[m] + ">";
    }
    static std::string placeholder(int m) {
        return std::string("<") + k_modalities[m] + "><" + k_modalities[m] + "-Placeholder></" + k_modalities[m] + ">";
    }
    static std::string task(int m) { return std::string("[") + k_modalities[m] + "]"; }
    const world_entry & pick(world_kind k, world_rng & r) const {
        const auto & v = *by_kind[k];
        return v[r.below((int)v.size())];
    }
    static const std::string & cap(const world_entry & e, world_rng & r) {
        return e.captions[r.below((int)e.captions.size())];
    }
    static std::string core_cap(const world_entry & e, world_rng & r) { return core(cap(e, r)); }
    static int tmm_of(world_kind k) { return k == KIND_IMAGE ? TMM_IMAGE : k == KIND_AUDIO ? TMM_AUDIO : TMM_VIDEO; }
    static tmm_media media(int m, const world_entry & e, const std::string & caption) {
        tmm_media t;
        t.modality = m;
        t.file = e.file;
        t.caption = caption;
        return t;
    }
    // "the red circle" (with position when two objects share nothing else... colours are unique per image, so the
    // colour alone already names one object; the position is added half of the time for variety).
    static std::string refer(const world_object & ob, world_rng & r) {
        return describe_object(ob, r.next(), r.chance(0.5));
    }

    bool x2x_t2(tmm_record * rec, world_kind k, world_rng & r) const {
        const world_entry & e = pick(k, r);
        const pool_t & pool = k == KIND_IMAGE ? t2i_pool : k == KIND_AUDIO ? t2a_pool : t2v_pool;
        std::string c = core_cap(e, r);
        int m = tmm_of(k);
        rec->question = fill(instr(pool, r, o->split), "{c}", c);
        rec->task_prompt = task(m);
        rec->answer = "[OUTPUT]" + group(m, c) + "[END]";
        rec->targets.push_back(media(m, e, c));
        rec->caption = c;
        return true;
    }
    bool x2x_2t(tmm_record * rec, world_kind k, world_rng & r) const {
        const world_entry & e = pick(k, r);
        int m = tmm_of(k);
        std::string c = sentence(cap(e, r));
        rec->question =
            placeholder(m) + " " +
            fill(instr(x2t_pool, r, o->split), "{k}", kind_name(k) == std::string("audio") ? "sound" : kind_name(k));
        rec->task_prompt = "[TEXT]";
        rec->answer = "[OUTPUT]" + c + "[END]";
        rec->inputs.push_back(media(m, e, ""));
        rec->caption = c;
        return true;
    }
    bool box_or_mask(tmm_record * rec, int m, world_rng & r) const {
        const world_entry & e = pick(KIND_IMAGE, r);
        const world_object & ob = e.image.objects[r.below((int)e.image.objects.size())];
        size_t idx = &ob - e.image.objects.data();
        std::string d = refer(ob, r);
        rec->question =
            placeholder(TMM_IMAGE) + " " + fill(instr(m == TMM_BOX ? box_pool : mask_pool, r, o->split), "{d}", d);
        rec->task_prompt = task(m);
        rec->answer = "[OUTPUT]" + group(m, d) + "[END]";
        rec->inputs.push_back(media(TMM_IMAGE, e, ""));
        tmm_media t;
        t.modality = m;
        t.caption = d;
        t.width = e.image.width;
        t.height = e.image.height;
        t.box[0] = ob.box.x0;
        t.box[1] = ob.box.y0;
        t.box[2] = ob.box.x1;
        t.box[3] = ob.box.y1;
        if (m == TMM_MASK) {
            t.file = e.mask_file;
            t.label = (int)idx + 1;
        }
        rec->targets.push_back(t);
        rec->caption = phrase(cap(e, r));
        return true;
    }
    bool smart(tmm_record * rec, world_rng & r) const {
        world_kind k = (world_kind)r.below(3);
        const world_entry & e = pick(k, r);
        int m = tmm_of(k);
        std::string c = core_cap(e, r);
        const pool_t & pool = k == KIND_IMAGE   ? smart_image_pool
                              : k == KIND_AUDIO ? smart_audio_pool
                                                : smart_video_pool;
        rec->question = fill(instr(pool, r, o->split), "{c}", c);
        rec->task_prompt = "[SMARTMULTIMODAL]";
        static const char * lead[] = {"Here it is: ", "Sure. ", "", "Here you go: "};
        rec->answer = "[OUTPUT]" + std::string(lead[r.below(4)]) + group(m, c) + "[END]";
        rec->targets.push_back(media(m, e, c));
        rec->caption = c;
        return true;
    }
    bool specific(tmm_record * rec, world_rng & r) const {
        // The user names the modalities: 1-3 distinct kinds, each with its own item.
        int kinds[3] = {0, 1, 2};
        for (int i = 2; i > 0; --i) std::swap(kinds[i], kinds[r.below(i + 1)]);
        int n = r.range(1, 3);
        std::vector<std::string> asks;
        std::string ans = "[OUTPUT]";
        for (int i = 0; i < n; ++i) {
            world_kind k = (world_kind)kinds[i];
            const world_entry & e = pick(k, r);
            int m = tmm_of(k);
            std::string c = core_cap(e, r);
            asks.push_back(std::string(k_modality_word[k == KIND_IMAGE ? 0 : k == KIND_VIDEO ? 1 : 2]) + " of " + c);
            if (i) ans += r.chance(0.5) ? " " : "\n";
            ans += group(m, c);
            rec->targets.push_back(media(m, e, c));
        }
        std::string list;
        for (int i = 0; i < n; ++i) list += (i ? (i + 1 == n ? " and " : ", ") : "") + asks[i];
        static const pool_t pool = {
            "Make {l}.",    "Please create {l}.",  "I want {l}.", "Generate {l}.", "Could you produce {l}?",
            "Give me {l}.", "Create exactly {l}.", "Output {l}."};
        rec->question = fill(instr(pool, r, o->split), "{l}", list);
        if (n == 1) {
            rec->task_prompt = task(rec->targets[0].modality);
        } else {
            rec->task_prompt = "[SPECIFICMULTIMODAL]";
        }
        rec->answer = ans + "[END]";
        rec->caption = rec->targets[0].caption;
        return true;
    }
    bool multi(tmm_record * rec, world_rng & r) const {
        int n = r.range(1, 5);
        std::vector<std::string> asks;
        std::string ans = "[OUTPUT]";
        for (int i = 0; i < n; ++i) {
            world_kind k = (world_kind)r.below(3);
            const world_entry & e = pick(k, r);
            int m = tmm_of(k);
            std::string c = core_cap(e, r);
            asks.push_back(c);
            ans += (i ? "\n" : "") + std::to_string(i + 1) + ". " + group(m, c);
            rec->targets.push_back(media(m, e, c));
        }
        std::string list;
        for (int i = 0; i < n; ++i) list += (i ? (i + 1 == n ? " and " : ", ") : "") + asks[i];
        rec->question = fill(instr(multi_pool, r, o->split), "{l}", list);
        rec->task_prompt = "[SMARTMULTIMODAL]";
        rec->answer = ans + "[END]";
        rec->caption = rec->targets[0].caption;
        return true;
    }
    bool long_form(tmm_record * rec, world_rng & r) const {
        static const char * titles[3] = {"Shapes", "Sounds", "Motion"};
        static const char * intros[3] = {"The world is full of coloured shapes.",
                                         "Every sound has a pattern and a pitch.",
                                         "Things move, grow, shrink, turn and change colour."};
        world_kind order[3] = {KIND_IMAGE, KIND_AUDIO, KIND_VIDEO};
        std::string ans = "[OUTPUT]" + std::string(r.chance(0.5) ? "Welcome to the toy world.\n" : "A short tour.\n");
        for (int s = 0; s < 3; ++s) {
            world_kind k = order[s];
            int m = tmm_of(k);
            ans += std::to_string(s + 1) + ". " + titles[s] + "\n" + intros[s] + "\n";
            int n = r.range(1, 3);
            for (int i = 0; i < n; ++i) {
                const world_entry & e = pick(k, r);
                std::string c = core_cap(e, r), other = sentence(cap(e, r));
                ans += " - " + group(m, c) + ": " + other + "\n";
                rec->targets.push_back(media(m, e, c));
            }
        }
        rec->question = instr(tour_pool, r, o->split);
        rec->task_prompt = "[SMARTMULTIMODAL]";
        rec->answer = ans + "[END]";
        rec->caption = "a guided tour of the toy world";
        return true;
    }
    static std::string motion_words(int m) {
        switch (m) {
            case MOTION_LEFT:
                return "to the left";
            case MOTION_RIGHT:
                return "to the right";
            case MOTION_UP:
                return "up";
            default:
                return "down";
        }
    }
    bool i2tmm(tmm_record * rec, world_rng & r, bool with_box, int side) const {
        const world_entry & e = pick(KIND_IMAGE, r);
        const world_object & ob = e.image.objects[r.below((int)e.image.objects.size())];
        std::string d = refer(ob, r);
        int motion = r.below(4);  // left, right, up, down
        std::string mw = motion_words(motion);
        video_truth vt;
        vt.shape = ob.shape;
        vt.colour = vt.colour_to = ob.colour;
        vt.size = ob.size;
        vt.motion = motion;
        vt.background = e.image.background;
        std::string vc = core(caption_video(vt, r.next(), 1)[0]);
        rec->inputs.push_back(media(TMM_IMAGE, e, ""));
        std::string ans = "[OUTPUT]";
        if (side == TMM_BOX || side == TMM_MASK) {
            rec->question = placeholder(TMM_IMAGE) + " " +
                            fill(fill(instr(side == TMM_BOX ? box_tmm_pool : mask_tmm_pool, r, o->split), "{d}", d),
                                 "{m}", "moving " + mw);
            tmm_media t;
            t.modality = side;
            t.caption = d;
            t.width = e.image.width;
            t.height = e.image.height;
            t.box[0] = ob.box.x0;
            t.box[1] = ob.box.y0;
            t.box[2] = ob.box.x1;
            t.box[3] = ob.box.y1;
            if (side == TMM_MASK) {
                t.file = e.mask_file;
                t.label = (int)(&ob - e.image.objects.data()) + 1;
            }
            rec->targets.push_back(t);
            ans += group(side, d);
            if (side == TMM_BOX) {
                ans += (r.chance(0.5) ? " " : "") + group(TMM_VIDEO, vc);
                tmm_media v;
                v.modality = TMM_VIDEO;
                v.caption = vc;
                rec->targets.push_back(v);
            } else {
                world_object lone = ob;
                std::string ic = phrase(describe_object(lone, r.next(), false)) + " on a plain grey background";
                if (ic.rfind("the ", 0) == 0) ic = "a " + ic.substr(4);
                ans += (r.chance(0.5) ? " " : "") + group(TMM_IMAGE, ic);
                tmm_media v;
                v.modality = TMM_IMAGE;
                v.caption = ic;
                rec->targets.push_back(v);
            }
            rec->task_prompt = "[SPECIFICMULTIMODAL]";
        } else {
            rec->question =
                placeholder(TMM_IMAGE) + " " + fill(fill(instr(i2tmm_pool, r, o->split), "{d}", d), "{m}", mw);
            ans += "Here " + d + " moves " + mw + ". " + group(TMM_VIDEO, vc);
            tmm_media v;
            v.modality = TMM_VIDEO;
            v.caption = vc;
            rec->targets.push_back(v);
            rec->task_prompt = r.chance(0.5) ? "[SMARTMULTIMODAL]" : "[VIDEO]";
        }
        (void)with_box;
        rec->answer = ans + "[END]";
        rec->caption = phrase(cap(e, r));
        return true;
    }
    bool a2tmm(tmm_record * rec, world_rng & r) const {
        // Needs a pitched sound whose pitch can move one step.
        for (int tries = 0; tries < 64; ++tries) {
            const world_entry & e = pick(KIND_AUDIO, r);
            if (e.audio.pitch < 0) continue;
            bool higher = e.audio.pitch == 0 ? true : e.audio.pitch == PITCH_COUNT - 1 ? false : r.chance(0.5);
            audio_truth t = e.audio;
            t.pitch += higher ? 1 : -1;
            std::string nc = core(caption_audio(t, r.next(), 1)[0]);
            std::string q = fill(fill(instr(a2tmm_pool, r, o->split), "{h}", higher ? "higher" : "lower"), "{h2}",
                                 higher ? "higher" : "lower");
            rec->question = placeholder(TMM_AUDIO) + " " + q;
            rec->task_prompt = r.chance(0.5) ? "[SMARTMULTIMODAL]" : "[AUDIO]";
            std::string c = sentence(cap(e, r));
            rec->answer = "[OUTPUT]" + c + " " + group(TMM_AUDIO, nc) + "[END]";
            rec->inputs.push_back(media(TMM_AUDIO, e, ""));
            tmm_media v;
            v.modality = TMM_AUDIO;
            v.caption = nc;
            rec->targets.push_back(v);
            rec->caption = phrase(c);
            return true;
        }
        return false;
    }
    bool v2tmm(tmm_record * rec, world_rng & r) const {
        const world_entry & e = pick(KIND_VIDEO, r);
        const video_truth & t = e.video;
        std::string obj = std::string(colour_name(t.colour)) + " " + shape_name(t.shape);
        std::string first, last;
        switch (t.motion) {
            case MOTION_LEFT:
                first = "a " + obj + " on the right";
                last = "a " + obj + " on the left";
                break;
            case MOTION_RIGHT:
                first = "a " + obj + " on the left";
                last = "a " + obj + " on the right";
                break;
            case MOTION_UP:
                first = "a " + obj + " at the bottom";
                last = "a " + obj + " at the top";
                break;
            case MOTION_DOWN:
                first = "a " + obj + " at the top";
                last = "a " + obj + " at the bottom";
                break;
            case MOTION_GROW:
                first = "a small " + obj + " in the center";
                last = "a large " + obj + " in the center";
                break;
            case MOTION_SHRINK:
                first = "a large " + obj + " in the center";
                last = "a small " + obj + " in the center";
                break;
            case MOTION_RECOLOUR:
                first = "a " + obj + " in the center";
                last = std::string("a ") + colour_name(t.colour_to) + " " + shape_name(t.shape) + " in the center";
                break;
            default:
                first = "an upright " + obj + " in the center";
                last = "a " + obj + " turned by a quarter in the center";
                break;
        }
        rec->question = placeholder(TMM_VIDEO) + " " + instr(v2tmm_pool, r, o->split);
        rec->task_prompt = r.chance(0.5) ? "[SMARTMULTIMODAL]" : "[IMAGE]";
        rec->answer =
            "[OUTPUT]At the start: " + group(TMM_IMAGE, first) + " At the end: " + group(TMM_IMAGE, last) + "[END]";
        rec->inputs.push_back(media(TMM_VIDEO, e, ""));
        for (const std::string * c : {&first, &last}) {
            tmm_media v;
            v.modality = TMM_IMAGE;
            v.caption = *c;
            rec->targets.push_back(v);
        }
        rec->caption = phrase(cap(e, r));
        return true;
    }

    bool build(const std::string & fam, tmm_record * rec, world_rng & r) const {
        if (fam == "t2i") return x2x_t2(rec, KIND_IMAGE, r);
        if (fam == "t2a") return x2x_t2(rec, KIND_AUDIO, r);
        if (fam == "t2v") return x2x_t2(rec, KIND_VIDEO, r);
        if (fam == "i2t") return x2x_2t(rec, KIND_IMAGE, r);
        if (fam == "a2t") return x2x_2t(rec, KIND_AUDIO, r);
        if (fam == "v2t") return x2x_2t(rec, KIND_VIDEO, r);
        if (fam == "box") return box_or_mask(rec, TMM_BOX, r);
        if (fam == "mask") return box_or_mask(rec, TMM_MASK, r);
        if (fam == "t2tmm_smart") return smart(rec, r);
        if (fam == "t2tmm_specific") return specific(rec, r);
        if (fam == "multi_item") return multi(rec, r);
        if (fam == "long_form") return long_form(rec, r);
        if (fam == "i2tmm") return i2tmm(rec, r, false, -1);
        if (fam == "a2tmm") return a2tmm(rec, r);
        if (fam == "v2tmm") return v2tmm(rec, r);
        if (fam == "box_tmm") return i2tmm(rec, r, true, TMM_BOX);
        if (fam == "mask_tmm") return i2tmm(rec, r, true, TMM_MASK);
        return false;
    }
};

// Which world kinds a family draws from.
std::vector<world_kind> family_needs(const std::string & f) {
    if (f == "t2a" || f == "a2t" || f == "a2tmm") return {KIND_AUDIO};
    if (f == "t2v" || f == "v2t" || f == "v2tmm") return {KIND_VIDEO};
    if (f == "t2tmm_smart" || f == "t2tmm_specific" || f == "multi_item" || f == "long_form")
        return {KIND_IMAGE, KIND_AUDIO, KIND_VIDEO};
    return {KIND_IMAGE};
}

}  // namespace

bool tmm_build_records(const std::vector<world_entry> & items, const tmm_build_options & o,
                       std::vector<tmm_record> * out, std::string * err) {
    std::vector<std::string> fams = o.families.empty() ? tmm_family_names() : o.families;
    for (const auto & f : fams) {
        bool known = false;
        for (const auto & k : tmm_family_names()) known |= k == f;
        if (!known) {
            if (err) *err = "unknown TMM family '" + f + "'";
            return false;
        }
    }
    if (o.n_signal < 1 || o.n_signal > 32) {
        if (err) *err = "n_signal must be 1..32";
        return false;
    }
    std::vector<world_entry> by[3];
    for (const auto & e : items)
        if (e.split == o.split) by[e.kind].push_back(e);
    for (const auto & f : fams)
        for (world_kind k : family_needs(f))
            if (by[k].empty()) {
                if (err)
                    *err = "family '" + f + "' needs " + kind_name(k) + " items of the " + split_name(o.split) +
                           " split; none found";
                return false;
            }
    builder b;
    for (int k = 0; k < 3; ++k) b.by_kind[k] = &by[k];
    b.o = &o;
    b.n_signal = o.n_signal;
    out->clear();
    out->reserve(o.count);
    for (uint64_t i = 0; i < o.count; ++i) {
        world_rng r(seed_mix(o.seed, 0x544D4D, i));
        tmm_record rec;
        rec.family = fams[i % fams.size()];
        rec.split = split_name(o.split);
        char id[96];
        std::snprintf(id, sizeof(id), "%s_%s_%07llu", rec.split.c_str(), rec.family.c_str(), (unsigned long long)i);
        rec.id = id;
        if (!b.build(rec.family, &rec, r)) {
            if (err) *err = "family '" + rec.family + "' could not build record " + rec.id + " from these items";
            return false;
        }
        out->push_back(std::move(rec));
    }
    return true;
}

static std::string dir_of(const std::string & path) {
    size_t s = path.find_last_of('/');
    return s == std::string::npos ? "." : s == 0 ? "/" : path.substr(0, s);
}

static std::string real_dir(const std::string & d) {
    char buf[PATH_MAX];
    return realpath(d.c_str(), buf) ? std::string(buf) : d;
}

bool tmm_build(const std::string & world_dir, const std::string & out_path, const tmm_build_options & o,
               tmm_build_stats * st, std::string * err) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<world_entry> items;
    if (!world_read_items(world_dir, o.split, &items, err)) return false;
    std::vector<tmm_record> recs;
    if (!tmm_build_records(items, o, &recs, err)) return false;
    // Media paths are relative to the JSONL's directory: unchanged when it is the world directory, else absolute.
    std::string wd = real_dir(world_dir), od = real_dir(dir_of(out_path));
    std::string prefix = wd == od ? "" : wd + "/";
    std::string body;
    body.reserve(recs.size() * 400);
    for (auto & r : recs) {
        if (!prefix.empty()) {
            for (auto & m : r.inputs)
                if (!m.file.empty()) m.file = prefix + m.file;
            for (auto & m : r.targets)
                if (!m.file.empty()) m.file = prefix + m.file;
        }
        body += tmm_record_json(r).dump() + "\n";
        if (st) st->per_family[r.family]++;
    }
    if (!file_write_atomic(out_path, body.data(), body.size(), err)) return false;
    if (st) {
        st->records = recs.size();
        st->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    return true;
}

}  // namespace spider
