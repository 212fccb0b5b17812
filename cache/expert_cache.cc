// ExpertCache: plan-then-commit over the slot state machine described in
// expert_cache.h.
#include "cache/expert_cache.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"

namespace moestream::cache {

std::string_view SlotStateName(SlotState s) {
  switch (s) {
    case SlotState::kFree: return "free";
    case SlotState::kLoading: return "loading";
    case SlotState::kResident: return "resident";
    case SlotState::kDraining: return "draining";
  }
  return "?";
}

absl::Status ExpertCacheOptions::Validate() const {
  if (n_layers <= 0 || n_layers > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert cache: n_layers must be in [1, 65535], got ", n_layers));
  }
  if (n_experts <= 0 || n_experts > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert cache: n_experts must be in [1, 65535], got ", n_experts));
  }
  if (slots <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert cache: slots must be >= 1, got ", slots));
  }
  if (prefetch_max_outstanding < 0) {
    return absl::InvalidArgumentError("expert cache: prefetch_max_outstanding must be >= 0");
  }
  return absl::OkStatus();
}

void CacheCounters::Add(const CacheCounters& o) {
  accesses += o.accesses;
  demand_hits += o.demand_hits;
  demand_misses += o.demand_misses;
  prefetch_hits += o.prefetch_hits;
  prefetch_late += o.prefetch_late;
  prefetch_issued += o.prefetch_issued;
  prefetch_unused += o.prefetch_unused;
  prefetch_cancelled += o.prefetch_cancelled;
  prefetch_dropped += o.prefetch_dropped;
  loads += o.loads;
  load_errors += o.load_errors;
  evictions += o.evictions;
  link_bytes += o.link_bytes;
  for (int t = 0; t < kNumTiers; ++t) tier_bytes[t] += o.tier_bytes[t];
  stall_ns += o.stall_ns;
}

// ---------------------------------------------------------------- handle

ExpertHandle& ExpertHandle::operator=(ExpertHandle&& o) noexcept {
  if (this != &o) {
    Release(nullptr);
    cache_ = std::exchange(o.cache_, nullptr);
    key_ = o.key_;
    slot_ = std::exchange(o.slot_, -1);
  }
  return *this;
}

bool ExpertHandle::ready() const {
  // The handle holds a pin, so a resident slot is this handle's to read.
  return cache_ != nullptr && slot_ >= 0 && cache_->slots_[slot_].state == SlotState::kResident;
}

void* ExpertHandle::data() const {
  return cache_ != nullptr && slot_ >= 0 ? cache_->slots_[slot_].mem : nullptr;
}

void ExpertHandle::Release(kernels::Stream* consumer) {
  if (cache_ == nullptr) return;
  if (slot_ >= 0) cache_->Unpin(slot_, consumer);
  cache_ = nullptr;
  slot_ = -1;
}

// ---------------------------------------------------------------- creation

ExpertCache::ExpertCache(const ExpertCacheOptions& o, ExpertLoader* loader, Clock* clock,
                         policies::EvictionPolicy* policy, kernels::Backend* backend)
    : opt_(o), loader_(loader), clock_(clock), policy_(policy), backend_(backend) {}

absl::StatusOr<std::unique_ptr<ExpertCache>> ExpertCache::Create(
    const ExpertCacheOptions& options, ExpertLoader* loader, Clock* clock,
    policies::EvictionPolicy* policy, kernels::Backend* backend) {
  MOESTREAM_CHECK(loader != nullptr && clock != nullptr && policy != nullptr);
  MOESTREAM_RETURN_IF_ERROR(options.Validate());
  if (backend != nullptr && options.slot_bytes == 0) {
    return absl::InvalidArgumentError("expert cache: slot_bytes must be > 0 with a backend");
  }
  std::unique_ptr<ExpertCache> c(new ExpertCache(options, loader, clock, policy, backend));
  MOESTREAM_RETURN_IF_ERROR(c->AllocateSlots());
  return c;
}

absl::Status ExpertCache::AllocateSlots() {
  // Quotas that move: the slots are one pool, the layers' shares are counts.
  moving_quotas_ = opt_.per_layer && policy_->LayerQuota(0) >= 0;
  const int pools = opt_.per_layer && !moving_quotas_ ? opt_.n_layers : 1;
  const int64_t total = int64_t(opt_.slots) * (opt_.per_layer ? opt_.n_layers : 1);
  if (total > (int64_t(1) << kLoadSlotBits)) {
    return absl::InvalidArgumentError(absl::StrCat("expert cache: ", total, " slots is too many"));
  }
  slots_.resize(size_t(total));
  slot_pool_.resize(size_t(total));
  free_.assign(size_t(pools), {});
  key_slot_.assign(size_t(opt_.n_layers) * size_t(opt_.n_experts), -1);
  step_need_.assign(size_t(opt_.n_layers) * size_t(opt_.n_experts), 0);
  slot_mark_.assign(size_t(total), 0);
  counters_.assign(size_t(opt_.n_layers), {});
  held_.assign(size_t(opt_.n_layers), 0);
  plan_gain_.assign(size_t(opt_.n_layers), 0);
  const uint64_t bytes = (opt_.slot_bytes + 255) / 256 * 256;
  for (int s = 0; s < int(total); ++s) {
    slot_pool_[s] = pools == 1 ? 0 : s / opt_.slots;
    if (backend_ != nullptr) {
      auto mem = backend_->DeviceAlloc(bytes, absl::StrCat("expert cache slot ", s));
      if (!mem.ok()) {
        return absl::Status(mem.status().code(),
                            absl::StrCat("expert cache: allocating slot ", s, " of ", total,
                                         " (", bytes, " bytes each): ", mem.status().message()));
      }
      slots_[s].mem = *mem;
      device_bytes_ += bytes;
      MOESTREAM_ASSIGN_OR_RETURN(slots_[s].fence, backend_->CreateEvent());
    }
  }
  // Free lists are stacks popped from the back: push in reverse so slots are
  // handed out in ascending order.
  for (int s = int(total) - 1; s >= 0; --s) free_[slot_pool_[s]].push_back(s);
  prefetch_slots_.reserve(size_t(opt_.prefetch_max_outstanding));
  return absl::OkStatus();
}

ExpertCache::~ExpertCache() {
  (void)Drain();
  if (backend_ != nullptr) {
    for (Slot& s : slots_) {
      s.fence.reset();
      if (s.mem != nullptr) backend_->DeviceFree(s.mem);
    }
  }
}

// ---------------------------------------------------------------- helpers

std::pair<int, int> ExpertCache::PoolRange(int pool) const {
  if (!opt_.per_layer || moving_quotas_) return {0, int(slots_.size())};
  return {pool * opt_.slots, (pool + 1) * opt_.slots};
}

int ExpertCache::slot_of(ExpertKey k) const {
  if (k.layer >= opt_.n_layers || k.expert >= opt_.n_experts) return -1;
  return key_slot_[KeyIndex(k)];
}
bool ExpertCache::Contains(ExpertKey k) const { return slot_of(k) >= 0; }
bool ExpertCache::IsReady(ExpertKey k) const {
  int s = slot_of(k);
  return s >= 0 && slots_[s].state != SlotState::kLoading;
}
SlotState ExpertCache::slot_state(int slot) const { return slots_.at(size_t(slot)).state; }
int ExpertCache::slot_pins(int slot) const { return slots_.at(size_t(slot)).pins; }

CacheStats ExpertCache::stats() const {
  CacheStats st;
  st.per_layer = counters_;
  for (const CacheCounters& c : counters_) st.total.Add(c);
  return st;
}

void ExpertCache::ResetStats() { counters_.assign(counters_.size(), {}); }

// Starts a new plan: no slot is marked (taken or protected) afterwards.
void ExpertCache::NewPlanMark() const {
  if (++mark_epoch_ == 0) {
    std::fill(slot_mark_.begin(), slot_mark_.end(), 0);
    mark_epoch_ = 1;
  }
  if (moving_quotas_) {
    for (int l : plan_layers_) plan_gain_[l] = 0;
    plan_layers_.clear();
  }
}

void ExpertCache::PlanGain(int layer, int delta) const {
  if (plan_gain_[layer] == 0) plan_layers_.push_back(layer);
  plan_gain_[layer] += delta;
}

int ExpertCache::PlannedOverQuota(int layer) const {
  const int quota = policy_->LayerQuota(layer);
  return held_[layer] + plan_gain_[layer] - (quota >= 0 ? quota : opt_.slots);
}

// Moving quotas: a free slot of the one pool for k's layer, or -1.
// PickSlotElsewhere: a victim of another layer (the one most over its quota
// first; `over_only`: only layers over their quota), or -1. The plan's
// per-layer gains record the move.
// A free slot first, whatever the quotas (idle room serves anyone until its
// layer claims it). Then, below its quota, the layer takes a slot of the
// layer most over its own; at or over it, it replaces one of its own; with
// none of its own evictable (its request fills its quota), it takes another
// layer's, whatever their quotas.
int ExpertCache::PickSlotMoving(ExpertKey k, bool* evict) const {
  const int layer = int(k.layer);
  int s = PickFreeSlot(k);
  if (s >= 0) {
    *evict = false;
    return s;
  }
  if (PlannedOverQuota(layer) < 0) s = PickSlotElsewhere(k, /*over_only=*/true, evict);
  if (s < 0 && (s = PolicyVictim(k, layer)) >= 0) *evict = true;
  if (s < 0) s = PickSlotElsewhere(k, /*over_only=*/false, evict);
  return s;
}

int ExpertCache::PickFreeSlot(ExpertKey k) const {
  for (size_t i = free_[0].size(); i-- > 0;) {
    const int s = free_[0][i];
    if (slot_mark_[s] != mark_epoch_) {
      PlanGain(k.layer, 1);
      return s;
    }
  }
  return -1;
}

int ExpertCache::PickSlotElsewhere(ExpertKey k, bool over_only, bool* evict) const {
  // Layers tried in order of how far over their quota they are.
  tried_.assign(size_t(opt_.n_layers), 0);
  for (;;) {
    int from = -1, from_over = 0;
    for (int l = 0; l < opt_.n_layers; ++l) {
      if (l == int(k.layer) || tried_[l] || held_[l] + plan_gain_[l] <= 0) continue;
      const int over = PlannedOverQuota(l);
      if ((over_only && over <= 0) || (from >= 0 && over <= from_over)) continue;
      from = l;
      from_over = over;
    }
    if (from < 0) return -1;
    tried_[from] = 1;
    const int s = PolicyVictim(k, from);
    if (s >= 0) {
      *evict = true;
      PlanGain(k.layer, 1);
      PlanGain(from, -1);
      return s;
    }
  }
}

// The policy's victim among the evictable keys of `victim_layer` (or of
// any layer when -1) for a miss of `k`; its slot, or -1.
// Inlined: it is most of PickSlot, which runs per miss and per prefetch.
[[gnu::always_inline]] inline int ExpertCache::PolicyVictim(ExpertKey k, int victim_layer) const {
  if (step_left_ == 0) return PolicyVictimOnce(k, victim_layer);
  // A step acquired in parts: its experts still to come are victims only
  // when nothing else is evictable.
  protect_step_ = true;
  int s = PolicyVictimOnce(k, victim_layer);
  protect_step_ = false;
  return s >= 0 ? s : PolicyVictimOnce(k, victim_layer);
}

[[gnu::always_inline]] inline int ExpertCache::PolicyVictimOnce(ExpertKey k,
                                                                int victim_layer) const {
  policies::VictimQuery q;
  q.layer = victim_layer;
  q.tick = tick_;
  q.current_layer = int(k.layer);
  // One pointer of capture keeps the std::function within its small buffer
  // (no heap allocation per miss); the check is two array reads.
  const ExpertCache* c = this;
  q.evictable = [c](ExpertKey v) { return c->EvictableKey(v); };
  std::optional<ExpertKey> v = policy_->PickVictim(q);
  if (!v) return -1;
  MOESTREAM_CHECK(EvictableKey(*v)) << "policy " << policy_->name() << " named layer "
                                    << v->layer << " expert " << v->expert
                                    << " which is not evictable";
  MOESTREAM_CHECK(victim_layer < 0 || int(v->layer) == victim_layer)
      << "policy " << policy_->name() << " named a victim of layer " << v->layer
      << " when asked for one of layer " << victim_layer;
  return key_slot_[KeyIndex(*v)];
}

// Chooses the slot a miss of `k` loads into: a free slot of its pool not
// marked by the current plan (taken by an earlier miss), else the policy's
// victim among resident keys whose slot is not marked (neither protected as
// a key of the request nor taken). -1 when none.
int ExpertCache::PickSlot(ExpertKey k, bool* evict) const {
  if (moving_quotas_) return PickSlotMoving(k, evict);
  const int pool = PoolOf(k);
  const std::vector<int>& fl = free_[pool];
  for (size_t i = fl.size(); i-- > 0;) {
    int s = fl[i];
    if (slot_mark_[s] != mark_epoch_) {
      *evict = false;
      return s;
    }
  }
  const int s = PolicyVictim(k, opt_.per_layer ? int(k.layer) : -1);
  if (s < 0) return -1;
  MOESTREAM_CHECK(slot_pool_[s] == pool) << "policy " << policy_->name()
                                         << " named a victim from another layer's pool";
  *evict = true;
  return s;
}

void ExpertCache::PlanAcquire(int layer, std::span<const int32_t> experts,
                              const std::function<bool(ExpertKey)>& load_miss,
                              std::vector<PlanEntry>* plan) const {
  plan->clear();
  NewPlanMark();
  // The request's keys are protected from eviction by its own misses.
  for (int32_t x : experts) {
    int s = key_slot_[KeyIndex({uint16_t(layer), uint16_t(x)})];
    if (s >= 0) slot_mark_[s] = mark_epoch_;
  }
  for (int32_t x : experts) {
    PlanEntry e;
    e.key = {uint16_t(layer), uint16_t(x)};
    int s = key_slot_[KeyIndex(e.key)];
    if (s >= 0) {
      e.slot = s;
      e.kind = slots_[s].state == SlotState::kLoading ? PlanKind::kInFlight : PlanKind::kHit;
    } else if (load_miss && !load_miss(e.key)) {
      e.kind = PlanKind::kSkip;
    } else {
      e.slot = PickSlot(e.key, &e.evict);
      e.kind = e.slot >= 0 ? PlanKind::kMiss : PlanKind::kDeferred;
      if (e.slot >= 0) slot_mark_[e.slot] = mark_epoch_;  // taken
    }
    plan->push_back(e);
  }
}

// Unmaps the slot's key (policy OnErase) without touching the free list.
void ExpertCache::ReleaseKey(int slot) {
  Slot& s = slots_[slot];
  if (s.state == SlotState::kFree) return;
  key_slot_[KeyIndex(s.key)] = -1;
  if (moving_quotas_) --held_[s.key.layer];
  policy_->OnErase(s.key);
  s.state = SlotState::kFree;
  s.pins = 0;
  s.load = 0;
  s.load_is_prefetch = false;
  s.prefetched_unused = false;
  s.error = absl::OkStatus();
}

void ExpertCache::FreeSlot(int slot) {
  ReleaseKey(slot);
  free_[slot_pool_[slot]].push_back(slot);
}

void ExpertCache::TakeFreeSlot(int slot) {
  std::vector<int>& fl = free_[slot_pool_[slot]];
  for (size_t i = fl.size(); i-- > 0;) {
    if (fl[i] == slot) {
      fl[i] = fl.back();
      fl.pop_back();
      return;
    }
  }
  MOESTREAM_CHECK(false) << "slot " << slot << " not in its free list";
}

void ExpertCache::CountPrefetchUnused(int slot, bool cancelled) {
  Slot& s = slots_[slot];
  if (!s.prefetched_unused) return;
  CacheCounters& c = counters_[s.key.layer];
  ++c.prefetch_unused;
  if (cancelled) ++c.prefetch_cancelled;
  s.prefetched_unused = false;
}

void ExpertCache::EvictSlot(int slot) {
  Slot& s = slots_[slot];
  MOESTREAM_CHECK(s.state == SlotState::kResident)
      << "evicting slot " << slot << " in state " << SlotStateName(s.state);
  ++counters_[s.key.layer].evictions;
  CountPrefetchUnused(slot, false);
  ReleaseKey(slot);
}

absl::Status ExpertCache::StartLoad(int slot, ExpertKey k, bool prefetch) {
  Slot& s = slots_[slot];
  MOESTREAM_CHECK(s.state == SlotState::kFree);
  s.key = k;
  s.state = SlotState::kLoading;
  // The slot rides in the id's low bits (slots < 2^24, checked at Create), so
  // a completion finds its slot without a lookup table.
  s.load = (next_load_id_++ << kLoadSlotBits) | uint64_t(slot);
  s.load_is_prefetch = prefetch;
  s.prefetched_unused = prefetch;
  s.pins = 0;
  key_slot_[KeyIndex(k)] = slot;
  if (moving_quotas_) ++held_[k.layer];
  policies::AccessContext ctx;
  ctx.tick = tick_;
  ctx.prefetch = prefetch;
  ctx.current_layer = int(k.layer);
  policy_->OnInsert(k, ctx);
  LoadRequest r;
  r.key = k;
  r.slot = slot;
  r.dst = s.mem;
  r.id = s.load;
  r.is_prefetch = prefetch;
  absl::Status st = loader_->StartLoad(r);
  if (!st.ok()) {
    s.prefetched_unused = false;
    FreeSlot(slot);
    return st;
  }
  if (prefetch) {
    AddOutstandingPrefetch(slot);
    ++counters_[k.layer].prefetch_issued;
  }
  return absl::OkStatus();
}

void ExpertCache::OnCompletion(const LoadCompletion& c) {
  const uint64_t slot_bits = c.id & ((uint64_t(1) << kLoadSlotBits) - 1);
  MOESTREAM_CHECK(c.id != 0 && slot_bits < slots_.size() &&
                  slots_[slot_bits].state == SlotState::kLoading && slots_[slot_bits].load == c.id)
      << "completion for unknown load " << c.id;
  const int slot = int(slot_bits);
  Slot& s = slots_[slot];
  if (s.load_is_prefetch) RemoveOutstandingPrefetch(slot);
  s.load = 0;
  CacheCounters& k = counters_[s.key.layer];
  ++k.loads;
  k.link_bytes += c.link_bytes;
  k.tier_bytes[int(c.tier)] += c.tier_bytes;
  if (!c.status.ok()) {
    ++k.load_errors;
    if (s.pins > 0) {
      // Waiters see the error in Wait(); the slot frees with the last pin.
      s.error = c.status;
    } else {
      CountPrefetchUnused(slot, false);
      FreeSlot(slot);
    }
    return;
  }
  s.state = SlotState::kResident;
}

bool ExpertCache::ReapDrains() {
  if (draining_ == 0) return false;
  bool any = false;
  for (Slot& s : slots_) {
    if (s.state == SlotState::kDraining && s.fence->Query()) {
      s.state = SlotState::kResident;
      --draining_;
      any = true;
    }
  }
  return any;
}

absl::Status ExpertCache::ReapInternal(bool block) {
  // Nothing outstanding: Poll would report nothing (the loader contract), so
  // the common all-hit step skips the loader entirely.
  if (loader_->outstanding() > 0) {
    done_.clear();
    MOESTREAM_RETURN_IF_ERROR(loader_->Poll(&done_, block));
    for (const LoadCompletion& c : done_) OnCompletion(c);
  }
  ReapDrains();
  return absl::OkStatus();
}

absl::Status ExpertCache::Reap() { return ReapInternal(false); }

void ExpertCache::Unpin(int slot, kernels::Stream* consumer) {
  Slot& s = slots_[slot];
  MOESTREAM_CHECK(s.pins > 0) << "unpinning slot " << slot << " with no pins";
  if (--s.pins > 0) return;
  if (!s.error.ok()) {
    FreeSlot(slot);
    return;
  }
  if (s.state == SlotState::kLoading) return;  // becomes resident on completion
  if (consumer == nullptr && backend_ != nullptr) consumer = &backend_->compute_stream();
  if (consumer != nullptr && s.fence != nullptr) {
    if (consumer->Record(*s.fence).ok() && !s.fence->Query()) {
      s.state = SlotState::kDraining;
      ++draining_;
      return;
    }
    // Recording failed: fall back to waiting for the consumer outright.
    if (!s.fence->Query()) (void)consumer->Synchronize();
  }
  s.state = SlotState::kResident;
}

void ExpertCache::AddOutstandingPrefetch(int slot) {
  prefetch_slots_.push_back(slot);
  ++prefetch_outstanding_;
}

void ExpertCache::RemoveOutstandingPrefetch(int slot) {
  auto it = std::find(prefetch_slots_.begin(), prefetch_slots_.end(), slot);
  MOESTREAM_CHECK(it != prefetch_slots_.end()) << "slot " << slot << " has no prefetch";
  *it = prefetch_slots_.back();
  prefetch_slots_.pop_back();
  --prefetch_outstanding_;
}

bool ExpertCache::StealQueuedPrefetch(int pool, int* slot) {
  auto [lo, hi] = PoolRange(pool);
  for (int i = lo; i < hi; ++i) {
    Slot& s = slots_[i];
    if (s.state != SlotState::kLoading || s.pins > 0 || !s.load_is_prefetch) continue;
    if (!loader_->Cancel(s.load)) continue;
    RemoveOutstandingPrefetch(i);
    CountPrefetchUnused(i, true);
    ReleaseKey(i);
    *slot = i;
    return true;
  }
  return false;
}

// Places a deferred handle: a free slot or victim, else a queued prefetch's
// slot. False when every slot of its pool is pinned, loading or draining.
bool ExpertCache::TryPlace(ExpertHandle& h) {
  if (int held = key_slot_[KeyIndex(h.key_)]; held >= 0) {
    // Loaded meanwhile by another request or a prefetch: share its slot.
    Slot& s = slots_[held];
    if (s.state == SlotState::kDraining) {
      --draining_;
      s.state = SlotState::kResident;
    }
    if (s.state == SlotState::kLoading && s.load_is_prefetch && s.load != 0) {
      loader_->Promote(s.load);
      s.load_is_prefetch = false;
      RemoveOutstandingPrefetch(held);
    }
    s.prefetched_unused = false;
    ++s.pins;
    h.slot_ = held;
    return true;
  }
  bool evict = false;
  NewPlanMark();
  int slot = PickSlot(h.key_, &evict);
  if (slot >= 0) {
    if (evict) {
      EvictSlot(slot);
    } else {
      TakeFreeSlot(slot);
    }
  } else if (!StealQueuedPrefetch(PoolOf(h.key_), &slot)) {
    return false;
  }
  if (!StartLoad(slot, h.key_, false).ok()) return false;
  slots_[slot].pins = 1;
  h.slot_ = slot;
  return true;
}

// ---------------------------------------------------------------- public

absl::Status ExpertCache::BeginStep(int layer, std::span<const int32_t> experts) {
  if (layer < 0 || layer >= opt_.n_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert cache: layer ", layer, " outside [0, ", opt_.n_layers, ")"));
  }
  for (int32_t x : experts) {
    if (x < 0 || x >= opt_.n_experts) {
      return absl::InvalidArgumentError(absl::StrCat("expert cache: layer ", layer, " expert ", x,
                                                     " outside [0, ", opt_.n_experts, ")"));
    }
  }
  EndStep();
  for (int32_t x : experts) {
    const int i = KeyIndex({uint16_t(layer), uint16_t(x)});
    if (step_need_[i]) continue;  // repeated id: needed once
    step_need_[i] = 1;
    step_keys_.push_back(i);
    ++step_left_;
  }
  policy_->OnStep(layer, experts, tick_);
  return absl::OkStatus();
}

void ExpertCache::EndStep() {
  for (int i : step_keys_) step_need_[i] = 0;
  step_keys_.clear();
  step_left_ = 0;
}

absl::Status ExpertCache::Acquire(int layer, std::span<const int32_t> experts,
                                  std::vector<ExpertHandle>* out,
                                  const std::function<bool(ExpertKey)>& load_miss) {
  out->clear();
  if (layer < 0 || layer >= opt_.n_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert cache: layer ", layer, " outside [0, ", opt_.n_layers, ")"));
  }
  for (size_t i = 0; i < experts.size(); ++i) {
    if (experts[i] < 0 || experts[i] >= opt_.n_experts) {
      return absl::InvalidArgumentError(absl::StrCat("expert cache: layer ", layer, " expert ",
                                                     experts[i], " outside [0, ",
                                                     opt_.n_experts, ")"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (experts[j] == experts[i]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "expert cache: layer ", layer, " expert ", experts[i], " requested twice"));
      }
    }
  }
  MOESTREAM_RETURN_IF_ERROR(ReapInternal(false));
  // Part of a step announced by BeginStep (every key still to come), or a
  // request of its own, which ends any announced step and is announced now.
  bool in_step = step_left_ > 0;
  for (size_t i = 0; in_step && i < experts.size(); ++i) {
    in_step = step_need_[KeyIndex({uint16_t(layer), uint16_t(experts[i])})] != 0;
  }
  if (in_step) {
    for (int32_t x : experts) step_need_[KeyIndex({uint16_t(layer), uint16_t(x)})] = 0;
    step_left_ -= int(experts.size());  // Acquire refuses repeated ids
  } else {
    EndStep();
    policy_->OnStep(layer, experts, tick_);
  }
  if (opt_.cancel_stale_prefetches && prefetch_outstanding_ > 0) {
    CancelPrefetchesIf([layer, experts](ExpertKey k) {
      return int(k.layer) == layer &&
             std::find(experts.begin(), experts.end(), int32_t(k.expert)) == experts.end();
    });
  }

  PlanAcquire(layer, experts, load_miss, &plan_);

  // Commit.
  CacheCounters& c = counters_[layer];
  out->reserve(plan_.size());
  absl::Status first_error;
  bool any_deferred = false;
  for (const PlanEntry& e : plan_) {
    ++c.accesses;
    ExpertHandle h;
    h.cache_ = this;
    h.key_ = e.key;
    switch (e.kind) {
      case PlanKind::kHit: {
        Slot& s = slots_[e.slot];
        ++c.demand_hits;
        if (s.prefetched_unused) {
          ++c.prefetch_hits;
          s.prefetched_unused = false;
        }
        policies::AccessContext ctx{tick_, false, layer};
        policy_->OnAccess(e.key, ctx);
        if (s.state == SlotState::kDraining) {
          --draining_;
          s.state = SlotState::kResident;
        }
        ++s.pins;
        h.slot_ = e.slot;
        break;
      }
      case PlanKind::kInFlight: {
        Slot& s = slots_[e.slot];
        ++c.demand_misses;
        if (s.prefetched_unused) {
          ++c.prefetch_late;
          s.prefetched_unused = false;
        }
        if (s.load_is_prefetch) {
          loader_->Promote(s.load);
          s.load_is_prefetch = false;
          RemoveOutstandingPrefetch(e.slot);
        }
        policies::AccessContext ctx{tick_, false, layer};
        policy_->OnAccess(e.key, ctx);
        ++s.pins;
        h.slot_ = e.slot;
        break;
      }
      case PlanKind::kMiss: {
        ++c.demand_misses;
        if (e.evict) {
          EvictSlot(e.slot);
        } else {
          TakeFreeSlot(e.slot);
        }
        absl::Status st = StartLoad(e.slot, e.key, false);
        if (!st.ok()) {
          if (first_error.ok()) first_error = st;
          h.cache_ = nullptr;
          break;
        }
        slots_[e.slot].pins = 1;
        h.slot_ = e.slot;
        break;
      }
      case PlanKind::kSkip:
        ++c.demand_misses;
        h.cache_ = nullptr;
        break;
      case PlanKind::kDeferred:
        ++c.demand_misses;
        any_deferred = true;
        break;
    }
    ++tick_;
    out->push_back(std::move(h));
  }
  // Deferred misses last, once every other expert of the request is pinned
  // or loading (so none of them can be a victim): a queued prefetch may give
  // up its slot; else the handle stays deferred until Wait().
  if (any_deferred) {
    for (ExpertHandle& h : *out) {
      if (h.deferred()) TryPlace(h);
    }
  }
  return first_error;
}

absl::Status ExpertCache::Wait(ExpertHandle& h) {
  if (h.cache_ != this) {
    return absl::InvalidArgumentError("expert cache: Wait on a handle of no or another cache");
  }
  const uint64_t t0 = clock_->NowNs();
  absl::Status result;
  for (;;) {
    if (h.slot_ < 0) {
      MOESTREAM_RETURN_IF_ERROR(ReapInternal(false));
      if (TryPlace(h)) continue;
      if (loader_->outstanding() > 0) {
        MOESTREAM_RETURN_IF_ERROR(ReapInternal(true));
        continue;
      }
      if (draining_ > 0) {
        auto [lo, hi] = PoolRange(PoolOf(h.key_));
        bool waited = false;
        for (int i = lo; i < hi && !waited; ++i) {
          if (slots_[i].state == SlotState::kDraining) {
            MOESTREAM_RETURN_IF_ERROR(slots_[i].fence->Synchronize());
            waited = true;
          }
        }
        ReapDrains();
        if (waited) continue;
      }
      result = absl::FailedPreconditionError(absl::StrCat(
          "expert cache: no slot for layer ", h.key_.layer, " expert ", h.key_.expert,
          ": all ", PoolRange(PoolOf(h.key_)).second - PoolRange(PoolOf(h.key_)).first,
          " slots of its pool are pinned (release handles before waiting)"));
      h.cache_ = nullptr;
      break;
    }
    Slot& s = slots_[h.slot_];
    if (!s.error.ok()) {
      result = s.error;
      h.Release(nullptr);
      break;
    }
    if (s.state == SlotState::kResident) break;
    MOESTREAM_RETURN_IF_ERROR(ReapInternal(true));
  }
  const uint64_t dt = clock_->NowNs() - t0;
  counters_[h.key_.layer].stall_ns += dt;
  return result;
}

absl::Status ExpertCache::Prefetch(std::span<const ExpertKey> keys) {
  return Prefetch(keys, {});
}

absl::Status ExpertCache::Prefetch(std::span<const ExpertKey> keys,
                                   std::span<const ExpertKey> keep) {
  MOESTREAM_RETURN_IF_ERROR(ReapInternal(false));
  for (ExpertKey k : keys) {
    if (k.layer >= opt_.n_layers || k.expert >= opt_.n_experts) {
      return absl::InvalidArgumentError(absl::StrCat("expert cache: prefetch of layer ",
                                                     k.layer, " expert ", k.expert,
                                                     " outside the model"));
    }
    if (key_slot_[KeyIndex(k)] >= 0) continue;
    if (prefetch_outstanding_ >= opt_.prefetch_max_outstanding) {
      ++counters_[k.layer].prefetch_dropped;
      continue;
    }
    bool evict = false;
    NewPlanMark();
    for (ExpertKey kept : keep) {
      if (kept.layer >= opt_.n_layers || kept.expert >= opt_.n_experts) continue;
      if (const int ks = key_slot_[KeyIndex(kept)]; ks >= 0) slot_mark_[ks] = mark_epoch_;
    }
    int slot = PickSlot(k, &evict);
    if (slot < 0) {
      ++counters_[k.layer].prefetch_dropped;
      continue;
    }
    if (evict) {
      EvictSlot(slot);
    } else {
      TakeFreeSlot(slot);
    }
    MOESTREAM_RETURN_IF_ERROR(StartLoad(slot, k, true));
  }
  return absl::OkStatus();
}

int ExpertCache::CancelPrefetches(const std::function<bool(ExpertKey)>& stale) {
  return CancelPrefetchesIf(stale);
}

template <typename Stale>
int ExpertCache::CancelPrefetchesIf(const Stale& stale) {
  victims_.clear();
  for (int slot : prefetch_slots_) {
    const Slot& s = slots_[slot];
    if (s.pins == 0 && stale(s.key)) victims_.push_back(slot);
  }
  std::sort(victims_.begin(), victims_.end());  // deterministic order
  int n = 0;
  for (int slot : victims_) {
    Slot& s = slots_[slot];
    if (!loader_->Cancel(s.load)) continue;
    RemoveOutstandingPrefetch(slot);
    CountPrefetchUnused(slot, true);
    FreeSlot(slot);
    ++n;
  }
  return n;
}

absl::Status ExpertCache::Drain() {
  while (loader_->outstanding() > 0) MOESTREAM_RETURN_IF_ERROR(ReapInternal(true));
  for (Slot& s : slots_) {
    if (s.state == SlotState::kDraining) {
      MOESTREAM_RETURN_IF_ERROR(s.fence->Synchronize());
    }
  }
  ReapDrains();
  return absl::OkStatus();
}

void ExpertCache::CheckInvariants() const {
  std::vector<int> in_free(slots_.size(), 0);
  for (size_t p = 0; p < free_.size(); ++p) {
    for (int s : free_[p]) {
      MOESTREAM_CHECK(slot_pool_[s] == int(p)) << "slot " << s << " in another pool's free list";
      MOESTREAM_CHECK(++in_free[s] == 1) << "slot " << s << " twice in a free list";
    }
  }
  int draining = 0, prefetching = 0;
  std::vector<int> held(size_t(opt_.n_layers), 0);
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.state == SlotState::kFree) {
      MOESTREAM_CHECK(in_free[i] == 1) << "free slot " << i << " not in its free list";
      MOESTREAM_CHECK(s.pins == 0) << "free slot " << i << " pinned";
      continue;
    }
    MOESTREAM_CHECK(in_free[i] == 0) << "slot " << i << " in use and in the free list";
    MOESTREAM_CHECK(key_slot_[KeyIndex(s.key)] == int(i))
        << "slot " << i << "'s key does not map back to it";
    ++held[s.key.layer];
    if (opt_.per_layer && !moving_quotas_) {
      MOESTREAM_CHECK(int(s.key.layer) == slot_pool_[i])
          << "slot " << i << " of layer pool " << slot_pool_[i] << " holds layer " << s.key.layer;
    }
    if (s.pins > 0) {
      MOESTREAM_CHECK(s.state == SlotState::kLoading || s.state == SlotState::kResident)
          << "slot " << i << " has pins in state " << SlotStateName(s.state);
    }
    if (s.state == SlotState::kDraining) ++draining;
    if (s.state == SlotState::kLoading) {
      MOESTREAM_CHECK(s.load == 0 || (s.load & ((uint64_t(1) << kLoadSlotBits) - 1)) == i)
          << "loading slot " << i << "'s load id names another slot";
      if (s.load != 0 && s.load_is_prefetch) ++prefetching;
    }
  }
  for (size_t k = 0; k < key_slot_.size(); ++k) {
    int s = key_slot_[k];
    if (s < 0) continue;
    MOESTREAM_CHECK(slots_[s].state != SlotState::kFree && KeyIndex(slots_[s].key) == int(k))
        << "key index " << k << " maps to slot " << s << " which does not hold it";
  }
  MOESTREAM_CHECK(draining == draining_) << "draining count " << draining << " vs " << draining_;
  for (int l = 0; l < opt_.n_layers && moving_quotas_; ++l) {
    MOESTREAM_CHECK(held[l] == held_[l])
        << "layer " << l << " holds " << held[l] << " slots, counted " << held_[l];
  }
  MOESTREAM_CHECK(prefetching == prefetch_outstanding_ &&
                  prefetching == int(prefetch_slots_.size()))
      << "outstanding prefetches " << prefetching << " vs " << prefetch_outstanding_;
}

}  // namespace moestream::cache
