// oracle: reads the future. From PredictContext::tick (the index in
// env.future of the next access after the layer just routed) it scans forward
// for the first run of accesses to each target layer and guesses exactly
// those experts: the ceiling for any predictor (recall 1 where the trace is
// consistent). The scan is bounded (window ticks, default 65536).
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/predictor_util.h"

namespace moestream::policies {
namespace {

class OraclePredictor final : public PrefetchPredictor {
 public:
  OraclePredictor(const PolicyEnv& env, int64_t window)
      : n_layers_(env.n_layers), future_(*env.future), window_(window) {}
  std::string name() const override { return "oracle"; }
  void Observe(const RoutingObservation&) override {}
  void Predict(const PredictContext& ctx, std::vector<ExpertGuess>* out) override {
    uint64_t t = ctx.tick;
    uint64_t end = std::min<uint64_t>(future_.size(), ctx.tick + uint64_t(window_));
    for (int d = 1; d <= ctx.lookahead; ++d) {
      int to = TargetLayer(ctx.layer, d, n_layers_);
      while (t < end && future_[t].layer != to) ++t;
      while (t < end && future_[t].layer == to) {
        out->push_back(ExpertGuess{future_[t], 1.0f});
        ++t;
      }
    }
  }

 private:
  int n_layers_;
  const std::vector<ExpertKey>& future_;
  int64_t window_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreateOraclePredictor(PolicySpec& spec,
                                                                         const PolicyEnv& env) {
  int64_t window = 65536;
  MOESTREAM_RETURN_IF_ERROR(spec.Int("window", 1, int64_t(1) << 40, &window));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("window, conf"));
  if (env.future == nullptr) {
    return absl::FailedPreconditionError("predictor 'oracle' needs the future: replay a trace");
  }
  return std::unique_ptr<PrefetchPredictor>(new OraclePredictor(env, window));
}

}  // namespace moestream::policies
