#include "server/request_queue.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace moestream::server {
namespace {

// std::condition_variable_any waits on anything with lock()/unlock(): this
// lends it our Mutex (so ThreadSanitizer sees every acquire and release).
struct CvLock {
  Mutex* mu;
  void lock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu->Lock(); }
  void unlock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu->Unlock(); }
};

std::chrono::nanoseconds ToChrono(absl::Duration d) {
  return std::chrono::nanoseconds(absl::ToInt64Nanoseconds(d));
}

std::atomic<uint64_t> next_request_id{1};

}  // namespace

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "";
}

Request::Request(GenerationParams params)
    : params_(std::move(params)),
      id_(next_request_id.fetch_add(1, std::memory_order_relaxed)),
      created_(std::chrono::steady_clock::now()) {}

void Request::Emit(const std::string& text, int64_t new_tokens) {
  {
    MutexLock lock(&mu_);
    if (finished_) return;
    text_ += text;
    new_tokens_ += new_tokens;
  }
  cv_.notify_all();
}

void Request::Finish(FinishReason reason, int64_t prompt_tokens, int64_t completion_tokens,
                     absl::Status error) {
  {
    MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    reason_ = reason;
    error_ = std::move(error);
    prompt_tokens_ = prompt_tokens;
    completion_tokens_ = completion_tokens;
  }
  cv_.notify_all();
}

RequestEvents Request::WaitEvents(absl::Duration timeout) {
  MutexLock lock(&mu_);
  CvLock cv_lock{&mu_};
  cv_.wait_for(cv_lock, ToChrono(timeout), [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return finished_ || !text_.empty() || new_tokens_ > 0;
  });
  RequestEvents ev;
  ev.text = std::move(text_);
  text_.clear();
  ev.new_tokens = new_tokens_;
  new_tokens_ = 0;
  ev.finished = finished_;
  ev.finish_reason = reason_;
  ev.error = error_;
  ev.prompt_tokens = prompt_tokens_;
  ev.completion_tokens = completion_tokens_;
  return ev;
}

bool Request::finished() const {
  MutexLock lock(&mu_);
  return finished_;
}

absl::Status RequestQueueOptions::Validate() const {
  if (max_waiting < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--queue-max ", max_waiting, ": at least 1 request must be able to wait"));
  }
  return absl::OkStatus();
}

absl::Status RequestQueue::Push(std::shared_ptr<Request> r) {
  {
    MutexLock lock(&mu_);
    if (closed_) return absl::UnavailableError("the server is shutting down");
    if (static_cast<int64_t>(waiting_.size()) >= opt_.max_waiting) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the server is busy: ", waiting_.size(), " requests are waiting"));
    }
    waiting_.push_back(std::move(r));
  }
  cv_.notify_all();
  return absl::OkStatus();
}

std::shared_ptr<Request> RequestQueue::TryPop() {
  MutexLock lock(&mu_);
  if (waiting_.empty()) return nullptr;
  std::shared_ptr<Request> r = std::move(waiting_.front());
  waiting_.pop_front();
  return r;
}

void RequestQueue::WaitNonEmpty(absl::Duration timeout) {
  MutexLock lock(&mu_);
  CvLock cv_lock{&mu_};
  cv_.wait_for(cv_lock, ToChrono(timeout),
               [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return closed_ || !waiting_.empty(); });
}

std::vector<std::shared_ptr<Request>> RequestQueue::Close() {
  std::vector<std::shared_ptr<Request>> left;
  {
    MutexLock lock(&mu_);
    closed_ = true;
    left.assign(std::make_move_iterator(waiting_.begin()), std::make_move_iterator(waiting_.end()));
    waiting_.clear();
  }
  cv_.notify_all();
  return left;
}

int64_t RequestQueue::size() const {
  MutexLock lock(&mu_);
  return static_cast<int64_t>(waiting_.size());
}

}  // namespace moestream::server
