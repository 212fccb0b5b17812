#include "io/pread_reader.h"

#include <unistd.h>

#include <cerrno>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "base/status_macros.h"
#include "io/chunked_reader.h"

namespace moestream::io {
namespace {

// Worker threads take ops from `todo_` and post results to `done_`. `mu_`
// guards both queues and `stop_`; waiters use Mutex::Await on the condition
// they need, so no wake-up can be missed.
class PreadQueue : public IoQueue {
 public:
  PreadQueue(int fd, int threads) : fd_(fd) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~PreadQueue() override {
    {
      MutexLock lock(&mu_);
      stop_ = true;
    }
    for (std::thread& t : workers_) t.join();
    ::close(fd_);
  }

  void Submit(const IoOp& op) override {
    MutexLock lock(&mu_);
    todo_.push_back(op);
  }

  void Poll(std::vector<IoResult>* out, bool wait) override {
    MutexLock lock(&mu_);
    if (wait) mu_.Await(absl::Condition(this, &PreadQueue::HasResults));
    out->insert(out->end(), done_.begin(), done_.end());
    done_.clear();
  }

 private:
  void Work() {
    for (;;) {
      IoOp op;
      {
        MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &PreadQueue::HasWorkOrStop));
        if (todo_.empty()) return;
        op = todo_.front();
        todo_.pop_front();
      }
      ssize_t n = ::pread(fd_, op.buf, op.len, off_t(op.offset));
      IoResult r{op.id, n < 0 ? -int64_t(errno) : int64_t(n)};
      MutexLock lock(&mu_);
      done_.push_back(r);
    }
  }

  bool HasResults() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !done_.empty(); }
  bool HasWorkOrStop() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !todo_.empty(); }

  int fd_;
  Mutex mu_;
  std::deque<IoOp> todo_ ABSL_GUARDED_BY(mu_);
  std::vector<IoResult> done_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
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
