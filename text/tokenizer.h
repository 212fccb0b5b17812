// Text <-> token ids for the vocabularies stored in a GGUF's tokenizer.ggml.*
// metadata, matching the ids the model was trained on.
//
//   MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile f, io::GgufFile::Open("m.gguf"));
//   MOESTREAM_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::FromGguf(f));
//   std::vector<int32_t> ids = tok.Encode("Hello", /*add_special=*/true,
//                                         /*parse_special=*/false);
//   Detokenizer out(tok);
//   for (int32_t id : generated) std::fputs(out.Push(id).c_str(), stdout);
//   std::fputs(out.Flush().c_str(), stdout);
//
// Two models, chosen by tokenizer.ggml.model:
//
// - "llama": SentencePiece-style. Spaces become U+2581 ("▁"), one is
//   prepended to each run of text that starts the input or follows a special
//   token (tokenizer.ggml.add_space_prefix, default true); adjacent pieces
//   merge greedily by the score of the merged token (ties: leftmost first);
//   whatever forms no token falls back to byte tokens <0xXX>.
// - "gpt2": byte-level BPE. The text is cut into words by the pre-tokenizer
//   named in tokenizer.ggml.pre (each family's published split pattern, run
//   by PCRE2; see tokenizer_pre.cc), each word's bytes are mapped to
//   printable codepoints, and pairs merge by the rank of the merge in
//   tokenizer.ggml.merges (lowest first; ties: leftmost first). Any byte
//   string round-trips, valid UTF-8 or not.
//
// Special tokens: control, user-defined and unknown tokens (GGUF token types
// 3, 4, 2) are cut out of the text before the model runs, longest first.
// User-defined tokens are always cut out; control and unknown tokens only
// when `parse_special` is true, otherwise their text is ordinary text.
// `add_special` adds BOS/EOS as tokenizer.ggml.add_bos_token /
// add_eos_token say (defaults per model and pre-tokenizer as in llama.cpp).
//
// These rules are those of llama.cpp's tokenizer (llama-vocab.cpp), whose test
// vectors our tests run; Decode() is lossless where llama.cpp's optional
// "clean up tokenization spaces" step is not, so we do not apply that step.
#ifndef MOESTREAM_TEXT_TOKENIZER_H_
#define MOESTREAM_TEXT_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "io/gguf.h"
#include "text/unicode.h"

namespace moestream::text {

inline constexpr int32_t kNoToken = -1;

// GGUF token types (tokenizer.ggml.token_type), numbered as stored.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// The plain data a Tokenizer is built from: what FromGguf reads out of the
// metadata. Optional fields left unset take the per-model defaults.
struct TokenizerVocab {
  std::string model;  // "llama" or "gpt2"
  std::string pre;    // pre-tokenizer name; empty = "default"
  std::string name;   // general.name (some models' token attributes depend on it)
  std::vector<std::string> tokens;
  std::vector<float> scores;            // empty, or one per token
  std::vector<int32_t> token_types;     // empty (all normal), or one per token
  std::vector<std::string> merges;      // "left right", by rank (gpt2 only)
  std::optional<int32_t> bos, eos, eot, eom, unk, pad;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
};

class Tokenizer {
 public:
  enum class Model { kSpm, kBpe };

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
  int32_t n_tokens() const { return static_cast<int32_t>(tokens_.size()); }
  // Raw vocabulary text of `id` (as stored: "▁Hello", "ĠHello", "<0x0A>").
  std::string_view token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;
  // Id of a token by its exact vocabulary text, or kNoToken.
  int32_t FindToken(std::string_view text) const;

  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  int32_t eot() const { return eot_; }
  int32_t eom() const { return eom_; }
  int32_t unk() const { return unk_; }
  int32_t pad() const { return pad_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  // End of generation: EOS, EOT, EOM and the end-of-turn tokens a family
  // uses (<|eot_id|>, <|im_end|>, <|return|>, ...).
  bool is_eog(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }
  bool is_control(int32_t id) const;

 private:
  // Token attribute bits (a token may carry several).
  enum Attr : uint32_t {
    kAttrNormal = 1u << 0,
    kAttrUnknown = 1u << 1,
    kAttrControl = 1u << 2,
    kAttrUserDefined = 1u << 3,
    kAttrUnused = 1u << 4,
    kAttrByte = 1u << 5,
    kAttrLstrip = 1u << 6,  // swallow whitespace before the special token
    kAttrRstrip = 1u << 7,  // swallow whitespace after it
  };
  struct Fragment {
    int32_t token = kNoToken;  // kNoToken: raw text
    std::string_view text;
  };

  Tokenizer() = default;
  absl::Status Init(TokenizerVocab vocab);
  std::vector<Fragment> Partition(std::string_view text, bool parse_special) const;
  void EncodeSpm(std::string_view text, std::vector<int32_t>* out) const;
  void EncodeBpe(std::string_view text, std::vector<int32_t>* out) const;
  void BpeWord(const std::string& word, std::vector<int32_t>* out) const;
  int32_t ByteToken(uint8_t byte) const;
  int32_t BpeRank(std::string_view left, std::string_view right) const;
  std::string PieceImpl(int32_t id, bool render_special, bool strip_space) const;

  friend class Detokenizer;

  Model model_ = Model::kSpm;
  std::string pre_;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<uint32_t> attrs_;
  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  // Merge ranks keyed by left + '\n' + right (byte-level tokens never hold a
  // raw newline: it is mapped to U+010A).
  absl::flat_hash_map<std::string, int32_t> merge_rank_;
  std::vector<int32_t> special_tokens_;  // partition order: longest text first
  std::vector<int32_t> eog_ids_;
  std::vector<int32_t> byte_tokens_;     // SPM: <0xXX> ids (kNoToken if absent)
  std::shared_ptr<const RegexSplitter> splitter_;
  int32_t bos_ = kNoToken, eos_ = kNoToken, eot_ = kNoToken, eom_ = kNoToken;
  int32_t unk_ = kNoToken, pad_ = kNoToken;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  bool ignore_merges_ = false;
};

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

#endif  // MOESTREAM_TEXT_TOKENIZER_H_
