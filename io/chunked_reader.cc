#include "io/chunked_reader.h"

#include <algorithm>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "absl/base/attributes.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/errno_status.h"
#include "base/mutex.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "io/checksum.h"

namespace moestream::io {

absl::Status ReaderOptions::Validate() const {
  if (kind != "auto" && kind != "uring" && kind != "pread") {
    return absl::InvalidArgumentError(
        absl::StrCat("reader kind '", kind, "': expected auto, uring or pread"));
  }
  if (queue_depth < 1 || queue_depth > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("reader queue_depth ", queue_depth, ": expected 1..4096"));
  }
  if (block_bytes < 4096 || block_bytes % 4096 != 0 || block_bytes > (1ull << 30)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reader block_bytes ", block_bytes, ": expected a multiple of 4096 up to 1 GiB"));
  }
  if (threads < 1 || threads > 256) {
    return absl::InvalidArgumentError(absl::StrCat("reader threads ", threads, ": expected 1..256"));
  }
  if (max_retries < 0) {
    return absl::InvalidArgumentError(absl::StrCat("reader max_retries ", max_retries, ": expected >= 0"));
  }
  return absl::OkStatus();
}

absl::Status ReadError(const std::string& path, uint64_t len, uint64_t offset, int layer,
                       int expert, int err) {
  std::string msg = absl::StrCat(path, ": read of ", len, " bytes at offset ", offset,
                                 " (expert ", layer, "/", expert, "): ", std::strerror(err));
  if (err == ENOMEM || err == EBUSY) return absl::ResourceExhaustedError(msg);
  if (err == EINVAL) return absl::InvalidArgumentError(msg);
  return absl::DataLossError(msg);
}

// ------------------------------------------------------------ StagingRing --

absl::StatusOr<std::unique_ptr<StagingRing>> StagingRing::Create(int count, uint64_t bytes_each,
                                                                  HostAllocator* alloc) {
  std::unique_ptr<StagingRing> r(new StagingRing);
  r->count_ = count;
  r->bytes_each_ = bytes_each;
  r->alloc_ = alloc;
  uint64_t total = uint64_t(count) * bytes_each;
  if (alloc != nullptr) {
    MOESTREAM_ASSIGN_OR_RETURN(void* p, alloc->Alloc(total, "reader staging ring"));
    if (reinterpret_cast<uintptr_t>(p) % 4096 != 0) {
      alloc->Free(p);
      return absl::InvalidArgumentError("reader staging ring: allocator returned memory not 4 KiB-aligned");
    }
    r->base_ = static_cast<uint8_t*>(p);
  } else {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, total) != 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("reader staging ring: cannot allocate ", total, " bytes"));
    }
    r->base_ = static_cast<uint8_t*>(p);
  }
  return r;
}

StagingRing::~StagingRing() {
  if (alloc_ != nullptr) {
    alloc_->Free(base_);
  } else {
    std::free(base_);
  }
}

// ---------------------------------------------------------- ChunkedReader --

ChunkedReader::ChunkedReader(std::string kind, std::shared_ptr<const ExpertLayout> layout,
                             ReaderOptions options, bool direct,
                             std::unique_ptr<StagingRing> staging)
    : kind_(std::move(kind)),
      layout_(std::move(layout)),
      options_(std::move(options)),
      direct_(direct),
      align_(direct ? 4096 : 1),
      staging_(std::move(staging)) {
  int depth = options_.queue_depth;
  in_flight_ops_.resize(size_t(depth));
  op_busy_.assign(size_t(depth), false);
  for (int i = depth - 1; i >= 0; --i) free_ops_.push_back(uint32_t(i));
  for (int i = staging_->count() - 1; i >= 0; --i) free_staging_.push_back(i);
}

ChunkedReader::~ChunkedReader() { Drain(); }

void ChunkedReader::Drain() {
  if (queue_ == nullptr) return;
  for (Request& rq : requests_) {
    if (rq.active && rq.status.ok()) rq.status = absl::CancelledError("reader closed");
  }
  while (free_ops_.size() < in_flight_ops_.size()) {
    results_.clear();
    queue_->Poll(&results_, /*wait=*/true);
    for (const IoResult& r : results_) HandleResult(r);
    Pump();
  }
}

absl::Status ChunkedReader::Submit(const ExpertReadRequest& req) {
  MOESTREAM_ASSIGN_OR_RETURN(const ExpertInfo* info, layout_->Get(req.layer, req.expert));
  if (req.dst == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("read of expert ", req.layer, "/", req.expert,
                                                   ": null destination buffer"));
  }
  uint32_t idx;
  if (!free_requests_.empty()) {
    idx = free_requests_.back();
    free_requests_.pop_back();
  } else {
    idx = uint32_t(requests_.size());
    requests_.emplace_back();
  }
  Request& rq = requests_[idx];
  rq.req = req;
  rq.info = info;
  rq.status = absl::OkStatus();
  rq.active = true;
  rq.chunks_left = 0;
  ++active_requests_;
  Plan(idx);
  if (requests_[idx].chunks_left == 0) Complete(idx);
  Pump();
  return absl::OkStatus();
}

