// The scheduler on a real (generated) MoE model with its experts offloaded
// through a small expert cache: slots decoding together give each request
// what it gets alone, requests end by length, stop string, cancel and error
// without disturbing the others, and the routing counts add up.
#include "server/scheduler.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gen/model_gen.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace moestream::server {
namespace {

using engine::CachedExpertProvider;
using ::moestream::testing::ScratchDir;

constexpr int64_t kCtx = 96;
constexpr int kLayers = 2, kExperts = 8, kTopK = 2;

struct Result {
  std::string text;
  FinishReason reason = FinishReason::kNone;
  absl::Status error;
  int64_t completion_tokens = 0;
};

// The whole reply; a request that does not finish within a minute is a
// failure (reported as kNone), not a hang.
Result Collect(const std::shared_ptr<Request>& r) {
  Result out;
  RequestEvents ev;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  do {
    ev = r->WaitEvents(absl::Milliseconds(50));
    out.text += ev.text;
  } while (!ev.finished && std::chrono::steady_clock::now() < deadline);
  if (!ev.finished) {
    ADD_FAILURE() << "request " << r->id() << " did not finish";
    return out;
  }
  out.reason = ev.finish_reason;
  out.error = ev.error;
  out.completion_tokens = ev.completion_tokens;
  return out;
}

GenerationParams Greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
  GenerationParams p;
  p.prompt = std::move(prompt);
  p.max_tokens = max_tokens;
  p.temperature = 0;
  return p;
}

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    gen::GenOptions g;
    g.layers = kLayers;
    g.hidden = 128;
    g.heads = 2;
    g.kv_heads = 1;
    g.head_dim = 64;
    g.experts = kExperts;
    g.top_k = kTopK;
    g.expert_ffn = 128;
    g.ffn = 128;
    g.vocab = 512;
    g.context = kCtx;
    g.threads = 2;
    ASSERT_TRUE(gen::GenerateModel(g, dir_->Path("moe.gguf")).ok());
  }
  static void TearDownTestSuite() { delete dir_; }

  // A server core over the model: experts on the host, 3 device slots (of
  // 16 experts), `parallel` sequence slots.
  void Start(int parallel) {
    engine::OffloadOptions o;
    o.device_budget_bytes = uint64_t(1) << 40;
    o.experts_on = "host";
    o.slots = 3;
    o.n_ctx = kCtx;
    engine::LoadOptions lo;
    lo.upload_routed_experts = false;
    lo.provider_factory = CachedExpertProvider::Factory(o, &offload_);
    kernels::BackendOptions bo;
    bo.kind = "cpu";
    bo.threads = 1;
    engine::EngineOptions eo;
    eo.n_ctx = kCtx;
    eo.n_batch = 32;
    auto m = engine::LoadModel(dir_->Path("moe.gguf"), bo, eo, lo);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = *std::move(m);
    SchedulerOptions so;
    so.parallel = parallel;
    so.engine = eo;
    so.idle_poll = std::chrono::milliseconds(5);
    queue_ = std::make_unique<RequestQueue>(RequestQueueOptions{.max_waiting = 64});
    auto s = Scheduler::Create(model_.get(), offload_, &codec_, queue_.get(), &metrics_, so);
    ASSERT_TRUE(s.ok()) << s.status();
    scheduler_ = *std::move(s);
    scheduler_->Start();
  }
  void TearDown() override {
    if (scheduler_) scheduler_->Stop();
  }

  std::shared_ptr<Request> Submit(GenerationParams p) {
    auto r = std::make_shared<Request>(std::move(p));
    EXPECT_TRUE(queue_->Push(r).ok());
    return r;
  }

  static std::vector<std::vector<int32_t>> Prompts() {
    return {{1, 2, 3, 4, 5}, {400, 17, 9}, {33, 33, 33, 33, 33, 33, 33, 33}, {250}};
  }

  static ScratchDir* dir_;
  TextCodec codec_{nullptr, std::nullopt, 512};  // byte ids: each id reads " <id>"
  std::unique_ptr<RequestQueue> queue_;  // a stopped scheduler closes its queue
  Metrics metrics_;
  CachedExpertProvider* offload_ = nullptr;
  std::unique_ptr<engine::LoadedModel> model_;
  std::unique_ptr<Scheduler> scheduler_;
};
ScratchDir* SchedulerTest::dir_ = nullptr;

TEST_F(SchedulerTest, ParallelSlotsGiveWhatEachRequestGetsAlone) {
  std::vector<std::string> alone;
  {
    Start(1);
    for (const auto& p : Prompts()) {
      Result r = Collect(Submit(Greedy(p, 12)));
      ASSERT_EQ(r.reason, FinishReason::kLength) << r.error;
      EXPECT_EQ(r.completion_tokens, 12);
      alone.push_back(r.text);
    }
    scheduler_->Stop();
    scheduler_.reset();
    model_.reset();
  }
  auto counter = [&](const std::string& name) {
    const std::string text = metrics_.Prometheus();
    const size_t at = text.find("\n" + name + " ");
    EXPECT_NE(at, std::string::npos) << name;
    return at == std::string::npos ? 0.0 : std::stod(text.substr(at + name.size() + 2));
  };
  const double steps_alone = counter("moestream_decode_steps_total");
  const double seqs_alone = counter("moestream_decode_step_sequences_total");
  EXPECT_EQ(steps_alone, seqs_alone);
  Start(3);
  // Four clients at once into three slots: one waits, joins when a slot frees.
  std::vector<Result> together(Prompts().size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < Prompts().size(); ++i) {
    clients.emplace_back([&, i] { together[i] = Collect(Submit(Greedy(Prompts()[i], 12))); });
  }
  for (std::thread& t : clients) t.join();
  for (size_t i = 0; i < alone.size(); ++i) {
    EXPECT_EQ(together[i].reason, FinishReason::kLength) << together[i].error;
    EXPECT_EQ(together[i].text, alone[i]) << "prompt " << i;
  }
  // Slots decoded together: fewer forwards than sequences stepped.
  const double steps = counter("moestream_decode_steps_total") - steps_alone;
  const double seqs = counter("moestream_decode_step_sequences_total") - seqs_alone;
  EXPECT_EQ(seqs, double(Prompts().size() * 11));  // 12 tokens: 1 from the prefill, 11 decoded
  EXPECT_LT(steps, seqs);
  // The expert cache was shared and used: hits and loads across the slots.
  const engine::OffloadStats s = offload_->stats();
  EXPECT_GT(s.cache.accesses, 0u);
  EXPECT_GT(s.cache.loads, 0u);
}

