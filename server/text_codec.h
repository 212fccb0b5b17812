// Text in and out of a served model: prompts to token ids and generated ids
// back to text, with the model's tokenizer and chat format when it has them.
//
//   TextCodec codec(&tokenizer, ChatFormat::kChatMl);   // or (nullptr, nullopt)
//   MOESTREAM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, codec.EncodeChat(messages));
//   std::unique_ptr<TextDecoder> d = codec.NewDecoder();
//   for (int32_t id : generated) send(d->Push(id));
//   send(d->Flush());
//
// A GGUF without a recognised chat template gets its messages' contents
// joined by blank lines. A GGUF without a vocabulary (a `moestream gen`
// model) is served with byte ids: each byte of the prompt text is the token
// id of its value (the vocabulary must have 256 ids), and each generated id
// reads as a space and its decimal value (" 17 305 2"). Thread-safe (const).
#ifndef MOESTREAM_SERVER_TEXT_CODEC_H_
#define MOESTREAM_SERVER_TEXT_CODEC_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace moestream::server {

class TextDecoder {
 public:
  virtual ~TextDecoder() = default;
  // Text complete after id (a split UTF-8 character is held back).
  virtual std::string Push(int32_t id) = 0;
  virtual std::string Flush() = 0;
};

class TextCodec {
 public:
  // `tokenizer` may be null (byte ids); it must outlive the codec.
  TextCodec(const text::Tokenizer* tokenizer, std::optional<text::ChatFormat> chat_format,
            int64_t n_vocab)
      : tokenizer_(tokenizer), chat_format_(chat_format), n_vocab_(n_vocab) {}

  // A conversation as the model's chat format renders it, ending with the
  // assistant's turn. kInvalidArgument for an unknown role.
  absl::StatusOr<std::vector<int32_t>> EncodeChat(
      std::span<const text::ChatMessage> messages) const;
  // Plain text (BOS as the vocabulary says; control-token text stays text).
  absl::StatusOr<std::vector<int32_t>> EncodeText(std::string_view text) const;
  std::unique_ptr<TextDecoder> NewDecoder() const;

  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  // "chatml", ..., "plain" (no template) or "byte-ids" (no vocabulary).
  std::string_view chat_format_name() const;
  int64_t n_vocab() const { return n_vocab_; }

 private:
  const text::Tokenizer* tokenizer_;
  std::optional<text::ChatFormat> chat_format_;
  int64_t n_vocab_;
};

}  // namespace moestream::server

#endif  // MOESTREAM_SERVER_TEXT_CODEC_H_
