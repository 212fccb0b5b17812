// prev: previous-token reuse. The guess for layer L+d is what the most recent
// earlier token chose at layer L+d (consecutive tokens share experts: the
// SOURCE.md files measure 16-37 % reuse). No options.
#include <memory>
#include <vector>

#include "policies/policy_registry.h"
#include "policies/predictor_util.h"

namespace moestream::policies {
namespace {

class PrevPredictor final : public PrefetchPredictor {
 public:
  explicit PrevPredictor(const PolicyEnv& env) : n_layers_(env.n_layers), last_(env.n_layers) {}
  std::string name() const override { return "prev"; }
  void Observe(const RoutingObservation& o) override {
    if (o.layer < 0 || o.layer >= n_layers_) return;
    last_[o.layer].assign(o.experts.begin(), o.experts.end());
  }
  void Predict(const PredictContext& ctx, std::vector<ExpertGuess>* out) override {
    for (int d = 1; d <= ctx.lookahead; ++d) {
      int to = TargetLayer(ctx.layer, d, n_layers_);
      if (to < 0 || to >= n_layers_) return;
      float conf = 1.0f;
      for (int32_t e : last_[to]) {
        out->push_back(ExpertGuess{ExpertKey{uint16_t(to), uint16_t(e)}, conf});
        conf *= 0.99f;
      }
    }
  }

 private:
  int n_layers_;
  std::vector<std::vector<int32_t>> last_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreatePrevPredictor(PolicySpec& spec,
                                                                       const PolicyEnv& env) {
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("conf"));
  if (env.n_layers <= 0) return absl::FailedPreconditionError("predictor 'prev' needs the model shape");
  return std::unique_ptr<PrefetchPredictor>(new PrevPredictor(env));
}

}  // namespace moestream::policies
