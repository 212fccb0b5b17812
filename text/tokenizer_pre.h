// The pre-tokenizers of byte-level BPE vocabularies, by the name stored in
// tokenizer.ggml.pre: each family's split patterns (as published in its
// tokenizer.json, run by RegexSplitter) and the flags the family implies.
//
//   MOESTREAM_ASSIGN_OR_RETURN(PreTokenizerSpec spec, LookupPreTokenizer("qwen2"));
//   MOESTREAM_ASSIGN_OR_RETURN(RegexSplitter split, RegexSplitter::Create(spec.patterns));
//
// Names and patterns follow llama.cpp's list (llama-vocab.cpp), so a GGUF
// converted there is read here the same way. Where llama.cpp rewrites a
// pattern only because std::regex lacks Unicode classes, the original
// pattern is used: PCRE2 has them.
#ifndef MOESTREAM_TEXT_TOKENIZER_PRE_H_
#define MOESTREAM_TEXT_TOKENIZER_PRE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moestream::text {

struct PreTokenizerSpec {
  std::string family;                 // canonical family, e.g. "llama3" for "llama-bpe"
  std::vector<std::string> patterns;  // applied in order (see RegexSplitter)
  bool ignore_merges = false;         // a word that is itself a token skips merging
  std::optional<bool> add_bos;        // family default, before add_bos_token
};

// kInvalidArgument naming `name` (and listing the known names) when unknown.
// The empty name means "default".
absl::StatusOr<PreTokenizerSpec> LookupPreTokenizer(std::string_view name);

// Every name LookupPreTokenizer accepts.
std::vector<std::string> KnownPreTokenizers();

}  // namespace moestream::text

#endif  // MOESTREAM_TEXT_TOKENIZER_PRE_H_
