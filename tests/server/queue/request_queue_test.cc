// The request queue and a request's event stream: FIFO order, the waiting
// limit, Close, Emit/Finish/WaitEvents, and many clients against one
// consumer at once (built under ThreadSanitizer by test.sh --sanitize thread).
#include "server/request_queue.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace moestream::server {
namespace {

std::shared_ptr<Request> NewRequest(int32_t first_token) {
  GenerationParams p;
  p.prompt = {first_token};
  return std::make_shared<Request>(p);
}

TEST(RequestQueueTest, PopsInArrivalOrder) {
  RequestQueue q({.max_waiting = 8});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q.Push(NewRequest(i)).ok());
  EXPECT_EQ(q.size(), 3);
  for (int i = 0; i < 3; ++i) {
    std::shared_ptr<Request> r = q.TryPop();
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->params().prompt[0], i);
  }
  EXPECT_EQ(q.TryPop(), nullptr);
}

TEST(RequestQueueTest, RefusesPastTheWaitingLimit) {
  RequestQueue q({.max_waiting = 2});
  ASSERT_TRUE(q.Push(NewRequest(0)).ok());
  ASSERT_TRUE(q.Push(NewRequest(1)).ok());
  const absl::Status s = q.Push(NewRequest(2));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  q.TryPop();
  EXPECT_TRUE(q.Push(NewRequest(3)).ok());
}

TEST(RequestQueueTest, CloseReturnsTheWaitingAndRefusesMore) {
  RequestQueue q({.max_waiting = 8});
  ASSERT_TRUE(q.Push(NewRequest(7)).ok());
  std::vector<std::shared_ptr<Request>> left = q.Close();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0]->params().prompt[0], 7);
  EXPECT_EQ(q.Push(NewRequest(8)).code(), absl::StatusCode::kUnavailable);
  q.WaitNonEmpty(absl::Seconds(10));  // returns at once: closed
}

TEST(RequestQueueTest, ValidateRejectsAZeroLimit) {
  EXPECT_EQ(RequestQueueOptions{.max_waiting = 0}.Validate().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RequestTest, EventsAccumulateUntilTakenAndFinishIsKeptOnce) {
  Request r({});
  r.Emit("Hel", 1);
  r.Emit("lo", 1);
  RequestEvents ev = r.WaitEvents(absl::ZeroDuration());
  EXPECT_EQ(ev.text, "Hello");
  EXPECT_EQ(ev.new_tokens, 2);
  EXPECT_FALSE(ev.finished);
  r.Finish(FinishReason::kLength, 3, 2);
  r.Finish(FinishReason::kError, 0, 0, absl::InternalError("late"));  // ignored
  r.Emit("after", 1);                                                  // ignored
  ev = r.WaitEvents(absl::ZeroDuration());
  EXPECT_TRUE(ev.finished);
  EXPECT_EQ(ev.text, "");
  EXPECT_EQ(ev.finish_reason, FinishReason::kLength);
  EXPECT_TRUE(ev.error.ok());
  EXPECT_EQ(ev.prompt_tokens, 3);
  EXPECT_EQ(ev.completion_tokens, 2);
  EXPECT_TRUE(r.finished());
}

TEST(RequestTest, WaitTimesOutWithNothing) {
  Request r({});
  const auto t0 = std::chrono::steady_clock::now();
  RequestEvents ev = r.WaitEvents(absl::Milliseconds(30));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(25));
  EXPECT_FALSE(ev.finished);
  EXPECT_TRUE(ev.text.empty());
}

TEST(RequestTest, CancelIsSeenAndIdempotent) {
  Request r({});
  EXPECT_FALSE(r.cancelled());
  r.Cancel();
  r.Cancel();
  EXPECT_TRUE(r.cancelled());
  EXPECT_FALSE(r.finished());  // a cancel asks; the scheduler finishes
}

// Client threads push requests and read their streams while one consumer
// (the scheduler's role) pops and answers each with its own tokens: every
// client gets exactly its reply, whole and in order, and nothing is lost.
TEST(RequestQueueConcurrencyTest, ManyClientsOneConsumer) {
  constexpr int kClients = 6, kPerClient = 25, kTokens = 5;
  RequestQueue q({.max_waiting = 4});
  std::atomic<bool> done{false};
  std::thread consumer([&] {
    while (!done.load()) {
      std::shared_ptr<Request> r = q.TryPop();
      if (r == nullptr) {
        q.WaitNonEmpty(absl::Milliseconds(5));
        continue;
      }
      const int32_t tag = r->params().prompt[0];
      for (int t = 0; t < kTokens; ++t) {
        if (r->cancelled()) break;
        r->Emit(absl::StrCat(tag, ".", t, " "), 1);
      }
      r->Finish(r->cancelled() ? FinishReason::kCancelled : FinishReason::kLength, 1, kTokens);
    }
  });
  std::atomic<int> busy_refusals{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kPerClient; ++i) {
        const int32_t tag = c * 1000 + i;
        std::shared_ptr<Request> r = NewRequest(tag);
        absl::Status s;
        while (!(s = q.Push(r)).ok()) {  // a full queue: retry, as a client would
          ++busy_refusals;
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        const bool cancel = i % 5 == 4;
        if (cancel) r->Cancel();
        std::string text;
        RequestEvents ev;
        do {
          ev = r->WaitEvents(absl::Milliseconds(50));
          text += ev.text;
        } while (!ev.finished);
        std::string want;
        for (int t = 0; t < kTokens; ++t) absl::StrAppend(&want, tag, ".", t, " ");
        if (!cancel && (text != want || ev.finish_reason != FinishReason::kLength)) ++wrong;
        // A cancel races the consumer: it may come after the last token.
        // Either way the text is a prefix of the reply, and all of it
        // unless cancelled.
        if (cancel && !(ev.finish_reason == FinishReason::kCancelled && want.starts_with(text)) &&
            !(ev.finish_reason == FinishReason::kLength && text == want)) {
          ++wrong;
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  done.store(true);
  consumer.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(q.size(), 0);
}

}  // namespace
}  // namespace moestream::server
