#include "text/spm.h"

#include <cstdlib>
#include <queue>

#include "text/merge_symbols.h"

namespace moestream::text {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"
constexpr std::string_view kUnknownGlyph = "\xE2\x96\x85";  // U+2585 "▅"

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

}  // namespace

std::string SpmEscapeSpaces(std::string_view text) {
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

SpmEncoder::SpmEncoder(const Vocab& vocab) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  byte_tokens_.assign(256, kNoToken);
  for (int b = 0; b < 256; ++b) {
    const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
    int32_t id = vocab.Find(name);
    if (id == kNoToken) id = vocab.Find(std::string(1, static_cast<char>(b)));
    byte_tokens_[b] = id;
  }
}

int32_t SpmEncoder::ByteToken(const Vocab& vocab, uint8_t byte) const {
  const int32_t id = byte_tokens_[byte];
  return id != kNoToken ? id : vocab.unk();
}

void SpmEncoder::Encode(const Vocab& vocab, std::string_view text,
                        std::vector<int32_t>* out) const {
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
    const int32_t id = vocab.Find(text.substr(symbols[left].offset, size));
    if (id == kNoToken) return;
    queue.push(Bigram{left, right, vocab.score(id), size});
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
    const int32_t id = vocab.Find(piece);
    if (id != kNoToken) {
      out->push_back(id);
    } else {
      for (char c : piece) out->push_back(ByteToken(vocab, static_cast<uint8_t>(c)));
    }
  }
}

std::string SpmPiece(const Vocab& vocab, int32_t id) {
  const uint32_t attr = vocab.attrs(id);
  const std::string_view text = vocab.text(id);
  if (attr & kAttrNormal) return UnescapeSpaces(text);
  if (attr & kAttrByte) {
    if (text.size() == 6 && text.substr(0, 3) == "<0x") {
      return std::string(1, static_cast<char>(std::strtol(std::string(text.substr(3, 2)).c_str(),
                                                          nullptr, 16)));
    }
    return std::string(text);
  }
  if (attr & kAttrUnknown) return std::string(kUnknownGlyph);
  return {};
}

}  // namespace moestream::text
