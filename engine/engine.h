// The forward pass: batched prefill and single-token decode of a decoder on
// one kernels::Backend, with a resident KV cache. The engine owns the loop
// (embedding, layers, KV cache, expert provider, output head); each layer is
// built by its architecture's build_layer (model/architecture.h) from the
// engine's shared pieces, which the Engine implements as a model::BlockOps. Every op goes through the Backend interface, so
// the same engine runs on the CPU and CUDA backends; every routed expert
// goes through the ExpertProvider the caller injects.
//
//   MOESTREAM_ASSIGN_OR_RETURN(auto provider,
//       ResidentExpertProvider::Create(backend, config, *weights, opts.n_batch));
//   MOESTREAM_ASSIGN_OR_RETURN(auto engine,
//       Engine::Create(backend, config, *weights, provider.get(), opts));
//   MOESTREAM_RETURN_IF_ERROR(engine->Process(prompt, LogitsMode::kLast));  // prefill
//   int32_t next = sampler.Sample(engine->last_logits(), history);
//   MOESTREAM_RETURN_IF_ERROR(engine->Process({&next, 1}, LogitsMode::kLast)); // decode
//
// The standard layer (llama, mixtral, qwen3moe):
// h = RMSNorm(x)·attn_norm; q,k,v = h·W; [q/k per-head RMSNorm];
// RoPE; K,V stored at positions n_past..; causal GQA attention; x += o·Wo;
// h = RMSNorm(x)·ffn_norm; dense: x += down(silu(gate h)·up h); MoE:
// provider.OnFfnInput(L, h), p = softmax(h·router), top-k (renormalised),
// provider.Compute(L, h, ids, p) adds the experts into x. Then the final
// norm and the LM head for the last position (or every position on
// request). All workspaces are allocated at Create(); Process() allocates
// nothing on the device (host logits grow once to the largest request).
#ifndef MOESTREAM_ENGINE_ENGINE_H_
#define MOESTREAM_ENGINE_ENGINE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/ggml_type.h"
#include "kernels/backend.h"
#include "engine/expert_provider.h"
#include "engine/kv_cache.h"
#include "model/architecture.h"
#include "model/block.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace moestream::engine {

enum class LogitsMode {
  kLast,  // logits of the last processed token only (1 row)
  kAll,   // logits of every processed token (n rows)
};

struct EngineOptions {
  // KV cache positions. 0 = the model's context_length, capped at 4096.
  int64_t n_ctx = 0;
  // KV cache element type: kF32 (default) or kF16.
  GgmlType kv_type = GgmlType::kF32;
  // Most tokens per forward chunk; longer inputs are split. Default 512.
  int64_t n_batch = 512;
  // Keep the logits of every token of a chunk (LogitsMode::kAll): the
  // logits buffer then holds n_batch rows instead of one. Default false.
  bool all_logits = false;
  // Plan "engine.op_scratch" and lend it to the backend. Engine::Create sets
  // it when the backend wants it (Backend::WantsOpScratch: cuda); the offload
  // planner from OffloadOptions::backend_kind. Default false.
  bool op_scratch = false;
  // Most sequences one StepSequences() call decodes together (its logits
  // buffer holds that many rows). Default 1; at most n_batch.
  int64_t batch_sequences = 1;
  absl::Status Validate() const;
  // The KV positions and batch the engine uses for `c`: n_ctx 0 = the
  // model's context capped at 4096; the batch never exceeds the context.
  int64_t ResolvedCtx(const model::ModelConfig& c) const;
  int64_t ResolvedBatch(const model::ModelConfig& c) const;
};

