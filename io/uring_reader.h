// UringReader: the NVMe tier's ExpertReader, on io_uring.
//
// Design. One ring of `queue_depth` entries, owned by the engine thread, with
// the expert file registered (IOSQE_FIXED_FILE: no fd lookup per read) and
// the staging ring — queue_depth pinned, 4 KiB-aligned buffers of
// block_bytes — registered as fixed buffers (IORING_OP_READ_FIXED: no page
// pinning per read). The file is opened with O_DIRECT, so reads bypass the
// page cache and DMA straight into pinned memory. An expert is read as the
// aligned superset of its byte ranges (three ranges from a GGUF's stacked
// tensors, one blob from a packed store), split into block_bytes reads; a
// store blob into a 4 KiB-aligned slot is read straight into the slot
// (zero copy), anything else lands in a staging buffer and its wanted bytes
// are copied out when reaped. Short reads are resubmitted from where they
// stopped, -EAGAIN is retried, any other error becomes a Status naming the
// file and offset (see io/chunked_reader.h for the state machine shared with
// the other readers).
//
// Costs. One io_uring_submit per Submit/Reap batch; no allocation per read;
// one memcpy per staged byte (none for store blobs in aligned slots).
//
// Degradation. Registering buffers needs RLIMIT_MEMLOCK headroom; when the
// kernel refuses, reads use plain IORING_OP_READ (said once). When
// io_uring_queue_init fails (old kernel, seccomp) or the probe read fails,
// Open returns kUnavailable and OpenExpertReader("auto") falls back to
// PreadReader, saying so once.
//
//   ReaderOptions o;  o.kind = "uring";  o.queue_depth = 64;  o.block_bytes = 512 << 10;
//   MOESTREAM_ASSIGN_OR_RETURN(auto r, UringReader::Open(layout, o, &pinned_alloc));
#ifndef MOESTREAM_IO_URING_READER_H_
#define MOESTREAM_IO_URING_READER_H_

#include <memory>

#include "io/expert_tier.h"

namespace moestream::io {

class UringReader {
 public:
  // kUnavailable when io_uring cannot be used here (the message says why).
  static absl::StatusOr<std::unique_ptr<ExpertReader>> Open(
      std::shared_ptr<const ExpertLayout> layout, const ReaderOptions& options,
      HostAllocator* staging = nullptr);
};

}  // namespace moestream::io

#endif  // MOESTREAM_IO_URING_READER_H_
