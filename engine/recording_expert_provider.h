// An ExpertProvider decorator that records the routing it sees into a
// routing trace (trace/trace.h) and forwards every call to the provider it
// wraps, so recording works unchanged with resident and offloaded experts.
// Behind `moestream run --record-trace FILE`.
//
//   RecordingExpertProvider rec(std::move(inner), config, "run.mstrace");
//   rec.BeginSequence(prompt.size());        // positions restart at 0
//   ... engine calls rec.Compute(...) per layer ...
//   MOESTREAM_RETURN_IF_ERROR(rec.Finish()); // writes the file atomically
//
// Positions and phases are inferred from the call sequence: a forward starts
// when the first MoE layer is computed; its n_tok tokens take the next
// positions; tokens within the first `prompt_tokens` positions are prefill,
// the rest decode. Each forward is one trace step.
#ifndef MOESTREAM_ENGINE_RECORDING_EXPERT_PROVIDER_H_
#define MOESTREAM_ENGINE_RECORDING_EXPERT_PROVIDER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/expert_provider.h"
#include "model/model_config.h"
#include "trace/trace.h"

namespace moestream::engine {

class RecordingExpertProvider : public ExpertProvider {
 public:
  RecordingExpertProvider(std::unique_ptr<ExpertProvider> inner, const model::ModelConfig& config,
                          std::string path);
  ExpertProvider& inner() { return *inner_; }

  // A new prompt of `prompt_tokens` tokens: positions restart at 0.
  void BeginSequence(int64_t prompt_tokens);
  absl::Status Finish() { return recorder_.Finish(); }
  const trace::Trace& trace() const { return recorder_.trace(); }

  void OnFfnInput(int layer, const float* x, int64_t n_tok) override;
  absl::Status Compute(int layer, const float* x, int64_t n_tok, const int32_t* ids,
                       const float* weights, int k, float* out) override;

 private:
  std::unique_ptr<ExpertProvider> inner_;
  trace::TraceRecorder recorder_;
  int64_t prompt_tokens_ = 0;
  int64_t next_pos_ = 0;   // position of the next forward's first token
  int64_t base_pos_ = 0;   // position of the current forward's first token
  std::vector<int> trace_layer_;  // model layer -> trace layer (MoE layers only)
  int last_layer_ = -1;    // layer of the previous Compute (a drop starts a forward)
};

}  // namespace moestream::engine

#endif  // MOESTREAM_ENGINE_RECORDING_EXPERT_PROVIDER_H_
