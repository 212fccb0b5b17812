#include "text/vocab.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace moestream::text {
namespace {

// Texts of the tokens that end a turn in the families we know; they join
// the end-of-generation set (and the first found becomes EOT if none is set).
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>",     "<|im_end|>",  "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>",      "_<EOT>",  "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<end_of_utterance>"};
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
    "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>"};

uint32_t AttrsOfType(int32_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::kNormal: return kAttrNormal;
    case TokenType::kUnknown: return kAttrUnknown;
    case TokenType::kControl: return kAttrControl;
    case TokenType::kUserDefined: return kAttrUserDefined;
    case TokenType::kUnused: return kAttrUnused;
    case TokenType::kByte: return kAttrByte;
    default: return 0;
  }
}

}  // namespace

absl::StatusOr<TokenizerVocab> ReadTokenizerVocab(const io::GgufFile& file) {
  const std::string& path = file.path();
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  };
  TokenizerVocab v;
  absl::StatusOr<std::string> model = file.GetStringOr("tokenizer.ggml.model", "");
  if (!model.ok()) return fail(model.status());
  if (model->empty() || *model == "none" || *model == "no_vocab") {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": the model has no tokenizer (tokenizer.ggml.model is ",
        model->empty() ? "absent" : absl::StrCat("'", *model, "'"),
        "); give the prompt as token ids (--prompt-ids)"));
  }
  v.model = *model;
  absl::StatusOr<std::string> pre = file.GetStringOr("tokenizer.ggml.pre", "");
  if (!pre.ok()) return fail(pre.status());
  v.pre = *pre;
  absl::StatusOr<std::string> name = file.GetStringOr("general.name", "");
  if (!name.ok()) return fail(name.status());
  v.name = *name;

  absl::StatusOr<std::vector<std::string>> tokens = file.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens.ok()) return fail(tokens.status());
  v.tokens = std::move(*tokens);
  if (file.Find("tokenizer.ggml.scores") != nullptr) {
    absl::StatusOr<std::vector<float>> scores = file.GetFloatArray("tokenizer.ggml.scores");
    if (!scores.ok()) return fail(scores.status());
    v.scores = std::move(*scores);
  }
  if (file.Find("tokenizer.ggml.token_type") != nullptr) {
    absl::StatusOr<std::vector<int64_t>> types = file.GetIntArray("tokenizer.ggml.token_type");
    if (!types.ok()) return fail(types.status());
    v.token_types.assign(types->begin(), types->end());
  }
  if (file.Find("tokenizer.ggml.merges") != nullptr) {
    absl::StatusOr<std::vector<std::string>> merges = file.GetStringArray("tokenizer.ggml.merges");
    if (!merges.ok()) return fail(merges.status());
    v.merges = std::move(*merges);
  }
  const std::pair<const char*, std::optional<int32_t>*> ids[] = {
      {"tokenizer.ggml.bos_token_id", &v.bos},     {"tokenizer.ggml.eos_token_id", &v.eos},
      {"tokenizer.ggml.eot_token_id", &v.eot},     {"tokenizer.ggml.eom_token_id", &v.eom},
      {"tokenizer.ggml.unknown_token_id", &v.unk}, {"tokenizer.ggml.padding_token_id", &v.pad},
  };
  for (const auto& [key, out] : ids) {
    if (file.Find(key) == nullptr) continue;
    absl::StatusOr<uint64_t> id = file.GetUint(key);
    if (!id.ok()) return fail(id.status());
    // Out-of-range ids (0xFFFFFFFF marks "none" in some converters) mean absent.
    *out = *id < v.tokens.size() ? static_cast<int32_t>(*id) : kNoToken;
  }
  const std::pair<const char*, std::optional<bool>*> flags[] = {
      {"tokenizer.ggml.add_bos_token", &v.add_bos},
      {"tokenizer.ggml.add_eos_token", &v.add_eos},
      {"tokenizer.ggml.add_space_prefix", &v.add_space_prefix},
  };
  for (const auto& [key, out] : flags) {
    if (file.Find(key) == nullptr) continue;
    absl::StatusOr<bool> b = file.GetBool(key);
    if (!b.ok()) return fail(b.status());
    *out = *b;
  }
  return v;
}

