// The seam between the expert cache's mechanism and the machinery that moves
// bytes: an abstract ExpertLoader (start a load of one expert into one device
// slot, cancel a queued prefetch, reap completions) and an abstract Clock.
//
// Two implementations of each exist so the same ExpertCache code runs live
// and in `moestream replay`:
//   - TierLoader + SteadyClock (cache/tier_loader.h): bytes from the host or
//     NVMe tier, copied over the backend's link on a copy stream.
//   - SimLoader + SimClock (cache/sim_loader.h): a link model with a
//     simulated clock; no bytes move and nothing sleeps.
//
//   loader->StartLoad({.key = k, .slot = s, .dst = p, .id = 7, .is_prefetch = false});
//   std::vector<LoadCompletion> done;
//   MOESTREAM_RETURN_IF_ERROR(loader->Poll(&done, /*block=*/true));
//
// Threading: a loader is driven from one thread (the cache's owner thread).
// Implementations may use worker threads internally (the CPU backend's copy
// engine, an io_uring ring's kernel side) but every call below, and every
// completion it reports, happens on the calling thread.
#ifndef MOESTREAM_CACHE_EXPERT_LOADER_H_
#define MOESTREAM_CACHE_EXPERT_LOADER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "base/expert_key.h"

namespace moestream::cache {


// Identifies one load for its whole life; issued by the cache, unique, never
// reused within a cache's lifetime.
using LoadId = uint64_t;

// Where a routed expert's bytes live when not on the device.
enum class Tier : uint8_t { kHost = 0, kNvme = 1 };
inline constexpr int kNumTiers = 2;
std::string_view TierName(Tier t);  // "host", "nvme"

// Monotonic time in nanoseconds. Live: the steady clock. Replay: simulated.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t NowNs() const = 0;
};

class SteadyClock final : public Clock {
 public:
  uint64_t NowNs() const override {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
  }
};

struct LoadRequest {
  ExpertKey key;
  int slot = -1;           // device slot index the bytes go to
  void* dst = nullptr;     // the slot's device memory (nullptr under simulation)
  LoadId id = 0;
  bool is_prefetch = false;  // queued behind every demand load not yet started
};

struct LoadCompletion {
  LoadId id = 0;
  absl::Status status;       // not OK: the slot's bytes are undefined
  Tier tier = Tier::kHost;   // tier the bytes came from
  uint64_t tier_bytes = 0;   // bytes read from `tier` for this load
  uint64_t link_bytes = 0;   // bytes copied host→device for this load
};

class ExpertLoader {
 public:
  virtual ~ExpertLoader() = default;

  // Bytes of `key`'s expert (gate+up+down as stored in a slot); <= the
  // cache's slot size.
  virtual uint64_t ExpertBytes(ExpertKey key) const = 0;

  // Queues a load. Demand loads (is_prefetch=false) start before any queued
  // prefetch that has not started; within a class, FIFO. Fails only for a
  // programmer error or a dead device; I/O errors arrive as completions.
  virtual absl::Status StartLoad(const LoadRequest& r) = 0;

  // Turns a queued prefetch into a demand load (it moves to the demand queue's
  // tail). No effect when it already started or completed.
  virtual void Promote(LoadId id) = 0;

  // Cancels a load that has not started moving bytes. Returns true when it
  // was cancelled (it will never complete); false when it already started
  // (it will complete normally) or is unknown.
  virtual bool Cancel(LoadId id) = 0;

  // Appends finished loads to `done`. block=false: returns what finished by
  // now. block=true: when nothing has finished and something is outstanding,
  // waits until at least one finishes (a simulated loader advances its clock
  // instead). Returns OK with nothing appended when nothing is outstanding.
  virtual absl::Status Poll(std::vector<LoadCompletion>* done, bool block) = 0;

  // Loads started or queued and not yet reported by Poll.
  virtual size_t outstanding() const = 0;
};

}  // namespace moestream::cache

#endif  // MOESTREAM_CACHE_EXPERT_LOADER_H_
