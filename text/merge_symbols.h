// The linked list of symbols both merge algorithms (text/spm.h, text/bpe.h)
// run over: each symbol is a byte range of the text, initially one UTF-8
// character, linked to its live neighbours; merging a pair grows the left one
// and unlinks the right, so offsets never move.
#ifndef MOESTREAM_TEXT_MERGE_SYMBOLS_H_
#define MOESTREAM_TEXT_MERGE_SYMBOLS_H_

#include <cstddef>
#include <string_view>
#include <vector>

namespace moestream::text {

struct Symbol {
  int prev;
  int next;
  size_t offset;
  size_t length;  // 0 once merged into its left neighbour
};

// One symbol per UTF-8 character of `text` (a truncated character at the end
// is one symbol of the bytes left).
std::vector<Symbol> SplitChars(std::string_view text);

// Merges symbols[right] into its left neighbour symbols[left].
void MergeRight(std::vector<Symbol>& symbols, int left, int right);

}  // namespace moestream::text

#endif  // MOESTREAM_TEXT_MERGE_SYMBOLS_H_
