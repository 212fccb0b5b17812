// The vocabulary a tokenizer works with, whatever its algorithm: token texts,
// scores and attributes, the id lookup, the special and end-of-generation
// tokens, and the BOS/EOS policy. Read from a GGUF's tokenizer.ggml.* keys.
//
//   MOESTREAM_ASSIGN_OR_RETURN(TokenizerVocab raw, ReadTokenizerVocab(file));
//   MOESTREAM_ASSIGN_OR_RETURN(Vocab vocab, Vocab::Create(raw, defaults));
//   int32_t id = vocab.Find("<|im_end|>");
//
// The algorithms (text/spm.h, text/bpe.h) and the detokenizer read it; the
// Tokenizer facade (text/tokenizer.h) owns one.
#ifndef MOESTREAM_TEXT_VOCAB_H_
#define MOESTREAM_TEXT_VOCAB_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "io/gguf.h"

namespace moestream::text {

inline constexpr int32_t kNoToken = -1;

// The algorithm a vocabulary was trained with (tokenizer.ggml.model):
// SentencePiece ("llama", text/spm.h) or byte-level BPE ("gpt2", text/bpe.h).
enum class TokenizerModel { kSpm, kBpe };

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

// Reads tokenizer.ggml.* (and general.name) from `file`. Errors name the file
// and key: no tokenizer at all (model "none" or absent: the model must be
// given token ids), a key of the wrong type.
absl::StatusOr<TokenizerVocab> ReadTokenizerVocab(const io::GgufFile& file);

// Token attribute bits (a token may carry several).
enum TokenAttr : uint32_t {
  kAttrNormal = 1u << 0,
  kAttrUnknown = 1u << 1,
  kAttrControl = 1u << 2,
  kAttrUserDefined = 1u << 3,
  kAttrUnused = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrLstrip = 1u << 6,  // swallow whitespace before the special token
  kAttrRstrip = 1u << 7,  // swallow whitespace after it
};

class Vocab {
 public:
  // What the algorithm assumes when the file does not say.
  struct Defaults {
    int32_t bos = kNoToken, eos = kNoToken, unk = kNoToken;
    bool add_bos = false, add_space_prefix = false;
  };

  // Takes the tokens, scores, types, ids and flags out of `v` (model, pre
  // and merges are the algorithm's). kInvalidArgument for arrays of the
  // wrong length or an add_bos/add_eos without its id.
  static absl::StatusOr<Vocab> Create(TokenizerVocab& v, const Defaults& defaults);

  int32_t n_tokens() const { return static_cast<int32_t>(tokens_.size()); }
  bool valid(int32_t id) const { return id >= 0 && id < n_tokens(); }
  // Raw text of `id` (as stored: "▁Hello", "ĠHello", "<0x0A>"); empty when
  // out of range.
  std::string_view text(int32_t id) const;
  float score(int32_t id) const { return scores_[id]; }     // requires valid(id)
  uint32_t attrs(int32_t id) const { return attrs_[id]; }   // requires valid(id)
  TokenType type(int32_t id) const;
  // Id of a token by its exact text, or kNoToken.
  int32_t Find(std::string_view text) const;

  // Tokens cut out of the text before the algorithm runs, longest first.
  const std::vector<int32_t>& special_tokens() const { return special_tokens_; }
  bool is_eog(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }
  bool is_control(int32_t id) const { return valid(id) && (attrs_[id] & kAttrControl) != 0; }

  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  int32_t eot() const { return eot_; }
  int32_t eom() const { return eom_; }
  int32_t unk() const { return unk_; }
  int32_t pad() const { return pad_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }

 private:
  Vocab() = default;
  void FindEndOfGeneration();
  void CollectSpecialTokens(std::string_view model_name);

  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<uint32_t> attrs_;
  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  std::vector<int32_t> special_tokens_;  // partition order: longest text first
  std::vector<int32_t> eog_ids_;         // sorted
  int32_t bos_ = kNoToken, eos_ = kNoToken, eot_ = kNoToken, eom_ = kNoToken;
  int32_t unk_ = kNoToken, pad_ = kNoToken;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
};

}  // namespace moestream::text

#endif  // MOESTREAM_TEXT_VOCAB_H_
