// Streams, events and the modelled host→device link of the CPU backend.
//
// The compute stream runs ops synchronously on the calling thread, so an
// event recorded on it is complete at once and Wait() blocks the caller until
// the awaited event completes. A copy stream is a copy-engine thread with a
// FIFO of copies, event records and waits; it executes them in order, so an
// event recorded on it completes when every copy queued before it is done.
//
// The link (shared by all copy streams, as a PCIe link is) is throttled to a
// LinkProfile: a copy reserves the link from max(now, link free) for
// latency + bytes/bandwidth, and its bytes are copied in chunks, each paced
// against an absolute steady-clock deadline so sleep overshoot never
// accumulates; the modelled rate holds for large copies. With profile "none"
// copies run at memcpy speed. LinkStats count copies, bytes and busy time.
//
//   CpuLink link(profile);
//   CopyStream s(&link);  s.EnqueueCopy(dst, src, n);  s.Record(event);
#ifndef MOESTREAM_KERNELS_CPU_CPU_STREAMS_H_
#define MOESTREAM_KERNELS_CPU_CPU_STREAMS_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "kernels/backend.h"

namespace moestream::kernels::cpu {

// Thread-safe: `mu_` guards the recorded and completed generations; waiters
// Await the generation they need.
class CpuEvent : public Event {
 public:
  bool Query() override;
  absl::Status Synchronize() override;

  // Marks a new record point; returns its generation.
  uint64_t Arm();
  void Complete(uint64_t generation);
  // Blocks until the record point `generation` is complete.
  void WaitFor(uint64_t generation);
  uint64_t recorded() const;

 private:
  mutable Mutex mu_;
  uint64_t recorded_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
};

// Casts an Event created by the CPU backend; kInvalidArgument otherwise.
absl::StatusOr<CpuEvent*> AsCpuEvent(Event& e);

// Thread-safe (copy streams share it): `mu_` guards the link reservation and
// the statistics, never held while bytes are copied.
class CpuLink {
 public:
  explicit CpuLink(LinkProfile profile) : profile_(std::move(profile)) {}
  // Copies `bytes` at the modelled rate (blocking the calling engine thread).
  void Copy(void* dst, const void* src, size_t bytes);
  LinkStats stats() const;
  const LinkProfile& profile() const { return profile_; }

 private:
  using Clock = std::chrono::steady_clock;
  const LinkProfile profile_;
  mutable Mutex mu_;
  Clock::time_point free_at_ ABSL_GUARDED_BY(mu_){};  // end of the last reservation
  LinkStats stats_ ABSL_GUARDED_BY(mu_);
};

class ComputeStream : public Stream {
 public:
  absl::Status Record(Event& e) override;
  absl::Status Wait(Event& e) override;
  absl::Status Synchronize() override { return absl::OkStatus(); }
};

// `mu_` guards the queue and the engine's busy/stop flags; the engine thread
// and Synchronize() Await their conditions on it.
class CopyStream : public Stream {
 public:
  explicit CopyStream(CpuLink* link);
  ~CopyStream() override;  // drains the queue, then joins the engine

  absl::Status Record(Event& e) override;
  absl::Status Wait(Event& e) override;
  absl::Status Synchronize() override;
  void EnqueueCopy(void* dst, const void* src, size_t bytes);

 private:
  struct Item {
    enum Kind { kCopy, kRecord, kWait } kind = kCopy;
    void* dst = nullptr;
    const void* src = nullptr;
    size_t bytes = 0;
    CpuEvent* event = nullptr;
    uint64_t generation = 0;
  };
  void Push(Item item);
  void EngineLoop();

  CpuLink* const link_;
  Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;  // an item is executing
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread engine_;
};

}  // namespace moestream::kernels::cpu

#endif  // MOESTREAM_KERNELS_CPU_CPU_STREAMS_H_
