// 2q[:kin=A,kout=B]: the full 2Q policy (Johnson & Shasha, VLDB 1994).
// New keys enter A1in, a FIFO; re-references while in A1in do not promote
// (they are usually correlated, e.g. the same expert for consecutive prompt
// tokens). A key evicted from A1in is remembered in the ghost list A1out; if
// it is inserted again while remembered, it goes to Am, an LRU of keys with
// proven reuse. The victim comes from A1in while A1in holds more than `kin`
// of the resident keys (of the queried layer, or of all layers), else from
// Am; if the chosen queue has nothing evictable, from the other.
//
// Options:
//   kin   (0, 1], default 0.25: A1in's share of the resident keys.
//   kout  (0, 4], default 0.5: ghost list length as a multiple of the cache
//         capacity (env.capacity, or the most keys ever resident).
// Both queues live in ScoredPolicy's ordered sets: primary 0 = A1in (by
// insert tick), 1 = Am (by last access tick).
#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

class TwoQPolicy final : public ScoredPolicy {
 public:
  TwoQPolicy(const PolicyEnv& env, double kin, double kout)
      : ScoredPolicy(env), kin_(kin), kout_(kout), capacity_(env.capacity) {}
  std::string name() const override { return absl::StrCat("2q:kin=", kin_, ",kout=", kout_); }

  std::optional<ExpertKey> PickVictim(const VictimQuery& q) override {
    size_t in = q.layer >= 0 ? A1inCount(q.layer) : a1in_total_;
    size_t resident = q.layer >= 0 ? resident_in_layer(q.layer) : resident_count();
    bool from_a1in = double(in) > kin_ * double(resident);
    std::optional<ExpertKey> v = Pick(q, from_a1in ? 0.0 : 1.0);
    if (!v) v = Pick(q, from_a1in ? 1.0 : 0.0);
    return v;
  }

 protected:
  Score Rescore(ExpertKey k, const AccessContext& ctx, bool insert) override {
    uint32_t i = index_.Of(k);
    if (i >= state_.size()) {
      state_.resize(index_.SizeFor(k));
      ghost_seq_.resize(index_.SizeFor(k), 0);
    }
    max_resident_ = std::max(max_resident_, resident_count() + (insert ? 1 : 0));
    if (insert) {
      bool ghost = ghost_seq_[i] != 0 && a1in_evictions_ - ghost_seq_[i] < GhostLength();
      ghost_seq_[i] = 0;
      state_[i] = ghost ? 1 : 0;
      if (!ghost) {
        Count(k.layer) += 1;
        ++a1in_total_;
        in_tick_.resize(state_.size());
        in_tick_[i] = ctx.tick;
      }
      return {double(state_[i]), ctx.tick};
    }
    if (state_[i] == 0) return {0.0, in_tick_[i]};  // FIFO: no promotion on re-reference
    return {1.0, ctx.tick};
  }
  void Erased(ExpertKey k) override {
    uint32_t i = index_.Of(k);
    if (state_[i] == 0) {
      Count(k.layer) -= 1;
      --a1in_total_;
      ghost_seq_[i] = ++a1in_evictions_;
    }
  }

 private:
  std::optional<ExpertKey> Pick(const VictimQuery& q, double queue) {
    const Entry* best = nullptr;
    auto scan = [&](int l) {
      if (size_t(l) >= by_layer_.size()) return;
      for (const Entry& e : by_layer_[l]) {
        if (e.primary < queue) continue;
        if (e.primary > queue) break;
        if (!q.evictable || q.evictable(ExpertKey::FromPacked(e.key))) {
          if (best == nullptr || e < *best) best = &e;
          return;
        }
      }
    };
    if (q.layer >= 0) {
      scan(q.layer);
    } else {
      for (size_t l = 0; l < by_layer_.size(); ++l) scan(int(l));
    }
    if (best == nullptr) return std::nullopt;
    return ExpertKey::FromPacked(best->key);
  }
  size_t& Count(int layer) {
    if (size_t(layer) >= a1in_count_.size()) a1in_count_.resize(layer + 1, 0);
    return a1in_count_[layer];
  }
  size_t A1inCount(int layer) const {
    return size_t(layer) < a1in_count_.size() ? a1in_count_[layer] : 0;
  }
  uint64_t GhostLength() const {
    size_t cap = capacity_ > 0 ? size_t(capacity_) : max_resident_;
    return std::max<uint64_t>(1, uint64_t(kout_ * double(cap)));
  }

  double kin_;
  double kout_;
  int capacity_;
  size_t max_resident_ = 0;
  std::vector<uint8_t> state_;       // by key: 0 = A1in, 1 = Am
  std::vector<uint64_t> in_tick_;    // by key: tick it entered A1in
  std::vector<uint64_t> ghost_seq_;  // by key: A1in eviction number, 0 = none
  std::vector<size_t> a1in_count_;   // by layer
  size_t a1in_total_ = 0;
  uint64_t a1in_evictions_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateTwoQPolicy(PolicySpec& spec,
                                                                 const PolicyEnv& env) {
  double kin = 0.25, kout = 0.5;
  MOESTREAM_RETURN_IF_ERROR(spec.Double("kin", 1e-6, 1.0, &kin));
  MOESTREAM_RETURN_IF_ERROR(spec.Double("kout", 1e-6, 4.0, &kout));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("kin, kout"));
  return std::unique_ptr<EvictionPolicy>(new TwoQPolicy(env, kin, kout));
}

}  // namespace moestream::policies
