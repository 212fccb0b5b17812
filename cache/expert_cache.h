// The device expert cache: a fixed pool of device slots holding routed
// experts, the residency map, pinning handles, in-flight loads, the prefetch
// queue with cancellation, and statistics. The live engine and
// `moestream replay` run this same class; only the ExpertLoader and Clock
// behind it differ (cache/expert_loader.h).
//
//   ExpertCacheOptions o;  o.n_layers = 48;  o.n_experts = 128;
//   o.slots = 512;  o.slot_bytes = loader->ExpertBytes({0, 0});
//   MOESTREAM_ASSIGN_OR_RETURN(auto cache,
//       ExpertCache::Create(o, loader.get(), clock.get(), policy.get(), backend));
//   std::vector<ExpertHandle> hs;
//   MOESTREAM_RETURN_IF_ERROR(cache->Acquire(layer, ids, &hs));   // hits pinned, misses loading
//   for (auto& h : hs) if (h.ready()) Compute(h.data());          // resident experts first
//   for (auto& h : hs) if (!h.ready()) {
//     MOESTREAM_RETURN_IF_ERROR(cache->Wait(h));                  // the rest as they land
//     Compute(h.data());
//   }
//   for (auto& h : hs) h.Release(&backend->compute_stream());     // free after the compute
//   cache->Prefetch(guesses_for_next_layer);
//
// ---------------------------------------------------------------------------
// Design
//
// Slots. At Create() the cache allocates every slot it will ever use: `slots`
// (global) or `slots * n_layers` (per layer) equal-size slots of `slot_bytes`
// (the largest expert), one DeviceAlloc per slot from the backend's budgeted
// arena, plus one Event per slot for stream-ordered release. Under simulation
// there is no backend and slots own no memory. Nothing on the hot path
// allocates device memory; the hot path's host allocations are amortised
// (vectors reused across calls).
//
// Moving per-layer quotas. In per-layer mode a policy may give each layer's
// share itself (EvictionPolicy::LayerQuota >= 0, e.g. `shift:move=1`). The
// slots are then one pool of `slots * n_layers` and each layer's count of
// slots (loading, resident or draining keys of it) is held against its
// quota, read at every slot choice: a free slot serves any layer; with none
// free, a layer under its quota takes the policy's victim among the keys of
// the layer most over its own (PickVictim with that layer), a layer at or
// over it replaces one of its own, and a request larger than its quota
// takes from the layer most over (then from any other). The total never
// changes; only the split moves.
//
// Residency. A dense table maps each (layer, expert) to its slot or -1, and
// each slot records its key, state, pin count, and in-flight load id. The
// eviction policy (policies/eviction_policy.h) mirrors residency: OnInsert
// when a key is assigned a slot (at load start), OnErase when the slot is
// given up (eviction, cancellation, failed load), OnAccess on every demand
// access of a key that has a slot. The policy only names victims; the cache
// says which keys are evictable.
//
// Slot states. Four states; "pinned" is not a state but a pin count > 0
// (handles that may read the slot), allowed in kLoading and kResident.
//
//   kFree      no key; in the free list of its pool.
//   kLoading   key assigned, load queued or moving; may carry pins from
//              demand requests waiting for it. Never evictable. An unpinned
//              prefetch load not yet started may be cancelled.
//   kResident  bytes valid. Evictable only with no pins.
//   kDraining  bytes valid, no pins, but a stream may still read it: the
//              cache recorded the slot's event on the consumer stream at the
//              last release; never evictable until the event completes.
//
// Transitions (from, event, to, effects):
//
//   from       event                               to         effects
//   kFree      Acquire miss / Prefetch             kLoading   key mapped, policy OnInsert,
//                                                             load started (demand: pinned)
//   kLoading   load completes OK                   kResident  pins kept; prefetch marked unused
//   kLoading   load fails, no pins                 kFree      key unmapped, OnErase
//   kLoading   load fails, pinned                  kLoading   error kept for Wait(); kFree at
//                                                             the last unpin
//   kLoading   prefetch cancelled (not started,    kFree      key unmapped, OnErase,
//              no pins)                                       counted prefetch_cancelled
//   kResident  Acquire hit                         kResident  pins + 1, OnAccess
//   kResident  last pin released, consumer stream  kDraining  event recorded on the stream
//   kResident  last pin released, no stream        kResident  pins 0: evictable
//   kResident  chosen as victim (pins 0)           kLoading   old key unmapped (OnErase), new
//                                                             key mapped (OnInsert), load
//   kDraining  event completes (Reap)              kResident  evictable again
//   kDraining  Acquire hit                         kResident  pins 1 (the stream order is kept
//                                                             by the new consumer's release)
//
// Acquire(layer, experts) is plan-then-commit. Plan (a const function of the
// state and the policy): for each requested expert, hit (resident, pinned or
// draining), in flight (loading), or miss; for each miss a slot: a free slot
// of its pool, else the policy's victim among the evictable keys (never a key
// of this request, never one chosen for an earlier miss). Commit: pin hits,
// promote in-flight prefetches to demand, evict victims, start demand loads,
// update the policy and statistics. A miss that found no slot because every
// slot of its pool is pinned or loading stays deferred in its handle; Wait()
// on it reaps completions, waits for drains, and retries, so a caller whose
// pins exceed capacity (top-k > per-layer slots) proceeds by releasing the
// experts it has computed. Requesting one expert per call gives the strictly
// sequential semantics of a textbook cache simulation; requesting a layer's
// top-k together guarantees no requested expert evicts another.
// A step larger than its pool is announced whole (BeginStep) and then
// acquired in parts: its experts still to come are evicted only when nothing
// else of the pool is evictable, and the policy sees the whole routing
// first. Every Acquire outside such a step tells the policy its request
// before planning (EvictionPolicy::OnStep).
//
// Demand before prefetch. Demand loads go to the loader's demand queue, which
// starts before any queued prefetch; a demand access to a key whose prefetch
// is still queued promotes it. Prefetch(keys) skips keys with a slot and
// takes a slot only from the free list or an evictable victim (never waits),
// and at most `prefetch_max_outstanding` prefetch loads are outstanding.
// Prefetches go stale: Acquire(layer) cancels the queued prefetches of that
// layer it did not request (when `cancel_stale_prefetches`), and
// CancelPrefetches() cancels by predicate. Cancelled slots return to kFree.
//
// Logical time. Each demand access (one per requested expert, in request
// order) takes the next tick of AccessContext::tick, starting at 0, so an
// offline policy (MIN) built over the trace's access sequence in that order
// reads the future correctly. Prefetch inserts use the tick of the next
// demand access.
//
// Costs. Plan and commit are O(k) table look-ups plus the policy's
// PickVictim per miss; no locks, no syscalls under SimLoader, no heap
// allocation in steady state. Replay runs millions of accesses per second.
//
// Threading. One thread owns the cache (the engine thread, or the replay
// loop): every method, including handle Release and destruction, must be
// called from it. Loader completions are reaped on that thread inside
// Acquire, Prefetch, Wait and Reap. The class is not thread-safe.
//
// Invariants (checked in debug builds by CheckInvariants(), used by tests):
//   1. Every key maps to at most one slot and a slot's key maps back to it.
//   2. A slot with pins > 0 is kLoading or kResident.
//   3. A pinned, loading or draining slot is never a victim; only kResident
//      slots without pins are evicted.
//   4. In per-layer mode a slot only ever holds keys of its own layer (with
//      moving quotas: each layer's slot count matches its keys with a slot).
//   5. The number of slots never changes after Create(): device memory used
//      by the cache is fixed and within the budget at all times.
//   6. The policy's resident set equals the set of keys with a slot.
//   7. Statistics: demand_hits + demand_misses == accesses; prefetch_hits <=
//      demand_hits; every issued prefetch is eventually counted once as used
//      (prefetch_hits + prefetch_late) or unused, or is still outstanding.
#ifndef MOESTREAM_CACHE_EXPERT_CACHE_H_
#define MOESTREAM_CACHE_EXPERT_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/expert_loader.h"
#include "kernels/backend.h"
#include "policies/eviction_policy.h"
#include "base/expert_key.h"

