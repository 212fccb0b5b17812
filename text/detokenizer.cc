#include "text/detokenizer.h"

#include "text/bpe.h"
#include "text/spm.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace moestream::text {

std::string TokenPiece(const Vocab& vocab, TokenizerModel model, int32_t id, bool render_special,
                       bool strip_leading_space) {
  if (!vocab.valid(id)) return {};
  const uint32_t attr = vocab.attrs(id);
  std::string piece;
  if ((render_special && (attr & (kAttrControl | kAttrUnknown))) || (attr & kAttrUserDefined)) {
    piece = std::string(vocab.text(id));
  } else if (attr & kAttrControl) {
    return {};
  } else {
    piece = model == TokenizerModel::kSpm ? SpmPiece(vocab, id) : BpePiece(vocab, id);
  }
  if (strip_leading_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  return piece;
}

std::string Detokenizer::Push(int32_t id) {
  pending_ += TokenPiece(tokenizer_->vocab(), tokenizer_->model(), id, options_.render_special,
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
