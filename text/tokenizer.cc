#include "text/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <queue>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "text/tokenizer_pre.h"

namespace moestream::text {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"
constexpr std::string_view kUnknownGlyph = "\xE2\x96\x85";  // U+2585 "▅"

// Texts of the tokens that end a turn in the families we know; they join
// the end-of-generation set (and the first found becomes EOT if none is set).
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>",     "<|im_end|>",  "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>",      "_<EOT>",  "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<end_of_utterance>"};
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
    "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>"};

std::string EscapeSpaces(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  for (char c : text) {
    if (c == ' ') {
      out.append(kSpaceMarker);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string UnescapeSpaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.substr(i, kSpaceMarker.size()) == kSpaceMarker) {
      out.push_back(' ');
      i += kSpaceMarker.size();
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

bool IsCSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// A symbol of the merge loops: a byte range of the text being merged, linked
// to its live neighbours.
struct Symbol {
  int prev;
  int next;
  size_t offset;
  size_t length;  // 0 once merged into its left neighbour
};

std::vector<Symbol> SplitChars(std::string_view text) {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  size_t offset = 0;
  int index = 0;
  while (offset < text.size()) {
    const size_t len = std::min(Utf8LengthFromLeadByte(static_cast<uint8_t>(text[offset])),
                                text.size() - offset);
    symbols.push_back(Symbol{index - 1, offset + len == text.size() ? -1 : index + 1, offset, len});
    offset += len;
    ++index;
  }
  return symbols;
}

void MergeRight(std::vector<Symbol>& symbols, int left, int right) {
  symbols[left].length += symbols[right].length;
  symbols[right].length = 0;
  symbols[left].next = symbols[right].next;
  if (symbols[right].next >= 0) symbols[symbols[right].next].prev = left;
}

}  // namespace

// ---------------------------------------------------------------------------
// Construction

absl::StatusOr<Tokenizer> Tokenizer::FromGguf(const io::GgufFile& file) {
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
  absl::StatusOr<Tokenizer> t = Create(std::move(v));
  if (!t.ok()) return fail(t.status());
  return t;
}

absl::StatusOr<Tokenizer> Tokenizer::Create(TokenizerVocab vocab) {
  Tokenizer t;
  MOESTREAM_RETURN_IF_ERROR(t.Init(std::move(vocab)));
  return t;
}

absl::Status Tokenizer::Init(TokenizerVocab v) {
  if (v.model == "llama") {
    model_ = Model::kSpm;
  } else if (v.model == "gpt2") {
    model_ = Model::kBpe;
  } else if (v.model.empty() || v.model == "none" || v.model == "no_vocab") {
    return absl::FailedPreconditionError(
        "the model has no tokenizer; give the prompt as token ids (--prompt-ids)");
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported tokenizer.ggml.model '", v.model, "' (supported: llama, gpt2)"));
  }
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

  // Per-model defaults, then what the file says.
  std::optional<bool> family_add_bos;
  if (model_ == Model::kSpm) {
    bos_ = 1;
    eos_ = 2;
    unk_ = 0;
    add_bos_ = true;
    add_space_prefix_ = true;
  } else {
    if (v.merges.empty()) {
      return absl::InvalidArgumentError("tokenizer.ggml.merges is missing or empty (needed by gpt2)");
    }
    MOESTREAM_ASSIGN_OR_RETURN(PreTokenizerSpec spec, LookupPreTokenizer(v.pre));
    MOESTREAM_ASSIGN_OR_RETURN(RegexSplitter splitter, RegexSplitter::Create(spec.patterns));
    splitter_ = std::make_shared<const RegexSplitter>(std::move(splitter));
    ignore_merges_ = spec.ignore_merges;
    family_add_bos = spec.add_bos;
    bos_ = 11;  // llama.cpp's defaults for gpt2 vocabularies without ids
    eos_ = 11;
  }
  pre_ = v.pre.empty() ? "default" : v.pre;
  if (family_add_bos) add_bos_ = *family_add_bos;
  auto in_range = [n](int32_t id) { return id >= 0 && static_cast<size_t>(id) < n ? id : kNoToken; };
  bos_ = in_range(v.bos.value_or(bos_));
  eos_ = in_range(v.eos.value_or(eos_));
  eot_ = in_range(v.eot.value_or(kNoToken));
  eom_ = in_range(v.eom.value_or(kNoToken));
  unk_ = in_range(v.unk.value_or(unk_));
  pad_ = in_range(v.pad.value_or(kNoToken));
  add_bos_ = v.add_bos.value_or(add_bos_);
  add_eos_ = v.add_eos.value_or(add_eos_);
  add_space_prefix_ = v.add_space_prefix.value_or(add_space_prefix_);
  if (add_bos_ && bos_ == kNoToken) {
    return absl::InvalidArgumentError("tokenizer.ggml.add_bos_token is true but there is no BOS id");
  }
  if (add_eos_ && eos_ == kNoToken) {
    return absl::InvalidArgumentError("tokenizer.ggml.add_eos_token is true but there is no EOS id");
  }

  tokens_ = std::move(v.tokens);
  scores_ = std::move(v.scores);
  if (scores_.empty()) scores_.assign(n, 0.0f);
  attrs_.assign(n, kAttrNormal);
  token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (tokens_[i].empty()) tokens_[i] = absl::StrCat("[EMPTY_", i, "]");
    token_to_id_.emplace(tokens_[i], static_cast<int32_t>(i));  // first id wins
    if (!v.token_types.empty()) {
      switch (static_cast<TokenType>(v.token_types[i])) {
        case TokenType::kNormal: attrs_[i] = kAttrNormal; break;
        case TokenType::kUnknown: attrs_[i] = kAttrUnknown; break;
        case TokenType::kControl: attrs_[i] = kAttrControl; break;
        case TokenType::kUserDefined: attrs_[i] = kAttrUserDefined; break;
        case TokenType::kUnused: attrs_[i] = kAttrUnused; break;
        case TokenType::kByte: attrs_[i] = kAttrByte; break;
        default: attrs_[i] = 0; break;
      }
    }
  }

  // Phi-3 strips the whitespace after its special tokens (but not after
  // <unk>, <s>, <|endoftext|>), as its reference tokenizer does.
  const std::string lname = absl::AsciiStrToLower(v.name);
  const bool phi3 = lname.find("phi-3") != std::string::npos || lname.find("phi3") != std::string::npos;

  // End-of-turn tokens by text.
  for (std::string_view text : kEotTexts) {
    if (eot_ != kNoToken) break;
    eot_ = FindToken(text);
  }
  if (eom_ == kNoToken) eom_ = FindToken("<|eom_id|>");
  for (int32_t id : {eot_, eom_}) {
    if (id != kNoToken) attrs_[id] |= kAttrControl;
  }
  for (int32_t id : {eos_, eot_, eom_}) {
    if (id != kNoToken) eog_ids_.push_back(id);
  }
  for (std::string_view text : kEogTexts) {
    const int32_t id = FindToken(text);
    if (id != kNoToken) eog_ids_.push_back(id);
  }
  std::sort(eog_ids_.begin(), eog_ids_.end());
  eog_ids_.erase(std::unique(eog_ids_.begin(), eog_ids_.end()), eog_ids_.end());
  // gpt-oss (harmony): <|end|> closes a message, not the generation, when
  // <|return|> and <|call|> exist.
  const int32_t end_id = FindToken("<|end|>");
  if (end_id != kNoToken && FindToken("<|return|>") != kNoToken &&
      FindToken("<|call|>") != kNoToken) {
    eog_ids_.erase(std::remove(eog_ids_.begin(), eog_ids_.end(), end_id), eog_ids_.end());
    if (eot_ == end_id) eot_ = FindToken("<|return|>");
  }

  for (size_t i = 0; i < n; ++i) {
    if (attrs_[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) {
      special_tokens_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [&](int32_t a, int32_t b) {
    return tokens_[a].size() > tokens_[b].size();
  });
  if (phi3) {
    for (int32_t id : special_tokens_) attrs_[id] |= kAttrRstrip;
    const int32_t eos_text = FindToken("</s>");
    if (eos_text != kNoToken) attrs_[eos_text] |= kAttrRstrip;
    for (std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) {
      const int32_t id = FindToken(text);
      if (id != kNoToken) attrs_[id] &= ~static_cast<uint32_t>(kAttrRstrip);
    }
  }

  if (model_ == Model::kSpm) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    byte_tokens_.assign(256, kNoToken);
    for (int b = 0; b < 256; ++b) {
      const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
      int32_t id = FindToken(name);
      if (id == kNoToken) id = FindToken(std::string(1, static_cast<char>(b)));
      byte_tokens_[b] = id;
    }
  } else {
    merge_rank_.reserve(v.merges.size());
    for (size_t i = 0; i < v.merges.size(); ++i) {
      const std::string& m = v.merges[i];
      const size_t space = m.find(' ', 1);
      if (space == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer.ggml.merges[", i, "] = '", m,
                                                       "': expected 'left right'"));
      }
      merge_rank_.emplace(absl::StrCat(m.substr(0, space), "\n", m.substr(space + 1)),
                          static_cast<int32_t>(i));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Lookups

std::string_view Tokenizer::token_text(int32_t id) const {
  return id >= 0 && id < n_tokens() ? std::string_view(tokens_[id]) : std::string_view();
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= n_tokens()) return TokenType::kUndefined;
  const uint32_t a = attrs_[id];
  if (a & kAttrControl) return TokenType::kControl;
  if (a & kAttrUserDefined) return TokenType::kUserDefined;
  if (a & kAttrUnknown) return TokenType::kUnknown;
  if (a & kAttrByte) return TokenType::kByte;
  if (a & kAttrUnused) return TokenType::kUnused;
  if (a & kAttrNormal) return TokenType::kNormal;
  return TokenType::kUndefined;
}

int32_t Tokenizer::FindToken(std::string_view text) const {
  auto it = token_to_id_.find(Av(text));
  return it == token_to_id_.end() ? kNoToken : it->second;
}

bool Tokenizer::is_eog(int32_t id) const {
  return id != kNoToken && std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && id < n_tokens() && (attrs_[id] & kAttrControl) != 0;
}

int32_t Tokenizer::ByteToken(uint8_t byte) const {
  const int32_t id = byte_tokens_[byte];
  return id != kNoToken ? id : unk_;
}

int32_t Tokenizer::BpeRank(std::string_view left, std::string_view right) const {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key.append(left).push_back('\n');
  key.append(right);
  auto it = merge_rank_.find(key);
  return it == merge_rank_.end() ? -1 : it->second;
}

// ---------------------------------------------------------------------------
// Encoding

std::vector<Tokenizer::Fragment> Tokenizer::Partition(std::string_view text,
                                                      bool parse_special) const {
  std::vector<Fragment> frags = {Fragment{kNoToken, text}};
  std::vector<Fragment> next;
  for (int32_t id : special_tokens_) {
    const uint32_t attr = attrs_[id];
    if (!parse_special && (attr & (kAttrControl | kAttrUnknown))) continue;
    const std::string& needle = tokens_[id];
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
  if (add_special && add_bos_) out.push_back(bos_);
  if (!text.empty()) {
    bool prev_special = true;  // the start of the text counts as after a special token
    for (const Fragment& f : Partition(text, parse_special)) {
      if (f.token != kNoToken) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      if (model_ == Model::kSpm) {
        std::string raw = add_space_prefix_ && prev_special ? " " : "";
        raw.append(f.text);
        EncodeSpm(EscapeSpaces(raw), &out);
      } else {
        EncodeBpe(f.text, &out);
      }
      prev_special = false;
    }
  }
  if (add_special && add_eos_) out.push_back(eos_);
  return out;
}

void Tokenizer::EncodeSpm(std::string_view text, std::vector<int32_t>* out) const {
  std::vector<Symbol> symbols = SplitChars(text);
  struct Bigram {
    int left;
    int right;
    float score;
    size_t size;
  };
  // Highest score first; ties go to the leftmost pair.
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = symbols[left].length + symbols[right].length;
    const int32_t id = FindToken(text.substr(symbols[left].offset, size));
    if (id == kNoToken) return;
    queue.push(Bigram{left, right, scores_[id], size});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    if (l.length == 0 || r.length == 0 || l.length + r.length != b.size) continue;
    MergeRight(symbols, b.left, b.right);
    try_add(symbols[b.left].prev, b.left);
    try_add(b.left, symbols[b.left].next);
  }
  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].offset, symbols[i].length);
    const int32_t id = FindToken(piece);
    if (id != kNoToken) {
      out->push_back(id);
    } else {
      for (char c : piece) out->push_back(ByteToken(static_cast<uint8_t>(c)));
    }
  }
}

