// Text <-> token ids for the vocabularies stored in a GGUF's tokenizer.ggml.*
// metadata, matching the ids the model was trained on. The facade over the
// pieces: the vocabulary (text/vocab.h), the two algorithms, chosen by
// tokenizer.ggml.model — "llama": SentencePiece (text/spm.h); "gpt2":
// byte-level BPE with a pre-tokenizer (text/bpe.h, text/tokenizer_pre.h) —
// and the way back (text/detokenizer.h).
//
//   MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile f, io::GgufFile::Open("m.gguf"));
//   MOESTREAM_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::FromGguf(f));
//   std::vector<int32_t> ids = tok.Encode("Hello", /*add_special=*/true,
//                                         /*parse_special=*/false);
//   Detokenizer out(tok);
//   for (int32_t id : generated) std::fputs(out.Push(id).c_str(), stdout);
//   std::fputs(out.Flush().c_str(), stdout);
//
// What the facade itself decides:
//
// - SentencePiece: one space is prepended to each run of text that starts the
//   input or follows a special token (tokenizer.ggml.add_space_prefix,
//   default true).
// - Special tokens: control, user-defined and unknown tokens (GGUF token
//   types 3, 4, 2) are cut out of the text before the algorithm runs, longest
//   first. User-defined tokens are always cut out; control and unknown tokens
//   only when `parse_special` is true, otherwise their text is ordinary text.
// - `add_special` adds BOS/EOS as tokenizer.ggml.add_bos_token /
//   add_eos_token say (defaults per model and pre-tokenizer as in llama.cpp).
//
// These rules are those of llama.cpp's tokenizer (llama-vocab.cpp), whose test
// vectors our tests run.
#ifndef MOESTREAM_TEXT_TOKENIZER_H_
#define MOESTREAM_TEXT_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "io/gguf.h"
#include "text/bpe.h"
#include "text/detokenizer.h"
#include "text/spm.h"
#include "text/vocab.h"

namespace moestream::text {

class Tokenizer {
 public:
  using Model = TokenizerModel;

  // Reads tokenizer.ggml.* from `file`. Errors name the file and key: no
  // tokenizer at all (model "none" or absent: the model must be given token
  // ids), an unknown model or pre-tokenizer, arrays of mismatched length.
  static absl::StatusOr<Tokenizer> FromGguf(const io::GgufFile& file);
  static absl::StatusOr<Tokenizer> Create(TokenizerVocab vocab);

  // Token ids of `text` (any bytes; invalid UTF-8 is tokenized byte-wise).
  std::vector<int32_t> Encode(std::string_view text, bool add_special,
                              bool parse_special) const;

  // The bytes token `id` stands for. Control tokens render as their text
  // when `render_special`, else as nothing; an out-of-range id renders as
  // nothing. SentencePiece "▁" becomes a space, <0xXX> the byte.
  std::string TokenToPiece(int32_t id, bool render_special = false) const;

  // The text of `ids`. When the vocabulary prepends a space (SentencePiece)
  // and the ids do not start with BOS, that one leading space is removed, so
  // Decode(Encode(t, false, false)) == t.
  std::string Decode(std::span<const int32_t> ids, bool render_special = false) const;

  Model model() const { return model_; }
  std::string_view model_name() const { return model_ == Model::kSpm ? "llama" : "gpt2"; }
  const std::string& pre() const { return pre_; }
  const Vocab& vocab() const { return vocab_; }
  int32_t n_tokens() const { return vocab_.n_tokens(); }
  // Raw vocabulary text of `id` (as stored: "▁Hello", "ĠHello", "<0x0A>").
  std::string_view token_text(int32_t id) const { return vocab_.text(id); }
  TokenType token_type(int32_t id) const { return vocab_.type(id); }
  // Id of a token by its exact vocabulary text, or kNoToken.
  int32_t FindToken(std::string_view text) const { return vocab_.Find(text); }

  int32_t bos() const { return vocab_.bos(); }
  int32_t eos() const { return vocab_.eos(); }
  int32_t eot() const { return vocab_.eot(); }
  int32_t eom() const { return vocab_.eom(); }
  int32_t unk() const { return vocab_.unk(); }
  int32_t pad() const { return vocab_.pad(); }
  bool add_bos() const { return vocab_.add_bos(); }
  bool add_eos() const { return vocab_.add_eos(); }
  bool add_space_prefix() const { return vocab_.add_space_prefix(); }
  // End of generation: EOS, EOT, EOM and the end-of-turn tokens a family
  // uses (<|eot_id|>, <|im_end|>, <|return|>, ...).
  bool is_eog(int32_t id) const { return vocab_.is_eog(id); }
  const std::vector<int32_t>& eog_ids() const { return vocab_.eog_ids(); }
  bool is_control(int32_t id) const { return vocab_.is_control(id); }

 private:
  struct Fragment {
    int32_t token = kNoToken;  // kNoToken: raw text
    std::string_view text;
  };

  Tokenizer(Model model, std::string pre, Vocab vocab)
      : model_(model), pre_(std::move(pre)), vocab_(std::move(vocab)) {}
  std::vector<Fragment> Partition(std::string_view text, bool parse_special) const;

  Model model_;
  std::string pre_;
  Vocab vocab_;
  SpmEncoder spm_;  // model_ == kSpm
  BpeEncoder bpe_;  // model_ == kBpe
};

}  // namespace moestream::text

#endif  // MOESTREAM_TEXT_TOKENIZER_H_
