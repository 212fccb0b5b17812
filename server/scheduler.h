// Runs the queued requests on one loaded model: N sequence slots, each an
// engine::Engine with its own KV cache, sharing the model's backend, weights
// and expert provider (so one expert cache serves every request), stepped
// by one thread.
//
//   RequestQueue queue({});  Metrics metrics;
//   MOESTREAM_ASSIGN_OR_RETURN(auto s, Scheduler::Create(model.get(), offload, &codec,
//                                                        &queue, &metrics, {.parallel = 2}));
//   s->Start();
//   ... queue.Push(request) from any thread ...
//   s->Stop();        // finishes what is running and waiting with an error
//
// The loop: take waiting requests into free slots (continuous admission:
// a request joins between steps, never waiting for the others to finish),
// then give every busy slot one step — the whole prompt as one prefill for
// a new request, else the last sampled token — and sample its next token.
// The decoding slots step together (engine::Engine::StepSequences, on the
// first slot's engine): one forward for all of them, so the dense weights
// are read once per step and each layer's experts are the union over the
// slots, each loaded and computed once. Architectures with an attention of
// their own (deepseek2) step their slots one after the other, sharing the
// expert cache.
//
// A request ends at an end-of-generation token or a stop string ("stop"),
// at max_tokens or the end of its context ("length"), when cancelled, or
// with the engine's error ("error"; the slot is reset and serves the next
// request). After each step the scheduler publishes the slot and queue
// counts and the expert cache's statistics and residency to Metrics.
//
// Threading: Create/Start/Stop from one thread; the loop thread owns the
// engines, the provider and the expert cache. The model must outlive the
// scheduler.
#ifndef MOESTREAM_SERVER_SCHEDULER_H_
#define MOESTREAM_SERVER_SCHEDULER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cached_expert_provider.h"
#include "engine/engine.h"
#include "engine/expert_provider.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "server/metrics.h"
#include "server/request_queue.h"
#include "server/stop_matcher.h"
#include "server/text_codec.h"

namespace moestream::server {

struct SchedulerOptions {
  // Sequence slots: requests decoded at once, each with its own KV cache of
  // the model's engine options. Default 1.
  int parallel = 1;
  // Engine options of the extra slots (the first slot's engine is the
  // model's own); the KV cache positions are each sequence's context.
  engine::EngineOptions engine;
  // How long the loop sleeps waiting for work before publishing again.
  std::chrono::milliseconds idle_poll{100};
  absl::Status Validate() const;
};

// Counts which experts the routers chose, then hands the call on: the
// live view's heatmap and the per-layer routing counters.
class CountingExpertProvider final : public engine::ExpertProvider {
 public:
  CountingExpertProvider(engine::ExpertProvider* inner, int n_layers, int n_experts)
      : inner_(inner), n_experts_(n_experts), uses_(size_t(n_layers) * n_experts, 0) {}
  void OnFfnInput(int layer, const float* x, int64_t n_tok) override {
    inner_->OnFfnInput(layer, x, n_tok);
  }
  absl::Status Compute(int layer, const float* x, int64_t n_tok, const int32_t* ids,
                       const float* weights, int k, float* out) override;
  const std::vector<uint64_t>& uses() const { return uses_; }

 private:
  engine::ExpertProvider* inner_;
  int n_experts_;
  std::vector<uint64_t> uses_;
};

class Scheduler {
 public:
  // `offload` is the model's provider when it offloads (null otherwise).
  // Replaces the model's engine with `parallel` engines over a counting
  // provider. Everything passed must outlive the scheduler.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(engine::LoadedModel* model,
                                                           engine::CachedExpertProvider* offload,
                                                           const TextCodec* codec,
                                                           RequestQueue* queue, Metrics* metrics,
                                                           const SchedulerOptions& o);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void Start();
  // Stops the loop: running and waiting requests finish with kError
  // (kUnavailable, "shutting down"). Idempotent.
  void Stop();
  int64_t n_ctx() const;

 private:
  struct Slot {
    std::unique_ptr<engine::Engine> engine;
    std::shared_ptr<Request> request;  // null = free
    std::unique_ptr<engine::Sampler> sampler;
    std::unique_ptr<TextDecoder> decoder;
    StopMatcher stop;
    int64_t generated = 0;
    int32_t last = 0;
    bool prefilled = false;
  };

  Scheduler(engine::LoadedModel* m, engine::CachedExpertProvider* offload, const TextCodec* codec,
            RequestQueue* q, Metrics* metrics, SchedulerOptions o)
      : model_(m), offload_(offload), codec_(codec), queue_(q), metrics_(metrics), opt_(o) {}
  void Loop();
  void Admit();
  // The prompt of a new request as one prefill, then its first token.
  void Prefill(Slot& s);
  // One decode step of every slot in `slots` (together when the
  // architecture allows), then each one's next token.
  void Decode(std::span<Slot* const> slots);
  // Samples the slot's next token from its engine's logits, streams it and
  // finishes the request when it ends.
  void Sampled(Slot& s);
  void Finish(Slot& s, FinishReason reason, absl::Status error = absl::OkStatus());
  void Publish();

  engine::LoadedModel* model_;
  engine::CachedExpertProvider* offload_;
  const TextCodec* codec_;
  RequestQueue* queue_;
  Metrics* metrics_;
  const SchedulerOptions opt_;
  std::unique_ptr<CountingExpertProvider> counting_;  // before the engines that use it
  std::vector<Slot> slots_;
  std::vector<engine::Engine*> engines_;  // a batched step's sequences
  std::vector<int32_t> tokens_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace moestream::server

#endif  // MOESTREAM_SERVER_SCHEDULER_H_
