#include "text/chat_template.h"

#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace moestream::text {
namespace {

struct FormatName {
  ChatFormat format;
  std::string_view name;
};
constexpr FormatName kNames[] = {
    {ChatFormat::kChatMl, "chatml"},     {ChatFormat::kLlama3, "llama3"},
    {ChatFormat::kLlama4, "llama4"},     {ChatFormat::kMistral, "mistral"},
    {ChatFormat::kDeepSeek, "deepseek"}, {ChatFormat::kDeepSeek2, "deepseek2"},
    {ChatFormat::kHarmony, "harmony"},
};

// DeepSeek's markers use full-width bars (U+FF5C) and U+2581 for spaces.
constexpr char kDsUser[] = "<\xEF\xBD\x9CUser\xEF\xBD\x9C>";
constexpr char kDsAssistant[] = "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>";
constexpr char kDsEnd[] =
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";

std::string Trim(std::string_view s) { return std::string(absl::StripAsciiWhitespace(Av(s))); }

std::string TodayUtc() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
  return buf;
}

absl::Status CheckRoles(std::span<const ChatMessage> messages, ChatFormat format) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    const bool ok = r == "system" || r == "user" || r == "assistant" ||
                    (format == ChatFormat::kHarmony && r == "developer");
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("chat message ", i, " has role '", r, "'; ", Av(ChatFormatName(format)),
                       " takes system, user and assistant"));
    }
  }
  return absl::OkStatus();
}

std::string RenderHarmony(std::span<const ChatMessage> messages, bool add_assistant_prompt,
                          const ChatOptions& options) {
  std::string out = absl::StrCat(
      "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
      "Knowledge cutoff: 2024-06\nCurrent date: ",
      options.date.empty() ? TodayUtc() : options.date, "\n\nReasoning: ",
      options.reasoning_effort,
      "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every "
      "message.<|end|>");
  for (const ChatMessage& m : messages) {
    if (m.role == "system" || m.role == "developer") {
      // The instructions ("system prompt") travel in a developer message.
      absl::StrAppend(&out, "<|start|>developer<|message|># Instructions\n\n", m.content,
                      "<|end|>");
    } else if (m.role == "user") {
      absl::StrAppend(&out, "<|start|>user<|message|>", m.content, "<|end|>");
    } else {
      absl::StrAppend(&out, "<|start|>assistant<|channel|>final<|message|>", m.content, "<|end|>");
    }
  }
  if (add_assistant_prompt) out += "<|start|>assistant";
  return out;
}

}  // namespace

std::string_view ChatFormatName(ChatFormat f) {
  for (const FormatName& n : kNames) {
    if (n.format == f) return n.name;
  }
  return "unknown";
}

absl::StatusOr<ChatFormat> ParseChatFormat(std::string_view name) {
  for (const FormatName& n : kNames) {
    if (n.name == name) return n.format;
  }
  if (name == "qwen") return ChatFormat::kChatMl;
  if (name == "gpt-oss") return ChatFormat::kHarmony;
  std::string known;
  for (const FormatName& n : kNames) absl::StrAppend(&known, known.empty() ? "" : ", ", Av(n.name));
  return absl::InvalidArgumentError(
      absl::StrCat("unknown chat format '", Av(name), "' (known: ", known, ")"));
}

absl::StatusOr<ChatFormat> DetectChatFormat(std::string_view t) {
  auto has = [t](std::string_view marker) { return t.find(marker) != std::string_view::npos; };
  if (has("<|channel|>")) return ChatFormat::kHarmony;
  if (has("<|header_start|>")) return ChatFormat::kLlama4;
  if (has("<|start_header_id|>")) return ChatFormat::kLlama3;
  if (has("<|im_start|>")) return ChatFormat::kChatMl;
  if (has(kDsAssistant) && has(kDsUser)) return ChatFormat::kDeepSeek;
  if (has("'Assistant: '")) return ChatFormat::kDeepSeek2;
  if (has("[INST]")) return ChatFormat::kMistral;
  std::string_view first = t.substr(0, t.find('\n'));
  if (first.size() > 80) first = first.substr(0, 80);
  return absl::InvalidArgumentError(absl::StrCat(
      "unrecognised chat template starting '", Av(first),
      "'; choose a format with --chat-format (chatml, llama3, llama4, mistral, deepseek, "
      "deepseek2, harmony)"));
}

