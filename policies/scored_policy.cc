#include "policies/scored_policy.h"

#include "base/check.h"

namespace moestream::policies {

ScoredPolicy::ScoredPolicy(const PolicyEnv& env) : index_(env) {
  if (env.n_layers > 0 && env.n_experts > 0) {
    size_t n = size_t(env.n_layers) * env.n_experts;
    current_.resize(n);
    resident_.assign(n, 0);
    by_layer_.resize(env.n_layers);
  }
}

void ScoredPolicy::Grow(ExpertKey k) {
  MOESTREAM_CHECK(k.expert < index_.stride()) << "expert " << k.expert << " >= " << index_.stride();
  size_t need = index_.SizeFor(k);
  if (need > resident_.size()) {
    current_.resize(need);
    resident_.resize(need, 0);
  }
  if (k.layer >= by_layer_.size()) by_layer_.resize(k.layer + 1);
}

void ScoredPolicy::OnInsert(ExpertKey k, const AccessContext& ctx) {
  Grow(k);
  uint32_t i = index_.Of(k);
  MOESTREAM_CHECK(!resident_[i]) << "OnInsert of resident key " << k.layer << "/" << k.expert;
  Score s = Rescore(k, ctx, /*insert=*/true);
  Entry e{s.primary, s.secondary, k.packed()};
  by_layer_[k.layer].insert(e);
  current_[i] = e;
  resident_[i] = 1;
  ++resident_count_;
}

void ScoredPolicy::OnAccess(ExpertKey k, const AccessContext& ctx) {
  uint32_t i = index_.Of(k);
  MOESTREAM_CHECK(i < resident_.size() && resident_[i])
      << "OnAccess of non-resident key " << k.layer << "/" << k.expert;
  Score s = Rescore(k, ctx, /*insert=*/false);
  Entry& cur = current_[i];
  if (cur.primary == s.primary && cur.secondary == s.secondary) return;
  LayerSet& set = by_layer_[k.layer];
  set.erase(cur);
  cur = Entry{s.primary, s.secondary, k.packed()};
  set.insert(cur);
}

void ScoredPolicy::OnErase(ExpertKey k) {
  uint32_t i = index_.Of(k);
  MOESTREAM_CHECK(i < resident_.size() && resident_[i])
      << "OnErase of non-resident key " << k.layer << "/" << k.expert;
  by_layer_[k.layer].erase(current_[i]);
  resident_[i] = 0;
  --resident_count_;
  Erased(k);
}

const ScoredPolicy::Entry* ScoredPolicy::FirstEvictable(int layer, const VictimQuery& q) const {
  if (size_t(layer) >= by_layer_.size()) return nullptr;
  for (const Entry& e : by_layer_[layer]) {
    if (!q.evictable || q.evictable(ExpertKey::FromPacked(e.key))) return &e;
  }
  return nullptr;
}

std::optional<ExpertKey> ScoredPolicy::PickVictim(const VictimQuery& q) {
  if (q.layer >= 0) {
    const Entry* e = FirstEvictable(q.layer, q);
    if (e == nullptr) return std::nullopt;
    return ExpertKey::FromPacked(e->key);
  }
  const Entry* best = nullptr;
  for (size_t l = 0; l < by_layer_.size(); ++l) {
    const Entry* e = FirstEvictable(int(l), q);
    if (e != nullptr && (best == nullptr || *e < *best)) best = e;
  }
  if (best == nullptr) return std::nullopt;
  return ExpertKey::FromPacked(best->key);
}

}  // namespace moestream::policies
