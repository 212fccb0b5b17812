// The CUDA backend: device memory from one cudaMalloc arena sized by the
// budget, pinned host memory with cudaHostAlloc, streams and events, the link
// as cudaMemcpyAsync on copy streams, dense matrix products through cuBLAS
// (F32/F16/BF16) and kernels for the other ops (kernels/cuda/cuda_ops.cu).
//
//   auto be = CreateCudaBackend(options);   // kUnavailable without a GPU
//   if (!be.ok()) fall back to CreateBackend({.kind = "cpu"});
//
// Only compiled when MOESTREAM_HAVE_CUDA is defined (nvcc found at configure).
#ifndef MOESTREAM_KERNELS_CUDA_CUDA_BACKEND_H_
#define MOESTREAM_KERNELS_CUDA_CUDA_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace moestream::kernels {

// Fails with kUnavailable carrying the CUDA error text when no GPU or driver
// is usable, kResourceExhausted when the budget exceeds free device memory.
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& o);

}  // namespace moestream::kernels

#endif  // MOESTREAM_KERNELS_CUDA_CUDA_BACKEND_H_
