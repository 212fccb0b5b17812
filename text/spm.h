// SentencePiece-style encoding ("llama" vocabularies): spaces become U+2581
// ("▁"); adjacent pieces merge greedily by the score of the merged token
// (ties: leftmost first); whatever forms no token falls back to byte tokens
// <0xXX>. Follows llama.cpp's llm_tokenizer_spm, whose test vectors our tests
// run.
//
//   SpmEncoder spm(vocab);
//   spm.Encode(vocab, SpmEscapeSpaces(" Hello world"), &ids);
//   std::string text = SpmPiece(vocab, id);
#ifndef MOESTREAM_TEXT_SPM_H_
#define MOESTREAM_TEXT_SPM_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/vocab.h"

namespace moestream::text {

// Spaces to U+2581, as SentencePiece stores them.
std::string SpmEscapeSpaces(std::string_view text);

class SpmEncoder {
 public:
  SpmEncoder() = default;
  // Finds the byte-fallback tokens of `vocab`.
  explicit SpmEncoder(const Vocab& vocab);

  // Appends the ids of `text` (spaces already escaped) to `out`.
  void Encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>* out) const;

 private:
  int32_t ByteToken(const Vocab& vocab, uint8_t byte) const;

  std::vector<int32_t> byte_tokens_;  // <0xXX> ids (kNoToken if absent)
};

// The bytes a normal, byte or unknown token stands for: "▁" becomes a space,
// <0xXX> the byte, an unknown token U+2585.
std::string SpmPiece(const Vocab& vocab, int32_t id);

}  // namespace moestream::text

#endif  // MOESTREAM_TEXT_SPM_H_