void ChunkedReader::Plan(uint32_t request) {
  Request& rq = requests_[request];
  const uint64_t block = options_.block_bytes;
  for (const ExpertSegment& seg : rq.info->segment_span()) {
    if (seg.bytes == 0) continue;
    uint64_t lo = seg.file_offset, hi = seg.file_offset + seg.bytes;
    uint64_t a = AlignDown(lo, align_), b = AlignUp(hi, align_);
    for (uint64_t c = a; c < b; c += block) {
      Chunk ch;
      ch.request = request;
      ch.offset = c;
      ch.len = std::min(c + block, b) - c;
      ch.want_lo = std::max(c, lo);
      ch.want_hi = std::min(c + ch.len, hi);
      ch.want_dst = rq.req.dst + seg.blob_offset + (ch.want_lo - lo);
      bool whole = ch.want_lo == c && ch.want_hi == c + ch.len;
      bool aligned_dst = reinterpret_cast<uintptr_t>(ch.want_dst) % align_ == 0;
      bool direct_ok = whole && (!direct_ || (options_.zero_copy && aligned_dst));
      ch.staging = direct_ok ? -1 : -2;  // -2: needs a staging buffer when issued
      queued_.push_back(ch);
      ++rq.chunks_left;
    }
  }
}

void ChunkedReader::Pump() {
  bool issued = false;
  while (!queued_.empty()) {
    Chunk& c = queued_.front();
    Request& rq = requests_[c.request];
    if (!rq.status.ok()) {  // its expert already failed: drop the chunk
      if (c.staging >= 0) free_staging_.push_back(c.staging);
      uint32_t request = c.request;
      queued_.pop_front();
      if (--rq.chunks_left == 0) Complete(request);
      continue;
    }
    if (free_ops_.empty()) break;
    if (c.staging == -2) {
      if (free_staging_.empty()) break;
      c.staging = free_staging_.back();
      free_staging_.pop_back();
    }
    uint32_t slot = free_ops_.back();
    free_ops_.pop_back();
    in_flight_ops_[slot] = c;
    op_busy_[slot] = true;
    queued_.pop_front();
    Issue(slot);
    issued = true;
  }
  if (issued) queue_->Flush();
}

void ChunkedReader::Issue(uint32_t slot) {
  const Chunk& c = in_flight_ops_[slot];
  IoOp op;
  op.id = slot;
  op.offset = c.offset + c.done;
  op.len = c.len - c.done;
  if (c.staging >= 0) {
    op.buf = staging_->buffer(c.staging) + c.done;
    op.buf_index = c.staging;
    ++stats_.staged_ops;
  } else {
    op.buf = c.want_dst + c.done;
  }
  ++stats_.ops;
  queue_->Submit(op);
}

void ChunkedReader::HandleResult(const IoResult& r) {
  MOESTREAM_CHECK(r.id < in_flight_ops_.size() && op_busy_[r.id]) << "stray io result " << r.id;
  uint32_t slot = uint32_t(r.id);
  Chunk& c = in_flight_ops_[slot];
  Request& rq = requests_[c.request];
  if (!rq.status.ok()) {  // draining a failed expert
    FinishChunk(slot, absl::OkStatus());
    return;
  }
  const std::string& path = layout_->path();
  int layer = rq.req.layer, expert = rq.req.expert;
  auto requeue = [&] {
    ++stats_.retries;
    queued_.push_front(c);
    op_busy_[slot] = false;
    free_ops_.push_back(slot);
  };
  if (r.res < 0) {
    int err = int(-r.res);
    if ((err == EAGAIN || err == EINTR) && c.retries < options_.max_retries) {
      ++c.retries;
      requeue();
      return;
    }
    FinishChunk(slot, ReadError(path, c.len - c.done, c.offset + c.done, layer, expert, err));
    return;
  }
  stats_.bytes_read += uint64_t(r.res);
  uint64_t before = c.done;
  c.done += uint64_t(r.res);
  if (c.offset + c.done >= c.want_hi) {
    if (c.staging >= 0) {
      std::memcpy(c.want_dst, staging_->buffer(c.staging) + (c.want_lo - c.offset),
                  c.want_hi - c.want_lo);
    }
    FinishChunk(slot, absl::OkStatus());
    return;
  }
  uint64_t at = c.offset + c.done;
  if (r.res == 0 || (direct_ && c.done % align_ != 0)) {
    // End of file before the bytes this expert needs: the file shrank.
    FinishChunk(slot, absl::DataLossError(absl::StrCat(
                          path, ": file truncated: end of file at offset ", at,
                          " but expert ", layer, "/", expert, " needs bytes up to offset ",
                          c.want_hi, " (file was ", layout_->file_size(), " bytes when opened)")));
    return;
  }
  c.done = AlignDown(c.done, align_);
  if (c.done == before && ++c.retries > options_.max_retries) {
    FinishChunk(slot, absl::DataLossError(absl::StrCat(
                          path, ": short reads at offset ", at, " (expert ", layer, "/", expert,
                          ") made no progress after ", options_.max_retries, " retries")));
    return;
  }
  requeue();
}