absl::StatusOr<Vocab> Vocab::Create(TokenizerVocab& v, const Defaults& d) {
  const size_t n = v.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("tokenizer.ggml.tokens is empty");
  if (n > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError("tokenizer.ggml.tokens has too many entries");
  }
  if (!v.scores.empty() && v.scores.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.ggml.scores has ", v.scores.size(),
                                                   " entries, expected ", n, " (one per token)"));
  }
  if (!v.token_types.empty() && v.token_types.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.ggml.token_type has ",
                                                   v.token_types.size(), " entries, expected ", n,
                                                   " (one per token)"));
  }
  Vocab vocab;
  // The algorithm's defaults, then what the file says.
  auto in_range = [n](int32_t id) { return id >= 0 && static_cast<size_t>(id) < n ? id : kNoToken; };
  vocab.bos_ = in_range(v.bos.value_or(d.bos));
  vocab.eos_ = in_range(v.eos.value_or(d.eos));
  vocab.eot_ = in_range(v.eot.value_or(kNoToken));
  vocab.eom_ = in_range(v.eom.value_or(kNoToken));
  vocab.unk_ = in_range(v.unk.value_or(d.unk));
  vocab.pad_ = in_range(v.pad.value_or(kNoToken));
  vocab.add_bos_ = v.add_bos.value_or(d.add_bos);
  vocab.add_eos_ = v.add_eos.value_or(false);
  vocab.add_space_prefix_ = v.add_space_prefix.value_or(d.add_space_prefix);
  if (vocab.add_bos_ && vocab.bos_ == kNoToken) {
    return absl::InvalidArgumentError("tokenizer.ggml.add_bos_token is true but there is no BOS id");
  }
  if (vocab.add_eos_ && vocab.eos_ == kNoToken) {
    return absl::InvalidArgumentError("tokenizer.ggml.add_eos_token is true but there is no EOS id");
  }

  vocab.tokens_ = std::move(v.tokens);
  vocab.scores_ = std::move(v.scores);
  if (vocab.scores_.empty()) vocab.scores_.assign(n, 0.0f);
  vocab.attrs_.assign(n, kAttrNormal);
  vocab.token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string& text = vocab.tokens_[i];
    if (text.empty()) text = absl::StrCat("[EMPTY_", i, "]");
    vocab.token_to_id_.emplace(text, static_cast<int32_t>(i));  // first id wins
    if (!v.token_types.empty()) vocab.attrs_[i] = AttrsOfType(v.token_types[i]);
  }
  vocab.FindEndOfGeneration();
  vocab.CollectSpecialTokens(v.name);
  return vocab;
}

void Vocab::FindEndOfGeneration() {
  // End-of-turn tokens by text.
  for (std::string_view text : kEotTexts) {
    if (eot_ != kNoToken) break;
    eot_ = Find(text);
  }
  if (eom_ == kNoToken) eom_ = Find("<|eom_id|>");
  for (int32_t id : {eot_, eom_}) {
    if (id != kNoToken) attrs_[id] |= kAttrControl;
  }
  for (int32_t id : {eos_, eot_, eom_}) {
    if (id != kNoToken) eog_ids_.push_back(id);
  }
  for (std::string_view text : kEogTexts) {
    const int32_t id = Find(text);
    if (id != kNoToken) eog_ids_.push_back(id);
  }
  std::sort(eog_ids_.begin(), eog_ids_.end());
  eog_ids_.erase(std::unique(eog_ids_.begin(), eog_ids_.end()), eog_ids_.end());
  // gpt-oss (harmony): <|end|> closes a message, not the generation, when
  // <|return|> and <|call|> exist.
  const int32_t end_id = Find("<|end|>");
  if (end_id != kNoToken && Find("<|return|>") != kNoToken && Find("<|call|>") != kNoToken) {
    eog_ids_.erase(std::remove(eog_ids_.begin(), eog_ids_.end(), end_id), eog_ids_.end());
    if (eot_ == end_id) eot_ = Find("<|return|>");
  }
}

void Vocab::CollectSpecialTokens(std::string_view model_name) {
  for (int32_t i = 0; i < n_tokens(); ++i) {
    if (attrs_[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) special_tokens_.push_back(i);
  }
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [&](int32_t a, int32_t b) {
    return tokens_[a].size() > tokens_[b].size();
  });
  // Phi-3 strips the whitespace after its special tokens (but not after
  // <unk>, <s>, <|endoftext|>), as its reference tokenizer does.
  const std::string lname = absl::AsciiStrToLower(Av(model_name));
  const bool phi3 = lname.find("phi-3") != std::string::npos || lname.find("phi3") != std::string::npos;
  if (phi3) {
    for (int32_t id : special_tokens_) attrs_[id] |= kAttrRstrip;
    const int32_t eos_text = Find("</s>");
    if (eos_text != kNoToken) attrs_[eos_text] |= kAttrRstrip;
    for (std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) {
      const int32_t id = Find(text);
      if (id != kNoToken) attrs_[id] &= ~static_cast<uint32_t>(kAttrRstrip);
    }
  }
}

std::string_view Vocab::text(int32_t id) const {
  return valid(id) ? std::string_view(tokens_[id]) : std::string_view();
}

TokenType Vocab::type(int32_t id) const {
  if (!valid(id)) return TokenType::kUndefined;
  const uint32_t a = attrs_[id];
  if (a & kAttrControl) return TokenType::kControl;
  if (a & kAttrUserDefined) return TokenType::kUserDefined;
  if (a & kAttrUnknown) return TokenType::kUnknown;
  if (a & kAttrByte) return TokenType::kByte;
  if (a & kAttrUnused) return TokenType::kUnused;
  if (a & kAttrNormal) return TokenType::kNormal;
  return TokenType::kUndefined;
}

int32_t Vocab::Find(std::string_view text) const {
  auto it = token_to_id_.find(Av(text));
  return it == token_to_id_.end() ? kNoToken : it->second;
}

bool Vocab::is_eog(int32_t id) const {
  return id != kNoToken && std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

}  // namespace moestream::text
