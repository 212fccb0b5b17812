// The machinery every ExpertReader shares: it turns "read expert (L, E) into
// dst" into block-sized, 4 KiB-aligned read operations, feeds them to an
// IoQueue (io_uring, a pread pool, or the in-memory fake) within the queue
// depth, copies staged data out, resubmits short reads and -EAGAIN, turns
// other errors into a Status naming file and offset, and verifies store
// checksums. Only the IoQueue differs between the readers, so the fake
// exercises exactly the logic the real readers run.
//
// Design
//   Planning. Each segment of the expert (3 GGUF ranges, or 1 store blob) is
//   widened to the aligned superset [AlignDown(off), AlignUp(end)) when the
//   file is open with O_DIRECT, then cut into chunks of at most block_bytes.
//   A chunk whose every byte is wanted, and whose destination in dst is 4 KiB
//   aligned (or any chunk with buffered I/O), is read straight into dst
//   ("zero copy"); any other chunk borrows a staging buffer from the fixed
//   ring (registered with the kernel for io_uring) and its wanted bytes are
//   copied out when it lands.
//   Issuing. Chunks wait in a FIFO; Pump() issues them while fewer than
//   queue_depth operations are in flight and, for staged chunks, a staging
//   buffer is free. Nothing is allocated per operation beyond the FIFO node.
//   Completion. A chunk completes when the bytes it wants have arrived (a
//   read that stops at end-of-file after them is fine). A short read is
//   resubmitted from the aligned-down progress point; -EAGAIN/-EINTR are
//   resubmitted; both count against max_retries when no progress is made.
//   0 bytes before the wanted end is truncation (kDataLoss). Any other
//   -errno fails the expert: its queued chunks are dropped, in-flight ones
//   drained, and one completion carries the first error.
//   An expert completes when its last chunk does; a store blob's XXH64 is
//   then checked (kDataLoss on mismatch).
// State per chunk: queued -> in flight -> (resubmitted -> in flight)* -> done.
// Invariants: ops in flight <= queue_depth; a staging buffer belongs to at
//   most one chunk; an expert's completion is delivered exactly once, after
//   all of its operations have left the kernel (so dst is never written after
//   the caller sees the completion).
// Threading: single owner thread (Submit/Reap). The IoQueue may use threads
//   internally (the pread pool) but delivers results through Poll.
#ifndef MOESTREAM_IO_CHUNKED_READER_H_
#define MOESTREAM_IO_CHUNKED_READER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "io/expert_tier.h"

namespace moestream::io {

// One read operation handed to an IoQueue.
struct IoOp {
  uint64_t id = 0;       // echoed in IoResult
  uint64_t offset = 0;   // file offset
  uint64_t len = 0;      // bytes
  uint8_t* buf = nullptr;
  int buf_index = -1;    // staging buffer index (registered buffers), -1 = caller memory
};

struct IoResult {
  uint64_t id = 0;
  int64_t res = 0;  // bytes read, or -errno
};

class IoQueue {
 public:
  virtual ~IoQueue() = default;
  // Queues one op; the caller never exceeds its own depth limit.
  virtual void Submit(const IoOp& op) = 0;
  // Makes queued ops visible to the device (io_uring_submit).
  virtual void Flush() {}
  // Appends results; with `wait`, blocks until at least one is available.
  virtual void Poll(std::vector<IoResult>* out, bool wait) = 0;
};

// Pinned, 4 KiB-aligned staging memory: queue_depth buffers of block_bytes,
// from a HostAllocator when given, else posix_memalign.
class StagingRing {
 public:
  static absl::StatusOr<std::unique_ptr<StagingRing>> Create(int count, uint64_t bytes_each,
                                                              HostAllocator* alloc);
  ~StagingRing();
  int count() const { return count_; }
  uint64_t bytes_each() const { return bytes_each_; }
  uint8_t* buffer(int i) const { return base_ + uint64_t(i) * bytes_each_; }
  uint8_t* base() const { return base_; }

