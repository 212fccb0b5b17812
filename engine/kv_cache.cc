#include "engine/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace moestream::engine {

uint64_t KvCache::BytesFor(const model::ModelConfig& c, int64_t n_ctx, GgmlType type) {
  return static_cast<uint64_t>(c.n_layer) * n_ctx *
         (RowBytes(type, c.kv_dim()) + RowBytes(type, c.kv_dim_v()));
}

std::vector<model::PlannedBuffer> KvCache::PlanBuffers(const model::ModelConfig& c, int64_t n_ctx,
                                                       GgmlType type) {
  std::vector<model::PlannedBuffer> v;
  const uint64_t k_bytes = RowBytes(type, c.kv_dim()) * uint64_t(n_ctx);
  const uint64_t v_bytes = RowBytes(type, c.kv_dim_v()) * uint64_t(n_ctx);
  for (int il = 0; il < c.n_layer; ++il) {
    v.push_back({absl::StrCat("kv.k.", il), k_bytes, 1, model::MemoryUse::kKvCache});
    v.push_back({absl::StrCat("kv.v.", il), v_bytes, 1, model::MemoryUse::kKvCache});
  }
  return v;
}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(kernels::Backend& backend,
                                                         const model::ModelConfig& c, int64_t n_ctx,
                                                         GgmlType type) {
  if (type != GgmlType::kF32 && type != GgmlType::kF16) {
    return absl::InvalidArgumentError(absl::StrCat("KV cache type ", Av(GgmlTypeName(type)),
                                                   " is not supported (expected f32 or f16)"));
  }
  if (n_ctx < 1) {
    return absl::InvalidArgumentError(absl::StrCat("KV cache context ", n_ctx, " must be >= 1"));
  }
  std::unique_ptr<KvCache> kv(new KvCache(backend));
  kv->type_ = type;
  kv->n_ctx_ = n_ctx;
  kv->row_bytes_ = RowBytes(type, c.kv_dim());
  kv->v_row_bytes_ = RowBytes(type, c.kv_dim_v());
  for (const model::PlannedBuffer& b : PlanBuffers(c, n_ctx, type)) {
    MOESTREAM_ASSIGN_OR_RETURN(void* p, backend.DeviceAlloc(b.bytes, b.name));
    (kv->k_.size() == kv->v_.size() ? kv->k_ : kv->v_).push_back(p);
    kv->bytes_ += b.bytes;
  }
  return kv;
}

KvCache::~KvCache() {
  for (void* p : k_) backend_.DeviceFree(p);
  for (void* p : v_) backend_.DeviceFree(p);
}

}  // namespace moestream::engine