void ChunkedReader::FinishChunk(uint32_t slot, absl::Status status) {
  Chunk& c = in_flight_ops_[slot];
  if (c.staging >= 0) free_staging_.push_back(c.staging);
  uint32_t request = c.request;
  op_busy_[slot] = false;
  free_ops_.push_back(slot);
  Request& rq = requests_[request];
  if (!status.ok()) Fail(rq, std::move(status));
  if (--rq.chunks_left == 0) Complete(request);
}

void ChunkedReader::Fail(Request& rq, absl::Status status) {
  if (rq.status.ok()) rq.status = std::move(status);
}

void ChunkedReader::Complete(uint32_t request) {
  Request& rq = requests_[request];
  const ExpertInfo& info = *rq.info;
  if (rq.status.ok() && info.checksum.has_value() && options_.verify_checksums) {
    uint64_t got = Xxh64(rq.req.dst, info.blob_bytes);
    if (got != *info.checksum) {
      rq.status = absl::DataLossError(absl::StrFormat(
          "%s: checksum mismatch in expert %d/%d (blob of %d bytes at offset %d): stored "
          "%016x, computed %016x",
          layout_->path(), info.layer, info.expert, info.blob_bytes,
          info.segments[0].file_offset, *info.checksum, got));
    }
  }
  ++stats_.experts_read;
  if (rq.status.ok()) {
    stats_.bytes_delivered += info.blob_bytes;
  } else {
    ++stats_.experts_failed;
  }
  ready_.push_back({rq.req.tag, rq.req.layer, rq.req.expert, std::move(rq.status)});
  rq.status = absl::OkStatus();
  rq.active = false;
  free_requests_.push_back(request);
  --active_requests_;
}

size_t ChunkedReader::Reap(std::vector<ExpertReadCompletion>* out, bool wait) {
  auto poll = [&](bool block) {
    results_.clear();
    queue_->Poll(&results_, block);
    for (const IoResult& r : results_) HandleResult(r);
    Pump();
  };
  Pump();
  if (free_ops_.size() < in_flight_ops_.size()) poll(false);
  while (wait && ready_.empty() && free_ops_.size() < in_flight_ops_.size()) poll(true);
  size_t n = ready_.size();
  for (ExpertReadCompletion& c : ready_) out->push_back(std::move(c));
  ready_.clear();
  return n;
}

absl::Status ReadExpertSync(ExpertReader& reader, int layer, int expert, uint8_t* dst) {
  if (reader.in_flight() != 0) {
    return absl::FailedPreconditionError("ReadExpertSync: reads already in flight");
  }
  MOESTREAM_RETURN_IF_ERROR(reader.Submit({layer, expert, dst, 0}));
  std::vector<ExpertReadCompletion> done;
  while (done.empty()) {
    if (reader.Reap(&done, /*wait=*/true) == 0 && reader.in_flight() == 0) {
      return absl::InternalError("ReadExpertSync: read vanished");
    }
  }
  return done[0].status;
}

}  // namespace moestream::io

namespace moestream::io {

void SayOnce(const std::string& message) {
  // Constant-initialised (no first-use race); the set is never destroyed, so
  // a message may come from any thread until exit.
  ABSL_CONST_INIT static Mutex mu(absl::kConstInit);
  static auto* said = new std::set<std::string>();
  MutexLock lock(&mu);
  if (said->insert(message).second) std::fprintf(stderr, "moestream: %s\n", message.c_str());
}

absl::StatusOr<int> OpenExpertFile(const std::string& path, uint64_t expected_size, bool* direct) {
  int fd = -1;
  if (*direct) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0 && errno == EINVAL) {
      SayOnce(absl::StrCat(path, ": file system refuses O_DIRECT; reading through the page cache"));
      *direct = false;
    }
  }
  if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno, path, "cannot open");
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || uint64_t(st.st_size) < expected_size) {
    uint64_t size = uint64_t(st.st_size);
    ::close(fd);
    return absl::DataLossError(absl::StrCat(path, ": file is ", size, " bytes, expected at least ",
                                            expected_size, " (truncated or replaced?)"));
  }
  return fd;
}

absl::StatusOr<ReaderFile> OpenReaderFile(const ExpertLayout& layout, const ReaderOptions& options,
                                          HostAllocator* staging) {
  MOESTREAM_RETURN_IF_ERROR(options.Validate());
  ReaderFile f;
  f.direct = options.direct_io;
  MOESTREAM_ASSIGN_OR_RETURN(f.fd, OpenExpertFile(layout.path(), layout.file_size(), &f.direct));
  auto ring = StagingRing::Create(options.queue_depth, options.block_bytes, staging);
  if (!ring.ok()) {
    ::close(f.fd);
    return ring.status();
  }
  f.staging = std::move(ring).value();
  return f;
}

}  // namespace moestream::io
