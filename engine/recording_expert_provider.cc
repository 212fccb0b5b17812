#include "engine/recording_expert_provider.h"

#include <span>
#include <utility>

namespace moestream::engine {
namespace {

// The trace's layers are the model's MoE layers (a model with dense layers,
// such as llama4 or deepseek2, routes on some only); layer_ids keeps each
// one's number in the model.
trace::TraceShape ShapeOf(const model::ModelConfig& c) {
  trace::TraceShape s;
  s.model = c.name.empty() ? c.arch : c.name;
  s.source = "moestream";
  for (int64_t il = 0; il < c.n_layer; ++il) {
    if (c.IsMoeLayer(il)) s.layer_ids.push_back(static_cast<int>(il));
  }
  s.n_layers = static_cast<int>(s.layer_ids.size());
  s.n_experts = static_cast<int>(c.n_expert);
  s.top_k = static_cast<int>(c.n_expert_used);
  return s;
}

}  // namespace

RecordingExpertProvider::RecordingExpertProvider(std::unique_ptr<ExpertProvider> inner,
                                                 const model::ModelConfig& config, std::string path)
    : inner_(std::move(inner)), recorder_(std::move(path), ShapeOf(config)) {
  trace_layer_.assign(static_cast<size_t>(config.n_layer), -1);
  int i = 0;
  for (int64_t il = 0; il < config.n_layer; ++il) {
    if (config.IsMoeLayer(il)) trace_layer_[static_cast<size_t>(il)] = i++;
  }
}

void RecordingExpertProvider::BeginSequence(int64_t prompt_tokens) {
  recorder_.BeginSequence();
  prompt_tokens_ = prompt_tokens;
  next_pos_ = 0;
  base_pos_ = 0;
  last_layer_ = -1;
}

void RecordingExpertProvider::OnFfnInput(int layer, const float* x, int64_t n_tok) {
  inner_->OnFfnInput(layer, x, n_tok);
}

absl::Status RecordingExpertProvider::Compute(int layer, const float* x, int64_t n_tok,
                                              const int32_t* ids, const float* weights, int k,
                                              float* out) {
  if (layer <= last_layer_ || last_layer_ < 0) {
    // A new forward: close the previous step, take the next positions.
    if (last_layer_ >= 0) recorder_.EndStep();
    base_pos_ = next_pos_;
    next_pos_ += n_tok;
  }
  last_layer_ = layer;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t pos = base_pos_ + t;
    recorder_.Record(trace_layer_[static_cast<size_t>(layer)], static_cast<uint32_t>(pos),
                     pos < prompt_tokens_ ? trace::Phase::kPrefill : trace::Phase::kDecode,
                     std::span<const int32_t>(ids + t * k, k),
                     std::span<const float>(weights + t * k, k));
  }
  return inner_->Compute(layer, x, n_tok, ids, weights, k, out);
}

}  // namespace moestream::engine
