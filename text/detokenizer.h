// Token ids back to text: the bytes one token stands for, and a streaming
// detokenizer that never emits half a UTF-8 character.
//
//   Detokenizer out(tok);
//   for (int32_t id : generated) std::fputs(out.Push(id).c_str(), stdout);
//   std::fputs(out.Flush().c_str(), stdout);
//
// Decoding is lossless: llama.cpp's optional "clean up tokenization spaces"
// step is not applied.
#ifndef MOESTREAM_TEXT_DETOKENIZER_H_
#define MOESTREAM_TEXT_DETOKENIZER_H_

#include <cstdint>
#include <string>

#include "text/vocab.h"

namespace moestream::text {

class Tokenizer;

// The bytes token `id` stands for. User-defined tokens render as their
// text; control and unknown tokens as their text when `render_special`,
// else control tokens as nothing; normal, byte and unknown tokens by the
// algorithm's rules (text/spm.h, text/bpe.h). An out-of-range id renders as
// nothing. `strip_leading_space` drops one leading space of the result.
std::string TokenPiece(const Vocab& vocab, TokenizerModel model, int32_t id, bool render_special,
                       bool strip_leading_space);

// Streaming detokenizer: Push() returns the text that is complete so far and
// holds back the bytes of a UTF-8 character split across tokens (byte
// fallback tokens, byte-level BPE) until the rest arrives.
class Detokenizer {
 public:
  struct Options {
    // Render control tokens as their text instead of nothing.
    bool render_special = false;
    // Drop one leading space of the first piece (as Decode() does when the
    // ids were encoded without BOS by a space-prefixing vocabulary).
    bool strip_leading_space = false;
  };
  explicit Detokenizer(const Tokenizer& tokenizer) : Detokenizer(tokenizer, Options()) {}
  Detokenizer(const Tokenizer& tokenizer, Options options)
      : tokenizer_(&tokenizer), options_(options) {}

  std::string Push(int32_t id);
  // Whatever is still held (an incomplete sequence at the end of the output).
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  Options options_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace moestream::text

#endif  // MOESTREAM_TEXT_DETOKENIZER_H_
