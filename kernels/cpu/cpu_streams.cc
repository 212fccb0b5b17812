#include "kernels/cpu/cpu_streams.h"

#include <algorithm>
#include <cstring>

namespace moestream::kernels::cpu {

bool CpuEvent::Query() {
  MutexLock lock(&mu_);
  return completed_ >= recorded_;
}

absl::Status CpuEvent::Synchronize() {
  WaitFor(recorded());
  return absl::OkStatus();
}

uint64_t CpuEvent::Arm() {
  MutexLock lock(&mu_);
  return ++recorded_;
}

void CpuEvent::Complete(uint64_t generation) {
  // Only the mutex is touched, and waiters Await under it: a waiter that sees
  // the completion may destroy the event at once (absl::Notification relies
  // on the same guarantee), and there is no condition variable to notify
  // after unlocking.
  MutexLock lock(&mu_);
  completed_ = std::max(completed_, generation);
}

void CpuEvent::WaitFor(uint64_t generation) {
  MutexLock lock(&mu_);
  auto done = [this, generation]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return completed_ >= generation;
  };
  mu_.Await(absl::Condition(&done));
}

uint64_t CpuEvent::recorded() const {
  MutexLock lock(&mu_);
  return recorded_;
}

absl::StatusOr<CpuEvent*> AsCpuEvent(Event& e) {
  auto* ce = dynamic_cast<CpuEvent*>(&e);
  if (ce == nullptr) return absl::InvalidArgumentError("event was not created by the cpu backend");
  return ce;
}

void CpuLink::Copy(void* dst, const void* src, size_t bytes) {
  const Clock::time_point now = Clock::now();
  if (profile_.gbps <= 0) {
    std::memcpy(dst, src, bytes);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - now);
    MutexLock lock(&mu_);
    ++stats_.copies;
    stats_.bytes += bytes;
    stats_.busy_ns += static_cast<uint64_t>(ns.count());
    return;
  }
  const auto latency = std::chrono::nanoseconds(static_cast<int64_t>(profile_.latency_us * 1e3));
  const double ns_per_byte = 1.0 / profile_.gbps;  // GB/s = bytes per ns
  const auto transfer =
      std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(bytes) * ns_per_byte));
  Clock::time_point start;
  {
    MutexLock lock(&mu_);
    start = std::max(now, free_at_);
    free_at_ = start + latency + transfer;
  }
  // Chunks small enough that data lands progressively, large enough that a
  // wake-up per chunk is cheap.
  constexpr size_t kChunk = 1 << 20;
  const Clock::time_point data_start = start + latency;
  std::this_thread::sleep_until(data_start);
  for (size_t off = 0; off < bytes; off += kChunk) {
    const size_t n = std::min(kChunk, bytes - off);
    std::memcpy(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off, n);
    const auto deadline = data_start + std::chrono::nanoseconds(static_cast<int64_t>(
                                           static_cast<double>(off + n) * ns_per_byte));
    std::this_thread::sleep_until(deadline);
  }
  const auto busy = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
  MutexLock lock(&mu_);
  ++stats_.copies;
  stats_.bytes += bytes;
  stats_.busy_ns += static_cast<uint64_t>(std::max(busy, latency + transfer).count());
}

LinkStats CpuLink::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

absl::Status ComputeStream::Record(Event& e) {
  // Ops ran synchronously, so everything issued before this point is done.
  auto ce = AsCpuEvent(e);
  if (!ce.ok()) return ce.status();
  (*ce)->Complete((*ce)->Arm());
  return absl::OkStatus();
}

absl::Status ComputeStream::Wait(Event& e) {
  auto ce = AsCpuEvent(e);
  if (!ce.ok()) return ce.status();
  (*ce)->WaitFor((*ce)->recorded());
  return absl::OkStatus();
}

CopyStream::CopyStream(CpuLink* link) : link_(link), engine_([this] { EngineLoop(); }) {}

CopyStream::~CopyStream() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  engine_.join();
}

void CopyStream::Push(Item item) {
  MutexLock lock(&mu_);
  queue_.push_back(item);
}

void CopyStream::EnqueueCopy(void* dst, const void* src, size_t bytes) {
  Push({Item::kCopy, dst, src, bytes, nullptr, 0});
}

absl::Status CopyStream::Record(Event& e) {
  auto ce = AsCpuEvent(e);
  if (!ce.ok()) return ce.status();
  Push({Item::kRecord, nullptr, nullptr, 0, *ce, (*ce)->Arm()});
  return absl::OkStatus();
}

absl::Status CopyStream::Wait(Event& e) {
  auto ce = AsCpuEvent(e);
  if (!ce.ok()) return ce.status();
  Push({Item::kWait, nullptr, nullptr, 0, *ce, (*ce)->recorded()});
  return absl::OkStatus();
}

absl::Status CopyStream::Synchronize() {
  MutexLock lock(&mu_);
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return queue_.empty() && !busy_; };
  mu_.Await(absl::Condition(&idle));
  return absl::OkStatus();
}

void CopyStream::EngineLoop() {
  for (;;) {
    Item item;
    {
      MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stop_ with nothing left
      item = queue_.front();
      queue_.pop_front();
      busy_ = true;
    }
    switch (item.kind) {
      case Item::kCopy: link_->Copy(item.dst, item.src, item.bytes); break;
      case Item::kRecord: item.event->Complete(item.generation); break;
      case Item::kWait: item.event->WaitFor(item.generation); break;
    }
    MutexLock lock(&mu_);
    busy_ = false;
  }
}

}  // namespace moestream::kernels::cpu
