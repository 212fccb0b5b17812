#include "server/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace moestream::server {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

absl::Status SchedulerOptions::Validate() const {
  if (parallel < 1 || parallel > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("--parallel ", parallel, " is out of range 1..256"));
  }
  // The decoding slots step as one batch of the engine.
  if (parallel > engine.n_batch) {
    return absl::InvalidArgumentError(absl::StrCat("--parallel ", parallel, " exceeds --batch ",
                                                   engine.n_batch, " (slots decode as one batch)"));
  }
  return engine.Validate();
}

absl::Status CountingExpertProvider::Compute(int layer, const float* x, int64_t n_tok,
                                             const int32_t* ids, const float* weights, int k,
                                             float* out) {
  const size_t base = size_t(layer) * size_t(n_experts_);
  for (int64_t i = 0; i < n_tok * k; ++i) {
    if (ids[i] >= 0 && ids[i] < n_experts_ && base + size_t(ids[i]) < uses_.size()) {
      ++uses_[base + size_t(ids[i])];
    }
  }
  return inner_->Compute(layer, x, n_tok, ids, weights, k, out);
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(
    engine::LoadedModel* model, engine::CachedExpertProvider* offload, const TextCodec* codec,
    RequestQueue* queue, Metrics* metrics, const SchedulerOptions& o) {
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  std::unique_ptr<Scheduler> s(new Scheduler(model, offload, codec, queue, metrics, o));
  const model::ModelConfig& c = model->config;
  engine::ExpertProvider* provider = model->provider.get();
  if (provider != nullptr) {
    s->counting_ = std::make_unique<CountingExpertProvider>(provider, int(c.n_layer),
                                                            int(c.n_expert));
    provider = s->counting_.get();
  }
  // The model's own engine goes first: its memory is the first slot's.
  model->engine.reset();
  s->slots_.resize(size_t(o.parallel));
  for (Slot& slot : s->slots_) {
    // The first slot's engine carries the batched decode steps (its logits
    // buffer holds a row per slot).
    engine::EngineOptions eo = o.engine;
    if (&slot == &s->slots_.front()) eo.batch_sequences = o.parallel;
    absl::StatusOr<std::unique_ptr<engine::Engine>> e =
        engine::Engine::Create(*model->backend, c, *model->weights, provider, eo);
    if (!e.ok()) {
      return absl::Status(e.status().code(),
                          absl::StrCat("--parallel ", o.parallel, ": sequence slot ",
                                       &slot - s->slots_.data() + 1, ": ", e.status().message()));
    }
    slot.engine = *std::move(e);
  }
  s->Publish();
  return s;
}

Scheduler::~Scheduler() { Stop(); }

int64_t Scheduler::n_ctx() const { return slots_.front().engine->n_ctx(); }

void Scheduler::Start() { thread_ = std::thread([this] { Loop(); }); }

void Scheduler::Stop() {
  stop_.store(true);
  for (std::shared_ptr<Request>& r : queue_->Close()) {
    r->Finish(FinishReason::kError, 0, 0, absl::UnavailableError("the server is shutting down"));
  }
  if (thread_.joinable()) thread_.join();
  for (Slot& s : slots_) {
    if (s.request != nullptr) {
      Finish(s, FinishReason::kError, absl::UnavailableError("the server is shutting down"));
    }
  }
}

void Scheduler::Loop() {
  std::vector<Slot*> decoding;
  while (!stop_.load()) {
    Admit();
    bool busy = false;
    decoding.clear();
    for (Slot& s : slots_) {
      if (s.request == nullptr) continue;
      busy = true;
      if (s.request->cancelled()) {
        Finish(s, FinishReason::kCancelled);
      } else if (!s.prefilled) {
        Prefill(s);
      } else {
        decoding.push_back(&s);
      }
      if (stop_.load()) break;
    }
    if (!stop_.load()) Decode(decoding);
    Publish();
    if (!busy) queue_->WaitNonEmpty(absl::FromChrono(opt_.idle_poll));
  }
}

void Scheduler::Admit() {
  for (Slot& s : slots_) {
    if (s.request != nullptr) continue;
    std::shared_ptr<Request> r;
    while ((r = queue_->TryPop()) != nullptr && r->cancelled()) {
      r->Finish(FinishReason::kCancelled, 0, 0);
      metrics_->OnRequestDone(FinishReason::kCancelled, 0, 0, SecondsSince(r->created()));
    }
    if (r == nullptr) return;
    const GenerationParams& p = r->params();
    engine::SamplerOptions so;
    so.temperature = p.temperature;
    so.top_k = 0;
    so.top_p = p.top_p;
    so.min_p = 0;
    so.seed = p.seed < 0 ? engine::kRandomSeed : uint64_t(p.seed);
    s.sampler = std::make_unique<engine::Sampler>(so);
    s.decoder = codec_->NewDecoder();
    s.stop = StopMatcher(p.stop);
    s.generated = 0;
    s.prefilled = false;
    s.request = std::move(r);
  }
}

void Scheduler::Prefill(Slot& s) {
  Request& r = *s.request;
  engine::Engine& e = *s.engine;
  const std::vector<int32_t>& prompt = r.params().prompt;
  if (prompt.empty() || int64_t(prompt.size()) >= e.n_ctx()) {
    return Finish(s, FinishReason::kError,
                  absl::InvalidArgumentError(absl::StrCat(
                      "the prompt of ", prompt.size(), " tokens does not fit the context of ",
                      e.n_ctx(), " positions")));
  }
  e.Reset();
  for (int32_t id : prompt) s.sampler->Accept(id);
  const absl::Status st = e.Process(prompt, engine::LogitsMode::kLast);
  s.prefilled = true;
  if (!st.ok()) return Finish(s, FinishReason::kError, st);
  Sampled(s);
}

void Scheduler::Decode(std::span<Slot* const> slots) {
  if (slots.empty()) return;
  engine::Engine& leader = *slots_.front().engine;
  if (slots.size() > 1 && leader.CanStepSequences()) {
    // One forward for every decoding slot: the dense weights are read once
    // and each layer's experts are the union over the slots.
    engines_.clear();
    tokens_.clear();
    for (Slot* s : slots) {
      engines_.push_back(s->engine.get());
      tokens_.push_back(s->last);
    }
    const absl::Status st = leader.StepSequences(engines_, tokens_);
    metrics_->OnDecodeStep(int(slots.size()));
    for (Slot* s : slots) {
      if (!st.ok()) {
        Finish(*s, FinishReason::kError, st);
      } else {
        Sampled(*s);
      }
    }
    return;
  }
  for (Slot* s : slots) {
    const absl::Status st = s->engine->Process({&s->last, 1}, engine::LogitsMode::kLast);
    metrics_->OnDecodeStep(1);
    if (!st.ok()) {
      Finish(*s, FinishReason::kError, st);
    } else {
      Sampled(*s);
    }
    if (stop_.load()) return;
  }
}

void Scheduler::Sampled(Slot& s) {
  Request& r = *s.request;
  engine::Engine& e = *s.engine;
  const int32_t id = s.sampler->Sample(e.last_logits());
  s.sampler->Accept(id);
  s.last = id;
  ++s.generated;
  metrics_->OnTokens(1);
  if (s.generated == 1) metrics_->OnFirstToken(SecondsSince(r.created()));
  if (model_->config.IsEog(id)) {
    r.Emit(s.stop.Push(s.decoder->Flush()), 1);
    if (!s.stop.stopped()) r.Emit(s.stop.Flush(), 0);
    return Finish(s, FinishReason::kStop);
  }
  r.Emit(s.stop.Push(s.decoder->Push(id)), 1);
  if (s.stop.stopped()) return Finish(s, FinishReason::kStop);
  const int64_t max_tokens = r.params().max_tokens;
  // The next step feeds this token at position n_past: it must exist.
  if ((max_tokens > 0 && s.generated >= max_tokens) || e.n_past() >= e.n_ctx()) {
    r.Emit(s.stop.Push(s.decoder->Flush()), 0);
    if (s.stop.stopped()) return Finish(s, FinishReason::kStop);
    r.Emit(s.stop.Flush(), 0);
    return Finish(s, FinishReason::kLength);
  }
}

void Scheduler::Finish(Slot& s, FinishReason reason, absl::Status error) {
  std::shared_ptr<Request> r = std::move(s.request);
  s.request = nullptr;
  const int64_t prompt = int64_t(r->params().prompt.size());
  r->Finish(reason, prompt, s.generated, std::move(error));
  metrics_->OnRequestDone(reason, prompt, s.generated, SecondsSince(r->created()));
}

void Scheduler::Publish() {
  SchedulerState st;
  st.slots_total = int(slots_.size());
  for (const Slot& s : slots_) st.slots_in_use += s.request != nullptr;
  st.queue_length = queue_->size();
  metrics_->SetSchedulerState(st);
  if (counting_ == nullptr) return;
  ExpertSnapshot x;
  x.n_layers = int(model_->config.n_layer);
  x.n_experts = int(model_->config.n_expert);
  x.uses = counting_->uses();
  if (offload_ != nullptr && offload_->tier() != "mmap") {
    const cache::ExpertCache& c = offload_->cache();
    x.offload = true;
    const engine::OffloadStats os = offload_->stats();
    const cache::CacheStats cs = c.stats();
    x.per_layer = cs.per_layer;
    x.total = cs.total;
    x.host_cache = os.host_cache;
    x.slots_total = c.total_slots();
    x.residency.assign(size_t(x.n_layers) * x.n_experts, 0);
    const int cache_layers = std::min(c.options().n_layers, x.n_layers);
    const int cache_experts = std::min(c.options().n_experts, x.n_experts);
    for (int l = 0; l < cache_layers; ++l) {
      for (int ex = 0; ex < cache_experts; ++ex) {
        const ExpertKey k{uint16_t(l), uint16_t(ex)};
        if (!c.Contains(k)) continue;
        ++x.slots_in_use;
        x.residency[size_t(l) * x.n_experts + ex] = c.IsReady(k) ? 2 : 1;
      }
    }
  }
  metrics_->SetExperts(std::move(x));
}

}  // namespace moestream::server
