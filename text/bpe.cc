#include "text/bpe.h"

#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "text/merge_symbols.h"

namespace moestream::text {

absl::StatusOr<BpeEncoder> BpeEncoder::Create(const std::vector<std::string>& merges,
                                              const PreTokenizerSpec& spec) {
  BpeEncoder bpe;
  MOESTREAM_ASSIGN_OR_RETURN(RegexSplitter splitter, RegexSplitter::Create(spec.patterns));
  bpe.splitter_ = std::make_shared<const RegexSplitter>(std::move(splitter));
  bpe.ignore_merges_ = spec.ignore_merges;
  bpe.merge_rank_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i];
    const size_t space = m.find(' ', 1);
    if (space == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.ggml.merges[", i, "] = '", m,
                                                     "': expected 'left right'"));
    }
    bpe.merge_rank_.emplace(absl::StrCat(m.substr(0, space), "\n", m.substr(space + 1)),
                            static_cast<int32_t>(i));
  }
  return bpe;
}

int32_t BpeEncoder::Rank(std::string_view left, std::string_view right) const {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key.append(left).push_back('\n');
  key.append(right);
  auto it = merge_rank_.find(key);
  return it == merge_rank_.end() ? -1 : it->second;
}

void BpeEncoder::Encode(const Vocab& vocab, std::string_view text,
                        std::vector<int32_t>* out) const {
  for (std::string_view piece : splitter_->Split(text)) Word(vocab, ByteLevelEncode(piece), out);
}

void BpeEncoder::Word(const Vocab& vocab, const std::string& word,
                      std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    const int32_t id = vocab.Find(word);
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
    const int32_t rank = Rank(w.substr(l.offset, l.length), w.substr(r.offset, r.length));
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
    const int32_t id = vocab.Find(piece);
    if (id != kNoToken) {
      out->push_back(id);
      continue;
    }
    // Not a token: fall back to its characters (every byte-level vocabulary
    // has all 256 mapped bytes), then to UNK.
    for (const Symbol& c : SplitChars(piece)) {
      const int32_t cid = vocab.Find(piece.substr(c.offset, c.length));
      if (cid != kNoToken) {
        out->push_back(cid);
      } else if (vocab.unk() != kNoToken) {
        out->push_back(vocab.unk());
      }
    }
  }
}

std::string BpePiece(const Vocab& vocab, int32_t id) {
  return (vocab.attrs(id) & kAttrNormal) ? ByteLevelDecode(vocab.text(id)) : std::string();
}

}  // namespace moestream::text
