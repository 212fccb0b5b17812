// popularity[:k=N]: per-layer frequency, learned online: the guess for layer
// L+d is its k (default top_k) most often routed experts so far.
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/predictor_util.h"

namespace moestream::policies {
namespace {

class PopularityPredictor final : public PrefetchPredictor {
 public:
  PopularityPredictor(const PolicyEnv& env, int k)
      : n_layers_(env.n_layers), n_experts_(env.n_experts), k_(k),
        freq_(size_t(env.n_layers) * env.n_experts, 0.0) {}
  std::string name() const override {
    return k_ > 0 ? absl::StrCat("popularity:k=", k_) : "popularity";
  }
  void Observe(const RoutingObservation& o) override {
    if (o.layer < 0 || o.layer >= n_layers_) return;
    for (int32_t e : o.experts) {
      if (e >= 0 && e < n_experts_) freq_[size_t(o.layer) * n_experts_ + e] += 1.0;
    }
  }
  void Predict(const PredictContext& ctx, std::vector<ExpertGuess>* out) override {
    for (int d = 1; d <= ctx.lookahead; ++d) {
      int to = TargetLayer(ctx.layer, d, n_layers_);
      if (to < 0 || to >= n_layers_) return;
      AppendTopK(std::span<const double>(&freq_[size_t(to) * n_experts_], n_experts_), to,
                 GuessCount(k_, ctx.top_k), out);
    }
  }

 private:
  int n_layers_;
  int n_experts_;
  int k_;
  std::vector<double> freq_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreatePopularityPredictor(
    PolicySpec& spec, const PolicyEnv& env) {
  int64_t k = 0;
  MOESTREAM_RETURN_IF_ERROR(spec.Int("k", 0, 4096, &k));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("k, conf"));
  if (env.n_layers <= 0 || env.n_experts <= 0) {
    return absl::FailedPreconditionError("predictor 'popularity' needs the model shape");
  }
  return std::unique_ptr<PrefetchPredictor>(new PopularityPredictor(env, int(k)));
}

}  // namespace moestream::policies
