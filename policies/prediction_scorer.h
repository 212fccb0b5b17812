// Scores prefetch guesses against what the router then chose:
//   precision = correct guesses / guesses,
//   recall    = correct guesses / experts actually routed.
// Each predictor is scored with it (replay, live runs, tests). Guesses are
// matched by key; duplicates among the guesses count once.
//
//   PredictionScorer s;
//   s.Add(guesses_for_layer_l1, actual_l1_keys);
//   s.precision(); s.recall();
#ifndef MOESTREAM_POLICIES_PREDICTION_SCORER_H_
#define MOESTREAM_POLICIES_PREDICTION_SCORER_H_

#include <cstdint>
#include <span>

#include "base/expert_key.h"
#include "policies/prefetch_predictor.h"

namespace moestream::policies {

class PredictionScorer {
 public:
  // `guesses` were made for the keys in `actual` (one layer of one token, or
  // a batch); both are small (top-k sized), so matching is quadratic.
  void Add(std::span<const ExpertGuess> guesses, std::span<const ExpertKey> actual);
  // Counts routed experts for which no guess was made (recall denominator).
  void AddUnpredicted(uint64_t n_actual) { actual_ += n_actual; }

  uint64_t guessed() const { return guessed_; }
  uint64_t correct() const { return correct_; }
  uint64_t actual() const { return actual_; }
  double precision() const { return guessed_ ? double(correct_) / double(guessed_) : 0.0; }
  double recall() const { return actual_ ? double(correct_) / double(actual_) : 0.0; }
  void Merge(const PredictionScorer& o) {
    guessed_ += o.guessed_;
    correct_ += o.correct_;
    actual_ += o.actual_;
  }

 private:
  uint64_t guessed_ = 0;
  uint64_t correct_ = 0;
  uint64_t actual_ = 0;
};

}  // namespace moestream::policies

#endif  // MOESTREAM_POLICIES_PREDICTION_SCORER_H_
