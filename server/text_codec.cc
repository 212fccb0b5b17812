#include "server/text_codec.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "text/detokenizer.h"

namespace moestream::server {
namespace {

class TokenizerDecoder final : public TextDecoder {
 public:
  explicit TokenizerDecoder(const text::Tokenizer& t) : detok_(t) {}
  std::string Push(int32_t id) override { return detok_.Push(id); }
  std::string Flush() override { return detok_.Flush(); }

 private:
  text::Detokenizer detok_;
};

class ByteIdDecoder final : public TextDecoder {
 public:
  std::string Push(int32_t id) override { return absl::StrCat(" ", id); }
  std::string Flush() override { return ""; }
};

}  // namespace

absl::StatusOr<std::vector<int32_t>> TextCodec::EncodeChat(
    std::span<const text::ChatMessage> messages) const {
  if (tokenizer_ != nullptr && chat_format_.has_value()) {
    MOESTREAM_ASSIGN_OR_RETURN(std::string prompt,
                               text::RenderChat(*chat_format_, messages, true));
    return tokenizer_->Encode(prompt, /*add_special=*/true, /*parse_special=*/true);
  }
  std::string joined;
  for (const text::ChatMessage& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant" && m.role != "developer") {
      return absl::InvalidArgumentError(absl::StrCat(
          "role '", m.role, "' is not one of system, developer, user, assistant"));
    }
    if (!joined.empty()) joined += "\n\n";
    joined += m.content;
  }
  return EncodeText(joined);
}

absl::StatusOr<std::vector<int32_t>> TextCodec::EncodeText(std::string_view text) const {
  if (tokenizer_ != nullptr) {
    return tokenizer_->Encode(text, /*add_special=*/true, /*parse_special=*/false);
  }
  if (n_vocab_ < 256) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the model has no vocabulary and only ", n_vocab_, " token ids: byte ids need 256"));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

std::unique_ptr<TextDecoder> TextCodec::NewDecoder() const {
  if (tokenizer_ != nullptr) return std::make_unique<TokenizerDecoder>(*tokenizer_);
  return std::make_unique<ByteIdDecoder>();
}

std::string_view TextCodec::chat_format_name() const {
  if (tokenizer_ == nullptr) return "byte-ids";
  if (!chat_format_.has_value()) return "plain";
  return text::ChatFormatName(*chat_format_);
}

}  // namespace moestream::server
