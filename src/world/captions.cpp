// Natural-language captions for ToyWorld items: several phrasings of the same truth from synonym tables, sentence
// frames and word orders, chosen by the world's PRNG. Attribute words that a judge checks (colour names, pitch
// classes, motions) keep one meaning; synonyms vary the rest.
#include <algorithm>
#include <set>

#include "world/rng.h"
#include "world/world.h"

namespace spider {

namespace {

const std::vector<std::vector<std::string>> k_shape_syn = {
    {"circle", "disc", "round dot"},   {"square", "block", "square"},   {"triangle", "triangle", "triangle"},
    {"diamond", "rhombus", "diamond"}, {"cross", "plus sign", "cross"}, {"ring", "hoop", "donut"}};
const std::vector<std::vector<std::string>> k_size_syn = {
    {"small", "little", "tiny"}, {"medium", "medium-sized", "mid-sized"}, {"large", "big", "huge"}};
const std::vector<std::vector<std::string>> k_pos_syn = {
    {"in the top left", "at the top left", "in the upper left corner"},
    {"at the top", "at the top center", "near the top"},
    {"in the top right", "at the top right", "in the upper right corner"},
    {"on the left", "at the left", "on the left side"},
    {"in the center", "in the middle", "at the center"},
    {"on the right", "at the right", "on the right side"},
    {"in the bottom left", "at the bottom left", "in the lower left corner"},
    {"at the bottom", "at the bottom center", "near the bottom"},
    {"in the bottom right", "at the bottom right", "in the lower right corner"}};
const std::vector<std::vector<std::string>> k_bg_syn = {
    {"a plain grey background", "a plain background", "grey"},
    {"horizontal stripes", "a horizontally striped background", "a background of horizontal stripes"},
    {"vertical stripes", "a vertically striped background", "a background of vertical stripes"},
    {"a checkerboard", "a checkered background", "a chequered grey background"},
    {"a noisy grey background", "a grainy background", "grey noise"}};
const char * k_count_words[] = {"zero", "one", "two", "three", "four", "five", "six"};

const std::string & pick(world_rng & r, const std::vector<std::string> & v) {
    return v[r.below((int)v.size())];
}

std::string article(const std::string & w) {
    return std::string(w.empty() || std::string("aeiou").find(w[0]) == std::string::npos ? "a " : "an ") + w;
}

std::string capitalise(std::string s) {
    if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = (char)(s[0] - 'a' + 'A');
    return s;
}

std::string join_list(const std::vector<std::string> & parts, world_rng & r) {
    if (parts.size() == 1) return parts[0];
    std::string s;
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i) s += (i + 1 == parts.size()) ? (r.chance(0.5) ? " and " : ", and ") : ", ";
        s += parts[i];
    }
    if (parts.size() == 2) {  // no Oxford comma with two items
        size_t k = s.find(", and ");
        if (k != std::string::npos) s.replace(k, 6, " and ");
    }
    return s;
}

// "a small red circle" with the size sometimes left out (half the phrasings keep it).
std::string object_phrase(const world_object & o, world_rng & r, bool definite) {
    std::string noun = pick(r, k_shape_syn[o.shape]);
    std::string adj = colour_name(o.colour);
    if (r.chance(0.7)) adj = pick(r, k_size_syn[o.size]) + " " + adj;
    std::string np = adj + " " + noun;
    return definite ? "the " + np : article(np);
}

template <typename F>
std::vector<std::string> distinct(world_rng & r, int n, F make) {
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (int tries = 0; (int)out.size() < n && tries < n * 20; ++tries) {
        std::string s = make(r);
        if (seen.insert(s).second) out.push_back(s);
    }
    return out;
}

}  // namespace

std::string describe_object(const world_object & o, uint64_t rng_seed, bool with_position) {
    world_rng r(rng_seed);
    std::string s = object_phrase(o, r, true);
    if (with_position) s += " " + pick(r, k_pos_syn[o.position]);
    return s;
}

std::vector<std::string> caption_image(const image_truth & t, uint64_t rng_seed, int n) {
    world_rng rng(rng_seed);
    return distinct(rng, n, [&](world_rng & r) {
        std::vector<size_t> order(t.objects.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[r.below((int)i)]);
        std::vector<std::string> parts;
        // Position-first parts ("at the top, a red circle") only read well as a bare list (frame 0 below).
        int frame = r.below(6);
        int style = frame == 0 ? r.below(3) : 0;
        for (size_t i : order) {
            const world_object & o = t.objects[i];
            std::string np = object_phrase(o, r, false), pos = pick(r, k_pos_syn[o.position]);
            if (style == 0)
                parts.push_back(np + " " + pos);
            else if (style == 1)
                parts.push_back(pos + ", " + np);
            else
                parts.push_back(np + " " + pos);
        }
        std::string list = join_list(parts, r);
        std::string bg = pick(r, k_bg_syn[t.background]);
        switch (r.below(6)) {
            case 0:
                return capitalise(list) + ".";
            case 1:
                return "An image of " + list + ".";
            case 2:
                return "There is " + list + ".";
            case 3:
                return "A picture showing " + list + " on " + bg + ".";
            case 4:
                return capitalise(list) + " on " + bg + ".";
            default:
                return "On " + bg + ": " + list + ".";
        }
    });
}

