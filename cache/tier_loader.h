// TierLoader: the live ExpertLoader. An expert's blob comes from its tier —
// a pinned host pointer (io::HostTier) or an NVMe read (io::ExpertReader) —
// and crosses the link with Backend::CopyToDeviceAsync on the loader's own
// kCopy stream; an Event recorded after each copy says when the slot's
// bytes have landed.
//
// The loader never waits for the engine. Two threads of its own move every
// load, whatever the engine thread is doing:
//   - the read thread submits NVMe reads (demand first) into host cache
//     slots (below) or free staging buffers, or straight into the slot
//     (`read_into_slot`: the CPU backend with no modelled link and no host
//     cache, where slot memory is host memory and a copy would only repeat
//     the read), and blocks in the reader's Reap;
//   - the copy thread hands reads that landed (and host-tier loads) to the
//     copy stream, at most `copies_in_flight_max` at once, demand first, and
//     blocks on the oldest copy's event; when it completes the load is
//     finished, its staging buffer freed (or its host slot unpinned), and
//     the engine woken.
// The engine thread only queues (StartLoad, Promote, Cancel) and collects
// finished loads (Poll); Poll(block) waits on one condition variable for
// the next finished load and never drives a read or a copy itself.
//
// Stages of a load (LoadStage):
//
//   kQueuedRead ──submit──► kReading ──read landed──► kQueuedCopy ──issue──► kCopying
//        │                      │ (read_into_slot)          │                    │
//        │ Cancel               └──────────► finished ◄─────┼────── event done ──┘
//        ▼                                                  │ Cancel
//     dropped ◄─────────────────────────────────────────────┘
//
// A host-tier load starts at kQueuedCopy. Cancel succeeds only from the two
// queued stages. A failed read or copy finishes the load with its error.
//
// The host expert cache (three tiers: NVMe → host RAM → device). With
// `host_cache_slots` > 0 (the plan's host_cache_slots: the host budget left
// after staging and the reader's ring), the NVMe loader owns a
// HostExpertCache (cache/host_expert_cache.h) of that many pinned slots,
// with its own eviction policy (`host_cache_policy`), and every load —
// demand or prefetch — takes this path:
//   - StartLoad looks the expert up. A hit pins the host slot and starts at
//     kQueuedCopy: no NVMe read; the completion says Tier::kHost.
//   - A miss queues a read. The read thread reserves a host slot for it (a
//     free one, else the policy's victim among slots nobody reads) and reads
//     into it, so the host slot is the staging buffer; when every host slot
//     is being filled or copied from, it falls back to a staging buffer (the
//     expert is then not kept). The read landing makes the expert findable.
//   - The copy reads the host slot; when it completes (or the load is
//     cancelled while queued for its copy) the pin is dropped and the slot
//     stays cached.
// Invariants: a host slot being filled or read by a queued or in-flight
// copy is never evicted (its pin count is nonzero), so no copy ever sees
// bytes of another expert; a failed read leaves nothing findable; one
// expert is findable in at most one host slot. The host cache lives under
// `mu_` like the rest of the loader's state. Counters (HostCacheStats): a
// hit is a load that found its expert in host RAM, a miss an NVMe read that
// delivered one; host_bytes and nvme_bytes are the bytes each moved.
//
// Transfer time. The loader measures the wall time during which at least one
// load was reading or copying (`busy_ns`): the tier's read time is part of
// it, and overlapping reads and copies count once.
//
// Threading: StartLoad, Promote, Cancel, Poll, outstanding and busy_ns are
// called from the cache's thread; the read and copy threads share the
// loader's state with it under `mu_`. The reader is used by the read thread
// only (and by nobody while the loader lives).
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
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "cache/expert_loader.h"
#include "cache/host_expert_cache.h"
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
  // sooner. 1..64, default 4.
  int copies_in_flight_max = 4;
  // NVMe: pinned staging buffers (of the largest blob); each holds one read
  // until its copy completes. 1..4096, default 8. Unused with
  // read_into_slot.
  int staging_buffers = 8;
  // NVMe: reads submitted at once (at most staging_buffers when staging).
  // 1..4096, default 8.
  int reads_in_flight_max = 8;
  // NVMe: read each expert straight into its slot, with no staging buffer
  // and no copy. Only where slot memory is host memory (the CPU backend)
  // and no link is modelled. Default false.
  bool read_into_slot = false;
  // NVMe: pinned host slots of the host expert cache (the plan's
  // host_cache_slots); 0 = none. Needs read_into_slot false: a read must
  // land in host memory to be kept.
  int host_cache_slots = 0;
  // The host cache's eviction policy spec. Default "lru".
  std::string host_cache_policy = "lru";
  // Experts a token uses, for policies that count time in tokens; 0 = unknown.
  int top_k = 0;
  absl::Status Validate() const;
};

