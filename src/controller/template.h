// The Any-to-Many Instruction Template (SPIDER.md §2): the added tokens, task tokens chosen from the user's
// output choices, the input layout with media placeholders, the template grammar for constrained decoding and a
// streaming parser of the output grammar
//     [OUTPUT] text ( <M> T-Prompt [M0]..[M{n-1}] </M> text )* [END]
// that reports every group the moment its closing tag arrives. The parser never fails as a whole: malformed
// output becomes a per-group error (or a recorded warning) and parsing goes on.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace spider {

enum modality : int32_t {
    MODALITY_IMAGE = 0,
    MODALITY_VIDEO = 1,
    MODALITY_AUDIO = 2,
    MODALITY_BOX = 3,
    MODALITY_MASK = 4,
    MODALITY_COUNT = 5,
};

const char * modality_name(modality m);        // "IMAGE", ... ("UNKNOWN" for a bad value)
const char * modality_name_lower(modality m);  // "image", ...
// Case-insensitive "image" / "IMAGE" -> MODALITY_IMAGE; false for anything else.
bool modality_from_name(const std::string & name, modality * out);
// Parses "image,audio" (commas, optional spaces). Error names the bad entry; duplicates are kept once.
bool modality_list_from_string(const std::string & s, std::vector<modality> * out, std::string * err);

// Number of signal tokens [M0]..[M{n-1}] per modality. The released configuration uses 1 for every modality.
struct template_config {
    int n_signal[MODALITY_COUNT] = {1, 1, 1, 1, 1};
    // The class default of the reference code: IMAGE 4, VIDEO 24, AUDIO 8, BOX 1, MASK 1.
    static template_config class_default();
};

// Token spellings.
std::string tag_open(modality m);             // "<IMAGE>"
std::string tag_close(modality m);            // "</IMAGE>"
std::string signal_token(modality m, int i);  // "[IMAGE0]"
std::string placeholder_token(modality m);    // "<IMAGE-Placeholder>" (inputs: image, video, audio)
std::string task_token(modality m);           // "[IMAGE]"
constexpr const char * TOKEN_INPUT = "[INPUT]";
constexpr const char * TOKEN_OUTPUT = "[OUTPUT]";
constexpr const char * TOKEN_END = "[END]";
constexpr const char * TOKEN_TASK_TEXT = "[TEXT]";
constexpr const char * TOKEN_TASK_SMART = "[SMARTMULTIMODAL]";
constexpr const char * TOKEN_TASK_SPECIFIC = "[SPECIFICMULTIMODAL]";

// Every added token, in a stable order (the order their embedding rows are appended to the vocabulary):
// per modality <M>, </M>, [M0..]; then [INPUT] [OUTPUT] [END]; the task tokens; the input placeholders.
std::vector<std::string> template_added_tokens(const template_config & cfg);

// Output choices -> task token: none -> [TEXT], one -> [M], several -> [SPECIFICMULTIMODAL],
// smart (let the model choose) -> [SMARTMULTIMODAL] whatever the list holds.
std::string task_token_for(const std::vector<modality> & choices, bool smart);

// One input media item of the question.
struct input_media {
    modality m = MODALITY_IMAGE;  // IMAGE, VIDEO or AUDIO
    int index = 0;                // index into the request's inputs of that kind, in order of appearance
};

// The input layout: text segments and media slots in order. The prompt text is
//   [INPUT]{question}{task token}
// with each media item written as <M><M-Placeholder></M>; the placeholder position is where the projected
// embedding of that item replaces the placeholder token's embedding. (BOS is added by the tokenizer.)
struct layout_segment {
    bool is_media = false;
    std::string text;   // text segments (may contain added tokens as text)
    input_media media;  // media slots: the placeholder token goes here
};
struct input_layout {
    std::vector<layout_segment> segments;
    std::string task;               // the task token used
    std::string to_string() const;  // the whole prompt with placeholders spelled as tokens
};

// Builds the layout. Media items are placed before the question text, in the order given, unless the question
// holds explicit markers "<image>", "<video>", "<audio>" (lower case), which are replaced in order. Fails if the
// question has more markers of a kind than media of that kind, or a media item of a non-input modality.
bool build_input_layout(const std::string & question, const std::vector<input_media> & media, const std::string & task,
                        input_layout * out, std::string * err);

// The template grammar in GBNF (llama.cpp grammar syntax): root forces [OUTPUT] ... [END], groups only of the
// allowed modalities with exactly n signal tokens, signal tokens only inside groups, text free of '<' and '['
// (so no stray tag can be written), T-Prompts non-empty and on one line. Added tokens appear as quoted
// literals; a grammar engine that maps special-token spellings to single tokens matches them as such.
std::string template_grammar(const std::vector<modality> & allowed, const template_config & cfg);

// ---- streaming output parser ----

struct parsed_group {
    int index = 0;  // 0-based order of the group in the answer
    modality m = MODALITY_IMAGE;
    std::string t_prompt;               // trimmed text between <M> and the first signal token
    std::vector<int> signal_positions;  // token position of [M0], [M1], ... (as fed; -1 if unknown)
    bool ok = true;
    std::string error;  // why the group is malformed (ok == false)
};

struct parse_event {
    enum kind_t { TEXT, GROUP, WARNING, END } kind = TEXT;
    std::string text;    // TEXT: answer text outside groups; WARNING: the message
    parsed_group group;  // GROUP
};

class output_parser {
public:
    explicit output_parser(const template_config & cfg = template_config());
    // Feeds one piece of output (a token's text, a chunk or a character) that started at token position `pos`
    // (the position recorded for signal tokens it completes). Returns events completed by this piece, in order.
    std::vector<parse_event> feed(const std::string & piece, int pos = -1);
    // End of the stream: flushes pending text, reports an unclosed group and a missing [END].
    std::vector<parse_event> finish();
    bool ended() const { return ended_; }  // [END] seen
    int n_groups() const { return n_groups_; }

private:
    void on_char(char c, int pos, std::vector<parse_event> & ev);
    void on_marker(const std::string & mk, int pos, std::vector<parse_event> & ev);
    void on_text(const std::string & s, std::vector<parse_event> & ev);
    void flush_text(std::vector<parse_event> & ev);
    void close_group(bool ok, const std::string & error, std::vector<parse_event> & ev);

    template_config cfg_;
    std::vector<std::string> markers_;
    std::string pending_;  // a possible marker being read
    int pending_pos_ = -1;
    std::string text_;  // text outside groups not yet emitted
    bool started_ = false, ended_ = false, in_group_ = false, after_signal_ = false;
    bool warned_after_end_ = false, warned_no_output_ = false;
    parsed_group cur_;
    std::string group_err_;  // first error found inside the open group
    int n_groups_ = 0;
};

// Convenience: parses a whole answer; returns all events (finish included).
std::vector<parse_event> parse_output(const std::string & answer, const template_config & cfg = template_config());

}  // namespace spider