class Engine : private model::BlockOps {
 public:
  // `experts` must outlive the engine and may be null only for a dense model.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(kernels::Backend& backend,
                                                        const model::ModelConfig& c,
                                                        const model::ModelWeights& w,
                                                        ExpertProvider* experts,
                                                        const EngineOptions& o);
  // Every device buffer Create() allocates (KV cache and activations), in
  // order: the memory plan's share of the engine.
  static std::vector<model::PlannedBuffer> PlanBuffers(const model::ModelConfig& c,
                                                       const EngineOptions& o);
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Runs `tokens` at positions n_past() .. n_past()+size-1 (in chunks of
  // n_batch) and advances n_past. kOutOfRange when the context would
  // overflow, kInvalidArgument for a token id outside the vocabulary,
  // kFailedPrecondition for kAll on an engine created without all_logits.
  absl::Status Process(std::span<const int32_t> tokens, LogitsMode mode);

  // One decode step of several sequences at once: tokens[i] at position
  // seqs[i]->n_past() of seqs[i]'s KV cache. The engines (this one may be
  // among them) must share this engine's backend, config and weights; this
  // engine's activations carry the batch, so the dense weights are read
  // once for all of them and a layer's routed experts are the union over
  // the sequences, each computed once (one provider call per layer, on
  // this engine's provider). Afterwards each engine's last_logits() holds
  // its token's logits and its n_past() has advanced by one.
  // kInvalidArgument for mismatched or repeated engines, kOutOfRange for a
  // full context, kFailedPrecondition for more sequences than
  // batch_sequences or, with two or more, an architecture whose layers run
  // an attention of their own (CanStepSequences()).
  absl::Status StepSequences(std::span<Engine* const> seqs, std::span<const int32_t> tokens);
  bool CanStepSequences() const { return arch_->standard_attention; }

  // Logits of the last Process(): logits_rows() rows of n_vocab floats.
  std::span<const float> logits() const { return {logits_.data(), size_t(logits_rows_ * n_vocab_)}; }
  int64_t logits_rows() const { return logits_rows_; }
  std::span<const float> last_logits() const {
    return {logits_.data() + (logits_rows_ - 1) * n_vocab_, size_t(n_vocab_)};
  }

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return kv_->n_ctx(); }
  int64_t n_batch() const { return n_batch_; }
  // Forgets the context (the KV cache is overwritten from position 0).
  void Reset() { n_past_ = 0; }

  // Layer `layer`'s router (n_in n_embd, n_out n_expert; data null for a
  // dense layer), for predictors applying layer L+1's router in OnFfnInput.
  kernels::WeightView router(int layer) const { return w_.layers[layer].router; }
  const model::ModelConfig& config() const { return c_; }
  kernels::Backend& backend() const { return be_; }
  const KvCache& kv_cache() const { return *kv_; }
  // Device bytes of the engine's activations and KV cache.
  uint64_t workspace_bytes() const { return workspace_bytes_; }

 private:
  Engine(kernels::Backend& b, const model::ModelConfig& c, const model::ModelWeights& w, ExpertProvider* e)
      : be_(b), c_(c), w_(w), experts_(e) {}
  // The activation buffers of PlanBuffers (all but the KV cache's), in order.
  static std::vector<model::PlannedBuffer> ActivationBuffers(const model::ModelConfig& c,
                                                             const EngineOptions& o);
  absl::Status Chunk(const int32_t* tokens, int64_t n, bool all_logits, float* logits_out);
  // The layers over n tokens laid out in runs_ (each run: consecutive
  // positions of one engine's sequence); x_ holds the result.
  absl::Status Forward(const int32_t* tokens, int64_t n);
  // Checks `tokens` against the vocabulary.
  absl::Status CheckTokens(std::span<const int32_t> tokens) const;

  // model::BlockOps, over the chunk being processed.
  void NormInput(const float* w) override;
  absl::Status Attention(int layer, const model::LayerWeights& l,
                         const model::AttentionOptions& o) override;
  absl::Status DenseFfn(const model::LayerWeights& l) override;
  absl::Status SharedExperts(const model::LayerWeights& l) override;
  absl::Status RoutedExperts(int layer, const model::LayerWeights& l,
                             const model::RoutingOptions& o) override;
  // x += down(silu(gate h) · up h), `width` rows in gate and up.
  void SwiGlu(const kernels::WeightView& gate, const kernels::WeightView& up,
              const kernels::WeightView& down, int64_t width);
  kernels::Backend& backend() override { return be_; }
  int64_t n_tok() const override { return chunk_n_; }
  int64_t pos0() const override { return runs_.front().pos0; }
  float* x() override { return x_; }
  float* h() override { return h_; }
  float* out() override { return attn_; }
  const int32_t* positions() override { return pos_dev_; }
  const kernels::RopeParams& rope() override { return rope_; }
  model::KvLayer Kv(int layer) override;
  float* Scratch(int i) override { return arch_scratch_[size_t(i)]; }
  // Group-limited and bias-steered expert selection on the host, from the
  // gated router output of n_tok tokens (router_host_).
  absl::Status SelectOnHost(int layer, int64_t n, int k);

  kernels::Backend& be_;
  const model::ModelConfig& c_;
  const model::ModelWeights& w_;
  ExpertProvider* experts_;
  const model::ArchSpec* arch_ = nullptr;
  int64_t chunk_n_ = 0;  // tokens of the chunk being processed
  // The chunk's tokens by sequence: rows [first, first + count) sit at
  // positions pos0.. of `owner`'s KV cache. One run unless StepSequences.
  struct Run {
    Engine* owner = nullptr;
    int64_t first = 0, count = 0, pos0 = 0;
  };
  std::vector<Run> runs_;
  int64_t batch_sequences_ = 1;
  std::unique_ptr<KvCache> kv_;
  kernels::RopeParams rope_;
  int64_t n_batch_ = 0;
  int64_t n_vocab_ = 0;
  int64_t n_past_ = 0;
  uint64_t workspace_bytes_ = 0;
  std::vector<void*> allocations_;

  // Device activations, n_batch rows each.
  int32_t* tokens_dev_ = nullptr;
  int32_t* pos_dev_ = nullptr;
  float* x_ = nullptr;       // residual [n, n_embd]
  float* h_ = nullptr;       // normed / projected [n, n_embd]
  float* q_ = nullptr;       // [n, q_dim]
  float* k_ = nullptr;       // [n, kv_dim]
  float* v_ = nullptr;       // [n, kv_dim]
  float* attn_ = nullptr;    // [n, q_dim]
  float* ffn_gate_ = nullptr;  // dense and shared experts [n, max(n_ff, n_ff_shexp)]
  float* ffn_up_ = nullptr;
  float* router_ = nullptr;  // [n, n_expert]
  void* topk_dev_ = nullptr;  // ids [n, k] (int32), then weights [n, k] (float)
  float* logits_dev_ = nullptr;      // [logits_cap_, n_vocab]
  std::vector<float*> arch_scratch_;  // ArchSpec::scratch, in order
  bool all_logits_ = false;
  void* op_scratch_ = nullptr;  // lent to the backend (Backend::AdoptOpScratch)

  // Host mirrors.
  std::vector<int32_t> pos_host_;
  std::vector<float> router_host_;  // gated router output (host selection)
  std::vector<std::vector<float>> bias_host_;  // exp_probs_b per layer (empty: none)
  std::vector<int32_t> topk_ids_;
  std::vector<float> topk_w_;
  std::vector<int32_t> topk_host_;  // the read-back of topk_dev_ (ids, then weight bits)
  std::vector<float> logits_;
  std::vector<float> step_logits_;  // StepSequences: every sequence's row
  int64_t logits_rows_ = 0;
};

}  // namespace moestream::engine

#endif  // MOESTREAM_ENGINE_ENGINE_H_
