// min (alias belady): Belady's MIN, the offline optimum for demand caching:
// evict the evictable key whose next request is farthest in the future (never
// requested again = infinitely far). Reads env.future, the whole access
// sequence in tick order; a key's score is refreshed whenever it is inserted
// or accessed, from the tick the cache reports:
//   - a demand access at tick t with future[t] == key: next use = the next
//     index after t holding the key (precomputed, O(1));
//   - otherwise (a prefetch, or a cache that batches ticks): the first index
//     >= t holding the key (>= for prefetches, > for demand), by binary search
//     in the key's sorted list of ticks.
// No options. kFailedPrecondition without env.future.
#include <algorithm>
#include <limits>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

class MinPolicy final : public ScoredPolicy {
 public:
  explicit MinPolicy(const PolicyEnv& env) : ScoredPolicy(env), future_(*env.future) {
    next_.assign(future_.size(), kNever);
    absl::flat_hash_map<uint32_t, uint64_t> last;
    for (uint64_t t = future_.size(); t-- > 0;) {
      uint32_t k = future_[t].packed();
      auto [it, inserted] = last.try_emplace(k, kNever);
      next_[t] = it->second;
      it->second = t;
      (void)inserted;
    }
    for (uint64_t t = 0; t < future_.size(); ++t) ticks_[future_[t].packed()].push_back(t);
  }
  std::string name() const override { return "min"; }

 protected:
  Score Rescore(ExpertKey k, const AccessContext& ctx, bool) override {
    uint64_t next = NextUse(k, ctx.tick, ctx.prefetch);
    // Farthest next use first: negate so that larger `next` sorts smaller.
    double primary = next == kNever ? -std::numeric_limits<double>::infinity() : -double(next);
    return {primary, ctx.tick};
  }

 private:
  uint64_t NextUse(ExpertKey k, uint64_t tick, bool prefetch) const {
    if (!prefetch && tick < future_.size() && future_[tick] == k) return next_[tick];
    auto it = ticks_.find(k.packed());
    if (it == ticks_.end()) return kNever;
    const std::vector<uint64_t>& v = it->second;
    auto pos = prefetch ? std::lower_bound(v.begin(), v.end(), tick)
                        : std::upper_bound(v.begin(), v.end(), tick);
    return pos == v.end() ? kNever : *pos;
  }

  const std::vector<ExpertKey>& future_;
  std::vector<uint64_t> next_;  // by tick: the next tick with the same key
  absl::flat_hash_map<uint32_t, std::vector<uint64_t>> ticks_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateMinPolicy(PolicySpec& spec,
                                                                const PolicyEnv& env) {
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed(""));
  if (env.future == nullptr) {
    return absl::FailedPreconditionError(
        "policy 'min' (Belady) needs the future access sequence: replay a trace");
  }
  return std::unique_ptr<EvictionPolicy>(new MinPolicy(env));
}

}  // namespace moestream::policies
