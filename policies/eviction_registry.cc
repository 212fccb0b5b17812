// The eviction-policy registry: name -> factory, in the order `moestream
// replay --help` and the contract tests list them.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "policies/eviction_policy.h"
#include "policies/policy_registry.h"

namespace moestream::policies {
namespace {

struct Registered {
  const char* name;
  EvictionFactory create;
};

constexpr Registered kPolicies[] = {
    {"lru", CreateLruPolicy},       {"lfu", CreateLfuPolicy},
    {"lfru", CreateLfruPolicy},     {"2q", CreateTwoQPolicy},
    {"static", CreateStaticPolicy}, {"layer", CreateLayerPolicy},
    {"predict", CreatePredictPolicy}, {"tinylfu", CreateTinyLfuPolicy},
    {"shift", CreateShiftPolicy},     {"markov", CreateMarkovPolicy},
    {"min", CreateMinPolicy},
};

}  // namespace

std::vector<std::string> EvictionPolicyNames() {
  std::vector<std::string> names;
  for (const auto& p : kPolicies) names.emplace_back(p.name);
  return names;
}

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateEvictionPolicy(std::string_view text,
                                                                     const PolicyEnv& env) {
  MOESTREAM_ASSIGN_OR_RETURN(PolicySpec spec, ParsePolicySpec(text));
  // "belady" is the name DESIGN.md uses for MIN.
  std::string name = spec.name() == "belady" ? "min" : spec.name();
  for (const auto& p : kPolicies) {
    if (name == p.name) return p.create(spec, env);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown eviction policy '", spec.name(),
                                                 "' in '", Av(text), "' (known: ",
                                                 absl::StrJoin(EvictionPolicyNames(), ", "), ")"));
}

}  // namespace moestream::policies
