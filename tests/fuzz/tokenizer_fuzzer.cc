// libFuzzer entry point for the tokenizers on raw bytes, with real
// vocabularies: SentencePiece (llama-spm, stories260K) and byte-level BPE
// with several pre-tokenizers (gpt-2, deepseek-llm, deepseek-coder, phi-3),
// read from the GGUFs under ../shared/data (MOESTREAM_FUZZ_VOCABS, a
// colon-separated list of GGUF paths, overrides).
//
// Input byte 0 picks the vocabulary, byte 1 the mode: bit 2 set decodes the
// rest as little-endian int32 ids (any value: out-of-range and negative ids
// included), else encodes the rest as text with add_special (bit 0) and
// parse_special (bit 1); bit 3 renders special tokens when decoding. Every
// id Encode returns must be a token of the vocabulary.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_split.h"
#include "io/gguf.h"
#include "text/tokenizer.h"

#ifndef MOESTREAM_FUZZ_SHARED_DIR
#define MOESTREAM_FUZZ_SHARED_DIR "../shared"
#endif

namespace {

std::vector<moestream::text::Tokenizer>* g_tokenizers = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("MOESTREAM_FUZZ_VOCABS"); env != nullptr && *env != '\0') {
    paths = absl::StrSplit(env, ':', absl::SkipEmpty());
  } else {
    const std::string d = MOESTREAM_FUZZ_SHARED_DIR "/data/";
    for (const char* rel : {"tokenizers/ggml-vocab-llama-spm.gguf",
                            "stories260k-gguf/stories260K.gguf",
                            "tokenizers/ggml-vocab-gpt-2.gguf",
                            "tokenizers/ggml-vocab-deepseek-llm.gguf",
                            "tokenizers/ggml-vocab-deepseek-coder.gguf",
                            "tokenizers/ggml-vocab-phi-3.gguf"}) {
      paths.push_back(d + rel);
    }
  }
  g_tokenizers = new std::vector<moestream::text::Tokenizer>();
  for (const std::string& p : paths) {
    auto f = moestream::io::GgufFile::Open(p);
    if (!f.ok()) continue;
    auto t = moestream::text::Tokenizer::FromGguf(*f);
    if (!t.ok()) {
      std::fprintf(stderr, "tokenizer_fuzzer: %s: %s\n", p.c_str(),
                   std::string(t.status().message()).c_str());
      continue;
    }
    g_tokenizers->push_back(*std::move(t));
  }
  std::fprintf(stderr, "tokenizer_fuzzer: %zu vocabularies\n", g_tokenizers->size());
  if (g_tokenizers->empty()) {
    std::fprintf(stderr, "tokenizer_fuzzer: no vocabulary loaded (set MOESTREAM_FUZZ_VOCABS)\n");
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const moestream::text::Tokenizer& tok = (*g_tokenizers)[data[0] % g_tokenizers->size()];
  const uint8_t mode = data[1];
  data += 2;
  size -= 2;
  if (mode & 4) {
    std::vector<int32_t> ids(size / 4);
    if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * 4);
    std::string text = tok.Decode(ids, (mode & 8) != 0);
    for (int32_t id : ids) text += tok.TokenToPiece(id, (mode & 8) != 0);
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<int32_t> ids = tok.Encode(text, (mode & 1) != 0, (mode & 2) != 0);
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.n_tokens()) __builtin_trap();
  }
  (void)tok.Decode(ids, (mode & 8) != 0);
  return 0;
}
