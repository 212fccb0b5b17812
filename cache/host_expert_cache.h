// HostExpertCache: the middle of three tiers. With experts on NVMe, the
// host budget left after the loader's staging and the reader's ring holds a
// fixed number of pinned host slots, each one expert blob; experts read from
// NVMe land in a slot and stay there, so a later load of the same expert
// copies from host RAM instead of reading the disk again.
//
// It is mechanism plus bookkeeping, owned by the TierLoader and used under
// the loader's mutex (it has no lock of its own; the loader guards it). The
// eviction decision is delegated to a policies::EvictionPolicy created by
// name, exactly like the device cache's, so any registered online policy
// can manage the host tier.
//
// Slot states:
//
//   kFree ──Reserve(k)──► kFilling ──Filled(ok)──► kValid ◄──Lookup(k) hit
//     ▲                      │                       │
//     └──── Filled(!ok) ─────┘   Reserve(k') evicts ─┘ (only with no users)
//
// (A read that lands while another slot already holds the same key stays
// kFilling, unfindable, until its copy unpins it; then the slot is free.)
//
// `users` counts loads that will still read the slot's bytes (the read
// filling it, then each copy from it). Invariants, checked by
// CheckInvariants:
//   - a key maps to at most one slot, and only to a kValid slot;
//   - the policy's resident set is exactly the mapped keys;
//   - a kFilling slot has users == 1 and is not findable;
//   - a kFree slot has no users and is on the free list;
//   - only a kValid slot with users == 0 is ever evicted, so bytes a read
//     or a copy is using are never overwritten.
//
//   auto hc = HostExpertCache::Create(backend, {.slots = 64, .slot_bytes = b}, env);
//   int s = hc->Lookup(k);                  // >= 0: pinned hit
//   if (s < 0) s = hc->Reserve(k);          // >= 0: read into hc->data(s), then
//   hc->Filled(s, read_ok);                 // findable (still pinned) when ok
//   hc->Unpin(s);                           // after the copy from it completed
#ifndef MOESTREAM_CACHE_HOST_EXPERT_CACHE_H_
#define MOESTREAM_CACHE_HOST_EXPERT_CACHE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "base/expert_key.h"
#include "kernels/backend.h"
#include "policies/eviction_policy.h"

namespace moestream::cache {

struct HostCacheOptions {
  // Pinned host slots, each `slot_bytes` (the largest expert blob). >= 1.
  int slots = 0;
  uint64_t slot_bytes = 0;
  // Eviction policy spec (policies/eviction_policy.h). Default "lru".
  std::string policy = "lru";
  absl::Status Validate() const;
};

// What the host cache did (the TierLoader counts it).
struct HostCacheStats {
  uint64_t slots = 0;        // host slots allocated
  uint64_t hits = 0;         // loads that found their expert in a host slot
  uint64_t misses = 0;       // NVMe reads that delivered an expert
  uint64_t fills = 0;        // ... of which landed in a host slot (kept)
  uint64_t bypassed = 0;     // ... of which found no host slot (staging buffer)
  uint64_t evictions = 0;    // experts dropped from the host cache for another
  uint64_t host_bytes = 0;   // bytes copied out of host slots (hits completed)
  uint64_t nvme_bytes = 0;   // bytes read from NVMe (misses)
  double hit_rate() const {
    return hits + misses ? double(hits) / double(hits + misses) : 0.0;
  }
  void Add(const HostCacheStats& o);
  HostCacheStats Minus(const HostCacheStats& before) const;  // `slots` kept
};

class HostExpertCache {
 public:
  // Allocates `slots` pinned buffers named "host expert cache slot i" (the
  // names the memory plan lists) and builds the policy with `env`
  // (capacity is set to the slot count). Frees what it took on error.
  static absl::StatusOr<std::unique_ptr<HostExpertCache>> Create(kernels::Backend* backend,
                                                                 const HostCacheOptions& o,
                                                                 policies::PolicyEnv env);
  ~HostExpertCache();  // frees the slots; nothing may be reading them
  HostExpertCache(const HostExpertCache&) = delete;
  HostExpertCache& operator=(const HostExpertCache&) = delete;

  // The slot holding `k`, pinned for one more reader; -1 when `k` is not
  // (yet) held. A hit is an access for the policy.
  int Lookup(ExpertKey k);
  // A slot to read `k` into: a free one, else the policy's victim among
  // the valid slots nobody uses (evicted now); -1 when every slot is being
  // filled or read. The slot is kFilling and pinned by the read.
  int Reserve(ExpertKey k);
  // The read into a reserved slot ended. ok: its key is findable and the
  // slot stays pinned for the copy that follows; otherwise the slot is free.
  void Filled(int slot, bool ok);
  // One reader of the slot is done.
  void Unpin(int slot);

  uint8_t* data(int slot) const { return slots_[size_t(slot)].data; }
  int slot_count() const { return int(slots_.size()); }
  int users(int slot) const { return slots_[size_t(slot)].users; }
  std::string policy_name() const { return policy_->name(); }
  uint64_t evictions() const { return evictions_; }
  // Reserve() would find a slot: one is free, or cached with no users.
  bool CanReserve() const { return in_use_ < int(slots_.size()); }
  // Aborts (MOESTREAM_CHECK) when an invariant above is broken.
  void CheckInvariants() const;

 private:
  enum class State : uint8_t { kFree, kFilling, kValid };
  struct Slot {
    uint8_t* data = nullptr;
    State state = State::kFree;
    ExpertKey key;
    int users = 0;
  };
  HostExpertCache(kernels::Backend* backend) : backend_(backend) {}

  kernels::Backend* backend_;
  std::unique_ptr<policies::EvictionPolicy> policy_;
  std::vector<Slot> slots_;
  std::vector<int> free_;
  absl::flat_hash_map<uint32_t, int> where_;  // packed key -> kValid slot
  uint64_t tick_ = 0;                         // the policy's logical clock
  uint64_t evictions_ = 0;
  int in_use_ = 0;  // slots with users > 0
};

}  // namespace moestream::cache

#endif  // MOESTREAM_CACHE_HOST_EXPERT_CACHE_H_
