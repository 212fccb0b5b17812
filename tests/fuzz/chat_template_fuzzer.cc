// libFuzzer entry point for the chat-template recogniser and the renderers:
// the input is a Jinja template to recognise, a --chat-format name, and the
// content of every message rendered in every family. Errors are Statuses;
// nothing may crash, leak or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace tx = moestream::text;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)tx::ParseChatFormat(input);
  absl::StatusOr<tx::ChatFormat> detected = tx::DetectChatFormat(input);
  // The first line picks a role, so unknown roles are reached too.
  const std::string_view role = input.substr(0, std::min(input.find('\n'), size_t{16}));
  const std::vector<tx::ChatMessage> chat = {{"system", std::string(input)},
                                             {"user", std::string(input)},
                                             {"assistant", std::string(input)},
                                             {std::string(role), "x"}};
  for (tx::ChatFormat f : {tx::ChatFormat::kChatMl, tx::ChatFormat::kLlama3,
                           tx::ChatFormat::kLlama4, tx::ChatFormat::kMistral,
                           tx::ChatFormat::kDeepSeek, tx::ChatFormat::kDeepSeek2,
                           tx::ChatFormat::kHarmony}) {
    if (detected.ok() && *detected != f) continue;
    tx::ChatOptions o;
    o.date = "2025-01-01";
    (void)tx::RenderChat(f, std::span(chat).first(3), size % 2 == 0, o);
    (void)tx::RenderChat(f, chat, true, o);
  }
  return 0;
}