std::vector<std::string> caption_audio(const audio_truth & t, uint64_t rng_seed, int n) {
    world_rng rng(rng_seed);
    return distinct(rng, n, [&](world_rng & r) {
        std::string pitch = t.pitch >= 0 ? pitch_name(t.pitch) : "";
        std::string pitched = pitch + (r.chance(0.5) ? "-pitched" : " pitch");
        static const std::vector<std::string> timbre_syn[3] = {{"sine", "pure", "soft sine-wave"},
                                                               {"square-wave", "buzzy square", "hollow square-wave"},
                                                               {"sawtooth", "bright sawtooth", "saw-wave"}};
        std::string timbre = t.timbre >= 0 ? pick(r, timbre_syn[t.timbre]) : "";
        std::string cnt = k_count_words[std::min(t.count, 6)];
        std::string s;
        switch (t.pattern) {
            case PATTERN_TONE:
                s = r.chance(0.5) ? article(pitched + " " + timbre + " tone")
                                  : article(timbre + " tone") + " at a " + pitch + " pitch";
                break;
            case PATTERN_CHIRP_UP:
            case PATTERN_CHIRP_DOWN: {
                bool up = t.pattern == PATTERN_CHIRP_UP;
                std::string dir =
                    up ? pick(r, {"rising", "upward", "ascending"}) : pick(r, {"falling", "downward", "descending"});
                s = r.chance(0.5)
                        ? article(dir + " " + timbre + " chirp") + " around a " + pitch + " pitch"
                        : article(pitched + " chirp") + " that " + (up ? "rises" : "falls") + ", " + timbre + " timbre";
                break;
            }
            case PATTERN_BEEPS:
                s = r.chance(0.5) ? cnt + " " + pitched + " " + timbre + " beeps"
                                  : cnt + " short beeps at a " + pitch + " pitch with a " + timbre + " sound";
                break;
            case PATTERN_NOISE:
                s = pick(r,
                         {"a burst of noise", "a noise burst", "a short hiss of white noise", "a static noise burst"});
                break;
            case PATTERN_CHORD:
                s = r.chance(0.5) ? article(pitched + " major chord") : "a major chord in a " + pitch + " register";
                break;
            case PATTERN_RHYTHM:
                s = r.chance(0.5) ? "a rhythm of " + cnt + " long and short " + pitched + " notes"
                                  : cnt + " " + timbre + " notes in a long-short rhythm at a " + pitch + " pitch";
                break;
        }
        switch (r.below(4)) {
            case 0:
                return capitalise(s) + ".";
            case 1:
                return "The sound of " + s + ".";
            case 2:
                return "A clip with " + s + ".";
            default:
                return capitalise(s);
        }
    });
}

std::vector<std::string> caption_video(const video_truth & t, uint64_t rng_seed, int n) {
    world_rng rng(rng_seed);
    return distinct(rng, n, [&](world_rng & r) {
        world_object o;
        o.shape = t.shape;
        o.colour = t.colour;
        o.size = t.size;
        std::string np = object_phrase(o, r, false);
        std::string act;
        switch (t.motion) {
            case MOTION_LEFT:
                act = pick(r, {"moving to the left", "sliding left", "that moves left"});
                break;
            case MOTION_RIGHT:
                act = pick(r, {"moving to the right", "sliding right", "that moves right"});
                break;
            case MOTION_UP:
                act = pick(r, {"moving up", "rising upward", "that moves up"});
                break;
            case MOTION_DOWN:
                act = pick(r, {"moving down", "sinking downward", "that moves down"});
                break;
            case MOTION_GROW:
                act = pick(r, {"growing", "getting bigger", "that grows"});
                break;
            case MOTION_SHRINK:
                act = pick(r, {"shrinking", "getting smaller", "that shrinks"});
                break;
            case MOTION_RECOLOUR:
                act =
                    pick(r, {"turning ", "changing colour to ", "that turns "}) + std::string(colour_name(t.colour_to));
                break;
            default:
                act = pick(r, {"rotating", "turning around", "that rotates"});
                break;
        }
        std::string bg = pick(r, k_bg_syn[t.background]);
        switch (r.below(4)) {
            case 0:
                return capitalise(np) + " " + act + ".";
            case 1:
                return "A video of " + np + " " + act + ".";
            case 2:
                return capitalise(np) + " " + act + " on " + bg + ".";
            default:
                return "On " + bg + ", " + np + " " + act + ".";
        }
    });
}

}  // namespace spider