 private:
  StagingRing() = default;
  uint8_t* base_ = nullptr;
  int count_ = 0;
  uint64_t bytes_each_ = 0;
  HostAllocator* alloc_ = nullptr;
};

class ChunkedReader : public ExpertReader {
 public:
  // `direct`: the file is open with O_DIRECT (reads must be aligned).
  ChunkedReader(std::string kind, std::shared_ptr<const ExpertLayout> layout,
                ReaderOptions options, bool direct, std::unique_ptr<StagingRing> staging);
  ~ChunkedReader() override;

  std::string_view kind() const override { return kind_; }
  const ExpertLayout& layout() const override { return *layout_; }
  absl::Status Submit(const ExpertReadRequest& req) override;
  size_t Reap(std::vector<ExpertReadCompletion>* out, bool wait) override;
  size_t in_flight() const override { return active_requests_; }
  ReaderStats stats() const override { return stats_; }

 protected:
  // Set by the subclass's factory before the first Submit.
  void set_queue(std::unique_ptr<IoQueue> q) { queue_ = std::move(q); }
  const StagingRing* staging() const { return staging_.get(); }
  const ReaderOptions& options() const { return options_; }
  // Waits for every in-flight op (destructors of subclasses call it before
  // tearing down their queue).
  void Drain();

 private:
  struct Request {
    ExpertReadRequest req;
    const ExpertInfo* info = nullptr;
    int chunks_left = 0;
    absl::Status status;
    bool active = false;
  };
  struct Chunk {
    uint32_t request = 0;
    uint64_t offset = 0;   // aligned file offset of the chunk
    uint64_t len = 0;      // bytes to read
    uint64_t want_lo = 0;  // wanted file bytes [want_lo, want_hi)
    uint64_t want_hi = 0;
    uint8_t* want_dst = nullptr;  // where want_lo lands in dst
    uint64_t done = 0;     // bytes of [offset, offset+len) already read
    int staging = -1;      // staging buffer, -1 = read straight into want_dst
    int retries = 0;
  };

  void Plan(uint32_t request);
  void Pump();
  void Issue(uint32_t op_slot);
  void HandleResult(const IoResult& r);
  void FinishChunk(uint32_t op_slot, absl::Status status);
  void Fail(Request& rq, absl::Status status);
  void Complete(uint32_t request);

  std::string kind_;
  std::shared_ptr<const ExpertLayout> layout_;
  ReaderOptions options_;
  bool direct_;
  uint64_t align_;
  std::unique_ptr<StagingRing> staging_;
  std::unique_ptr<IoQueue> queue_;

  std::vector<Request> requests_;
  std::vector<uint32_t> free_requests_;
  size_t active_requests_ = 0;
  std::deque<Chunk> queued_;           // not yet issued (or to be reissued)
  std::vector<Chunk> in_flight_ops_;   // indexed by op slot; queue_depth entries
  std::vector<bool> op_busy_;
  std::vector<uint32_t> free_ops_;
  std::vector<int> free_staging_;
  std::vector<ExpertReadCompletion> ready_;
  std::vector<IoResult> results_;  // scratch
  ReaderStats stats_;
};

// Opens `path` read-only, with O_DIRECT when `*direct` (falling back to
// buffered I/O when the file system refuses it, said once on stderr, and
// clearing *direct). Checks the file still holds `expected_size` bytes.
absl::StatusOr<int> OpenExpertFile(const std::string& path, uint64_t expected_size, bool* direct);

// What a reader's factory sets up before its queue: the validated options,
// the open file (fd owned by the caller) and the staging ring.
struct ReaderFile {
  int fd = -1;
  bool direct = false;  // opened with O_DIRECT
  std::unique_ptr<StagingRing> staging;
};
absl::StatusOr<ReaderFile> OpenReaderFile(const ExpertLayout& layout, const ReaderOptions& options,
                                          HostAllocator* staging);

// Prints `message` on stderr the first time it is passed (per process).
void SayOnce(const std::string& message);

// "path: read of N bytes at offset X (expert L/E): <strerror>".
absl::Status ReadError(const std::string& path, uint64_t len, uint64_t offset, int layer,
                       int expert, int err);

}  // namespace moestream::io

#endif  // MOESTREAM_IO_CHUNKED_READER_H_
