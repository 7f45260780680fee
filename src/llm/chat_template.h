// Chat templates: turning a list of {role, content} messages into the prompt text a chat model was trained on.
// Built-in formats (written in C++, no Jinja): gemma, llama2, llama3, zephyr (TinyLlama), mistral, chatml. The
// format is recognised from the GGUF's `tokenizer.chat_template` text by distinctive substrings, else chosen from
// the architecture. The output holds no BOS: the tokenizer adds it (add_special), and control-token texts in it
// ("<start_of_turn>") become single tokens when tokenized with parse_special.
//
//   spider::chat_template_kind k = spider::chat_template_detect(vocab.chat_template(), "gemma3");
//   std::string prompt;
//   spider::chat_template_apply(k, {{"user", "Hi"}}, /*add_generation_prompt=*/true, &prompt, &err);
//   // "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
#pragma once
#include <string>
#include <vector>

namespace spider {

enum chat_template_kind {
    CHAT_TEMPLATE_UNKNOWN = 0,
    CHAT_TEMPLATE_GEMMA,    // <start_of_turn>user\n...<end_of_turn>\n ; system text joins the first user turn
    CHAT_TEMPLATE_LLAMA2,   // [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] answer</s><s>[INST] ...
    CHAT_TEMPLATE_LLAMA3,   // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
    CHAT_TEMPLATE_ZEPHYR,   // <|role|>\n...</s>\n  (TinyLlama chat)
    CHAT_TEMPLATE_MISTRAL,  // [INST] ...[/INST] answer</s>  (Mistral v3)
    CHAT_TEMPLATE_CHATML,   // <|im_start|>role\n...<|im_end|>\n
};

struct chat_message {
    std::string role;  // "system", "user", "assistant" (gemma: "model" accepted as assistant)
    std::string content;
};

// From template text (may be empty) and architecture name (general.architecture). Never UNKNOWN: falls back to
// chatml when neither says anything.
chat_template_kind chat_template_detect(const std::string & template_text, const std::string & arch);
// "gemma", "llama2", "llama3", "zephyr", "mistral", "chatml" -> kind; UNKNOWN for anything else.
chat_template_kind chat_template_from_name(const std::string & name);
const char * chat_template_name(chat_template_kind k);

// Renders the conversation. add_generation_prompt: end with the opening of an assistant turn. Errors: unknown kind,
// a role other than system/user/assistant.
bool chat_template_apply(chat_template_kind k, const std::vector<chat_message> & messages, bool add_generation_prompt,
                         std::string * out, std::string * err);

}  // namespace spider
