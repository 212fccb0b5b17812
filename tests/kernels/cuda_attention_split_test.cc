// The CUDA backend's split-KV attention (flash-decoding), checked on the CPU:
// kernels/cuda/cuda_attention_split.h is the code the device kernels run for
// the split choice, each split's share of the KV range and the combine, so
// here the shares must cover every range exactly once, the choice must
// split only long contexts with few (token, head) blocks, and partial
// results combined must equal a one-pass softmax (with and without an
// attention sink, with empty shares). Runs without a GPU and without nvcc.
#include "kernels/cuda/cuda_attention_split.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace moestream::kernels {
namespace {

using cuda::AttentionKvSpan;
using cuda::AttentionSplits;
using cuda::kAttnMaxSplits;
using cuda::kAttnSplitMinKv;
using cuda::kAttnSplitMinPositions;
using cuda::kAttnTile;
using cuda::SplitRange;

TEST(CudaAttentionSplitTest, ShortContextsAndFullGpusStayOnePass) {
  EXPECT_EQ(AttentionSplits(1, 32, kAttnSplitMinKv - 1, 132), 1);
  EXPECT_EQ(AttentionSplits(1, 32, 100000, 0), 1);         // SM count unknown
  EXPECT_EQ(AttentionSplits(512, 32, 100000, 132), 1);     // prefill fills the GPU
  EXPECT_EQ(AttentionSplits(9, 32, 100000, 132), 1);       // 288 blocks >= 2 per SM
  EXPECT_EQ(AttentionSplits(0, 32, 100000, 132), 1);
}

TEST(CudaAttentionSplitTest, LongDecodeContextsSplitWithinTheBounds) {
  // One token of 32 heads at 4096 positions on 132 SMs: 9 splits give
  // 288 blocks, about two per SM.
  EXPECT_EQ(AttentionSplits(1, 32, 4096, 132), 9);
  for (int sms : {8, 46, 84, 108, 132, 144}) {
    for (int64_t heads : {1, 2, 8, 32, 64}) {
      for (int64_t span : {kAttnSplitMinKv, int64_t(3000), int64_t(32768), int64_t(1) << 20}) {
        const int s = AttentionSplits(1, heads, span, sms);
        EXPECT_GE(s, 1);
        EXPECT_LE(s, kAttnMaxSplits);
        if (s > 1) {
          EXPECT_GE(span / s, kAttnSplitMinPositions) << span << " " << s;
          EXPECT_LT(heads * (s - 1), 2 * sms) << "more splits than the GPU needs";
        }
      }
    }
  }
  // Few splits' worth of positions caps the count.
  EXPECT_EQ(AttentionSplits(1, 1, 4 * kAttnSplitMinPositions, 132), 4);
}

TEST(CudaAttentionSplitTest, SpanIsCappedByWindowAndChunk) {
  EXPECT_EQ(AttentionKvSpan(4000, 1, 0, 0), 4001);
  EXPECT_EQ(AttentionKvSpan(4000, 1, 128, 0), 128);
  EXPECT_EQ(AttentionKvSpan(4000, 1, 0, 2048), 2048);
  EXPECT_EQ(AttentionKvSpan(10, 3, 128, 2048), 13);
}

TEST(CudaAttentionSplitTest, SharesCoverTheRangeOnceInWholeTiles) {
  for (int64_t j0 : {int64_t(0), int64_t(5), int64_t(1000)}) {
    for (int64_t len : {int64_t(0), int64_t(1), int64_t(127), int64_t(129), int64_t(1000),
                        int64_t(4097), int64_t(70001)}) {
      for (int splits = 1; splits <= kAttnMaxSplits; ++splits) {
        const int64_t n_kv = j0 + len;
        int64_t next = j0;
        for (int i = 0; i < splits; ++i) {
          int64_t b = 0, e = 0;
          SplitRange(j0, n_kv, i, splits, &b, &e);
          ASSERT_LE(b, e);
          if (b == e) {
            ASSERT_EQ(b, n_kv) << "an empty share sits at the end";
            continue;
          }
          ASSERT_EQ(b, next) << "j0 " << j0 << " len " << len << " split " << i << "/" << splits;
          ASSERT_EQ((b - j0) % kAttnTile, 0);
          next = e;
        }
        ASSERT_EQ(next, n_kv) << "j0 " << j0 << " len " << len << " splits " << splits;
      }
    }
  }
}

// Scores and values of one (token, head); partials computed per share as
// the split kernel defines them, then combined.
void CheckCombine(int64_t len, int splits, int64_t dv, bool sink, uint32_t seed) {
  const std::vector<float> s = testing::RandomVec(len, seed, 3.0f);
  const std::vector<float> v = testing::RandomVec(len * dv, seed + 1);
  const float sink_logit = sink ? 1.5f : -INFINITY;
  // One pass, in double.
  double mx = sink ? double(sink_logit) : -INFINITY;
  for (float x : s) mx = std::max(mx, double(x));
  double den = sink ? std::exp(double(sink_logit) - mx) : 0.0;
  std::vector<double> want(size_t(dv), 0.0);
  for (int64_t p = 0; p < len; ++p) {
    const double e = std::exp(double(s[size_t(p)]) - mx);
    den += e;
    for (int64_t d = 0; d < dv; ++d) want[size_t(d)] += e * v[size_t(p * dv + d)];
  }
  // Partials.
  const int64_t stride = cuda::PartialStride(dv);
  std::vector<float> rec(size_t(splits * stride));
  for (int i = 0; i < splits; ++i) {
    int64_t b = 0, e = 0;
    SplitRange(0, len, i, splits, &b, &e);
    float m = -INFINITY, l = 0.0f;
    for (int64_t p = b; p < e; ++p) m = std::max(m, s[size_t(p)]);
    float* r = &rec[size_t(i * stride)];
    for (int64_t d = 0; d < dv; ++d) r[2 + d] = 0.0f;
    for (int64_t p = b; p < e; ++p) {
      const float w = std::exp(s[size_t(p)] - m);
      l += w;
      for (int64_t d = 0; d < dv; ++d) r[2 + d] += w * v[size_t(p * dv + d)];
    }
    r[0] = m;
    r[1] = l;
  }
  const float cm = cuda::CombineMax(rec.data(), splits, stride, sink_logit);
  const float cden = cuda::CombineDenominator(rec.data(), splits, stride, cm, sink_logit);
  for (int64_t d = 0; d < dv; ++d) {
    const float got = cuda::CombineOutput(rec.data(), splits, stride, cm, cden, d);
    const double ref = want[size_t(d)] / den;
    ASSERT_NEAR(got, ref, 2e-5 * (1 + std::fabs(ref)))
        << "len " << len << " splits " << splits << " sink " << sink << " d " << d;
  }
}

TEST(CudaAttentionSplitTest, CombinedPartialsEqualOnePassSoftmax) {
  uint32_t seed = 1;
  for (int64_t len : {int64_t(1), int64_t(200), int64_t(1024), int64_t(3001)}) {
    for (int splits : {1, 2, 3, 9, 32}) {  // 32 shares of 200 positions: mostly empty
      for (bool sink : {false, true}) CheckCombine(len, splits, 64, sink, seed++);
    }
  }
  CheckCombine(4096, 11, 512, true, 99);  // a wide (latent) value head
}

}  // namespace
}  // namespace moestream::kernels