// Where a load is (see the stage diagram above).
enum class LoadStage : uint8_t { kQueuedRead, kReading, kQueuedCopy, kCopying };

class TierLoader final : public ExpertLoader {
 public:
  // Allocates the copy stream, one event per in-flight copy and (NVMe,
  // unless read_into_slot) the staging buffers from the backend's pinned
  // host memory, and starts the read and copy threads.
  static absl::StatusOr<std::unique_ptr<TierLoader>> Create(kernels::Backend* backend,
                                                            TierSource source,
                                                            const TierLoaderOptions& options);
  ~TierLoader() override;  // finishes the reads and copies in flight, joins

  uint64_t ExpertBytes(ExpertKey key) const override { return source_.blob_bytes(key); }
  absl::Status StartLoad(const LoadRequest& r) override;
  void Promote(LoadId id) override;
  bool Cancel(LoadId id) override;
  absl::Status Poll(std::vector<LoadCompletion>* done, bool block) override;
  size_t outstanding() const override;
  // Wall time during which a read or a copy was in flight, ns.
  uint64_t busy_ns() const;
  // The host expert cache's counters (all zero without one).
  HostCacheStats host_cache_stats() const;
  // Checks the host cache's invariants (tests); no-op without one.
  void CheckHostCacheInvariants() const;
  const TierLoaderOptions& options() const { return opt_; }

 private:
  struct Load {
    LoadRequest req;
    uint64_t bytes = 0;
    LoadStage stage = LoadStage::kQueuedRead;
    int staging = -1;     // NVMe staging buffer
    int host_slot = -1;   // host cache slot read into or copied from (pinned)
    bool host_hit = false;  // the bytes were in the host cache: no NVMe read
    int copy = -1;        // index into copies_ while copying
  };
  struct Copy {
    std::unique_ptr<kernels::Event> event;
    LoadId id = 0;        // 0 = free
  };
  TierLoader(kernels::Backend* backend, TierSource source, const TierLoaderOptions& o)
      : backend_(backend), source_(std::move(source)), opt_(o) {}
  absl::Status Init();
  void ReadLoop();
  void CopyLoop();
  void Queue(LoadStage stage, LoadId id, bool prefetch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Finishes a load: its completion is queued for Poll, its staging buffer
  // freed and its host slot unpinned, the engine woken.
  void Finish(LoadId id, absl::Status s, uint64_t link_bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Busy-time accounting: a load entered or left the reading/copying stages.
  void BeginMoving() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndMoving() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool CanSubmitRead() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool CanIssueCopy() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  uint64_t NowNs() const;

  kernels::Backend* backend_;
  TierSource source_;
  TierLoaderOptions opt_;
  std::unique_ptr<kernels::Stream> stream_;
  std::vector<uint8_t*> staging_;  // fixed after Init

  // Guards everything below. The read thread awaits a read it may submit
  // (or stop), the copy thread a copy it may issue (or stop), the engine a
  // finished load.
  mutable Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<LoadId, Load> loads_ ABSL_GUARDED_BY(mu_);
  std::deque<LoadId> read_demand_ ABSL_GUARDED_BY(mu_), read_prefetch_ ABSL_GUARDED_BY(mu_);
  std::deque<LoadId> copy_demand_ ABSL_GUARDED_BY(mu_), copy_prefetch_ ABSL_GUARDED_BY(mu_);
  std::vector<int> free_staging_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<HostExpertCache> host_cache_ ABSL_GUARDED_BY(mu_);  // null: none
  HostCacheStats host_stats_ ABSL_GUARDED_BY(mu_);
  std::vector<Copy> copies_ ABSL_GUARDED_BY(mu_);
  std::deque<LoadId> copy_order_ ABSL_GUARDED_BY(mu_);  // copies in flight, issue order
  int reads_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<LoadCompletion> finished_ ABSL_GUARDED_BY(mu_);
  int moving_ ABSL_GUARDED_BY(mu_) = 0;            // loads reading or copying
  uint64_t moving_since_ns_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t busy_ns_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread read_thread_;
  std::thread copy_thread_;
};

}  // namespace moestream::cache

#endif  // MOESTREAM_CACHE_TIER_LOADER_H_
