// One generation request as the HTTP threads and the scheduler share it,
// and the FIFO of requests waiting for a sequence slot.
//
//   auto r = std::make_shared<Request>(params);      // HTTP thread
//   MOESTREAM_RETURN_IF_ERROR(queue.Push(r));        // kResourceExhausted when full
//   while (true) {
//     RequestEvents ev = r->WaitEvents(absl::Milliseconds(100));
//     send(ev.text);  if (ev.finished) break;
//     if (client_gone) r->Cancel();                  // the scheduler drops it next step
//   }
//
// The scheduler thread Pop()s requests into free slots between steps and
// reports each step's output with Emit() and the end with Finish(). A
// request is finished exactly once; Cancel() is a request, not a finish: the
// scheduler sees it at its next step (or when it pops a cancelled request)
// and finishes it with FinishReason::kCancelled.
//
// Threading: every member of Request and RequestQueue is thread-safe. Each
// mutex guards the fields marked ABSL_GUARDED_BY it.
#ifndef MOESTREAM_SERVER_REQUEST_QUEUE_H_
#define MOESTREAM_SERVER_REQUEST_QUEUE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace moestream::server {

// What to generate for one request (already validated: see api.h).
struct GenerationParams {
  std::vector<int32_t> prompt;      // token ids, not empty
  int64_t max_tokens = 0;           // most tokens to generate; 0 = up to the context
  double temperature = 1.0;         // <= 0: greedy
  double top_p = 1.0;               // 1 = off
  int64_t seed = -1;                // < 0: random
  std::vector<std::string> stop;    // stop strings (not included in the output)
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
// "stop", "length", "cancelled", "error" ("" for kNone).
const char* FinishReasonName(FinishReason r);

// Everything that happened to a request since the last WaitEvents().
struct RequestEvents {
  std::string text;                  // new output text
  int64_t new_tokens = 0;            // tokens sampled since the last call
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  absl::Status error;                // set with kError
  int64_t prompt_tokens = 0;         // valid once finished
  int64_t completion_tokens = 0;     // valid once finished
};

class Request {
 public:
  explicit Request(GenerationParams params);
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  const GenerationParams& params() const { return params_; }
  uint64_t id() const { return id_; }
  std::chrono::steady_clock::time_point created() const { return created_; }

  // Asks the scheduler to stop this request (client gone). Idempotent.
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  // Scheduler side. Emit after Finish is ignored; Finish is kept once.
  void Emit(const std::string& text, int64_t new_tokens);
  void Finish(FinishReason reason, int64_t prompt_tokens, int64_t completion_tokens,
              absl::Status error = absl::OkStatus());

  // Client side: waits up to `timeout` for output or the finish, then takes
  // what has accumulated. `finished` stays set on later calls.
  RequestEvents WaitEvents(absl::Duration timeout);
  bool finished() const;

 private:
  const GenerationParams params_;
  const uint64_t id_;
  const std::chrono::steady_clock::time_point created_;
  std::atomic<bool> cancelled_{false};

  mutable Mutex mu_;
  std::condition_variable_any cv_;  // signalled on Emit and Finish, waits on mu_
  std::string text_ ABSL_GUARDED_BY(mu_);
  int64_t new_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  FinishReason reason_ ABSL_GUARDED_BY(mu_) = FinishReason::kNone;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  int64_t prompt_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t completion_tokens_ ABSL_GUARDED_BY(mu_) = 0;
};

struct RequestQueueOptions {
  // Most requests waiting for a slot; Push beyond it is kResourceExhausted
  // (HTTP 503). Default 64.
  int64_t max_waiting = 64;
  absl::Status Validate() const;
};

class RequestQueue {
 public:
  explicit RequestQueue(RequestQueueOptions o) : opt_(o) {}

  // kResourceExhausted when max_waiting requests wait already;
  // kUnavailable once Close()d.
  absl::Status Push(std::shared_ptr<Request> r);
  // The oldest waiting request, or null when none waits (never blocks).
  std::shared_ptr<Request> TryPop();
  // Blocks until a request waits, Close() is called, or `timeout` passes.
  void WaitNonEmpty(absl::Duration timeout);
  // Refuses further pushes and wakes waiters; returns what was waiting.
  std::vector<std::shared_ptr<Request>> Close();
  int64_t size() const;

 private:
  const RequestQueueOptions opt_;
  mutable Mutex mu_;
  std::condition_variable_any cv_;
  std::deque<std::shared_ptr<Request>> waiting_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace moestream::server

#endif  // MOESTREAM_SERVER_REQUEST_QUEUE_H_
