// Byte-level BPE encoding ("gpt2" vocabularies): the text is cut into words
// by the pre-tokenizer named in tokenizer.ggml.pre (each family's published
// split pattern, run by PCRE2; see text/tokenizer_pre.h), each word's bytes
// are mapped to printable codepoints, and pairs merge by the rank of the
// merge in tokenizer.ggml.merges (lowest first; ties: leftmost first). Any
// byte string round-trips, valid UTF-8 or not. Follows llama.cpp's
// llm_tokenizer_bpe, whose test vectors our tests run.
//
//   MOESTREAM_ASSIGN_OR_RETURN(BpeEncoder bpe, BpeEncoder::Create(merges, spec));
//   bpe.Encode(vocab, "Hello world", &ids);
//   std::string text = BpePiece(vocab, id);
#ifndef MOESTREAM_TEXT_BPE_H_
#define MOESTREAM_TEXT_BPE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "text/tokenizer_pre.h"
#include "text/unicode.h"
#include "text/vocab.h"

namespace moestream::text {

class BpeEncoder {
 public:
  BpeEncoder() = default;
  // kInvalidArgument for a merge that is not "left right" (naming its index)
  // or a pattern PCRE2 rejects.
  static absl::StatusOr<BpeEncoder> Create(const std::vector<std::string>& merges,
                                           const PreTokenizerSpec& spec);

  // Appends the ids of `text` to `out`.
  void Encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>* out) const;

 private:
  void Word(const Vocab& vocab, const std::string& word, std::vector<int32_t>* out) const;
  int32_t Rank(std::string_view left, std::string_view right) const;

  // Merge ranks keyed by left + '\n' + right (byte-level tokens never hold a
  // raw newline: it is mapped to U+010A).
  absl::flat_hash_map<std::string, int32_t> merge_rank_;
  std::shared_ptr<const RegexSplitter> splitter_;
  bool ignore_merges_ = false;
};

// The bytes a normal token stands for (byte-level codepoints mapped back);
// empty for other types.
std::string BpePiece(const Vocab& vocab, int32_t id);

}  // namespace moestream::text

#endif  // MOESTREAM_TEXT_BPE_H_
