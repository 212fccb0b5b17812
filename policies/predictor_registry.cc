// The prefetch-predictor registry: name -> factory, plus `none`, and the
// confidence threshold every predictor takes (`conf=`): guesses below it are
// dropped, so nothing is prefetched on a weak guess.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "policies/policy_registry.h"

namespace moestream::policies {
namespace {

class NonePredictor final : public PrefetchPredictor {
 public:
  std::string name() const override { return "none"; }
  void Observe(const RoutingObservation&) override {}
  void Predict(const PredictContext&, std::vector<ExpertGuess>*) override {}
};

// Drops the inner predictor's guesses whose confidence is below `conf`.
class ThresholdPredictor final : public PrefetchPredictor {
 public:
  ThresholdPredictor(std::unique_ptr<PrefetchPredictor> inner, double conf)
      : inner_(std::move(inner)), conf_(conf) {}
  std::string name() const override {
    std::string n = inner_->name();
    return absl::StrCat(n, n.find(':') == std::string::npos ? ":" : ",", "conf=", conf_);
  }
  void Observe(const RoutingObservation& o) override { inner_->Observe(o); }
  void Predict(const PredictContext& ctx, std::vector<ExpertGuess>* out) override {
    const size_t before = out->size();
    inner_->Predict(ctx, out);
    const float conf = float(conf_);
    out->erase(std::remove_if(out->begin() + before, out->end(),
                              [conf](const ExpertGuess& g) { return g.confidence < conf; }),
               out->end());
  }

 private:
  std::unique_ptr<PrefetchPredictor> inner_;
  double conf_;
};

struct Registered {
  const char* name;
  PredictorFactory create;
};

constexpr Registered kPredictors[] = {
    {"none", CreateNonePredictor}, {"gate", CreateGatePredictor},
    {"coact", CreateCoactPredictor}, {"prev", CreatePrevPredictor},
    {"popularity", CreatePopularityPredictor}, {"oracle", CreateOraclePredictor},
};

}  // namespace

absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreateNonePredictor(PolicySpec& spec,
                                                                       const PolicyEnv&) {
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("conf"));
  return std::unique_ptr<PrefetchPredictor>(new NonePredictor());
}

std::vector<std::string> PrefetchPredictorNames() {
  std::vector<std::string> names;
  for (const auto& p : kPredictors) names.emplace_back(p.name);
  return names;
}

absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreatePrefetchPredictor(
    std::string_view text, const PolicyEnv& env) {
  MOESTREAM_ASSIGN_OR_RETURN(PolicySpec spec, ParsePolicySpec(text));
  double conf = 0;
  MOESTREAM_RETURN_IF_ERROR(spec.Double("conf", 0.0, 1.0, &conf));
  for (const auto& p : kPredictors) {
    if (spec.name() != p.name) continue;
    MOESTREAM_ASSIGN_OR_RETURN(std::unique_ptr<PrefetchPredictor> predictor, p.create(spec, env));
    if (conf > 0) predictor = std::make_unique<ThresholdPredictor>(std::move(predictor), conf);
    return predictor;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown prefetch predictor '", spec.name(), "' in '", Av(text),
                   "' (known: ", absl::StrJoin(PrefetchPredictorNames(), ", "), ")"));
}

}  // namespace moestream::policies
