// A simulated clock and a modelled loader, so `moestream replay` and the
// cache tests run the real ExpertCache without moving bytes or sleeping.
//
// Model. A load passes through up to two single-server stages, each FIFO
// within its priority class, demand before prefetch:
//   1. tier read (only when `tier_gbps` > 0, i.e. experts on NVMe):
//      tier_latency_us + bytes / tier_gbps;
//   2. link copy: link_latency_us + bytes / link_gbps (link_gbps 0 = instant).
// A stage picks its next load when it frees up, from what was queued by then,
// so a demand load issued while a prefetch is being copied starts right after
// that copy, ahead of every prefetch still queued. Completion times are exact
// for this model; nothing is approximated by batching.
//
// The simulator is event-driven: every call first processes the events up to
// the clock's now. Poll(block=true) with nothing finished advances the clock
// to the next completion. The caller models compute time with
// SimClock::Advance.
//
//   SimClock clock;
//   SimLoaderOptions o;  o.link = *kernels::FindLinkProfile("pcie4x16");
//   o.expert_bytes = 3 << 20;
//   MOESTREAM_ASSIGN_OR_RETURN(auto loader, SimLoader::Create(o, &clock));
//   ... ExpertCache::Create(copts, loader.get(), &clock, policy.get());
//   clock.Advance(compute_ns);   // the layer's modelled compute
#ifndef MOESTREAM_CACHE_SIM_LOADER_H_
#define MOESTREAM_CACHE_SIM_LOADER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "cache/expert_loader.h"
#include "kernels/backend.h"

namespace moestream::cache {

class SimClock final : public Clock {
 public:
  uint64_t NowNs() const override { return now_ns_; }
  void Advance(uint64_t ns) { now_ns_ += ns; }
  void AdvanceTo(uint64_t t_ns) {
    if (t_ns > now_ns_) now_ns_ = t_ns;
  }

 private:
  uint64_t now_ns_ = 0;
};

struct SimLoaderOptions {
  // Host→device link (bandwidth GB/s = 1e9 B/s, per-copy latency). gbps 0 =
  // infinitely fast link (only latency counts).
  kernels::LinkProfile link;
  // Tier the experts live in. kNvme adds the tier-read stage below.
  Tier tier = Tier::kHost;
  // NVMe read rate in GB/s and per-read latency; used when tier == kNvme.
  // gbps must be > 0 then.
  double tier_gbps = 0;
  double tier_latency_us = 0;
  // Bytes per expert: `expert_bytes` for every layer, unless
  // `expert_bytes_per_layer` is non-empty (one entry per layer).
  uint64_t expert_bytes = 0;
  std::vector<uint64_t> expert_bytes_per_layer;
  absl::Status Validate() const;
};

// Where a simulated load is: queued for or served by the tier read, the
// link copy, or finished.
enum class SimStage : uint8_t { kTier, kLink, kDone };

class SimLoader final : public ExpertLoader {
 public:
  static absl::StatusOr<std::unique_ptr<SimLoader>> Create(const SimLoaderOptions& o,
                                                           SimClock* clock);

  uint64_t ExpertBytes(ExpertKey key) const override;
  absl::Status StartLoad(const LoadRequest& r) override;
  void Promote(LoadId id) override;
  bool Cancel(LoadId id) override;
  absl::Status Poll(std::vector<LoadCompletion>* done, bool block) override;
  size_t outstanding() const override { return outstanding_; }

  // Modelled busy time of the link and the tier stage so far.
  uint64_t link_busy_ns() const { return link_.busy_ns; }
  uint64_t tier_busy_ns() const { return tier_.busy_ns; }

 private:
  // Loads live in a pool of entries reused through a free list; queues and
  // stages refer to them by pool index, so the id map is touched only when a
  // load starts, is promoted or cancelled, and is reported.
  static constexpr uint32_t kNone = ~uint32_t{0};
  struct Load {
    LoadId id = 0;
    uint64_t bytes = 0;
    bool prefetch = false;
    SimStage stage = SimStage::kTier;
    bool started = false; // bytes began moving (no longer cancellable)
  };
  struct Stage {
    double gbps = 0;
    uint64_t latency_ns = 0;
    std::deque<uint32_t> demand, prefetch;  // pool indices
    uint32_t current = kNone;  // pool index being served; kNone = idle
    uint64_t finish_ns = 0;    // when `current` finishes
    uint64_t busy_ns = 0;
    // Service time of the last size seen (experts mostly share one size).
    uint64_t memo_bytes = ~uint64_t{0}, memo_ns = 0;
  };
  SimLoader(const SimLoaderOptions& o, SimClock* clock);
  uint64_t ServiceNs(Stage& s, uint64_t bytes) const;
  void Enqueue(Stage& s, uint32_t li, bool prefetch);
  void TryStart(Stage& s, uint64_t at_ns);
  // Processes stage completions with finish time <= t_ns, in time order.
  void RunUntil(uint64_t t_ns);
  bool has_tier() const { return opt_.tier == Tier::kNvme; }

  SimLoaderOptions opt_;
  SimClock* clock_;
  Stage tier_, link_;
  std::vector<Load> pool_;
  std::vector<uint32_t> free_;                 // unused pool indices
  // Outstanding loads by id: a direct-mapped table on the id's low bits
  // (the expert cache keeps the slot there, so its ids do not collide),
  // and a hash map for an id whose entry is taken.
  static constexpr size_t kDirect = 4096;
  uint32_t FindLoad(LoadId id) const;
  void InsertLoad(LoadId id, uint32_t li);  // an id not outstanding
  void EraseLoad(LoadId id, uint32_t li);
  std::vector<uint32_t> direct_;                 // kDirect pool indices or kNone
  absl::flat_hash_map<LoadId, uint32_t> index_;  // the other outstanding loads
  size_t outstanding_ = 0;
  std::vector<uint32_t> finished_;             // reported by the next Poll
};

}  // namespace moestream::cache

#endif  // MOESTREAM_CACHE_SIM_LOADER_H_