namespace moestream::cache {

enum class SlotState : uint8_t { kFree, kLoading, kResident, kDraining };
std::string_view SlotStateName(SlotState s);

struct ExpertCacheOptions {
  // Model shape: layers with routed experts (layer ids 0..n_layers-1) and
  // routed experts per layer. Required.
  int n_layers = 0;
  int n_experts = 0;
  // Capacity in slots. Global mode: total slots shared by all layers.
  // Per-layer mode: slots for each layer (total = slots * n_layers). >= 1.
  int slots = 0;
  bool per_layer = false;
  // Bytes per slot: the largest expert's size. With a backend, each slot is
  // DeviceAlloc'd at this size (rounded up to 256). 0 allowed only without a
  // backend (simulation).
  uint64_t slot_bytes = 0;
  // Most prefetch loads outstanding at once; further Prefetch keys are
  // dropped (counted in prefetch_dropped). Default 64.
  int prefetch_max_outstanding = 64;
  // Acquire(layer) cancels queued prefetches of `layer` that it did not
  // request (they are stale for this token). Default true.
  bool cancel_stale_prefetches = true;
  absl::Status Validate() const;
};

// Counters for one layer or the total. Hit rate = demand_hits / accesses.
struct CacheCounters {
  uint64_t accesses = 0;         // demand accesses (one per requested expert)
  uint64_t demand_hits = 0;      // bytes were on the device at access time
  uint64_t demand_misses = 0;    // not on the device (includes prefetch_late)
  uint64_t prefetch_hits = 0;    // demand hit on a prefetched slot's first use
  uint64_t prefetch_late = 0;    // demand miss on a prefetch still in flight
  uint64_t prefetch_issued = 0;  // prefetch loads started
  uint64_t prefetch_unused = 0;  // prefetched, then evicted/cancelled unused
  uint64_t prefetch_cancelled = 0;  // subset of unused: cancelled before moving
  uint64_t prefetch_dropped = 0;    // Prefetch keys that got no slot
  uint64_t loads = 0;            // loads completed (demand + prefetch)
  uint64_t load_errors = 0;
  uint64_t evictions = 0;
  uint64_t link_bytes = 0;       // bytes copied host→device
  uint64_t tier_bytes[kNumTiers] = {0, 0};  // bytes read per Tier
  uint64_t stall_ns = 0;         // time blocked in Wait / waiting for a slot
  void Add(const CacheCounters& o);
  double hit_rate() const { return accesses ? double(demand_hits) / double(accesses) : 0.0; }
};

struct CacheStats {
  std::vector<CacheCounters> per_layer;  // n_layers entries (stall_ns by layer waited on)
  CacheCounters total;
};

class ExpertCache;

// A pin on one expert's slot. Move-only. While held the slot is never
// evicted. Release(stream) ends the pin in that stream's order (the slot
// drains until work already issued on `stream` completes); Release(nullptr)
// or destruction uses the cache's default consumer (the backend's compute
// stream when there is a backend, else immediate).
class ExpertHandle {
 public:
  ExpertHandle() = default;
  ExpertHandle(ExpertHandle&& o) noexcept { *this = std::move(o); }
  ExpertHandle& operator=(ExpertHandle&& o) noexcept;
  ExpertHandle(const ExpertHandle&) = delete;
  ExpertHandle& operator=(const ExpertHandle&) = delete;
  ~ExpertHandle() { Release(nullptr); }

