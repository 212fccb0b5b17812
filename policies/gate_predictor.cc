// gate[:k=N]: speculative next-layer gating (as in Pre-gated MoE / HOBBIT):
// the engine applies layer L+1's router to layer L's hidden state and hands
// the scores over in PredictContext::next_gate_scores; the guess is their
// top k (default: the model's top_k). Only live runs have those scores: on a
// recorded trace without hidden states this predictor guesses nothing.
// Lookahead beyond one layer is not attempted.
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/predictor_util.h"

namespace moestream::policies {
namespace {

class GatePredictor final : public PrefetchPredictor {
 public:
  GatePredictor(const PolicyEnv& env, int k) : n_layers_(env.n_layers), k_(k) {}
  std::string name() const override { return k_ > 0 ? absl::StrCat("gate:k=", k_) : "gate"; }
  void Observe(const RoutingObservation&) override {}
  void Predict(const PredictContext& ctx, std::vector<ExpertGuess>* out) override {
    if (ctx.next_gate_scores.empty()) return;
    scores_.assign(ctx.next_gate_scores.begin(), ctx.next_gate_scores.end());
    // Router logits may be negative: shift so every score is positive.
    double lo = 0;
    for (double s : scores_) lo = std::min(lo, s);
    for (double& s : scores_) s = s - lo + 1e-9;
    AppendTopK(scores_, TargetLayer(ctx.layer, 1, n_layers_), GuessCount(k_, ctx.top_k), out);
  }

 private:
  int n_layers_;
  int k_;
  std::vector<double> scores_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreateGatePredictor(PolicySpec& spec,
                                                                       const PolicyEnv& env) {
  int64_t k = 0;
  MOESTREAM_RETURN_IF_ERROR(spec.Int("k", 0, 4096, &k));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("k, conf"));
  return std::unique_ptr<PrefetchPredictor>(new GatePredictor(env, int(k)));
}

}  // namespace moestream::policies
