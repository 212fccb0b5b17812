// The shared machinery of the ordered eviction policies (LRU, LFU, LFRU,
// static pinning, MIN, layer-aware): each resident key carries a score, keys
// are kept per layer in score order, and the victim is the first evictable
// key in that order (smallest score first; ties broken by tick, then key).
//
// A subclass supplies only the score of a key on insert and on access. The
// base keeps one ordered set per layer, so a per-layer query reads one set
// and a global query takes the best first-evictable key across layers:
// O(log n) per access, O(layers + skipped) per victim.
//
//   class MyPolicy : public ScoredPolicy {
//     Score Rescore(ExpertKey k, const AccessContext& ctx, bool insert) override;
//   };
#ifndef MOESTREAM_POLICIES_SCORED_POLICY_H_
#define MOESTREAM_POLICIES_SCORED_POLICY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/btree_set.h"
#include "policies/eviction_policy.h"

namespace moestream::policies {

// Dense index of (layer, expert) keys: layer * stride + expert, where stride
// is the model's expert count (or 1024 when unknown). Arrays indexed by it
// grow on demand.
class KeyIndex {
 public:
  explicit KeyIndex(const PolicyEnv& env)
      : stride_(env.n_experts > 0 ? env.n_experts : 1024),
        n_layers_(env.n_layers > 0 ? env.n_layers : 0) {}
  uint32_t Of(ExpertKey k) const { return uint32_t(k.layer) * stride_ + k.expert; }
  uint32_t stride() const { return stride_; }
  int n_layers() const { return n_layers_; }
  // Size an array must have to hold key k.
  size_t SizeFor(ExpertKey k) const { return size_t(k.layer + 1) * stride_; }

 private:
  uint32_t stride_;
  int n_layers_;
};

class ScoredPolicy : public EvictionPolicy {
 public:
  // Smaller scores are evicted first.
  struct Score {
    double primary = 0;
    uint64_t secondary = 0;
  };

  explicit ScoredPolicy(const PolicyEnv& env);

  void OnInsert(ExpertKey k, const AccessContext& ctx) override;
  void OnAccess(ExpertKey k, const AccessContext& ctx) override;
  void OnErase(ExpertKey k) override;
  std::optional<ExpertKey> PickVictim(const VictimQuery& q) override;

 protected:
  // The key's new score after an insert (insert = true) or an access.
  virtual Score Rescore(ExpertKey k, const AccessContext& ctx, bool insert) = 0;
  // Hook for subclasses that keep per-key state beyond residency.
  virtual void Erased(ExpertKey k) {}

  struct Entry {
    double primary;
    uint64_t secondary;
    uint32_t key;  // packed ExpertKey
    friend bool operator<(const Entry& a, const Entry& b) {
      if (a.primary != b.primary) return a.primary < b.primary;
      if (a.secondary != b.secondary) return a.secondary < b.secondary;
      return a.key < b.key;
    }
  };
  using LayerSet = absl::btree_set<Entry>;

  // First evictable entry of one layer's set, or nullptr.
  const Entry* FirstEvictable(int layer, const VictimQuery& q) const;
  // Re-inserts every resident key with scores from `fn(key, old score)`
  // (used to renormalise growing scores; order must be preserved or rebuilt).
  template <typename Fn>
  void RescoreAll(Fn fn) {
    for (auto& set : by_layer_) {
      LayerSet next;
      for (const Entry& e : set) {
        Score s = fn(ExpertKey::FromPacked(e.key), Score{e.primary, e.secondary});
        Entry n{s.primary, s.secondary, e.key};
        next.insert(n);
        current_[index_.Of(ExpertKey::FromPacked(e.key))] = n;
      }
      set.swap(next);
    }
  }
  // Moves resident key k to score s.
  void SetScore(ExpertKey k, Score s) {
    Entry& cur = current_[index_.Of(k)];
    LayerSet& set = by_layer_[k.layer];
    set.erase(cur);
    cur = Entry{s.primary, s.secondary, k.packed()};
    set.insert(cur);
  }
  bool IsResident(ExpertKey k) const {
    uint32_t i = index_.Of(k);
    return i < resident_.size() && resident_[i];
  }
  size_t resident_count() const { return resident_count_; }
  size_t resident_in_layer(int layer) const {
    return size_t(layer) < by_layer_.size() ? by_layer_[layer].size() : 0;
  }

  KeyIndex index_;
  std::vector<LayerSet> by_layer_;

 private:
  void Grow(ExpertKey k);

  std::vector<Entry> current_;     // by key index: the entry in its layer set
  std::vector<uint8_t> resident_;  // by key index
  size_t resident_count_ = 0;
};

}  // namespace moestream::policies

#endif  // MOESTREAM_POLICIES_SCORED_POLICY_H_
