// The tiers routed experts live in below the device: the seams the expert
// cache (cache/) codes against.
//
//  * HostAllocator — pinned host memory, supplied by whoever owns it (the
//    runtime adapts kernels::Backend::HostPinnedAlloc; tests and the CPU path
//    use io::AlignedHostAllocator from io/host_tier.h). io/ never includes
//    kernels/.
//  * ExpertReader — asynchronous reads of one whole expert (its gate, up and
//    down matrices, laid out as the blob described in io/expert_layout.h)
//    from NVMe into a caller-provided pinned buffer. Implementations:
//    UringReader (io_uring, O_DIRECT, registered buffers and files),
//    PreadReader (a pread thread pool), FakeReader (in memory, injected
//    faults). OpenExpertReader probes and picks one.
//  * HostTier — every routed expert resident in pinned host memory within a
//    budget, loaded once through a reader; a pointer per expert matrix.
//
// Threading: an ExpertReader is owned by one thread (the engine thread):
// Submit and Reap are called from it only. Completions are delivered by Reap,
// never by callback. A HostTier is immutable after Load and may be read from
// any thread.
//
//   auto layout = std::make_shared<const ExpertLayout>(ExpertLayout::FromGguf(f).value());
//   ReaderOptions ro;  ro.queue_depth = 32;  ro.block_bytes = 1 << 20;
//   MOESTREAM_ASSIGN_OR_RETURN(auto reader, OpenExpertReader(layout, ro));
//   MOESTREAM_RETURN_IF_ERROR(reader->Submit({.layer = 3, .expert = 17, .dst = slot, .tag = 42}));
//   std::vector<ExpertReadCompletion> done;
//   reader->Reap(&done, /*wait=*/true);   // done[0].tag == 42, done[0].status names file+offset
//
//   AlignedHostAllocator alloc(/*budget=*/64ull << 30);
//   HostTierOptions ho;  ho.host_budget_bytes = 64ull << 30;
//   MOESTREAM_ASSIGN_OR_RETURN(auto host, HostTier::Load(layout, *reader, alloc, ho));
//   const uint8_t* up = host->Matrix(3, 17, ExpertMatrix::kUp);
#ifndef MOESTREAM_IO_EXPERT_TIER_H_
#define MOESTREAM_IO_EXPERT_TIER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "io/expert_layout.h"
#include "io/gguf.h"

namespace moestream::io {

// Pinned (page-locked, DMA-able) host memory. Alloc refuses past the owner's
// budget with kResourceExhausted naming `what`. Returned memory is at least
// 4 KiB-aligned.
class HostAllocator {
 public:
  virtual ~HostAllocator() = default;
  virtual absl::StatusOr<void*> Alloc(size_t bytes, std::string_view what) = 0;
  virtual void Free(void* p) = 0;
};

// ---------------------------------------------------------------- readers --

struct ReaderOptions {
  // "auto" (io_uring when it works on this kernel and file, else pread, said
  // once on stderr), "uring" or "pread".
  std::string kind = "auto";
  // Read operations in flight at once (and staging buffers). 1..4096.
  int queue_depth = 32;
  // Largest single read, bytes; a multiple of 4096. Each expert segment is
  // read as an aligned superset split into blocks of at most this size.
  // The staging ring is queue_depth * block_bytes of pinned memory.
  uint64_t block_bytes = 1 << 20;
  // Open the file with O_DIRECT (bypassing the page cache). If the file
  // system refuses O_DIRECT the reader falls back to buffered I/O and says so.
  bool direct_io = true;
  // Read straight into the caller's buffer, without staging, when the file
  // offset, the destination and the length are all 4 KiB-aligned (store blobs
  // into 4 KiB-aligned slots). false = always stage (registered buffers).
  bool zero_copy = true;
  // Verify each store blob's checksum after it lands (kDataLoss on mismatch).
  bool verify_checksums = true;
  // Worker threads of the pread reader. 1..256.
  int threads = 4;
  // Retries of one read after -EAGAIN/-EINTR or a short read that made no
  // progress, before it fails.
  int max_retries = 16;

