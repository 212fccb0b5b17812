// Unicode helpers for the tokenizers: UTF-8 decoding that never fails (an
// invalid byte becomes one unit standing for U+FFFD), the GPT-2 byte<->unicode
// mapping of byte-level BPE, and RegexSplitter, which cuts text into
// pre-tokenizer pieces with a list of PCRE2 patterns.
//
// Unicode properties come from PCRE2 (UTF + UCP mode, JIT-compiled), not from
// tables of our own: \p{L}, \p{N}, \p{P}, \p{M}, \p{Lu}... and look-ahead are
// exactly what the published pre-tokenizer patterns use.
//
//   MOESTREAM_ASSIGN_OR_RETURN(RegexSplitter s, RegexSplitter::Create({R"( ?\p{L}+|\p{N})"}));
//   for (std::string_view piece : s.Split("Hello 42")) { ... }   // "Hello", " ", "4", "2"
//
// Splitting follows the semantics llama.cpp gives its pattern lists: each
// pattern refines the pieces produced by the previous one, a piece is matched
// in isolation (look-ahead never sees past its end), and the text between two
// matches is kept as a piece of its own, so the pieces always concatenate back
// to the input, byte for byte, even when the input is not valid UTF-8.
#ifndef MOESTREAM_TEXT_UNICODE_H_
#define MOESTREAM_TEXT_UNICODE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moestream::text {

inline constexpr uint32_t kReplacementCodepoint = 0xFFFD;

// Length of the UTF-8 sequence a byte starts, judged from its high nibble
// alone (continuation and invalid bytes count as 1). Used where text is cut
// into characters without validating it, as SentencePiece does.
size_t Utf8LengthFromLeadByte(uint8_t byte);

// One decoded unit of (possibly invalid) UTF-8 text.
struct Utf8Unit {
  uint32_t codepoint = 0;  // kReplacementCodepoint for an invalid byte
  uint32_t offset = 0;     // byte offset in the text
  uint32_t length = 0;     // bytes, 1..4
};

// Strict decoding (no overlongs, surrogates or values past U+10FFFF); every
// byte that does not start a valid sequence becomes a unit of length 1.
std::vector<Utf8Unit> DecodeUtf8(std::string_view text);
void AppendUtf8(uint32_t codepoint, std::string* out);
bool IsValidUtf8(std::string_view text);

// Bytes held back at the end of `text` because they start a UTF-8 sequence
// that is still incomplete (0 when the text ends on a boundary or in bytes
// that can never become valid).
size_t IncompleteUtf8Suffix(std::string_view text);

// GPT-2's byte-level mapping: every byte gets a printable codepoint (bytes
// 0x21..0x7E, 0xA1..0xAC, 0xAE..0xFF map to themselves, the rest to U+0100..).
// Returns the UTF-8 of the mapped codepoint.
std::string_view ByteToUnicode(uint8_t byte);
// The byte a mapped codepoint stands for; -1 when it is not part of the map.
int UnicodeToByte(uint32_t codepoint);
// Maps every byte of `bytes`.
std::string ByteLevelEncode(std::string_view bytes);
// Inverse of ByteLevelEncode; codepoints outside the map are copied as UTF-8.
std::string ByteLevelDecode(std::string_view text);

// Splits text with an ordered list of PCRE2 patterns (see the file comment).
// In the patterns, \s and \S mean Unicode White_Space (and its complement),
// rewritten to explicit classes so PCRE2's own notion of \s does not leak in.
// Copies share the compiled patterns; Split() is thread-safe.
class RegexSplitter {
 public:
  static absl::StatusOr<RegexSplitter> Create(const std::vector<std::string>& patterns);

  // Pieces of `text`, in order, concatenating to `text`.
  std::vector<std::string_view> Split(std::string_view text) const;

  size_t pattern_count() const { return patterns_.size(); }

 private:
  struct Compiled;
  std::vector<std::shared_ptr<const Compiled>> patterns_;
};

}  // namespace moestream::text

#endif  // MOESTREAM_TEXT_UNICODE_H_
