#include "io/uring_reader.h"

#include <liburing.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "io/chunked_reader.h"

namespace moestream::io {
namespace {

class UringQueue : public IoQueue {
 public:
  ~UringQueue() override {
    if (ring_ok_) io_uring_queue_exit(&ring_);
    if (fd_ >= 0) ::close(fd_);
  }

  // Takes ownership of fd. kUnavailable when no ring can be set up.
  absl::Status Init(const std::string& path, int fd, int depth, const StagingRing& staging) {
    fd_ = fd;
    int rc = io_uring_queue_init(unsigned(depth), &ring_, 0);
    if (rc < 0) {
      return absl::UnavailableError(
          absl::StrCat("io_uring_queue_init(", depth, "): ", std::strerror(-rc)));
    }
    ring_ok_ = true;
    if (io_uring_register_files(&ring_, &fd_, 1) == 0) {
      fixed_file_ = true;
    }
    std::vector<iovec> iov(size_t(staging.count()));
    for (int i = 0; i < staging.count(); ++i) {
      iov[size_t(i)] = {staging.buffer(i), staging.bytes_each()};
    }
    rc = io_uring_register_buffers(&ring_, iov.data(), unsigned(iov.size()));
    if (rc == 0) {
      fixed_buffers_ = true;
    } else {
      SayOnce(absl::StrCat("io_uring: cannot register ", staging.count(), " staging buffers of ",
                           staging.bytes_each(), " bytes (", std::strerror(-rc),
                           "; raise RLIMIT_MEMLOCK); using unregistered reads"));
    }
    return absl::OkStatus();
  }

  // One synchronous read of up to 4 KiB at offset 0 into `buf` (index 0 of
  // the registered buffers): does io_uring with this file's O_DIRECT work?
  absl::Status Probe(const std::string& path, uint8_t* buf) {
    Submit({0, 0, 4096, buf, 0});
    Flush();
    std::vector<IoResult> r;
    while (r.empty()) Poll(&r, true);
    if (r[0].res < 0) {
      return absl::UnavailableError(absl::StrCat(path, ": io_uring probe read failed: ",
                                                 std::strerror(int(-r[0].res))));
    }
    return absl::OkStatus();
  }

  void Submit(const IoOp& op) override {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // never with in-flight <= depth; flush and retry once
      Flush();
      sqe = io_uring_get_sqe(&ring_);
    }
    if (sqe == nullptr) {
      failed_.push_back({op.id, -EBUSY});
      return;
    }
    int file = fixed_file_ ? 0 : fd_;
    if (fixed_buffers_ && op.buf_index >= 0) {
      io_uring_prep_read_fixed(sqe, file, op.buf, unsigned(op.len), op.offset, op.buf_index);
    } else {
      io_uring_prep_read(sqe, file, op.buf, unsigned(op.len), op.offset);
    }
    if (fixed_file_) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, op.id);
    pending_.push_back(op.id);
  }

  void Flush() override {
    while (!pending_.empty()) {
      int rc = io_uring_submit(&ring_);
      if (rc >= 0) {
        pending_.erase(pending_.begin(), pending_.begin() + std::min<size_t>(size_t(rc), pending_.size()));
        if (rc == 0) break;
        continue;
      }
      if (rc == -EINTR || rc == -EAGAIN) continue;
      // The ring refused the batch: fail those ops rather than lose them.
      for (uint64_t id : pending_) failed_.push_back({id, int64_t(rc)});
      pending_.clear();
    }
  }

  void Poll(std::vector<IoResult>* out, bool wait) override {
    if (!failed_.empty()) {
      out->insert(out->end(), failed_.begin(), failed_.end());
      failed_.clear();
      wait = false;
    }
    if (wait) {
      io_uring_cqe* cqe = nullptr;
      int rc;
      do {
        rc = io_uring_wait_cqe(&ring_, &cqe);
      } while (rc == -EINTR || rc == -EAGAIN);
    }
    unsigned head, n = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      out->push_back({io_uring_cqe_get_data64(cqe), int64_t(cqe->res)});
      ++n;
    }
    io_uring_cq_advance(&ring_, n);
  }

 private:
  io_uring ring_{};
  bool ring_ok_ = false;
  int fd_ = -1;
  bool fixed_file_ = false;
  bool fixed_buffers_ = false;
  std::vector<uint64_t> pending_;  // prepared, not yet accepted by the kernel
  std::vector<IoResult> failed_;
};

class UringChunkedReader : public ChunkedReader {
 public:
  UringChunkedReader(std::shared_ptr<const ExpertLayout> layout, ReaderOptions o, bool direct,
                     std::unique_ptr<StagingRing> staging, std::unique_ptr<UringQueue> q)
      : ChunkedReader("uring", std::move(layout), o, direct, std::move(staging)) {
    set_queue(std::move(q));
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExpertReader>> UringReader::Open(
    std::shared_ptr<const ExpertLayout> layout, const ReaderOptions& options,
    HostAllocator* staging) {
  MOESTREAM_ASSIGN_OR_RETURN(ReaderFile f, OpenReaderFile(*layout, options, staging));
  auto q = std::make_unique<UringQueue>();
  MOESTREAM_RETURN_IF_ERROR(q->Init(layout->path(), f.fd, options.queue_depth, *f.staging));
  MOESTREAM_RETURN_IF_ERROR(q->Probe(layout->path(), f.staging->buffer(0)));
  return std::unique_ptr<ExpertReader>(new UringChunkedReader(
      std::move(layout), options, f.direct, std::move(f.staging), std::move(q)));
}

}  // namespace moestream::io
