// Chat formats against the families' published prompt formats (model cards
// and the chat templates shipped in their tokenizer_config.json / the
// harmony format guide). Expected strings are written out by hand from those.
#include "text/chat_template.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "io/gguf.h"
#include "tests/test_util.h"

namespace moestream::text {
namespace {

const std::vector<ChatMessage> kChat = {
    {"system", "You are terse."},
    {"user", "Hi"},
    {"assistant", "Hello."},
    {"user", "2+2?"},
};

std::string Render(ChatFormat f, bool gen = true) {
  ChatOptions o;
  o.date = "2025-06-28";
  absl::StatusOr<std::string> s = RenderChat(f, kChat, gen, o);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : "";
}

TEST(ChatTemplateTest, ChatMl) {
  EXPECT_EQ(Render(ChatFormat::kChatMl),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n"
            "<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(Render(ChatFormat::kChatMl, false).find("<|im_start|>assistant\n", 100),
            std::string::npos);
}

TEST(ChatTemplateTest, Llama3) {
  EXPECT_EQ(Render(ChatFormat::kLlama3),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // The template trims message content.
  const std::vector<ChatMessage> padded = {{"user", "  Hi \n"}};
  EXPECT_EQ(*RenderChat(ChatFormat::kLlama3, padded, false),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplateTest, Llama4) {
  EXPECT_EQ(Render(ChatFormat::kLlama4),
            "<|header_start|>system<|header_end|>\n\nYou are terse.<|eot|>"
            "<|header_start|>user<|header_end|>\n\nHi<|eot|>"
            "<|header_start|>assistant<|header_end|>\n\nHello.<|eot|>"
            "<|header_start|>user<|header_end|>\n\n2+2?<|eot|>"
            "<|header_start|>assistant<|header_end|>\n\n");
}

TEST(ChatTemplateTest, Mistral) {
  EXPECT_EQ(Render(ChatFormat::kMistral),
            "[INST] You are terse.\n\nHi [/INST]Hello.</s>[INST] 2+2? [/INST]");
}

TEST(ChatTemplateTest, DeepSeek) {
  EXPECT_EQ(Render(ChatFormat::kDeepSeek),
            "You are terse."
            "<\xEF\xBD\x9CUser\xEF\xBD\x9C>Hi"
            "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>Hello."
            "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"
            "<\xEF\xBD\x9CUser\xEF\xBD\x9C>2+2?"
            "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>");
  EXPECT_EQ(Render(ChatFormat::kDeepSeek2),
            "You are terse.\n\nUser: Hi\n\nAssistant: Hello."
            "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"
            "User: 2+2?\n\nAssistant:");
}

TEST(ChatTemplateTest, Harmony) {
  EXPECT_EQ(Render(ChatFormat::kHarmony),
            "<|start|>system<|message|>You are ChatGPT, a large language model trained by "
            "OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\nReasoning: medium\n\n"
            "# Valid channels: analysis, commentary, final. Channel must be included for every "
            "message.<|end|>"
            "<|start|>developer<|message|># Instructions\n\nYou are terse.<|end|>"
            "<|start|>user<|message|>Hi<|end|>"
            "<|start|>assistant<|channel|>final<|message|>Hello.<|end|>"
            "<|start|>user<|message|>2+2?<|end|>"
            "<|start|>assistant");
}

TEST(ChatTemplateTest, DetectsFamiliesByMarkers) {
  struct Case {
    const char* tmpl;
    ChatFormat want;
  };
  const Case cases[] = {
      {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}", ChatFormat::kChatMl},
      {"{{ bos_token }}{% for m in messages %}<|start_header_id|>", ChatFormat::kLlama3},
      {"{{- '<|header_start|>' + message['role'] + '<|header_end|>\\n\\n' }}", ChatFormat::kLlama4},
      {"{{ '[INST] ' + message['content'] + ' [/INST]' }}", ChatFormat::kMistral},
      {"{{'<\xEF\xBD\x9CUser\xEF\xBD\x9C>' + m}}{{'<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>'}}",
       ChatFormat::kDeepSeek},
      {"{{ 'Assistant: ' + message['content'] + eos_token }}", ChatFormat::kDeepSeek2},
      {"<|start|>assistant<|channel|>final<|message|>", ChatFormat::kHarmony},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ChatFormat> f = DetectChatFormat(c.tmpl);
    ASSERT_TRUE(f.ok()) << c.tmpl << ": " << f.status();
    EXPECT_EQ(*f, c.want) << c.tmpl;
  }
}

TEST(ChatTemplateTest, UnrecognisedTemplateNamesItsFirstLine) {
  // Phi-3's template (in its vocab file) is none of our families.
  absl::StatusOr<io::GgufFile> f = io::GgufFile::Open(
      moestream::testing::SharedPath("data/tokenizers/ggml-vocab-phi-3.gguf"));
  ASSERT_TRUE(f.ok()) << f.status();
  const std::vector<ChatMessage> chat = {{"user", "Hi"}};
  absl::StatusOr<std::string> s = FormatChat(*f, chat, true, "");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("'{{ bos_token }}{% for message in messages %}"),
            absl::string_view::npos)
      << s.status();
  EXPECT_NE(s.status().message().find("--chat-format"), absl::string_view::npos);
  // The override wins.
  s = FormatChat(*f, chat, true, "chatml");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_FALSE(FormatChat(*f, chat, true, "nope").ok());
}

TEST(ChatTemplateTest, FormatChatReadsTheTemplateFromTheFile) {
  moestream::testing::ScratchDir dir;
  io::GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetString("tokenizer.chat_template",
              "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
              "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}");
  ASSERT_TRUE(w.Write(dir.Path("t.gguf")).ok());
  absl::StatusOr<io::GgufFile> f = io::GgufFile::Open(dir.Path("t.gguf"));
  ASSERT_TRUE(f.ok()) << f.status();
  const std::vector<ChatMessage> chat = {{"user", "Hi"}};
  absl::StatusOr<std::string> s = FormatChat(*f, chat, true, "");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");

  const std::vector<ChatMessage> bad = {{"tool", "x"}};
  EXPECT_FALSE(FormatChat(*f, bad, true, "").ok());
}

}  // namespace
}  // namespace moestream::text
