#include "text/merge_symbols.h"

#include <algorithm>
#include <cstdint>

#include "text/unicode.h"

namespace moestream::text {

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

}  // namespace moestream::text
