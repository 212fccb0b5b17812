// The factories behind CreateEvictionPolicy and CreatePrefetchPredictor: one
// per file in policies/, listed once in the registries (eviction_registry.cc,
// predictor_registry.cc). A new policy is one file plus one registry line.
//
// Each factory reads its options from `spec` (PolicySpec accessors) and
// checks none is left over.
#ifndef MOESTREAM_POLICIES_POLICY_REGISTRY_H_
#define MOESTREAM_POLICIES_POLICY_REGISTRY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "base/status_macros.h"
#include "policies/eviction_policy.h"
#include "policies/policy_spec.h"
#include "policies/prefetch_predictor.h"

namespace moestream::policies {

using EvictionFactory = absl::StatusOr<std::unique_ptr<EvictionPolicy>> (*)(PolicySpec&,
                                                                           const PolicyEnv&);
using PredictorFactory = absl::StatusOr<std::unique_ptr<PrefetchPredictor>> (*)(PolicySpec&,
                                                                               const PolicyEnv&);

// Eviction policies (one .cc each).
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateLruPolicy(PolicySpec&, const PolicyEnv&);
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateLfuPolicy(PolicySpec&, const PolicyEnv&);
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateLfruPolicy(PolicySpec&, const PolicyEnv&);
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateTwoQPolicy(PolicySpec&, const PolicyEnv&);
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateStaticPolicy(PolicySpec&, const PolicyEnv&);
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateLayerPolicy(PolicySpec&, const PolicyEnv&);
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateMinPolicy(PolicySpec&, const PolicyEnv&);
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreatePredictPolicy(PolicySpec&, const PolicyEnv&);
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateTinyLfuPolicy(PolicySpec&, const PolicyEnv&);
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateShiftPolicy(PolicySpec&, const PolicyEnv&);
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateMarkovPolicy(PolicySpec&, const PolicyEnv&);

// Prefetch predictors (one .cc each).
absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreateNonePredictor(PolicySpec&,
                                                                       const PolicyEnv&);
absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreateGatePredictor(PolicySpec&,
                                                                       const PolicyEnv&);
absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreateCoactPredictor(PolicySpec&,
                                                                        const PolicyEnv&);
absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreatePrevPredictor(PolicySpec&,
                                                                       const PolicyEnv&);
absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreatePopularityPredictor(PolicySpec&,
                                                                             const PolicyEnv&);
absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreateOraclePredictor(PolicySpec&,
                                                                         const PolicyEnv&);

}  // namespace moestream::policies

#endif  // MOESTREAM_POLICIES_POLICY_REGISTRY_H_
