// The host tier (HostTier, declared in io/expert_tier.h) and a page-aligned
// host allocator with a hard budget for the CPU backend and tests.
//
// HostTier::Load allocates one pinned region per MoE layer through the
// HostAllocator it is handed (the runtime adapts the backend's
// HostPinnedAlloc: cudaHostAlloc on CUDA) and streams every routed expert
// into it through an ExpertReader, keeping the reader's queue full, with
// progress. The budget is checked before anything is allocated, so a model
// that does not fit fails fast with what is short.
//
//   AlignedHostAllocator alloc({.budget_bytes = 64ull << 30, .mlock = false});
//   MOESTREAM_ASSIGN_OR_RETURN(auto host, HostTier::Load(layout, *reader, alloc, {}));
//   const uint8_t* gate = host->Matrix(0, 5, ExpertMatrix::kGate);
#ifndef MOESTREAM_IO_HOST_TIER_H_
#define MOESTREAM_IO_HOST_TIER_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "io/expert_tier.h"

namespace moestream::io {

struct AlignedHostAllocatorOptions {
  uint64_t budget_bytes = 0;  // hard limit on live bytes; 0 = unlimited
  bool mlock = false;         // mlock each allocation (warns once when refused)
};

// posix_memalign(4096) memory with a byte budget and a high-water mark.
// Thread-safe: `mu_` guards the live-allocation map and the byte counters.
class AlignedHostAllocator : public HostAllocator {
 public:
  explicit AlignedHostAllocator(AlignedHostAllocatorOptions options = {}) : options_(options) {}
  ~AlignedHostAllocator() override = default;

  absl::StatusOr<void*> Alloc(size_t bytes, std::string_view what) override;
  void Free(void* p) override;

  uint64_t used_bytes() const;
  uint64_t high_water_bytes() const;

 private:
  AlignedHostAllocatorOptions options_;
  mutable Mutex mu_;
  std::vector<std::pair<void*, size_t>> live_ ABSL_GUARDED_BY(mu_);
  uint64_t used_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t high_water_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace moestream::io

#endif  // MOESTREAM_IO_HOST_TIER_H_
