// The eviction-policy contract: how the expert cache (cache/) asks a policy
// which resident expert to give up, and what it tells the policy.
//
// Design. A policy is a pure decision-maker: no I/O, no clock of its own, no
// knowledge of slots or memory. The cache owns residency; the policy mirrors
// the set of resident keys through notifications and, when asked, names a
// victim among the keys the cache says are evictable (not pinned by a
// compute handle, not still loading). The same policy object runs unchanged
// in the live engine and in `moestream replay` (simulated clock), because
// everything it may depend on arrives in the calls below.
//
// Time. `AccessContext::tick` is a logical clock: the index of the access in
// the stream of expert requests (one per (token, layer, expert) demand, in
// order). Policies that need the future (Belady's MIN) are built with the
// trace and read it by tick; online policies only compare ticks.
//
// Contract (checked by tests/policies/eviction_policy_contract_test.cc for
// every registered policy):
//   1. OnInsert(k) is called once when k becomes resident, OnErase(k) once
//      when it stops being resident; OnAccess(k) only while k is resident.
//   2. PickVictim returns a key that is resident and for which
//      `q.evictable(k)` is true and (if q.layer >= 0) k.layer == q.layer, or
//      nullopt when there is none. It never returns a pinned key.
//   3. PickVictim does not change residency: the cache erases the victim
//      (calling OnErase) only when it commits the eviction.
//   4. Deterministic: the same call sequence gives the same answers.
//   5. OnStep(layer, experts) may come before a layer step's accesses: the
//      whole routing of the step, before any of its keys is looked up (so
//      before any PickVictim the step causes). A policy may use it or not;
//      it is a hint, never a residency change, and a cache may not send it.
// Cost. Calls happen per expert access (millions per second in replay), so
// policies keep O(1) or O(log n) state per key; PickVictim may scan, but
// should stop at the first acceptable candidate in its order.
//
//   auto p = CreateEvictionPolicy("lfru:recency=0.7", env);
//   p->OnInsert(k, ctx); p->OnAccess(k, ctx);
//   std::optional<ExpertKey> v = p->PickVictim({.layer = -1, .evictable = fn, .tick = t});
#ifndef MOESTREAM_POLICIES_EVICTION_POLICY_H_
#define MOESTREAM_POLICIES_EVICTION_POLICY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/expert_key.h"

namespace moestream::policies {

struct AccessContext {
  uint64_t tick = 0;       // logical time: index of this access
  bool prefetch = false;   // inserted by a prefetch rather than a demand miss
  int current_layer = -1;  // layer being executed, when known
};

struct VictimQuery {
  int layer = -1;  // >= 0: victim must come from this layer (per-layer capacity)
  std::function<bool(ExpertKey)> evictable;  // false for pinned / loading keys
  uint64_t tick = 0;                         // current logical time
  int current_layer = -1;                    // layer being executed, when known
};

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual std::string name() const = 0;  // canonical spec, e.g. "lfru:recency=0.7"
  virtual void OnInsert(ExpertKey k, const AccessContext& ctx) = 0;
  virtual void OnAccess(ExpertKey k, const AccessContext& ctx) = 0;
  virtual void OnErase(ExpertKey k) = 0;
  virtual std::optional<ExpertKey> PickVictim(const VictimQuery& q) = 0;
  // The experts `layer` routes in the step about to be acquired (distinct
  // ids, in request order), before any of them is looked up: the cache sends
  // each Acquire's request, or the whole step once when a caller acquires a
  // step larger than its pool in parts (ExpertCache::BeginStep). Default:
  // ignored.
  virtual void OnStep(int layer, std::span<const int32_t> experts, uint64_t tick) {}
  // Per-layer capacity that moves (optional). -1, the default: each layer
  // of a per-layer cache keeps its fixed share. A policy that answers >= 0
  // (for layer 0 when the cache is created, then for any layer) gives the
  // slots `layer` may hold now; its quotas sum to PolicyEnv::capacity. The
  // per-layer cache then keeps one pool: a layer under its quota takes a
  // free slot or a victim of a layer over its own (PickVictim with that
  // layer in VictimQuery::layer), a layer at it replaces one of its own.
  virtual int LayerQuota(int layer) const { return -1; }
};

// What some policies need to be built: model shape, and for offline policies
// the future (MIN) or popularity (static pinning).
struct PolicyEnv {
  int n_layers = 0;
  int n_experts = 0;
  // Experts routed per token per layer (0 = unknown); sets the time unit of
  // policies that decay by tokens (lfru).
  int top_k = 0;
  // Total capacity in experts (static pinning sizes its pinned set from it).
  int capacity = 0;
  // The full access sequence in tick order (MIN reads the future from it).
  const std::vector<ExpertKey>* future = nullptr;
  // Popularity per (layer * n_experts + expert), any scale (static pinning).
  const std::vector<double>* popularity = nullptr;
};

// Builds a policy from "name[:opt=value,...]" (e.g. "lru", "lfu:decay=0.9",
// "lfru:recency=0.7", "min"). kInvalidArgument for an unknown name or option,
// naming the registered policies; kFailedPrecondition when the policy needs
// something `env` lacks (MIN without a future).
absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateEvictionPolicy(std::string_view spec,
                                                                     const PolicyEnv& env);
// Registered policy names, in registry order.
std::vector<std::string> EvictionPolicyNames();

}  // namespace moestream::policies

#endif  // MOESTREAM_POLICIES_EVICTION_POLICY_H_