void Tokenizer::EncodeBpe(std::string_view text, std::vector<int32_t>* out) const {
  for (std::string_view piece : splitter_->Split(text)) BpeWord(ByteLevelEncode(piece), out);
}

void Tokenizer::BpeWord(const std::string& word, std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    const int32_t id = FindToken(word);
    if (id != kNoToken) {
      out->push_back(id);
      return;
    }
  }
  const std::string_view w(word);
  std::vector<Symbol> symbols = SplitChars(w);
  struct Bigram {
    int left;
    int right;
    int32_t rank;
    size_t left_len;
    size_t right_len;
  };
  // Lowest rank first; ties go to the leftmost pair.
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    const int32_t rank = BpeRank(w.substr(l.offset, l.length), w.substr(r.offset, r.length));
    if (rank < 0) return;
    queue.push(Bigram{left, right, rank, l.length, r.length});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    const Symbol& l = symbols[b.left];
    const Symbol& r = symbols[b.right];
    // Stale if either side changed since the pair was queued (symbols only
    // grow, and their offsets never move, so the lengths tell).
    if (l.length != b.left_len || r.length != b.right_len || l.next != b.right) continue;
    MergeRight(symbols, b.left, b.right);
    try_add(symbols[b.left].prev, b.left);
    try_add(b.left, symbols[b.left].next);
  }
  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = w.substr(symbols[i].offset, symbols[i].length);
    const int32_t id = FindToken(piece);
    if (id != kNoToken) {
      out->push_back(id);
      continue;
    }
    // Not a token: fall back to its characters (every byte-level vocabulary
    // has all 256 mapped bytes), then to UNK.
    for (const Symbol& c : SplitChars(piece)) {
      const int32_t cid = FindToken(piece.substr(c.offset, c.length));
      if (cid != kNoToken) {
        out->push_back(cid);
      } else if (unk_ != kNoToken) {
        out->push_back(unk_);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Decoding

std::string Tokenizer::PieceImpl(int32_t id, bool render_special, bool strip_space) const {
  if (id < 0 || id >= n_tokens()) return {};
  const uint32_t attr = attrs_[id];
  const std::string& text = tokens_[id];
  std::string piece;
  if ((render_special && (attr & (kAttrControl | kAttrUnknown))) || (attr & kAttrUserDefined)) {
    piece = text;
  } else if (attr & kAttrControl) {
    return {};
  } else if (attr & kAttrNormal) {
    piece = model_ == Model::kSpm ? UnescapeSpaces(text) : ByteLevelDecode(text);
  } else if (model_ == Model::kSpm && (attr & kAttrByte)) {
    if (text.size() == 6 && text.compare(0, 3, "<0x") == 0) {
      piece.push_back(static_cast<char>(std::strtol(text.substr(3, 2).c_str(), nullptr, 16)));
    } else {
      piece = text;
    }
  } else if (model_ == Model::kSpm && (attr & kAttrUnknown)) {
    piece = std::string(kUnknownGlyph);
  }
  if (strip_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  return piece;
}

std::string Tokenizer::TokenToPiece(int32_t id, bool render_special) const {
  return PieceImpl(id, render_special, /*strip_space=*/false);
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    out += PieceImpl(ids[i], render_special, i == 0 && add_space_prefix_);
  }
  return out;
}

std::string Detokenizer::Push(int32_t id) {
  pending_ += tokenizer_->PieceImpl(id, options_.render_special,
                                    first_ && options_.strip_leading_space);
  first_ = false;
  const size_t ready = pending_.size() - IncompleteUtf8Suffix(pending_);
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  return out;
}

std::string Detokenizer::Flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace moestream::text
