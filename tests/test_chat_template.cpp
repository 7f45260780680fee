// Chat template tests: exact expected prompt strings for every built-in format, detection from template text and
// architecture, and errors.
#include <gtest/gtest.h>

#include "llm/chat_template.h"

using namespace spider;

namespace {
const std::vector<chat_message> k_conv = {
    {"system", "You are helpful."},
    {"user", " Hello "},
    {"assistant", "Hi there"},
    {"user", "Draw a cat"},
};

std::string apply(chat_template_kind k, const std::vector<chat_message> & m, bool gen) {
    std::string out, err;
    EXPECT_TRUE(chat_template_apply(k, m, gen, &out, &err)) << err;
    return out;
}
}  // namespace

TEST(chat_template, gemma) {
    EXPECT_EQ(apply(CHAT_TEMPLATE_GEMMA, k_conv, true),
              "<start_of_turn>user\nYou are helpful.\n\nHello<end_of_turn>\n"
              "<start_of_turn>model\nHi there<end_of_turn>\n"
              "<start_of_turn>user\nDraw a cat<end_of_turn>\n"
              "<start_of_turn>model\n");
    EXPECT_EQ(apply(CHAT_TEMPLATE_GEMMA, {{"user", "Hi"}}, false), "<start_of_turn>user\nHi<end_of_turn>\n");
}

TEST(chat_template, llama2) {
    EXPECT_EQ(apply(CHAT_TEMPLATE_LLAMA2, k_conv, true),
              "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Draw a cat [/INST]");
}

TEST(chat_template, llama3) {
    EXPECT_EQ(apply(CHAT_TEMPLATE_LLAMA3, k_conv, true),
              "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nDraw a cat<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(chat_template, zephyr) {
    EXPECT_EQ(apply(CHAT_TEMPLATE_ZEPHYR, k_conv, true),
              "<|system|>\nYou are helpful.</s>\n<|user|>\n Hello </s>\n<|assistant|>\nHi there</s>\n"
              "<|user|>\nDraw a cat</s>\n<|assistant|>\n");
}

TEST(chat_template, mistral) {
    EXPECT_EQ(apply(CHAT_TEMPLATE_MISTRAL, k_conv, true),
              "[INST] You are helpful.\n\n Hello [/INST] Hi there</s>[INST] Draw a cat[/INST]");
}

TEST(chat_template, chatml) {
    EXPECT_EQ(apply(CHAT_TEMPLATE_CHATML, {{"user", "Hi"}}, true),
              "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(chat_template, detect) {
    EXPECT_EQ(chat_template_detect("{{ '<start_of_turn>' + role }}", ""), CHAT_TEMPLATE_GEMMA);
    EXPECT_EQ(chat_template_detect("<|start_header_id|>{{ role }}<|end_header_id|>", "llama"), CHAT_TEMPLATE_LLAMA3);
    EXPECT_EQ(chat_template_detect("{% if %}<|user|>\n{{ content }}{{ eos_token }}<|assistant|>", "llama"),
              CHAT_TEMPLATE_ZEPHYR);
    EXPECT_EQ(chat_template_detect("[INST] <<SYS>>\n{{ system }}\n<</SYS>>", "llama"), CHAT_TEMPLATE_LLAMA2);
    EXPECT_EQ(chat_template_detect("{{ '[INST] ' + content + '[/INST]' }}", "llama"), CHAT_TEMPLATE_MISTRAL);
    EXPECT_EQ(chat_template_detect("<|im_start|>", "qwen2"), CHAT_TEMPLATE_CHATML);
    // no template text: the architecture decides
    EXPECT_EQ(chat_template_detect("", "gemma3"), CHAT_TEMPLATE_GEMMA);
    EXPECT_EQ(chat_template_detect("", "llama"), CHAT_TEMPLATE_LLAMA2);
    EXPECT_EQ(chat_template_detect("", "somethingelse"), CHAT_TEMPLATE_CHATML);
    EXPECT_EQ(chat_template_from_name("llama3"), CHAT_TEMPLATE_LLAMA3);
    EXPECT_EQ(chat_template_from_name("tinyllama"), CHAT_TEMPLATE_ZEPHYR);
    EXPECT_EQ(chat_template_from_name("nope"), CHAT_TEMPLATE_UNKNOWN);
    EXPECT_STREQ(chat_template_name(CHAT_TEMPLATE_MISTRAL), "mistral");
}

TEST(chat_template, errors) {
    std::string out, err;
    EXPECT_FALSE(chat_template_apply(CHAT_TEMPLATE_GEMMA, {{"tool", "x"}}, true, &out, &err));
    EXPECT_NE(err.find("tool"), std::string::npos) << err;
    EXPECT_FALSE(chat_template_apply(CHAT_TEMPLATE_UNKNOWN, {{"user", "x"}}, true, &out, &err));
    EXPECT_NE(err.find("unknown template"), std::string::npos) << err;
}
