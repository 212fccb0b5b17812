// shift[:ghost=G,move=0|1]: per-layer capacity that moves to where it buys hits. Each
// layer has a quota of slots, at first the pool's equal share
// (env.capacity / n_layers); the quotas always sum to the pool's total. A
// layer whose demand miss would have been a hit with a little more room —
// the missed key is among the layer's last G victims (its ghost list) —
// takes one slot of quota from the layer whose slots have done least lately
// (the fewest ghost hits, then the largest quota, then the lowest layer) if
// that layer has fewer ghost hits, never below one routed step (env.top_k).
// Victims: while the inserting layer holds fewer keys than its quota, the
// first evictable key of a layer over its quota (the most over first);
// otherwise the inserting layer's own first key; when none of those is
// evictable, the first evictable key anywhere. "First" within a layer is
// the least frequently used (demand uses since the run began, kept after
// eviction: the signal that serves the shared traces best), ties by least
// recently used.
//
// With a global pool (VictimQuery::layer < 0) the policy picks victims by
// its quotas itself. With per-layer pools the cache fixes each layer's size
// and this is LFU, unless `move=1`: then the policy gives the cache its
// quotas (LayerQuota) and the cache moves slots between the layers' pools by
// them, asking for a victim of one layer at a time (LFU within the layer).
//
// Options:
//   ghost  [1, 4096], default 0 = env.top_k (or 1): ghost-list length per layer.
//   move   0 (default) or 1: per-layer pools move slots by the quotas. Off by
//          default: on the shared traces it gains over LFU only on gpt-oss
//          and Qwen1.5-MoE (README, "Policies on the shared traces").
// Ghost hits decay: each layer's count is halved every time the layers
// together have seen as many demand misses as the pool has slots.
#include <algorithm>
#include <deque>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

class ShiftPolicy final : public ScoredPolicy {
 public:
  ShiftPolicy(const PolicyEnv& env, int ghost_option, bool move)
      : ScoredPolicy(env),
        ghost_option_(ghost_option),
        move_(move),
        ghost_(ghost_option > 0 ? ghost_option : std::max(1, env.top_k)),
        min_quota_(std::max(1, env.top_k)),
        capacity_(env.capacity) {
    if (env.n_layers > 0) Layers(env.n_layers);
  }
  std::string name() const override {
    std::string opts;
    if (ghost_option_ > 0) absl::StrAppend(&opts, "ghost=", ghost_option_);
    if (move_) absl::StrAppend(&opts, opts.empty() ? "" : ",", "move=1");
    return opts.empty() ? "shift" : absl::StrCat("shift:", opts);
  }

  int LayerQuota(int layer) const override {
    if (!move_ || capacity_ <= 0 || layer < 0 || size_t(layer) >= quota_.size()) return -1;
    return int(quota_[layer]);
  }

  std::optional<ExpertKey> PickVictim(const VictimQuery& q) override {
    if (q.layer >= 0) return ScoredPolicy::PickVictim(q);
    const int cur = q.current_layer;
    if (cur >= 0 && size_t(cur) < quota_.size() && double(resident_in_layer(cur)) < quota_[cur]) {
      // Take from the layer most over its quota.
      const Entry* best = nullptr;
      double over_best = 0;
      for (size_t l = 0; l < by_layer_.size() && l < quota_.size(); ++l) {
        const double over = double(resident_in_layer(int(l))) - quota_[l];
        if (over <= 0 || (best != nullptr && over <= over_best)) continue;
        const Entry* e = FirstEvictable(int(l), q);
        if (e != nullptr) {
          best = e;
          over_best = over;
        }
      }
      if (best != nullptr) return ExpertKey::FromPacked(best->key);
    }
    if (cur >= 0) {
      if (const Entry* e = FirstEvictable(cur, q)) return ExpertKey::FromPacked(e->key);
    }
    return ScoredPolicy::PickVictim(q);
  }

 protected:
  Score Rescore(ExpertKey k, const AccessContext& ctx, bool insert) override {
    if (insert && !ctx.prefetch) Miss(k);
    const uint32_t i = index_.Of(k);
    if (i >= uses_.size()) uses_.resize(index_.SizeFor(k), 0);
    if (!ctx.prefetch) ++uses_[i];
    return {double(uses_[i]), ctx.tick};
  }
  void Erased(ExpertKey k) override {
    Layers(k.layer + 1);
    std::deque<uint16_t>& g = ghosts_[k.layer];
    g.push_back(k.expert);
    if (int(g.size()) > ghost_) g.pop_front();
  }

 private:
  void Layers(int n) {
    if (int(quota_.size()) >= n) return;
    quota_.resize(n, 0.0);
    ghosts_.resize(n);
    ghost_hits_.resize(n, 0.0);
    // Equal shares of the pool (its size, else unknown: quotas grow as used).
    const double share = capacity_ > 0 ? double(capacity_) / n : 0.0;
    std::fill(quota_.begin(), quota_.end(), share);
  }

  void Miss(ExpertKey k) {
    Layers(k.layer + 1);
    std::deque<uint16_t>& g = ghosts_[k.layer];
    auto it = std::find(g.begin(), g.end(), k.expert);
    if (it != g.end()) {
      g.erase(it);
      ghost_hits_[k.layer] += 1;
      Move(k.layer);
    }
    if (capacity_ > 0 && ++misses_ >= uint64_t(capacity_)) {
      misses_ = 0;
      for (double& h : ghost_hits_) h *= 0.5;
    }
  }

  // One slot of quota to `to` from the layer that used its slots least.
  void Move(int to) {
    if (capacity_ <= 0) return;
    int from = -1;
    for (int l = 0; l < int(quota_.size()); ++l) {
      if (l == to || quota_[l] - 1 < min_quota_) continue;
      if (from < 0 || ghost_hits_[l] < ghost_hits_[from] ||
          (ghost_hits_[l] == ghost_hits_[from] && quota_[l] > quota_[from])) {
        from = l;
      }
    }
    if (from < 0 || ghost_hits_[from] >= ghost_hits_[to]) return;
    quota_[from] -= 1;
    quota_[to] += 1;
  }

  int ghost_option_;
  bool move_;
  int ghost_;
  int min_quota_;
  int capacity_;
  uint64_t misses_ = 0;
  std::vector<double> quota_;                 // per layer, sums to capacity_
  std::vector<std::deque<uint16_t>> ghosts_;  // per layer: last victims
  std::vector<double> ghost_hits_;            // per layer, decayed
  std::vector<uint32_t> uses_;                // by key index: demand uses, kept after eviction
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateShiftPolicy(PolicySpec& spec,
                                                                 const PolicyEnv& env) {
  int64_t ghost = 0;
  MOESTREAM_RETURN_IF_ERROR(spec.Int("ghost", 0, 4096, &ghost));
  bool move = false;
  MOESTREAM_RETURN_IF_ERROR(spec.Bool("move", &move));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("ghost, move"));
  return std::unique_ptr<EvictionPolicy>(new ShiftPolicy(env, int(ghost), move));
}

}  // namespace moestream::policies