TEST_F(SchedulerTest, RoutingCountsAddUpAndMetricsSettle) {
  Start(2);
  const std::vector<int32_t> prompt = {5, 6, 7, 8, 9, 10, 11};
  Result r = Collect(Submit(Greedy(prompt, 9)));
  ASSERT_EQ(r.reason, FinishReason::kLength) << r.error;
  // Every token fed to the model (the prompt and all generated but the
  // last) chose top-k experts in every layer.
  const int64_t fed = int64_t(prompt.size()) + 9 - 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a publish after the finish
  const nlohmann::json live = metrics_.LiveJson();
  ASSERT_EQ(live["layers"], kLayers);
  ASSERT_EQ(live["experts"], kExperts);
  for (int l = 0; l < kLayers; ++l) {
    uint64_t n = 0;
    for (int e = 0; e < kExperts; ++e) n += live["uses"][l * kExperts + e].get<uint64_t>();
    EXPECT_EQ(n, uint64_t(fed * kTopK)) << "layer " << l;
  }
  EXPECT_EQ(live["offload"], true);
  EXPECT_EQ(live["expert_slots"], 3);
  int resident = 0;
  for (const auto& v : live["resident"]) resident += v.get<int>() == 2;
  EXPECT_GE(resident, 1);
  EXPECT_LE(resident, 3);
  EXPECT_EQ(live["slots_in_use"], 0);
  EXPECT_EQ(live["generated_tokens"], 9);
}

TEST_F(SchedulerTest, StopStringEndsTheReplyBeforeIt) {
  Start(1);
  Result full = Collect(Submit(Greedy({1, 2, 3}, 6)));
  ASSERT_EQ(full.reason, FinishReason::kLength);
  // The third generated id's text, e.g. " 305": stop there.
  std::vector<std::string> ids = absl::StrSplit(full.text.substr(1), ' ');
  ASSERT_EQ(ids.size(), 6u);
  GenerationParams p = Greedy({1, 2, 3}, 6);
  const std::string stop = " " + ids[2];
  p.stop = {stop};
  Result cut = Collect(Submit(p));
  EXPECT_EQ(cut.reason, FinishReason::kStop);
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
}

TEST_F(SchedulerTest, CancelFreesTheSlotForTheNext) {
  Start(1);
  auto long_one = Submit(Greedy({1, 2}, 0));  // up to the context
  RequestEvents ev = long_one->WaitEvents(absl::Seconds(30));
  ASSERT_FALSE(ev.text.empty());
  long_one->Cancel();
  Result r = Collect(long_one);
  EXPECT_EQ(r.reason, FinishReason::kCancelled);
  EXPECT_LT(r.completion_tokens, kCtx - 2);
  Result next = Collect(Submit(Greedy({3}, 4)));
  EXPECT_EQ(next.reason, FinishReason::kLength);
  EXPECT_EQ(next.completion_tokens, 4);
}

TEST_F(SchedulerTest, ContextEndIsLengthAndBadRequestsDoNotStopTheServer) {
  Start(2);
  Result r = Collect(Submit(Greedy({1, 2}, 0)));
  EXPECT_EQ(r.reason, FinishReason::kLength);
  EXPECT_EQ(r.completion_tokens, kCtx - 2 + 1);  // the last one sampled is never fed
  // Past the context, and an id outside the vocabulary (the HTTP layer
  // refuses both; the scheduler must survive them anyway).
  Result too_long = Collect(Submit(Greedy(std::vector<int32_t>(kCtx, 1), 4)));
  EXPECT_EQ(too_long.reason, FinishReason::kError);
  Result bad_id = Collect(Submit(Greedy({1, 99999}, 4)));
  EXPECT_EQ(bad_id.reason, FinishReason::kError);
  EXPECT_FALSE(bad_id.error.ok());
  Result after = Collect(Submit(Greedy({4, 5}, 3)));
  EXPECT_EQ(after.reason, FinishReason::kLength);
  EXPECT_EQ(after.completion_tokens, 3);
}

TEST_F(SchedulerTest, StopFinishesWaitingAndRunningRequests) {
  Start(1);
  auto running = Submit(Greedy({1}, 0));
  auto waiting = Submit(Greedy({2}, 0));
  ASSERT_FALSE(running->WaitEvents(absl::Seconds(30)).text.empty());
  scheduler_->Stop();
  EXPECT_EQ(Collect(running).reason, FinishReason::kError);
  Result w = Collect(waiting);
  EXPECT_EQ(w.reason, FinishReason::kError);
  EXPECT_EQ(w.error.code(), absl::StatusCode::kUnavailable);
}

TEST(SchedulerOptionsTest, ParallelIsRangeChecked) {
  SchedulerOptions o;
  o.parallel = 0;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
  o.parallel = 257;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
  o.parallel = 4;
  EXPECT_TRUE(o.Validate().ok());
}

}  // namespace
}  // namespace moestream::server
