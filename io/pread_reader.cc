#include "io/pread_reader.h"

#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "base/status_macros.h"
#include "io/chunked_reader.h"

namespace moestream::io {
namespace {

// Worker threads take ops from `todo_` and post results to `done_`; both
// guarded by `mu_`.
class PreadQueue : public IoQueue {
 public:
  PreadQueue(int fd, int threads) : fd_(fd) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~PreadQueue() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    todo_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
    ::close(fd_);
  }

  void Submit(const IoOp& op) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      todo_.push_back(op);
    }
    todo_cv_.notify_one();
  }

  void Poll(std::vector<IoResult>* out, bool wait) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (wait) done_cv_.wait(lock, [this] { return !done_.empty(); });
    out->insert(out->end(), done_.begin(), done_.end());
    done_.clear();
  }

 private:
  void Work() {
    for (;;) {
      IoOp op;
      {
        std::unique_lock<std::mutex> lock(mu_);
        todo_cv_.wait(lock, [this] { return stop_ || !todo_.empty(); });
        if (todo_.empty()) return;
        op = todo_.front();
        todo_.pop_front();
      }
      ssize_t n = ::pread(fd_, op.buf, op.len, off_t(op.offset));
      IoResult r{op.id, n < 0 ? -int64_t(errno) : int64_t(n)};
      {
        std::lock_guard<std::mutex> lock(mu_);
        done_.push_back(r);
      }
      done_cv_.notify_one();
    }
  }

  int fd_;
  std::mutex mu_;
  std::condition_variable todo_cv_, done_cv_;
  std::deque<IoOp> todo_;       // guarded by mu_
  std::vector<IoResult> done_;  // guarded by mu_
  bool stop_ = false;           // guarded by mu_
  std::vector<std::thread> workers_;
};

class PreadChunkedReader : public ChunkedReader {
 public:
  PreadChunkedReader(std::shared_ptr<const ExpertLayout> layout, ReaderOptions o, bool direct,
                     std::unique_ptr<StagingRing> staging, int fd)
      : ChunkedReader("pread", std::move(layout), o, direct, std::move(staging)) {
    set_queue(std::make_unique<PreadQueue>(fd, o.threads));
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExpertReader>> PreadReader::Open(
    std::shared_ptr<const ExpertLayout> layout, const ReaderOptions& options,
    HostAllocator* staging) {
  MOESTREAM_ASSIGN_OR_RETURN(ReaderFile f, OpenReaderFile(*layout, options, staging));
  return std::unique_ptr<ExpertReader>(new PreadChunkedReader(
      std::move(layout), options, f.direct, std::move(f.staging), f.fd));
}

}  // namespace moestream::io
