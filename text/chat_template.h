// Chat formatting: turns a conversation into the prompt text a model was
// trained on. The family is recognised from the GGUF's
// tokenizer.chat_template (a Jinja template, not executed here) by its
// distinctive markers, or named explicitly (--chat-format); each family's
// published format is then rendered by code.
//
//   std::vector<ChatMessage> chat = {{"system", "Be brief."}, {"user", "Hi"}};
//   MOESTREAM_ASSIGN_OR_RETURN(std::string prompt,
//       FormatChat(gguf, chat, /*add_assistant_prompt=*/true, /*format_override=*/""));
//   std::vector<int32_t> ids = tokenizer.Encode(prompt, /*add_special=*/true,
//                                               /*parse_special=*/true);
//
// The rendered text never contains the BOS token: Encode(add_special=true)
// adds it as the vocabulary says (every family here starts with BOS), so the
// text must be tokenized with parse_special=true for the markers
// (<|im_start|>, [INST], ...) to become their control tokens.
//
// Families and what recognises them (first match wins, in this order):
//   harmony   gpt-oss       "<|channel|>"
//   llama4    Llama 4       "<|header_start|>"
//   llama3    Llama 3.x     "<|start_header_id|>"
//   chatml    Qwen, ...     "<|im_start|>"
//   deepseek  DeepSeek V3/R1 "<｜Assistant｜>" and "<｜User｜>"
//   deepseek2 DeepSeek V2   "'Assistant: '"
//   mistral   Mistral/Mixtral "[INST]"
#ifndef MOESTREAM_TEXT_CHAT_TEMPLATE_H_
#define MOESTREAM_TEXT_CHAT_TEMPLATE_H_

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "io/gguf.h"

namespace moestream::text {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant" ("developer" = system for harmony)
  std::string content;
};

enum class ChatFormat { kChatMl, kLlama3, kLlama4, kMistral, kDeepSeek, kDeepSeek2, kHarmony };

struct ChatOptions {
  // harmony: the "Current date:" line (YYYY-MM-DD); empty = today (UTC).
  std::string date;
  // harmony: "low", "medium" or "high".
  std::string reasoning_effort = "medium";
};

std::string_view ChatFormatName(ChatFormat f);
// "chatml" (also "qwen"), "llama3", "llama4", "mistral", "deepseek",
// "deepseek2", "harmony" (also "gpt-oss"); kInvalidArgument listing them.
absl::StatusOr<ChatFormat> ParseChatFormat(std::string_view name);
// Recognises a Jinja chat template; kInvalidArgument quoting its first line
// when no family matches.
absl::StatusOr<ChatFormat> DetectChatFormat(std::string_view chat_template);

// Renders `messages` in `format`; with `add_assistant_prompt` it ends with the
// header of an assistant turn for the model to complete. Roles other than
// system/user/assistant are kInvalidArgument.
absl::StatusOr<std::string> RenderChat(ChatFormat format, std::span<const ChatMessage> messages,
                                       bool add_assistant_prompt,
                                       const ChatOptions& options = {});

// The family named by `format_override` if non-empty, else the one
// recognised in `file`'s tokenizer.chat_template; errors name the file.
absl::StatusOr<std::string> FormatChat(const io::GgufFile& file,
                                       std::span<const ChatMessage> messages,
                                       bool add_assistant_prompt, std::string_view format_override,
                                       const ChatOptions& options = {});

}  // namespace moestream::text

#endif  // MOESTREAM_TEXT_CHAT_TEMPLATE_H_
