// static[:frac=F]: pin the most popular experts, LRU for the rest.
//
// At creation, each layer's top floor(F * capacity / n_layers) experts by
// env.popularity (from a popularity file, or counted over a trace) form the
// pinned set. A pinned key, once resident, is evicted only when no unpinned
// key is evictable (then the least recently used pinned one), so the policy
// never refuses a victim the cache needs.
//
// Options:
//   frac  [0, 1], default 0.5: share of the capacity given to pinned experts.
// Needs env.popularity (n_layers * n_experts values) and env.capacity.
#include <algorithm>
#include <memory>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

class StaticPolicy final : public ScoredPolicy {
 public:
  StaticPolicy(const PolicyEnv& env, double frac) : ScoredPolicy(env), frac_(frac) {
    pinned_.assign(size_t(env.n_layers) * env.n_experts, 0);
    int per_layer = int(frac * env.capacity / env.n_layers);
    per_layer = std::min(per_layer, env.n_experts);
    std::vector<int> order(env.n_experts);
    for (int l = 0; l < env.n_layers; ++l) {
      const double* pop = env.popularity->data() + size_t(l) * env.n_experts;
      std::iota(order.begin(), order.end(), 0);
      // Most popular first; ties by expert id so the set is deterministic.
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return pop[a] > pop[b]; });
      for (int i = 0; i < per_layer; ++i) {
        if (pop[order[i]] <= 0) break;
        pinned_[size_t(l) * env.n_experts + order[i]] = 1;
      }
    }
  }
  std::string name() const override { return absl::StrCat("static:frac=", frac_); }

 protected:
  Score Rescore(ExpertKey k, const AccessContext& ctx, bool) override {
    uint32_t i = index_.Of(k);
    bool pinned = i < pinned_.size() && pinned_[i];
    return {pinned ? 1.0 : 0.0, ctx.tick};
  }

 private:
  double frac_;
  std::vector<uint8_t> pinned_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateStaticPolicy(PolicySpec& spec,
                                                                   const PolicyEnv& env) {
  double frac = 0.5;
  MOESTREAM_RETURN_IF_ERROR(spec.Double("frac", 0.0, 1.0, &frac));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("frac"));
  if (env.n_layers <= 0 || env.n_experts <= 0) {
    return absl::FailedPreconditionError("policy 'static' needs the model shape (layers, experts)");
  }
  if (env.popularity == nullptr ||
      env.popularity->size() != size_t(env.n_layers) * env.n_experts) {
    return absl::FailedPreconditionError(absl::StrCat(
        "policy 'static' needs expert popularity for ", env.n_layers, " layers x ",
        env.n_experts, " experts (a popularity file or a trace)"));
  }
  return std::unique_ptr<EvictionPolicy>(new StaticPolicy(env, frac));
}

}  // namespace moestream::policies