  bool valid() const { return cache_ != nullptr; }
  ExpertKey key() const { return key_; }
  // Bytes are on the device; data() may be read (after the stream orders
  // itself after the load, which the cache has already observed complete).
  bool ready() const;
  // No slot yet (every slot of the pool pinned or loading at Acquire):
  // Wait() places it once pins are released.
  bool deferred() const { return valid() && slot_ < 0; }
  int slot() const { return slot_; }
  void* data() const;  // slot memory; nullptr under simulation
  void Release(kernels::Stream* consumer = nullptr);

 private:
  friend class ExpertCache;
  ExpertCache* cache_ = nullptr;
  ExpertKey key_;
  int slot_ = -1;
};

class ExpertCache {
 public:
  // `loader`, `clock` and `policy` must outlive the cache. `backend` may be
  // null (simulation): then slots own no memory and release is immediate.
  // kResourceExhausted (from the backend) when the slots do not fit the
  // device budget; kInvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<ExpertCache>> Create(
      const ExpertCacheOptions& options, ExpertLoader* loader, Clock* clock,
      policies::EvictionPolicy* policy, kernels::Backend* backend = nullptr);
  ~ExpertCache();  // waits for outstanding loads and drains; frees slots

  ExpertCache(const ExpertCache&) = delete;
  ExpertCache& operator=(const ExpertCache&) = delete;

