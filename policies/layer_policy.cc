// layer: evict from the layer whose next execution is farthest away first.
// While layer L runs, the layers execute next in the order L+1, ..., n-1,
// then (next token) 0, ..., L, so the farthest is L itself (its experts not
// in use), then L-1, L-2, ... Within a layer, least recently used first. With
// a per-layer capacity the layer is fixed and this is LRU.
//
// The current layer is VictimQuery::current_layer, else the last
// AccessContext::current_layer seen, else the layer of the last access.
// No options.
#include <memory>

#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

class LayerPolicy final : public ScoredPolicy {
 public:
  using ScoredPolicy::ScoredPolicy;
  std::string name() const override { return "layer"; }

  std::optional<ExpertKey> PickVictim(const VictimQuery& q) override {
    if (q.layer >= 0) return ScoredPolicy::PickVictim(q);
    int n = int(by_layer_.size());
    if (n == 0) return std::nullopt;
    int cur = q.current_layer >= 0 ? q.current_layer : last_layer_;
    if (cur < 0 || cur >= n) cur = n - 1;
    for (int d = 0; d < n; ++d) {
      int l = ((cur - d) % n + n) % n;
      const Entry* e = FirstEvictable(l, q);
      if (e != nullptr) return ExpertKey::FromPacked(e->key);
    }
    return std::nullopt;
  }

 protected:
  Score Rescore(ExpertKey k, const AccessContext& ctx, bool) override {
    last_layer_ = ctx.current_layer >= 0 ? ctx.current_layer : int(k.layer);
    return {0, ctx.tick};
  }

 private:
  int last_layer_ = -1;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateLayerPolicy(PolicySpec& spec,
                                                                  const PolicyEnv& env) {
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed(""));
  return std::unique_ptr<EvictionPolicy>(new LayerPolicy(env));
}

}  // namespace moestream::policies
