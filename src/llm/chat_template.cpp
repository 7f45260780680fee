// Built-in chat formats. The strings follow llama.cpp's llm_chat_apply_template for the same formats (studied for
// the facts: where content is trimmed, where the system prompt goes, what ends a turn).
#include "llm/chat_template.h"

#include <sstream>

namespace spider {

namespace {

bool contains(const std::string & s, const char * sub) {
    return s.find(sub) != std::string::npos;
}

std::string trim(const std::string & s) {
    const char * ws = " \t\n\r\f\v";
    const size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return "";
    const size_t e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

bool check_roles(const std::vector<chat_message> & messages, std::string * err) {
    for (size_t i = 0; i < messages.size(); ++i) {
        const std::string & r = messages[i].role;
        if (r != "system" && r != "user" && r != "assistant" && r != "model") {
            if (err) *err = "[chat_template] message " + std::to_string(i) + " has unknown role '" + r + "'";
            return false;
        }
    }
    return true;
}

bool is_assistant(const std::string & role) {
    return role == "assistant" || role == "model";
}

}  // namespace

chat_template_kind chat_template_detect(const std::string & t, const std::string & arch) {
    if (!t.empty()) {
        if (contains(t, "<start_of_turn>")) return CHAT_TEMPLATE_GEMMA;
        if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>")) return CHAT_TEMPLATE_LLAMA3;
        if (contains(t, "<|im_start|>")) return CHAT_TEMPLATE_CHATML;
        if (contains(t, "<|user|>") && !contains(t, "<|end|>")) return CHAT_TEMPLATE_ZEPHYR;
        if (contains(t, "[INST]")) return contains(t, "<<SYS>>") ? CHAT_TEMPLATE_LLAMA2 : CHAT_TEMPLATE_MISTRAL;
    }
    if (arch.compare(0, 5, "gemma") == 0) return CHAT_TEMPLATE_GEMMA;
    if (arch == "llama") return CHAT_TEMPLATE_LLAMA2;
    if (arch == "mistral") return CHAT_TEMPLATE_MISTRAL;
    return CHAT_TEMPLATE_CHATML;
}

chat_template_kind chat_template_from_name(const std::string & n) {
    if (n == "gemma") return CHAT_TEMPLATE_GEMMA;
    if (n == "llama2") return CHAT_TEMPLATE_LLAMA2;
    if (n == "llama3") return CHAT_TEMPLATE_LLAMA3;
    if (n == "zephyr" || n == "tinyllama") return CHAT_TEMPLATE_ZEPHYR;
    if (n == "mistral") return CHAT_TEMPLATE_MISTRAL;
    if (n == "chatml") return CHAT_TEMPLATE_CHATML;
    return CHAT_TEMPLATE_UNKNOWN;
}

const char * chat_template_name(chat_template_kind k) {
    switch (k) {
        case CHAT_TEMPLATE_GEMMA:
            return "gemma";
        case CHAT_TEMPLATE_LLAMA2:
            return "llama2";
        case CHAT_TEMPLATE_LLAMA3:
            return "llama3";
        case CHAT_TEMPLATE_ZEPHYR:
            return "zephyr";
        case CHAT_TEMPLATE_MISTRAL:
            return "mistral";
        case CHAT_TEMPLATE_CHATML:
            return "chatml";
        default:
            return "unknown";
    }
}

bool chat_template_apply(chat_template_kind k, const std::vector<chat_message> & messages, bool add_gen,
                         std::string * out, std::string * err) {
    if (!check_roles(messages, err)) return false;
    std::ostringstream ss;
    switch (k) {
        case CHAT_TEMPLATE_GEMMA: {
            // gemma has no system role: the system text opens the first user turn
            std::string system;
            for (const chat_message & m : messages) {
                if (m.role == "system") {
                    system += trim(m.content);
                    continue;
                }
                const std::string role = is_assistant(m.role) ? "model" : m.role;
                ss << "<start_of_turn>" << role << "\n";
                if (!system.empty() && role != "model") {
                    ss << system << "\n\n";
                    system.clear();
                }
                ss << trim(m.content) << "<end_of_turn>\n";
            }
            if (add_gen) ss << "<start_of_turn>model\n";
            break;
        }
        case CHAT_TEMPLATE_LLAMA2: {
            ss << "[INST] ";
            bool inside_turn = true;
            for (const chat_message & m : messages) {
                if (!inside_turn) {
                    inside_turn = true;
                    ss << "<s>[INST] ";
                }
                const std::string c = trim(m.content);
                if (m.role == "system") {
                    ss << "<<SYS>>\n" << c << "\n<</SYS>>\n\n";
                } else if (m.role == "user") {
                    ss << c << " [/INST]";
                } else {
                    ss << " " << c << " </s>";
                    inside_turn = false;
                }
            }
            // the generation prompt is the open [INST] ... [/INST] itself
            break;
        }
        case CHAT_TEMPLATE_LLAMA3:
            for (const chat_message & m : messages) {
                const std::string role = m.role == "model" ? "assistant" : m.role;
                ss << "<|start_header_id|>" << role << "<|end_header_id|>\n\n" << trim(m.content) << "<|eot_id|>";
            }
            if (add_gen) ss << "<|start_header_id|>assistant<|end_header_id|>\n\n";
            break;
        case CHAT_TEMPLATE_ZEPHYR:
            for (const chat_message & m : messages) {
                const std::string role = m.role == "model" ? "assistant" : m.role;
                ss << "<|" << role << "|>\n" << m.content << "</s>\n";
            }
            if (add_gen) ss << "<|assistant|>\n";
            break;
        case CHAT_TEMPLATE_MISTRAL: {
            bool inside_turn = false;
            for (const chat_message & m : messages) {
                if (!inside_turn) {
                    ss << "[INST] ";
                    inside_turn = true;
                }
                if (m.role == "system") {
                    ss << m.content << "\n\n";
                } else if (m.role == "user") {
                    ss << m.content << "[/INST]";
                } else {
                    ss << " " << trim(m.content) << "</s>";
                    inside_turn = false;
                }
            }
            break;
        }
        case CHAT_TEMPLATE_CHATML:
            for (const chat_message & m : messages) {
                const std::string role = m.role == "model" ? "assistant" : m.role;
                ss << "<|im_start|>" << role << "\n" << m.content << "<|im_end|>\n";
            }
            if (add_gen) ss << "<|im_start|>assistant\n";
            break;
        default:
            if (err) *err = "[chat_template] unknown template kind " + std::to_string(static_cast<int>(k));
            return false;
    }
    *out = ss.str();
    return true;
}

}  // namespace spider