  absl::Status Validate() const;
};

struct ExpertReadRequest {
  int layer = 0;
  int expert = 0;
  // Receives the expert's blob: layout().Find(layer, expert)->blob_bytes
  // bytes, matrices at their blob_offset. Caller-owned (pinned host memory)
  // and untouched by the caller until the completion is reaped.
  uint8_t* dst = nullptr;
  uint64_t tag = 0;  // returned in the completion
};

struct ExpertReadCompletion {
  uint64_t tag = 0;
  int layer = 0;
  int expert = 0;
  // OK, or the first error: names the file, offset and expert
  // ("m.gguf: read of 1048576 bytes at offset 73728 (expert 3/17): Input/output
  // error"); kDataLoss for truncation and checksum mismatch.
  absl::Status status;
};

struct ReaderStats {
  uint64_t experts_read = 0;    // completions delivered (ok or not)
  uint64_t experts_failed = 0;
  uint64_t bytes_read = 0;      // bytes transferred from the file (aligned supersets)
  uint64_t bytes_delivered = 0; // expert blob bytes delivered to callers
  uint64_t ops = 0;             // read operations issued (incl. retries)
  uint64_t staged_ops = 0;      // ... of which went through a staging buffer
  uint64_t retries = 0;         // -EAGAIN / short-read resubmissions
};

class ExpertReader {
 public:
  virtual ~ExpertReader() = default;

  virtual std::string_view kind() const = 0;  // "uring", "pread", "fake"
  virtual const ExpertLayout& layout() const = 0;

  // Queues a read of one expert. Never blocks: reads beyond the queue depth
  // wait inside the reader and are issued as earlier ones complete (during
  // Reap). kOutOfRange for an unknown expert, kInvalidArgument for a null dst.
  virtual absl::Status Submit(const ExpertReadRequest& req) = 0;

  // Appends finished reads to `out`; returns how many. With `wait`, blocks
  // until at least one read finishes (returns 0 at once if none is queued).
  virtual size_t Reap(std::vector<ExpertReadCompletion>* out, bool wait) = 0;

  // Reads submitted and not yet reaped.
  virtual size_t in_flight() const = 0;
  virtual ReaderStats stats() const = 0;
};

// Opens `layout.path()` with the reader `options.kind` names (probing for
// "auto"). `staging` supplies the staging ring's pinned memory (nullptr: the
// reader allocates page-aligned memory itself).
absl::StatusOr<std::unique_ptr<ExpertReader>> OpenExpertReader(
    std::shared_ptr<const ExpertLayout> layout, const ReaderOptions& options,
    HostAllocator* staging = nullptr);

// Submits one read and waits for it. Requires no other read in flight.
absl::Status ReadExpertSync(ExpertReader& reader, int layer, int expert, uint8_t* dst);

// ------------------------------------------------------------- host tier --

struct HostTierOptions {
  // Hard limit on the host tier's pinned bytes; 0 = unlimited. Load fails
  // with kResourceExhausted (naming need, budget and shortfall) before
  // allocating anything when the experts do not fit.
  uint64_t host_budget_bytes = 0;
  // Print a progress line on stderr while loading (when no ProgressFn given).
  bool show_progress = true;

  absl::Status Validate() const;
};

class HostTier {
 public:
  // Bytes Load would allocate for `layout` (the planner's number).
  static uint64_t RequiredBytes(const ExpertLayout& layout);

  // Allocates one pinned region per MoE layer from `alloc` and reads every
  // routed expert into it through `reader` (which must be idle and read
  // `layout`). On error everything allocated is freed.
  static absl::StatusOr<std::unique_ptr<HostTier>> Load(
      std::shared_ptr<const ExpertLayout> layout, ExpertReader& reader, HostAllocator& alloc,
      const HostTierOptions& options, const ProgressFn& progress = nullptr);

  ~HostTier();
  HostTier(const HostTier&) = delete;
  HostTier& operator=(const HostTier&) = delete;

  const ExpertLayout& layout() const { return *layout_; }
  // The expert's blob (layout().Find(l, e)->blob_bytes bytes); nullptr when
  // (layer, expert) is not a routed expert.
  const uint8_t* Blob(int layer, int expert) const;
  const uint8_t* Matrix(int layer, int expert, ExpertMatrix m) const;
  uint64_t bytes() const { return bytes_; }  // pinned bytes held

 private:
  HostTier() = default;

  std::shared_ptr<const ExpertLayout> layout_;
  HostAllocator* alloc_ = nullptr;
  std::vector<void*> regions_;               // one per MoE layer, freed on destruction
  std::vector<const uint8_t*> blobs_;        // parallel to layout_->experts()
  uint64_t bytes_ = 0;
};

}  // namespace moestream::io

#endif  // MOESTREAM_IO_EXPERT_TIER_H_
