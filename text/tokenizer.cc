#include "text/tokenizer.h"

#include <cctype>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "text/tokenizer_pre.h"

namespace moestream::text {
namespace {

bool IsCSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

}  // namespace

// ---------------------------------------------------------------------------
// Construction

absl::StatusOr<Tokenizer> Tokenizer::FromGguf(const io::GgufFile& file) {
  MOESTREAM_ASSIGN_OR_RETURN(TokenizerVocab v, ReadTokenizerVocab(file));
  absl::StatusOr<Tokenizer> t = Create(std::move(v));
  if (!t.ok()) {
    return absl::Status(t.status().code(), absl::StrCat(file.path(), ": ", t.status().message()));
  }
  return t;
}

absl::StatusOr<Tokenizer> Tokenizer::Create(TokenizerVocab v) {
  Model model;
  Vocab::Defaults defaults;
  std::optional<PreTokenizerSpec> spec;
  if (v.model == "llama") {
    model = Model::kSpm;
    defaults = {.bos = 1, .eos = 2, .unk = 0, .add_bos = true, .add_space_prefix = true};
  } else if (v.model == "gpt2") {
    model = Model::kBpe;
    if (v.merges.empty()) {
      return absl::InvalidArgumentError("tokenizer.ggml.merges is missing or empty (needed by gpt2)");
    }
    MOESTREAM_ASSIGN_OR_RETURN(spec, LookupPreTokenizer(v.pre));
    // llama.cpp's defaults for gpt2 vocabularies without ids.
    defaults = {.bos = 11, .eos = 11, .add_bos = spec->add_bos.value_or(false)};
  } else if (v.model.empty() || v.model == "none" || v.model == "no_vocab") {
    return absl::FailedPreconditionError(
        "the model has no tokenizer; give the prompt as token ids (--prompt-ids)");
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported tokenizer.ggml.model '", v.model, "' (supported: llama, gpt2)"));
  }
  MOESTREAM_ASSIGN_OR_RETURN(Vocab vocab, Vocab::Create(v, defaults));
  Tokenizer t(model, v.pre.empty() ? "default" : v.pre, std::move(vocab));
  if (model == Model::kSpm) {
    t.spm_ = SpmEncoder(t.vocab_);
  } else {
    MOESTREAM_ASSIGN_OR_RETURN(t.bpe_, BpeEncoder::Create(v.merges, *spec));
  }
  return t;
}

// ---------------------------------------------------------------------------
// Encoding

std::vector<Tokenizer::Fragment> Tokenizer::Partition(std::string_view text,
                                                      bool parse_special) const {
  std::vector<Fragment> frags = {Fragment{kNoToken, text}};
  std::vector<Fragment> next;
  for (int32_t id : vocab_.special_tokens()) {
    const uint32_t attr = vocab_.attrs(id);
    if (!parse_special && (attr & (kAttrControl | kAttrUnknown))) continue;
    const std::string_view needle = vocab_.text(id);
    bool present = false;
    for (const Fragment& f : frags) {
      if (f.token == kNoToken && f.text.find(needle) != std::string_view::npos) {
        present = true;
        break;
      }
    }
    if (!present) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      while (true) {
        const size_t pos = rest.find(needle);
        if (pos == std::string_view::npos) {
          if (!rest.empty()) next.push_back(Fragment{kNoToken, rest});
          break;
        }
        std::string_view left = rest.substr(0, pos);
        if (attr & kAttrLstrip) {
          while (!left.empty() && IsCSpace(left.back())) left.remove_suffix(1);
        }
        if (!left.empty()) next.push_back(Fragment{kNoToken, left});
        next.push_back(Fragment{id, {}});
        rest = rest.substr(pos + needle.size());
        if (attr & kAttrRstrip) {
          while (!rest.empty() && IsCSpace(rest.front())) rest.remove_prefix(1);
        }
      }
    }
    frags.swap(next);
  }
  return frags;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && vocab_.add_bos()) out.push_back(vocab_.bos());
  if (!text.empty()) {
    bool prev_special = true;  // the start of the text counts as after a special token
    for (const Fragment& f : Partition(text, parse_special)) {
      if (f.token != kNoToken) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      if (model_ == Model::kSpm) {
        std::string raw = vocab_.add_space_prefix() && prev_special ? " " : "";
        raw.append(f.text);
        spm_.Encode(vocab_, SpmEscapeSpaces(raw), &out);
      } else {
        bpe_.Encode(vocab_, f.text, &out);
      }
      prev_special = false;
    }
  }
  if (add_special && vocab_.add_eos()) out.push_back(vocab_.eos());
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

std::string Tokenizer::TokenToPiece(int32_t id, bool render_special) const {
  return TokenPiece(vocab_, model_, id, render_special, /*strip_leading_space=*/false);
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    out += TokenPiece(vocab_, model_, ids[i], render_special, i == 0 && vocab_.add_space_prefix());
  }
  return out;
}

}  // namespace moestream::text