absl::StatusOr<std::string> RenderChat(ChatFormat format, std::span<const ChatMessage> messages,
                                       bool add_assistant_prompt, const ChatOptions& options) {
  if (absl::Status s = CheckRoles(messages, format); !s.ok()) return s;
  std::string out;
  switch (format) {
    case ChatFormat::kChatMl:
      for (const ChatMessage& m : messages) {
        absl::StrAppend(&out, "<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
      }
      if (add_assistant_prompt) out += "<|im_start|>assistant\n";
      return out;
    case ChatFormat::kLlama3:
      for (const ChatMessage& m : messages) {
        absl::StrAppend(&out, "<|start_header_id|>", m.role, "<|end_header_id|>\n\n",
                        Trim(m.content), "<|eot_id|>");
      }
      if (add_assistant_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatFormat::kLlama4:
      for (const ChatMessage& m : messages) {
        absl::StrAppend(&out, "<|header_start|>", m.role, "<|header_end|>\n\n", Trim(m.content),
                        "<|eot|>");
      }
      if (add_assistant_prompt) out += "<|header_start|>assistant<|header_end|>\n\n";
      return out;
    case ChatFormat::kMistral: {
      // Mixtral-Instruct: "[INST] user [/INST]answer</s>"; a system message
      // is folded into the next user turn.
      std::string system;
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          absl::StrAppend(&system, system.empty() ? "" : "\n\n", m.content);
        } else if (m.role == "user") {
          absl::StrAppend(&out, "[INST] ", system, system.empty() ? "" : "\n\n", m.content,
                          " [/INST]");
          system.clear();
        } else {
          absl::StrAppend(&out, m.content, "</s>");
        }
      }
      return out;  // a user turn already ends where the answer starts
    }
    case ChatFormat::kDeepSeek: {
      // DeepSeek V3/R1: all system text first, then the turns.
      for (const ChatMessage& m : messages) {
        if (m.role != "system") continue;
        absl::StrAppend(&out, out.empty() ? "" : "\n\n", m.content);
      }
      for (const ChatMessage& m : messages) {
        if (m.role == "user") {
          absl::StrAppend(&out, kDsUser, m.content);
        } else if (m.role == "assistant") {
          absl::StrAppend(&out, kDsAssistant, m.content, kDsEnd);
        }
      }
      if (add_assistant_prompt) out += kDsAssistant;
      return out;
    }
    case ChatFormat::kDeepSeek2:
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          absl::StrAppend(&out, m.content, "\n\n");
        } else if (m.role == "user") {
          absl::StrAppend(&out, "User: ", m.content, "\n\n");
        } else {
          absl::StrAppend(&out, "Assistant: ", m.content, kDsEnd);
        }
      }
      if (add_assistant_prompt) out += "Assistant:";
      return out;
    case ChatFormat::kHarmony:
      return RenderHarmony(messages, add_assistant_prompt, options);
  }
  return absl::InternalError("unhandled chat format");
}

absl::StatusOr<std::string> FormatChat(const io::GgufFile& file,
                                       std::span<const ChatMessage> messages,
                                       bool add_assistant_prompt, std::string_view format_override,
                                       const ChatOptions& options) {
  ChatFormat format;
  if (!format_override.empty()) {
    absl::StatusOr<ChatFormat> f = ParseChatFormat(format_override);
    if (!f.ok()) return f.status();
    format = *f;
  } else {
    const io::GgufValue* t = file.Find("tokenizer.chat_template");
    if (t == nullptr || !t->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          file.path(), ": no tokenizer.chat_template string; choose a format with --chat-format "
                       "(chatml, llama3, llama4, mistral, deepseek, deepseek2, harmony)"));
    }
    absl::StatusOr<ChatFormat> f = DetectChatFormat(t->raw_string());
    if (!f.ok()) return absl::InvalidArgumentError(absl::StrCat(file.path(), ": ", f.status().message()));
    format = *f;
  }
  return RenderChat(format, messages, add_assistant_prompt, options);
}

}  // namespace moestream::text
