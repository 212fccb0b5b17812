#include "policies/prediction_scorer.h"

namespace moestream::policies {

void PredictionScorer::Add(std::span<const ExpertGuess> guesses,
                           std::span<const ExpertKey> actual) {
  actual_ += actual.size();
  for (size_t i = 0; i < guesses.size(); ++i) {
    bool dup = false;
    for (size_t j = 0; j < i && !dup; ++j) dup = guesses[j].key == guesses[i].key;
    if (dup) continue;
    ++guessed_;
    for (ExpertKey a : actual) {
      if (a == guesses[i].key) {
        ++correct_;
        break;
      }
    }
  }
}

}  // namespace moestream::policies
