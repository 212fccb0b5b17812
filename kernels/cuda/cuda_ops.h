// Launchers for the CUDA kernels behind CudaBackend's ops. Every launcher
// enqueues on `stream` and returns the launch error (cudaGetLastError).
//
// Layouts are those of kernels/backend.h: row-major F32 activations, weights
// in ggml's block layout, KV cache [n_ctx, n_kv_head, head_dim]. The kernels
// favour simplicity over speed (one warp per output row for quantized
// matrix-vector products, dequantizing on the fly); they are checked against
// the CPU backend's scalar reference by tests/kernels/cuda_backend_gpu_test.cc.
#ifndef MOESTREAM_KERNELS_CUDA_CUDA_OPS_H_
#define MOESTREAM_KERNELS_CUDA_CUDA_OPS_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/backend.h"

namespace moestream::kernels::cuda {

// y[t, r] = sum_i dequant(W)[r, i] * x[t, i] for any weight type with a
// device dequantizer (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K).
cudaError_t LaunchQuantMatMul(const WeightView& w, const float* x, int64_t n_tok, float* y,
                              cudaStream_t stream);
bool QuantMatMulSupported(GgmlType t);
// F32 -> F16 / BF16 conversion (activations for cuBLAS).
cudaError_t LaunchToHalf(const float* x, void* out, int64_t n, bool bf16, cudaStream_t s);

cudaError_t LaunchRmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t n,
                          float eps, cudaStream_t s);
cudaError_t LaunchRope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim,
                       const int32_t* pos, const RopeParams& p, cudaStream_t s);
cudaError_t LaunchSoftmax(float* x, int64_t rows, int64_t n, cudaStream_t s);
cudaError_t LaunchTopK(const float* x, int64_t n, int k, bool renormalize, int32_t* ids,
                       float* values, cudaStream_t s);
cudaError_t LaunchSigmoid(float* x, int64_t n, cudaStream_t s);
cudaError_t LaunchSiluMul(const float* gate, const float* up, float* out, int64_t n,
                          cudaStream_t s);
cudaError_t LaunchAdd(const float* a, const float* b, float* out, int64_t n, cudaStream_t s);
cudaError_t LaunchScale(float* x, float scale, int64_t n, cudaStream_t s);
cudaError_t LaunchSwigluClamped(const float* gate, const float* up, float* out, int64_t n,
                                float alpha, float limit, cudaStream_t s);
cudaError_t LaunchAddBias(float* x, const float* bias, int64_t rows, int64_t n, cudaStream_t s);
cudaError_t LaunchAddScaled(float* y, const float* x, float scale, int64_t n, cudaStream_t s);
cudaError_t LaunchGetRows(const WeightView& table, const int32_t* ids, int64_t n, float* out,
                          cudaStream_t s);
cudaError_t LaunchStoreKv(const float* src, void* dst, bool f16, int64_t n, cudaStream_t s);
// `scores` is device scratch of n_tok * n_head * (pos0 + n_tok) floats.
cudaError_t LaunchAttention(const AttentionArgs& a, float* scores, cudaStream_t s);

}  // namespace moestream::kernels::cuda

#endif  // MOESTREAM_KERNELS_CUDA_CUDA_OPS_H_
