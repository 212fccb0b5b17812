// The prefetch-predictor registry: name -> factory, plus `none`.
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
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed(""));
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
  for (const auto& p : kPredictors) {
    if (spec.name() == p.name) return p.create(spec, env);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown prefetch predictor '", spec.name(), "' in '", Av(text),
                   "' (known: ", absl::StrJoin(PrefetchPredictorNames(), ", "), ")"));
}

}  // namespace moestream::policies
