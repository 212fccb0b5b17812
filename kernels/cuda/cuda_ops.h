// Launchers for the CUDA kernels behind CudaBackend's ops. Every launcher
// enqueues on `stream` and returns the launch error (cudaGetLastError); a
// weight type without a kernel returns cudaErrorNotSupported, never a
// silent zero.
//
// Layouts are those of kernels/backend.h: row-major F32 activations, weights
// in ggml's block layout, KV cache [n_ctx, n_kv_head, head_dim].
//
// Quantized products (kernels/cuda/cuda_matmul.cu): activations are rounded
// to int8 once per product input (LaunchQuantizeAct) exactly as the CPU
// backend rounds them for that weight type (Q8_0 or Q8_K, or left in F32 for
// the types the CPU backend multiplies in float), then one warp per
// weight row unpacks 32 weights per lane step (kernels/cuda/cuda_quant.h,
// the same code the CPU tests check) and multiplies with dp4a, reusing the
// unpacked chunk for a tile of up to 8 tokens. Several products of one weight
// type (a layer's selected experts) run as one launch (LaunchQuantMatMulFused).
// Long prompts dequantize weight slabs to F16 (LaunchDequantToHalf) for
// cuBLAS. Attention is one pass over the KV cache in tiles with an online
// softmax (no score buffer), or for a long context with few query blocks the
// KV range split across blocks and their partial results combined
// (flash-decoding, kernels/cuda/cuda_attention_split.h); top-k is one warp
// per row; a layer's weighted expert outputs are added in one launch
// (LaunchScatterAdd).
//
// Each kernel is checked against the CPU backend by
// tests/kernels/cuda_backend_gpu_test.cc; the weight formats additionally on
// the CPU by tests/kernels/cuda_quant_test.cc. The first, simple kernels are
// kept as *Reference launchers for the GPU tests to compare with.
#ifndef MOESTREAM_KERNELS_CUDA_CUDA_OPS_H_
#define MOESTREAM_KERNELS_CUDA_CUDA_OPS_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/backend.h"

namespace moestream::kernels::cuda {

// True for every weight type with a kernel (cuda_quant.h's type list).
bool QuantMatMulSupported(GgmlType t);

// Bytes of the int8 form of x[n_tok, n_in] (n_in % 32 == 0): the quants, then
// one 16-byte scale record per 32 elements, each part 256-byte aligned.
size_t ActQ8Bytes(int64_t n_tok, int64_t n_in);
// Whether products with `type` weights take int8 activations (cuda_quant.h's
// ActModeOf; false: the kernel reads the float activations).
bool ActIsInt8(GgmlType type);
// Rounds x[n_tok, n_in] as products with `type` weights take it (a no-op for
// float-activation types).
cudaError_t LaunchQuantizeAct(GgmlType type, const float* x, int64_t n_tok, int64_t n_in,
                              void* act_q8, cudaStream_t s);

// One product y[n_tok, w.n_out] = x · Wᵀ: `act_q8` holds x in int8 form
// (LaunchQuantizeAct) for int8-activation types, `x` is read otherwise.
struct QuantJob {
  WeightView w;
  const void* act_q8 = nullptr;
  const float* x = nullptr;
  int64_t n_tok = 0;
  float* y = nullptr;
};
// Most products one fused launch takes; callers split longer lists.
inline constexpr int kMaxFusedJobs = 32;
// Products of one quantized weight type `type` (every jobs[i].w.type), one
// launch. n <= kMaxFusedJobs.
cudaError_t LaunchQuantMatMulFused(GgmlType type, const QuantJob* jobs, int n, cudaStream_t s);

// y[n_tok, n_out] = x · Wᵀ for F32, F16 or BF16 weights, one warp per row and
// token (the matrix-vector path; longer batches go to cuBLAS).
cudaError_t LaunchFloatMatVec(const WeightView& w, const float* x, int64_t n_tok, float* y,
                              cudaStream_t s);
// Rows r0 .. r0+rows-1 of W dequantized to F16, row-major [rows, n_in].
cudaError_t LaunchDequantToHalf(const WeightView& w, int64_t r0, int64_t rows, void* out_f16,
                                cudaStream_t s);
// F32 -> F16 / BF16 conversion (activations for cuBLAS).
cudaError_t LaunchToHalf(const float* x, void* out, int64_t n, bool bf16, cudaStream_t s);

cudaError_t LaunchRmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t n,
                          float eps, cudaStream_t s);
cudaError_t LaunchRope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim,
                       const int32_t* pos, const RopeParams& p, cudaStream_t s);
cudaError_t LaunchSoftmax(float* x, int64_t rows, int64_t n, cudaStream_t s);
// Top k of each row of x[rows, n] (ties to the lower index), descending:
// ids[rows, k], values[rows, k]. One warp per row; n <= 1024, k <= 32 (else
// the reference kernel, one thread per row).
cudaError_t LaunchTopKRows(const float* x, int64_t rows, int64_t n, int k, bool renormalize,
                           int32_t* ids, float* values, cudaStream_t s);
cudaError_t LaunchTopKReference(const float* x, int64_t n, int k, bool renormalize, int32_t* ids,
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
// One block per (token, head), KV in tiles of 128 positions with an online
// softmax; no scratch. Value heads up to 1024 wide (else cudaErrorInvalidValue).
cudaError_t LaunchAttention(const AttentionArgs& a, cudaStream_t s);
// The same over `splits` blocks per (token, head), each reading a share of
// its KV range (kernels/cuda/cuda_attention_split.h: when to split, the
// shares, the combine), then one combine launch. `partials` is device scratch
// of AttentionSplitBytes(a, splits). 1 <= splits <= kAttnMaxSplits.
cudaError_t LaunchAttentionSplit(const AttentionArgs& a, int splits, float* partials,
                                 cudaStream_t s);
size_t AttentionSplitBytes(const AttentionArgs& a, int splits);
// Backend::ScatterAdd in one launch: choices[n_choices] (host) travel in the
// kernel's parameters when there are at most kScatterInlineChoices of them;
// more must also be in device memory at `table_dev` (the same array, copied
// by the caller). One thread per output element adds a token's k choices in
// order, product and sum each rounded (no FMA): AddScaled's bits.
inline constexpr int kScatterInlineChoices = 256;
cudaError_t LaunchScatterAdd(float* out, const float* src, int64_t n,
                             const ScatterChoice* choices, int64_t n_choices, int k,
                             const ScatterChoice* table_dev, cudaStream_t s);
// `scores` is device scratch of n_tok * n_head * (pos0 + n_tok) floats.
cudaError_t LaunchAttentionReference(const AttentionArgs& a, float* scores, cudaStream_t s);

}  // namespace moestream::kernels::cuda

#endif  // MOESTREAM_KERNELS_CUDA_CUDA_OPS_H_
