// The resident key/value cache: per layer, K and V for positions 0..n_ctx-1,
// laid out [n_ctx, n_head_kv, head_dim] in F32 or F16 in device memory, the
// layout kernels::AttentionArgs expects. Allocated once at Create().
//
//   MOESTREAM_ASSIGN_OR_RETURN(auto kv, KvCache::Create(backend, config, 4096, GgmlType::kF16));
//   backend.StoreKv(k, kv->KeyAt(layer, pos), kv->type(), n_tok * config.kv_dim());
#ifndef MOESTREAM_ENGINE_KV_CACHE_H_
#define MOESTREAM_ENGINE_KV_CACHE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "base/ggml_type.h"
#include "kernels/backend.h"
#include "model/memory_planner.h"
#include "model/model_config.h"

namespace moestream::engine {

class KvCache {
 public:
  // kInvalidArgument for a type other than F32/F16 or n_ctx < 1;
  // kResourceExhausted when the device budget cannot hold it.
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(kernels::Backend& backend,
                                                         const model::ModelConfig& c, int64_t n_ctx,
                                                         GgmlType type);
  // Bytes the cache of `c` takes for `n_ctx` positions (for planning).
  static uint64_t BytesFor(const model::ModelConfig& c, int64_t n_ctx, GgmlType type);
  // The buffers Create() allocates, in order: kv.k.L and kv.v.L per layer.
  static std::vector<model::PlannedBuffer> PlanBuffers(const model::ModelConfig& c, int64_t n_ctx,
                                                       GgmlType type);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  GgmlType type() const { return type_; }
  int64_t n_ctx() const { return n_ctx_; }
  uint64_t bytes() const { return bytes_; }
  void* keys(int layer) const { return k_[layer]; }
  void* values(int layer) const { return v_[layer]; }
  void* KeyAt(int layer, int64_t pos) const {
    return static_cast<uint8_t*>(k_[layer]) + pos * row_bytes_;
  }
  void* ValueAt(int layer, int64_t pos) const {
    return static_cast<uint8_t*>(v_[layer]) + pos * v_row_bytes_;
  }

 private:
  explicit KvCache(kernels::Backend& b) : backend_(b) {}
  kernels::Backend& backend_;
  GgmlType type_ = GgmlType::kF32;
  int64_t n_ctx_ = 0;
  uint64_t row_bytes_ = 0;    // one position's keys, all kv heads
  uint64_t v_row_bytes_ = 0;  // one position's values (head_dim_v may differ)
  uint64_t bytes_ = 0;
  std::vector<void*> k_, v_;
};

}  // namespace moestream::engine

#endif  // MOESTREAM_ENGINE_KV_CACHE_H_
