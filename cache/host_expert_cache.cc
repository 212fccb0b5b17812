// HostExpertCache: pinned host slots, a key -> slot map and an eviction
// policy, as described in host_expert_cache.h.
#include "cache/host_expert_cache.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"

namespace moestream::cache {

absl::Status HostCacheOptions::Validate() const {
  if (slots < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("host expert cache: slots must be >= 1, got ", slots));
  }
  if (slot_bytes == 0) return absl::InvalidArgumentError("host expert cache: slot_bytes is 0");
  return absl::OkStatus();
}

void HostCacheStats::Add(const HostCacheStats& o) {
  hits += o.hits;
  misses += o.misses;
  fills += o.fills;
  bypassed += o.bypassed;
  evictions += o.evictions;
  host_bytes += o.host_bytes;
  nvme_bytes += o.nvme_bytes;
}

HostCacheStats HostCacheStats::Minus(const HostCacheStats& b) const {
  HostCacheStats d = *this;
  d.hits -= b.hits;
  d.misses -= b.misses;
  d.fills -= b.fills;
  d.bypassed -= b.bypassed;
  d.evictions -= b.evictions;
  d.host_bytes -= b.host_bytes;
  d.nvme_bytes -= b.nvme_bytes;
  return d;
}

absl::StatusOr<std::unique_ptr<HostExpertCache>> HostExpertCache::Create(
    kernels::Backend* backend, const HostCacheOptions& o, policies::PolicyEnv env) {
  MOESTREAM_CHECK(backend != nullptr);
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  std::unique_ptr<HostExpertCache> c(new HostExpertCache(backend));
  env.capacity = o.slots;
  auto policy = policies::CreateEvictionPolicy(o.policy, env);
  if (!policy.ok()) {
    return absl::Status(policy.status().code(),
                        absl::StrCat("--host-cache-policy: ", policy.status().message()));
  }
  c->policy_ = std::move(*policy);
  c->slots_.reserve(size_t(o.slots));
  for (int i = 0; i < o.slots; ++i) {
    // The plan lists these as "host expert cache slot" x slots; the budget
    // counts them by the same name and size.
    auto p = backend->HostPinnedAlloc(o.slot_bytes, absl::StrCat("host expert cache slot ", i));
    if (!p.ok()) {
      return absl::Status(p.status().code(),
                          absl::StrCat("host expert cache: slot ", i, " of ", o.slots, ": ",
                                       p.status().message()));
    }
    c->slots_.push_back({static_cast<uint8_t*>(*p), State::kFree, {}, 0});
  }
  // Lowest index first: deterministic placement.
  for (int i = o.slots - 1; i >= 0; --i) c->free_.push_back(i);
  c->where_.reserve(size_t(o.slots));
  return c;
}

HostExpertCache::~HostExpertCache() {
  for (Slot& s : slots_) backend_->HostPinnedFree(s.data);
}

int HostExpertCache::Lookup(ExpertKey k) {
  auto it = where_.find(k.packed());
  if (it == where_.end()) return -1;
  Slot& s = slots_[size_t(it->second)];
  if (s.users++ == 0) ++in_use_;
  policies::AccessContext ctx;
  ctx.tick = tick_++;
  policy_->OnAccess(k, ctx);
  return it->second;
}

int HostExpertCache::Reserve(ExpertKey k) {
  int slot = -1;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    policies::VictimQuery q;
    q.tick = tick_;
    // Bytes a copy is still reading are never overwritten; kFilling slots
    // are not in the map, so the policy never sees them.
    q.evictable = [this](ExpertKey v) {
      auto it = where_.find(v.packed());
      return it != where_.end() && slots_[size_t(it->second)].users == 0;
    };
    const std::optional<ExpertKey> victim = policy_->PickVictim(q);
    if (!victim.has_value()) return -1;
    auto it = where_.find(victim->packed());
    MOESTREAM_CHECK(it != where_.end() && slots_[size_t(it->second)].users == 0)
        << "host cache policy " << policy_->name() << " picked an unevictable victim "
        << victim->layer << "/" << victim->expert;
    slot = it->second;
    where_.erase(it);
    policy_->OnErase(*victim);
    ++evictions_;
  }
  Slot& s = slots_[size_t(slot)];
  s.state = State::kFilling;
  s.key = k;
  s.users = 1;
  ++in_use_;
  return slot;
}

void HostExpertCache::Filled(int slot, bool ok) {
  Slot& s = slots_[size_t(slot)];
  MOESTREAM_CHECK(s.state == State::kFilling && s.users == 1);
  if (!ok) {
    s.state = State::kFree;
    s.users = 0;
    --in_use_;
    free_.push_back(slot);
    return;
  }
  // Another slot already holds the key: this copy stays private (kFilling)
  // until its reader unpins it.
  if (where_.contains(s.key.packed())) return;
  s.state = State::kValid;
  where_[s.key.packed()] = slot;
  policies::AccessContext ctx;
  ctx.tick = tick_++;
  policy_->OnInsert(s.key, ctx);
}

void HostExpertCache::Unpin(int slot) {
  Slot& s = slots_[size_t(slot)];
  MOESTREAM_CHECK(s.users > 0) << "host cache slot " << slot << " unpinned with no users";
  if (--s.users > 0) return;
  --in_use_;
  if (s.state == State::kFilling) {
    s.state = State::kFree;
    free_.push_back(slot);
  }
}

void HostExpertCache::CheckInvariants() const {
  size_t valid = 0, free = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    MOESTREAM_CHECK(s.users >= 0);
    switch (s.state) {
      case State::kFree:
        MOESTREAM_CHECK(s.users == 0) << "free host slot " << i << " has users";
        ++free;
        break;
      case State::kFilling:
        MOESTREAM_CHECK(s.users == 1) << "filling host slot " << i << " has " << s.users;
        break;
      case State::kValid: {
        auto it = where_.find(s.key.packed());
        MOESTREAM_CHECK(it != where_.end() && it->second == int(i))
            << "valid host slot " << i << " is not where its key maps";
        ++valid;
        break;
      }
    }
  }
  MOESTREAM_CHECK(valid == where_.size()) << "host cache map has stale entries";
  MOESTREAM_CHECK(free == free_.size()) << "host cache free list out of step";
}

}  // namespace moestream::cache
