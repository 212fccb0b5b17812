// CreateBackend: picks the backend BackendOptions::kind names ("auto": CUDA
// when a GPU is usable, else the CPU backend).
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/quant.h"
#ifdef MOESTREAM_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace moestream::kernels {
namespace {

absl::StatusOr<std::unique_ptr<Backend>> TryCuda(const BackendOptions& o) {
#ifdef MOESTREAM_HAVE_CUDA
  return CreateCudaBackend(o);
#else
  (void)o;
  return absl::UnavailableError("cuda backend unavailable: built without CUDA");
#endif
}

}  // namespace

bool Backend::CanCompute(GgmlType t) const { return kernels::CanCompute(t); }

void Backend::TopKRows(const float* x, int64_t rows, int64_t n, int k, bool renormalize,
                       int32_t* ids, float* values) {
  for (int64_t r = 0; r < rows; ++r) {
    TopK(x + r * n, n, k, renormalize, ids + r * k, values + r * k);
  }
}

void Backend::ScatterAdd(float* out, const float* src, int64_t n,
                         std::span<const ScatterChoice> choices, int k) {
  if (k <= 0) return;
  for (size_t i = 0; i < choices.size(); ++i) {
    const ScatterChoice& c = choices[i];
    AddScaled(out + int64_t(i / size_t(k)) * n, src + int64_t(c.row) * n, c.weight, n);
  }
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const BackendOptions& o) {
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  if (o.kind == "cpu") return CreateCpuBackend(o);
  if (o.kind == "cuda") return TryCuda(o);
  // auto
  auto cuda = TryCuda(o);
  if (cuda.ok()) return cuda;
  return CreateCpuBackend(o);
}

}  // namespace moestream::kernels