  // Demand access to `experts` of `layer` (distinct ids). `out` is cleared
  // and gets one handle per expert, in order: hits ready now, misses loading
  // (or deferred). `load_miss`, when set, is asked per missing key; false =
  // do not load it (the caller computes it elsewhere, e.g. on the host):
  // that handle is returned invalid and the access counts as a miss.
  absl::Status Acquire(int layer, std::span<const int32_t> experts,
                       std::vector<ExpertHandle>* out,
                       const std::function<bool(ExpertKey)>& load_miss = nullptr);
  // Announces a layer step that the caller will Acquire in parts (a step
  // larger than its pool, one expert or a few at a time): the policy gets
  // the whole routing at once (EvictionPolicy::OnStep), and until each of
  // these experts has been acquired, a miss takes one of them as its victim
  // only when nothing else of its pool is evictable (the step needs them
  // before anything else; Belady's MIN makes the same choice). The step ends
  // when its last expert is acquired, or at a request of other keys.
  absl::Status BeginStep(int layer, std::span<const int32_t> experts);
  // Blocks until `h` is ready (placing a deferred handle first); the time
  // blocked is stall time. Returns the load's error if it failed (the handle
  // is then invalid).
  absl::Status Wait(ExpertHandle& h);

  // Starts prefetch loads for keys without a slot, best first, within the
  // outstanding limit and without waiting for a slot.
  absl::Status Prefetch(std::span<const ExpertKey> keys);
  // The same, never evicting the experts in `keep` (speculative loads for
  // layers further ahead must not push out what the next layer will use).
  absl::Status Prefetch(std::span<const ExpertKey> keys, std::span<const ExpertKey> keep);
  // Cancels queued (not started) prefetches whose key matches; returns how
  // many were cancelled.
  int CancelPrefetches(const std::function<bool(ExpertKey)>& stale);

  // Reaps finished loads and drained slots without blocking.
  absl::Status Reap();
  // Blocks until no load is outstanding and nothing drains.
  absl::Status Drain();

  // ---- introspection ----
  bool Contains(ExpertKey k) const;   // has a slot (loading or valid)
  bool IsReady(ExpertKey k) const;    // bytes valid on the device
  SlotState slot_state(int slot) const;
  int slot_pins(int slot) const;
  int total_slots() const { return int(slots_.size()); }
  int slot_of(ExpertKey k) const;     // -1 when none
  CacheStats stats() const;  // per layer and their sum
  void ResetStats();
  const ExpertCacheOptions& options() const { return opt_; }
  uint64_t tick() const { return tick_; }
  uint64_t device_bytes() const { return device_bytes_; }  // slot memory held
  // Aborts with a message naming the broken invariant (see the essay).
  void CheckInvariants() const;

 private:
  friend class ExpertHandle;
  struct Slot {
    ExpertKey key;
    SlotState state = SlotState::kFree;
    int pins = 0;
    LoadId load = 0;            // in-flight load while kLoading
    bool load_is_prefetch = false;
    bool prefetched_unused = false;  // loaded by prefetch, no demand access yet
    absl::Status error;
    void* mem = nullptr;
    std::unique_ptr<kernels::Event> fence;  // recorded at release (live only)
  };
  enum class PlanKind : uint8_t { kHit, kInFlight, kMiss, kSkip, kDeferred };
  struct PlanEntry {
    ExpertKey key;
    PlanKind kind = PlanKind::kMiss;
    int slot = -1;       // hit/in-flight: its slot; miss: slot to load into
    bool evict = false;  // miss: `slot` currently holds a victim
  };

