// What an architecture file (model/arch/<name>.cc) composes a decoder layer
// from. The engine owns the loop — embedding, the layers in order, the KV
// cache, the expert provider, the output head — and for each layer calls
// the architecture's build_layer with a BlockOps, the engine's shared pieces
// for the chunk of tokens being processed. Binding goes the same way: the
// weight loader hands the architecture's bind_layer a LayerBinder.
//
//   absl::Status BuildLayer(BlockOps& ops, const ModelConfig& c, const LayerWeights& l, int il) {
//     ops.NormInput(l.attn_norm);                    // h = RMSNorm(x) · attn_norm
//     MOESTREAM_RETURN_IF_ERROR(ops.Attention(il, l, {.qk_norm = true}));  // x += attn(h)
//     ops.NormInput(l.ffn_norm);
//     return l.is_moe() ? ops.RoutedExperts(il, l) : ops.DenseFfn(l);      // x += ffn(h)
//   }
//
// Pieces a new architecture needs beyond these are written in its file
// from the backend's ops (ops.backend(), ops.x(), ops.h()).
#ifndef MOESTREAM_MODEL_BLOCK_H_
#define MOESTREAM_MODEL_BLOCK_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/ggml_type.h"
#include "kernels/backend.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace moestream::model {

// Binds the tensors of one layer (model/weights.cc implements it, uploading
// or only planning). Errors name the file and tensor.
class LayerBinder {
 public:
  virtual ~LayerBinder() = default;
  virtual bool Has(const std::string& name) const = 0;
  // A 2-D weight of n_out rows of n_in, kept in its GGUF type.
  virtual absl::StatusOr<kernels::WeightView> Matrix(const std::string& name, int64_t n_in,
                                                     int64_t n_out) = 0;
  // A 1-D weight, converted to F32.
  virtual absl::StatusOr<const float*> Vector(const std::string& name, int64_t n) = 0;
  // A 2-D weight of n_rows rows of n, converted to F32 (per-expert biases).
  virtual absl::StatusOr<const float*> Table(const std::string& name, int64_t n,
                                             int64_t n_rows) = 0;
  // A 3-D weight of n_mats matrices of n_out rows of n_in: the view of the
  // first; matrix i starts RowBytes(type, n_in) * n_out bytes after it.
  virtual absl::StatusOr<kernels::WeightView> Stacked(const std::string& name, int64_t n_in,
                                                      int64_t n_out, int64_t n_mats) = 0;
  // Layer `layer`'s routed experts (stacked or per-expert tensors), uploaded
  // into l->experts when the experts are resident, else only shape-checked.
  virtual absl::Status Experts(int layer, const ModelConfig& c, LayerWeights* l) = 0;
};

struct AttentionOptions {
  bool qk_norm = false;  // per-head RMSNorm of q and k (attn_q_norm, attn_k_norm) before RoPE
  bool rope = true;      // false: a NoPE layer
  // Per-head RMSNorm of q and k without a weight, after RoPE (llama4's
  // QK L2 norm).
  bool qk_unit_norm_after_rope = false;
  // Chunked local attention (AttentionArgs::chunk); 0 = plain causal.
  int64_t chunk = 0;
  // Attention temperature tuning: q of the token at position p is scaled by
  // 1 + temp_scale * ln(floor((p + 1) / temp_floor) + 1). 0 = off.
  float temp_scale = 0;
  int64_t temp_floor = 0;
  // Sliding-window attention over the last `window` positions; 0 = off.
  // (Biases and attention sinks come with the layer's weights when bound.)
  int64_t window = 0;
};

struct RoutingOptions {
  // Apply each selected expert's weight to its input instead of its output
  // (llama4): y = expert(w · h). Needs top-1 routing.
  bool weight_input = false;
};

// Rows [first, first + count) of `w` as a weight of their own (null data
// stays null, as while planning).
kernels::WeightView RowsOf(const kernels::WeightView& w, int64_t first, int64_t count);
// Matrix `i` of a Stacked() weight.
kernels::WeightView MatrixOf(const kernels::WeightView& first, uint64_t stride, int64_t i);

// One layer's KV cache.
struct KvLayer {
  void* keys = nullptr;      // position 0
  void* values = nullptr;
  void* keys_at = nullptr;   // the chunk's first position
  void* values_at = nullptr;
  GgmlType type = GgmlType::kF32;
};

// The engine's pieces for one chunk of n_tok() tokens at positions
// pos0() .. pos0()+n_tok()-1. x() is the residual stream, h() the normed
// input of the current sub-block (n_tok rows of n_embd, device memory).
class BlockOps {
 public:
  virtual ~BlockOps() = default;
  // h = RMSNorm(x) · w.
  virtual void NormInput(const float* w) = 0;
  // x += Wo · attention(h): q/k/v projections, optional per-head q/k
  // RMSNorm, RoPE, the layer's KV cache, causal GQA softmax attention.
  virtual absl::Status Attention(int layer, const LayerWeights& l, const AttentionOptions& o) = 0;
  // x += down(silu(gate h) · up h) with the layer's dense FFN.
  virtual absl::Status DenseFfn(const LayerWeights& l) = 0;
  // x += shared experts(h), an FFN of the layer's shexp weights.
  virtual absl::Status SharedExperts(const LayerWeights& l) = 0;
  // x += Σ_e w_e · expert_e(h): router, gating (config), top-k, then the
  // expert provider (resident, cached or offloaded experts alike).
  virtual absl::Status RoutedExperts(int layer, const LayerWeights& l,
                                     const RoutingOptions& o = {}) = 0;

  virtual kernels::Backend& backend() = 0;
  virtual int64_t n_tok() const = 0;
  virtual int64_t pos0() const = 0;
  virtual float* x() = 0;
  virtual float* h() = 0;
  // A sub-block's output before it joins the residual: n_tok rows of at
  // least n_embd.
  virtual float* out() = 0;
  virtual const int32_t* positions() = 0;  // device, n_tok
  virtual const kernels::RopeParams& rope() = 0;
  virtual KvLayer Kv(int layer) = 0;
  // The architecture's scratch buffers (ArchSpec::scratch), n_tok rows each.
  virtual float* Scratch(int i) = 0;
};

}  // namespace moestream::model

#endif  // MOESTREAM_MODEL_BLOCK_H_
