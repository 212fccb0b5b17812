// Split-KV attention for long contexts (flash-decoding), the part written once
// for host and device: when to split, which KV positions each split reads,
// and how the splits' partial results combine. A decode step has one query
// token: its n_head (token, head) blocks alone leave most of a GPU idle while
// each walks thousands of KV positions, so the KV range of each (token, head)
// is cut into `splits` tile-aligned shares, one block each; every block leaves
// a partial result (m, l, acc) and a small combine kernel joins them
// (kernels/cuda/cuda_ops.cu). This header compiles as plain C++ too:
// tests/kernels/cuda_attention_split_test.cc checks the split choice, the
// ranges and the combine against a one-pass softmax on the CPU, no GPU.
//
//   const int s = cuda::AttentionSplits(n_tok, n_head, cuda::AttentionKvSpan(a), sm_count);
//   if (s > 1) launch partials over s splits, then the combine; else one pass.
//
// A split's partial record is PartialStride(dv) floats: m (the max score of
// its range, -inf when the range is empty), l = Σ exp(score - m), then
// acc[d] = Σ exp(score - m) * v[d] (unnormalised). Combining with an
// attention sink (one more logit, no value): M = max(sink, m_i),
// out[d] = Σ_i exp(m_i - M) acc_i[d] / (exp(sink - M) + Σ_i exp(m_i - M) l_i),
// which equals the one-pass online softmax up to rounding.
#ifndef MOESTREAM_KERNELS_CUDA_CUDA_ATTENTION_SPLIT_H_
#define MOESTREAM_KERNELS_CUDA_CUDA_ATTENTION_SPLIT_H_

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MOESTREAM_SPLIT_HD __host__ __device__ __forceinline__
#else
#define MOESTREAM_SPLIT_HD inline
#endif

namespace moestream::kernels::cuda {

// KV positions one attention block reads per step (the kernel's tile).
inline constexpr int64_t kAttnTile = 128;
// Contexts shorter than this stay one pass: the combine would cost more than
// the parallelism gains.
inline constexpr int64_t kAttnSplitMinKv = 1024;
// Each split reads at least this many positions (two tiles).
inline constexpr int64_t kAttnSplitMinPositions = 2 * kAttnTile;
// Most splits of one (token, head).
inline constexpr int kAttnMaxSplits = 32;

// Floats of one split's partial record for value heads dv wide.
MOESTREAM_SPLIT_HD int64_t PartialStride(int64_t dv) { return dv + 2; }

// The longest KV range any query of the call reads: the context, capped by a
// sliding window or a local-attention chunk.
MOESTREAM_SPLIT_HD int64_t AttentionKvSpan(int64_t pos0, int64_t n_tok, int64_t window,
                                           int64_t chunk) {
  int64_t span = pos0 + n_tok;
  if (window > 0 && window < span) span = window;
  if (chunk > 0 && chunk < span) span = chunk;
  return span;
}

// How many blocks share each (token, head)'s KV range: 1 (one pass) for a
// span below kAttnSplitMinKv, without a known SM count, or when the
// n_tok * n_head blocks already give every SM two; else enough splits for
// about two blocks per SM, each split at least kAttnSplitMinPositions
// positions, at most kAttnMaxSplits.
MOESTREAM_SPLIT_HD int AttentionSplits(int64_t n_tok, int64_t n_head, int64_t kv_span,
                                       int sm_count) {
  if (kv_span < kAttnSplitMinKv || sm_count <= 0 || n_tok * n_head <= 0) return 1;
  const int64_t base = n_tok * n_head;
  const int64_t want = 2 * int64_t(sm_count);
  if (base >= want) return 1;
  int64_t s = (want + base - 1) / base;
  if (s > kv_span / kAttnSplitMinPositions) s = kv_span / kAttnSplitMinPositions;
  if (s > kAttnMaxSplits) s = kAttnMaxSplits;
  return s < 2 ? 1 : int(s);
}

// Positions [*begin, *end) that split `split` of `splits` reads of the range
// [j0, n_kv): equal shares rounded up to whole tiles, in order from j0, so
// they cover the range exactly once; trailing splits of a short range are
// empty (begin == end == n_kv).
MOESTREAM_SPLIT_HD void SplitRange(int64_t j0, int64_t n_kv, int split, int splits,
                                   int64_t* begin, int64_t* end) {
  const int64_t len = n_kv > j0 ? n_kv - j0 : 0;
  int64_t share = (len + splits - 1) / splits;
  share = (share + kAttnTile - 1) / kAttnTile * kAttnTile;
  int64_t b = j0 + int64_t(split) * share;
  if (b > n_kv) b = n_kv;
  int64_t e = b + share;
  if (e > n_kv) e = n_kv;
  *begin = b;
  *end = e;
}

// The combine, over the `splits` partial records of one (token, head) at
// `rec` (records PartialStride(dv) floats apart). sink = -INFINITY for none.
MOESTREAM_SPLIT_HD float CombineMax(const float* rec, int splits, int64_t stride, float sink) {
  float mx = sink;
  for (int i = 0; i < splits; ++i) mx = fmaxf(mx, rec[i * stride]);
  return mx;
}
MOESTREAM_SPLIT_HD float CombineDenominator(const float* rec, int splits, int64_t stride, float mx,
                                            float sink) {
  float l = sink == -INFINITY ? 0.0f : expf(sink - mx);
  for (int i = 0; i < splits; ++i) {
    const float m = rec[i * stride];
    if (m != -INFINITY) l += expf(m - mx) * rec[i * stride + 1];
  }
  return l;
}
// Output element d (denominator from CombineDenominator).
MOESTREAM_SPLIT_HD float CombineOutput(const float* rec, int splits, int64_t stride, float mx,
                                       float denominator, int64_t d) {
  float acc = 0.0f;
  for (int i = 0; i < splits; ++i) {
    const float m = rec[i * stride];
    if (m != -INFINITY) acc += expf(m - mx) * rec[i * stride + 2 + d];
  }
  return acc / denominator;
}

}  // namespace moestream::kernels::cuda

#undef MOESTREAM_SPLIT_HD

#endif  // MOESTREAM_KERNELS_CUDA_CUDA_ATTENTION_SPLIT_H_
