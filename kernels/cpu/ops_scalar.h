// Scalar implementations of the CPU backend's non-matmul ops, written over
// index ranges so the backend can split them across its thread pool. These
// are the reference the tests hold the backend to (together with
// double-precision references written in the tests themselves).
//
// Numerical choices: sums in float with per-row max subtraction for softmax;
// RmsNorm accumulates the mean square in double; RoPE angles are computed in
// float exactly as llama.cpp's ggml_rope_yarn (theta = pos * base^(-2i/n_rot),
// optionally divided by a frequency factor, YaRN ramp between interpolation
// and extrapolation); attention subtracts the row max before exp (scores kept
// in a scratch row of pos0+n_tok floats).
//
//   RmsNormRows(x, w, y, 0, rows, n, 1e-6f);
//   RopeTokens(x, 0, n_tok, n_head, head_dim, pos, params);
#ifndef MOESTREAM_KERNELS_CPU_OPS_SCALAR_H_
#define MOESTREAM_KERNELS_CPU_OPS_SCALAR_H_

#include <cstdint>

#include "kernels/backend.h"

namespace moestream::kernels::cpu {

void RmsNormRows(const float* x, const float* w, float* y, int64_t row_begin, int64_t row_end,
                 int64_t n, float eps);
void SoftmaxRows(float* x, int64_t row_begin, int64_t row_end, int64_t n);
// Rotates tokens [tok_begin, tok_end) of x[n_tok, n_head, head_dim].
void RopeTokens(float* x, int64_t tok_begin, int64_t tok_end, int64_t n_head, int64_t head_dim,
                const int32_t* pos, const RopeParams& p);
void TopK(const float* x, int64_t n, int k, bool renormalize, int32_t* ids, float* values);
void SigmoidRange(float* x, int64_t begin, int64_t end);
void SiluMulRange(const float* gate, const float* up, float* out, int64_t begin, int64_t end);
void SwigluClampedRange(const float* gate, const float* up, float* out, float alpha, float limit,
                        int64_t begin, int64_t end);
// Rows [begin, end) of x (rows of n) += bias.
void AddBiasRows(float* x, const float* bias, int64_t n, int64_t begin, int64_t end);
void AddRange(const float* a, const float* b, float* out, int64_t begin, int64_t end);
void ScaleRange(float* x, float s, int64_t begin, int64_t end);
void AddScaledRange(float* y, const float* x, float s, int64_t begin, int64_t end);
// Elements [begin, end) of the flattened out[n_tok, n] of Backend::ScatterAdd:
// each element's k choices added in order j (the bits of k AddScaledRange calls).
void ScatterAddRange(float* out, const float* src, int64_t n, const ScatterChoice* choices, int k,
                     int64_t begin, int64_t end);
void StoreKvRange(const float* src, void* dst, GgmlType kv_type, int64_t begin, int64_t end);

// Row kernels of attention over one KV row of d elements (F32 or F16 KV):
// q·k and out += p·v. Scalar here; AVX2 in attention_avx2.cc.
struct KvRowKernels {
  float (*dot)(const float* q, const void* k, int64_t d) = nullptr;
  void (*axpy)(float* out, float p, const void* v, int64_t d) = nullptr;
  // Optional block forms for prefill tiles (AttentionTile), n <= 64 keys:
  //   scores: s[r * 64 + j] = (q[r] · k_j) · scale for r < rows, j < n
  //     (kt: d × 64 floats of scratch for the transposed keys);
  //   values: o[r * dv + c] += Σ_j p[r * p_stride + j] · v_j[c], in key
  //     order (the same FMA chain as axpy key by key, so the same bits).
  // Each (row, key) score and each output element is one chain of FMAs in
  // a fixed order, so a result does not depend on rows or n.
  void (*block_scores)(const float* const* q, int64_t rows, const void* k, size_t k_stride,
                       int64_t n, int64_t d, float scale, float* s, float* kt) = nullptr;
  void (*block_values)(const float* p, int64_t p_stride, int64_t rows, const void* v,
                       size_t v_stride, int64_t n, int64_t dv, float* o) = nullptr;
  // Optional decode form: s[r * s_stride + j] = (q[r] · k_j) · scale for
  // r < rows and any n, several keys and rows at a time.
  void (*row_scores)(const float* const* q, int64_t rows, const void* k, size_t k_stride,
                     int64_t n, int64_t d, float scale, float* s, int64_t s_stride) = nullptr;
};
KvRowKernels ScalarKvKernels(GgmlType kv_type);
// Only when the CPU has AVX2, FMA and F16C.
KvRowKernels Avx2KvKernels(GgmlType kv_type);

// Heads h0 .. h0+n_heads-1 (at most kMaxAttentionHeads, all of one KV
// head's group) of query token t in causal GQA: each key and value row is
// read once for all of them. Per head the arithmetic is that head alone
// would do (scores, max, exp, sum, out += p·v in key order, then 1/sum), so
// the result does not depend on how heads are grouped. scratch holds
// n_heads × (pos0 + n_tok) floats.
inline constexpr int64_t kMaxAttentionHeads = 64;
void AttentionHeads(const AttentionArgs& a, int64_t t, int64_t h0, int64_t n_heads,
                    float* scratch, const KvRowKernels& kv);

// Prefill attention in tiles: queries t0 .. t0+n_q-1 × heads h0 ..
// h0+n_heads-1 (all of one KV head's group) against the keys in blocks of
// kAttentionKeyBlock positions, with a running (online) softmax per query
// row: each block's scores, the row's new maximum, the sum and output
// rescaled by exp(old max - new max), then out += p·v. Each key and value
// row is read once per tile instead of once per query, which is what long
// prompts need (an 8k-token context's keys no longer fit a core's cache).
// Key blocks start at multiples of kAttentionKeyBlock, so a row's arithmetic
// does not depend on the tile it falls in (nor on the thread count). It
// differs from AttentionHeads' single pass only by float rounding.
// At most kAttentionTileRows rows (n_q × n_heads). scratch holds
// AttentionTileScratch(n_q * n_heads, head_dim, head_dim_v) floats.
inline constexpr int64_t kAttentionKeyBlock = 64;
inline constexpr int64_t kAttentionTileRows = 64;
inline constexpr int64_t AttentionTileScratch(int64_t rows, int64_t d, int64_t dv) {
  return rows * (kAttentionKeyBlock + dv + 2) + d * kAttentionKeyBlock;
}
void AttentionTile(const AttentionArgs& a, int64_t t0, int64_t n_q, int64_t h0, int64_t n_heads,
                   float* scratch, const KvRowKernels& kv);

}  // namespace moestream::kernels::cpu

#endif  // MOESTREAM_KERNELS_CPU_OPS_SCALAR_H_
