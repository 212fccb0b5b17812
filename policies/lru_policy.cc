// lru: evict the least recently used evictable key. Recency is the tick of
// the key's last access (or insert), so the order does not depend on the
// order in which the cache reports a batch of hits and misses, only on the
// ticks it hands over. No options.
#include <memory>

#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

class LruPolicy final : public ScoredPolicy {
 public:
  using ScoredPolicy::ScoredPolicy;
  std::string name() const override { return "lru"; }

 protected:
  Score Rescore(ExpertKey, const AccessContext& ctx, bool) override { return {0, ctx.tick}; }
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateLruPolicy(PolicySpec& spec,
                                                                const PolicyEnv& env) {
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed(""));
  return std::unique_ptr<EvictionPolicy>(new LruPolicy(env));
}

}  // namespace moestream::policies