  ExpertCache(const ExpertCacheOptions& o, ExpertLoader* loader, Clock* clock,
              policies::EvictionPolicy* policy, kernels::Backend* backend);
  absl::Status AllocateSlots();
  int KeyIndex(ExpertKey k) const { return int(k.layer) * opt_.n_experts + int(k.expert); }
  int PoolOf(ExpertKey k) const { return opt_.per_layer && !moving_quotas_ ? int(k.layer) : 0; }
  // Plan: pure with respect to cache state.
  void PlanAcquire(int layer, std::span<const int32_t> experts,
                   const std::function<bool(ExpertKey)>& load_miss,
                   std::vector<PlanEntry>* plan) const;
  // Marks slots taken or protected by the plan being built: a slot is
  // marked when slot_mark_[slot] == mark_epoch_. NewPlanMark clears all.
  void NewPlanMark() const;
  int PickSlot(ExpertKey k, bool* evict) const;
  int PolicyVictim(ExpertKey k, int victim_layer) const;
  int PolicyVictimOnce(ExpertKey k, int victim_layer) const;
  void EndStep();
  // Moving quotas (see the essay): slots `layer` holds plus the plan's gain,
  // less its quota; the plan's gains; a slot from outside k's layer.
  int PlannedOverQuota(int layer) const;
  void PlanGain(int layer, int delta) const;
  int PickSlotMoving(ExpertKey k, bool* evict) const;
  int PickFreeSlot(ExpertKey k) const;
  int PickSlotElsewhere(ExpertKey k, bool over_only, bool* evict) const;
  bool Evictable(int slot) const {
    return slots_[slot].state == SlotState::kResident && slots_[slot].pins == 0;
  }
  // The victim filter handed to the policy: resident and not marked.
  bool EvictableKey(ExpertKey v) const {
    if (v.layer >= opt_.n_layers || v.expert >= opt_.n_experts) return false;
    int s = key_slot_[KeyIndex(v)];
    return s >= 0 && Evictable(s) && slot_mark_[s] != mark_epoch_ &&
           !(protect_step_ && step_need_[KeyIndex(v)]);
  }
  // Commit helpers.
  void EvictSlot(int slot);
  absl::Status StartLoad(int slot, ExpertKey k, bool prefetch);
  void FreeSlot(int slot);
  void OnCompletion(const LoadCompletion& c);
  void CountPrefetchUnused(int slot, bool cancelled);
  absl::Status ReapInternal(bool block);
  bool ReapDrains();
  absl::Status WaitForAnySlot(int pool);
  void Unpin(int slot, kernels::Stream* consumer);
  void ReleaseKey(int slot);
  bool TryPlace(ExpertHandle& h);
  bool StealQueuedPrefetch(int pool, int* slot);
  // CancelPrefetches with any predicate (Acquire's stale test is called
  // directly, not through a std::function).
  template <typename Stale>
  int CancelPrefetchesIf(const Stale& stale);
  void AddOutstandingPrefetch(int slot);
  void RemoveOutstandingPrefetch(int slot);
  void TakeFreeSlot(int slot);
  std::pair<int, int> PoolRange(int pool) const;

  ExpertCacheOptions opt_;
  ExpertLoader* loader_;
  Clock* clock_;
  policies::EvictionPolicy* policy_;
  kernels::Backend* backend_;
  std::vector<Slot> slots_;
  std::vector<int> key_slot_;             // KeyIndex -> slot or -1
  std::vector<std::vector<int>> free_;    // per pool: free slot ids (stack)
  std::vector<int> slot_pool_;            // slot -> pool
  // Per-layer pools whose sizes the policy moves (policy LayerQuota >= 0):
  // one physical pool, each layer's slot count against its quota.
  bool moving_quotas_ = false;
  std::vector<int> held_;                 // per layer: slots holding its keys (moving only)
  mutable std::vector<int> plan_gain_;    // per layer: slots the plan moves to it
  mutable std::vector<int> plan_layers_;  // layers with a plan gain
  mutable std::vector<uint8_t> tried_;    // PickSlotElsewhere's scratch
  mutable std::vector<uint32_t> slot_mark_;  // plan marks (see NewPlanMark)
  mutable uint32_t mark_epoch_ = 0;
  // The step announced by BeginStep: its keys not yet acquired (by
  // KeyIndex), how many, and whether the victim filter now skips them.
  std::vector<uint8_t> step_need_;
  std::vector<int> step_keys_;
  int step_left_ = 0;
  mutable bool protect_step_ = false;
  // Load ids are (sequence << kLoadSlotBits) | slot.
  static constexpr int kLoadSlotBits = 24;
  // Slots whose load is an outstanding, unpromoted prefetch (unordered).
  std::vector<int> prefetch_slots_;
  absl::Status sticky_error_;
  uint64_t next_load_id_ = 1;
  uint64_t tick_ = 0;
  int prefetch_outstanding_ = 0;
  int draining_ = 0;
  uint64_t device_bytes_ = 0;
  std::vector<CacheCounters> counters_;  // per layer
  std::vector<int> victims_;             // reused by CancelPrefetches
  std::vector<PlanEntry> plan_;             // reused
  std::vector<LoadCompletion> done_;        // reused
};

}  // namespace moestream::cache

#endif  // MOESTREAM_CACHE_EXPERT_CACHE_H_
