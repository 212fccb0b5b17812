// TierLoader: the live ExpertLoader. An expert's blob comes from its tier —
// a pinned host pointer (io::HostTier) or an NVMe read into a pinned staging
// buffer (io::ExpertReader) — and crosses the link with
// Backend::CopyToDeviceAsync on the loader's own kCopy stream; an Event
// recorded after each copy says when the slot's bytes have landed.
//
// Ordering and preemption. Loads wait in two FIFO queues, demand before
// prefetch. Only `copies_in_flight_max` copies are handed to the copy stream
// at once (a stream is FIFO: what is handed to it can no longer be
// overtaken), so a demand load issued behind a burst of prefetches waits for
// at most that many copies. NVMe reads are submitted up to the number of
// staging buffers, demand first; a staging buffer is reused once the copy out
// of it has completed (its event).
//
// Cancel succeeds for a load that has neither been submitted to the reader
// nor handed to the copy stream.
//
// Threading: driven from the cache's thread only (see expert_loader.h). The
// backend's copy engine (a thread on the CPU backend, a DMA engine on CUDA)
// runs the copies; the loader observes them only through Event::Query and
// Event::Synchronize, and reaps reader completions on the calling thread.
//
//   TierSource src = TierSource::Host(*host_tier);          // or ::Nvme(*reader)
//   MOESTREAM_ASSIGN_OR_RETURN(auto loader, TierLoader::Create(backend, src, {}));
//   ExpertCache::Create(copts, loader.get(), &steady_clock, policy, backend);
#ifndef MOESTREAM_CACHE_TIER_LOADER_H_
#define MOESTREAM_CACHE_TIER_LOADER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "cache/expert_loader.h"
#include "io/expert_tier.h"
#include "kernels/backend.h"

namespace moestream::cache {

// Where the TierLoader finds each expert's blob.
struct TierSource {
  Tier tier = Tier::kHost;
  // Blob size of an expert (<= the cache's slot size).
  std::function<uint64_t(ExpertKey)> blob_bytes;
  // kHost: the expert's blob in pinned host memory, valid for the loader's life.
  std::function<const void*(ExpertKey)> host_blob;
  // kNvme: the reader that fills staging buffers (owned by the caller, idle
  // otherwise while the loader runs).
  io::ExpertReader* reader = nullptr;

  static TierSource Host(const io::HostTier& host);
  static TierSource Nvme(io::ExpertReader& reader);
};

// io::HostAllocator over the backend's pinned host memory (cudaHostAlloc on
// CUDA), so the host tier's blobs are valid CopyToDeviceAsync sources.
class BackendHostAllocator final : public io::HostAllocator {
 public:
  explicit BackendHostAllocator(kernels::Backend* backend) : backend_(backend) {}
  absl::StatusOr<void*> Alloc(size_t bytes, std::string_view what) override {
    return backend_->HostPinnedAlloc(bytes, what);
  }
  void Free(void* p) override { backend_->HostPinnedFree(p); }

 private:
  kernels::Backend* backend_;
};

struct TierLoaderOptions {
  // Copies handed to the copy stream at once. More overlaps better on a GPU
  // with several copy engines; fewer lets demand loads overtake prefetches
  // sooner. Default 2.
  int copies_in_flight_max = 2;
  // NVMe: pinned staging buffers (of the largest blob) = reads in flight.
  // Default 8.
  int staging_buffers = 8;
  absl::Status Validate() const;
};

class TierLoader final : public ExpertLoader {
 public:
  // Allocates the copy stream, one event per in-flight copy and (NVMe) the
  // staging buffers from the backend's pinned host memory.
  static absl::StatusOr<std::unique_ptr<TierLoader>> Create(kernels::Backend* backend,
                                                            TierSource source,
                                                            const TierLoaderOptions& options);
  ~TierLoader() override;  // waits for copies in flight

  uint64_t ExpertBytes(ExpertKey key) const override { return source_.blob_bytes(key); }
  absl::Status StartLoad(const LoadRequest& r) override;
  void Promote(LoadId id) override;
  bool Cancel(LoadId id) override;
  absl::Status Poll(std::vector<LoadCompletion>* done, bool block) override;
  size_t outstanding() const override { return loads_.size(); }

 private:
  struct Load {
    LoadRequest req;
    uint64_t bytes = 0;
    int stage = 0;        // 0 queued for read, 1 reading, 2 queued for copy, 3 copying
    int staging = -1;     // NVMe staging buffer
    int copy = -1;        // index into copies_ while copying
  };
  struct Copy {
    std::unique_ptr<kernels::Event> event;
    LoadId id = 0;        // 0 = free
  };
  TierLoader(kernels::Backend* backend, TierSource source, const TierLoaderOptions& o)
      : backend_(backend), source_(std::move(source)), opt_(o) {}
  absl::Status Init();
  void QueueFor(int stage, LoadId id, bool prefetch);
  absl::Status Pump();                      // submit reads and copies that can start
  absl::Status ReapReads(bool wait, std::vector<LoadCompletion>* done);
  absl::Status ReapCopies(bool block, std::vector<LoadCompletion>* done);
  void Fail(LoadId id, absl::Status s, std::vector<LoadCompletion>* done);

  kernels::Backend* backend_;
  TierSource source_;
  TierLoaderOptions opt_;
  std::unique_ptr<kernels::Stream> stream_;
  std::vector<Copy> copies_;
  std::deque<LoadId> copy_order_;            // copies in flight, issue order
  std::vector<uint8_t*> staging_;
  std::vector<int> free_staging_;
  std::deque<LoadId> read_demand_, read_prefetch_;  // stage 0
  std::deque<LoadId> copy_demand_, copy_prefetch_;  // stage 2
  absl::flat_hash_map<LoadId, Load> loads_;
  std::vector<io::ExpertReadCompletion> read_done_;
  std::vector<LoadCompletion> failed_;       // failures found while pumping
};

}  // namespace moestream::cache

#endif  // MOESTREAM_CACHE_TIER_LOADER_H_
