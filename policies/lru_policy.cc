// lru: evict the least recently used evictable key. Recency is the tick of
// the key's last access (or insert), so the order does not depend on the
// order in which the cache reports a batch of hits and misses, only on the
// ticks it hands over; equal ticks (prefetches inserted before the next
// demand access share its tick) order by packed key. No options.
//
// Cost. Every resident key sits in two intrusive doubly linked lists kept in
// (tick, key) order: its layer's list (per-layer queries) and one list of all
// layers (global queries). The cache's ticks never decrease, so a key moves
// to (or within a few equal ticks of) the tail: O(1) per access, insert and
// erase, and a victim query walks from the head only past unevictable keys,
// in either mode. Non-monotone ticks stay correct (the insertion walks back
// from the tail as far as needed), only slower.
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "base/check.h"
#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

class LruPolicy final : public EvictionPolicy {
 public:
  explicit LruPolicy(const PolicyEnv& env) : index_(env) {
    if (env.n_layers > 0 && env.n_experts > 0) {
      nodes_.resize(size_t(env.n_layers) * env.n_experts);
      layers_.resize(size_t(env.n_layers));
    }
  }
  std::string name() const override { return "lru"; }

  void OnInsert(ExpertKey k, const AccessContext& ctx) override {
    Grow(k);
    uint32_t i = index_.Of(k);
    Node& n = nodes_[i];
    MOESTREAM_CHECK(!n.resident) << "OnInsert of resident key " << k.layer << "/" << k.expert;
    n.resident = true;
    n.key = k.packed();
    n.tick = ctx.tick;
    Link(i, k.layer);
  }

  void OnAccess(ExpertKey k, const AccessContext& ctx) override {
    uint32_t i = index_.Of(k);
    MOESTREAM_CHECK(i < nodes_.size() && nodes_[i].resident)
        << "OnAccess of non-resident key " << k.layer << "/" << k.expert;
    Node& n = nodes_[i];
    if (n.tick == ctx.tick) return;
    Unlink(i, k.layer);
    n.tick = ctx.tick;
    Link(i, k.layer);
  }

  void OnErase(ExpertKey k) override {
    uint32_t i = index_.Of(k);
    MOESTREAM_CHECK(i < nodes_.size() && nodes_[i].resident)
        << "OnErase of non-resident key " << k.layer << "/" << k.expert;
    Unlink(i, k.layer);
    nodes_[i].resident = false;
  }

  std::optional<ExpertKey> PickVictim(const VictimQuery& q) override {
    if (q.layer >= 0) {
      if (size_t(q.layer) >= layers_.size()) return std::nullopt;
      for (uint32_t i = layers_[q.layer].head; i != kNil; i = nodes_[i].next[kLayer]) {
        ExpertKey k = ExpertKey::FromPacked(nodes_[i].key);
        if (!q.evictable || q.evictable(k)) return k;
      }
      return std::nullopt;
    }
    for (uint32_t i = all_.head; i != kNil; i = nodes_[i].next[kAll]) {
      ExpertKey k = ExpertKey::FromPacked(nodes_[i].key);
      if (!q.evictable || q.evictable(k)) return k;
    }
    return std::nullopt;
  }

 private:
  static constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();
  static constexpr int kLayer = 0, kAll = 1;  // which list a link belongs to
  struct Node {
    uint64_t tick = 0;
    uint32_t key = 0;  // packed ExpertKey
    uint32_t prev[2] = {kNil, kNil};
    uint32_t next[2] = {kNil, kNil};
    bool resident = false;
  };
  struct List {
    uint32_t head = kNil, tail = kNil;
  };

  bool Before(const Node& a, const Node& b) const {
    return a.tick != b.tick ? a.tick < b.tick : a.key < b.key;
  }

  void Grow(ExpertKey k) {
    MOESTREAM_CHECK(k.expert < index_.stride()) << "expert " << k.expert << " >= "
                                                << index_.stride();
    if (size_t need = index_.SizeFor(k); need > nodes_.size()) nodes_.resize(need);
    if (k.layer >= layers_.size()) layers_.resize(size_t(k.layer) + 1);
  }

  // Inserts node i into list `l` (links of kind `w`) in (tick, key) order,
  // searching from the tail.
  void LinkInto(List& l, int w, uint32_t i) {
    Node& n = nodes_[i];
    uint32_t after = l.tail;
    while (after != kNil && Before(n, nodes_[after])) after = nodes_[after].prev[w];
    n.prev[w] = after;
    if (after == kNil) {
      n.next[w] = l.head;
      l.head = i;
    } else {
      n.next[w] = nodes_[after].next[w];
      nodes_[after].next[w] = i;
    }
    if (n.next[w] == kNil) {
      l.tail = i;
    } else {
      nodes_[n.next[w]].prev[w] = i;
    }
  }
  void UnlinkFrom(List& l, int w, uint32_t i) {
    Node& n = nodes_[i];
    if (n.prev[w] == kNil) {
      l.head = n.next[w];
    } else {
      nodes_[n.prev[w]].next[w] = n.next[w];
    }
    if (n.next[w] == kNil) {
      l.tail = n.prev[w];
    } else {
      nodes_[n.next[w]].prev[w] = n.prev[w];
    }
    n.prev[w] = n.next[w] = kNil;
  }
  void Link(uint32_t i, int layer) {
    LinkInto(layers_[layer], kLayer, i);
    LinkInto(all_, kAll, i);
  }
  void Unlink(uint32_t i, int layer) {
    UnlinkFrom(layers_[layer], kLayer, i);
    UnlinkFrom(all_, kAll, i);
  }

  KeyIndex index_;
  std::vector<Node> nodes_;   // by key index
  std::vector<List> layers_;  // per layer
  List all_;                  // every resident key
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateLruPolicy(PolicySpec& spec,
                                                                const PolicyEnv& env) {
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed(""));
  return std::unique_ptr<EvictionPolicy>(new LruPolicy(env));
}

}  // namespace moestream::policies
