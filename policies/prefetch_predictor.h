// Prefetch predictors: guess which experts upcoming layers will route to, so
// the cache can start loading them before the router decides.
//
// A predictor sees the routing as it happens (Observe: token t's layer L chose
// these experts) and is asked, after layer L's routing, for guesses about
// layers L+1..L+lookahead (Predict). The live engine may also hand it layer
// L+1's router applied to layer L's hidden state (`next_gate_scores`): the
// speculative gate predictor uses only that. Pure: no I/O, no clock.
//
//   auto p = CreatePrefetchPredictor("coact", env);
//   p->Observe({.token = t, .layer = l, .experts = chosen});
//   p->Predict(ctx, &guesses);   // guesses for layer l+1
#ifndef MOESTREAM_POLICIES_PREFETCH_PREDICTOR_H_
#define MOESTREAM_POLICIES_PREFETCH_PREDICTOR_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "policies/eviction_policy.h"
#include "base/expert_key.h"

namespace moestream::policies {

struct RoutingObservation {
  uint64_t token = 0;               // token index in the run
  int layer = 0;
  std::span<const int32_t> experts;  // chosen experts, gate order
  std::span<const float> weights;    // their gate weights (may be empty)
};

struct PredictContext {
  uint64_t token = 0;
  int layer = 0;                     // layer just routed
  int lookahead = 1;                 // predict layers layer+1 .. layer+lookahead
  int top_k = 0;                     // experts per token per layer
  std::span<const int32_t> experts;  // what `layer` chose
  // Layer+1's router applied to layer's hidden state (live runs; else empty).
  std::span<const float> next_gate_scores;
  uint64_t tick = 0;                 // logical time (oracle reads the future)
};

struct ExpertGuess {
  ExpertKey key;
  float confidence = 0;  // higher first; the cache may cut by a threshold
};

class PrefetchPredictor {
 public:
  virtual ~PrefetchPredictor() = default;
  virtual std::string name() const = 0;
  virtual void Observe(const RoutingObservation& o) = 0;
  // Appends guesses (best first) to `out`.
  virtual void Predict(const PredictContext& ctx, std::vector<ExpertGuess>* out) = 0;
};

// "none", "gate", "coact", "prev", "popularity", "oracle" with options as for
// eviction policies. `env.future` serves the oracle.
absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreatePrefetchPredictor(
    std::string_view spec, const PolicyEnv& env);
std::vector<std::string> PrefetchPredictorNames();

}  // namespace moestream::policies

#endif  // MOESTREAM_POLICIES_PREFETCH_PREDICTOR_H_
