#include "policies/predictor_util.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <type_traits>

namespace moestream::policies {

namespace {

// Chunks of kChunk scores: the small-k selection visits them best first.
constexpr int kChunk = 16;

// max[c] = the largest bit pattern among the scores of chunk c (s[c * kChunk
// ..], the last chunk possibly short) and +0, the patterns read as signed
// integers: for values >= +0 their order is the values' order, negative
// values are negative patterns, and a NaN with its sign bit clear is above
// +inf. Integer maxima vectorise where float ones (NaN rules) do not.
// Inlined into the per-width copies below (a subset of their targets).
template <typename T, typename Bits>
inline void ChunkMaxBitsOf(const T* __restrict s, int n, Bits* __restrict max) {
  for (int c = 0; c * kChunk < n; ++c) {
    const int end = std::min(n, (c + 1) * kChunk);
    Bits m = 0;
    for (int i = c * kChunk; i < end; ++i) {
      Bits b;
      std::memcpy(&b, &s[i], sizeof b);
      m = b > m ? b : m;
    }
    max[c] = m;
  }
}
MOESTREAM_VECTOR_CLONES
void ChunkMaxBits(const float* __restrict s, int n, int32_t* __restrict max) {
  ChunkMaxBitsOf(s, n, max);
}
MOESTREAM_VECTOR_CLONES
void ChunkMaxBits(const double* __restrict s, int n, int64_t* __restrict max) {
  ChunkMaxBitsOf(s, n, max);
}

template <typename T>
void AppendTopKOf(std::span<const T> scores, int layer, int k, std::vector<ExpertGuess>* out,
                  bool absolute) {
  if (k <= 0) return;
  // Best first: higher score, then lower id (a strict total order, so the
  // answer does not depend on the selection method).
  auto better = [&](int a, int b) {
    return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;
  };
  constexpr int kSmall = 32;
  constexpr int kMaxChunks = 256;
  const int size = int(scores.size());
  if (k <= kSmall && size <= kMaxChunks * kChunk) {
    // Insertion into a sorted array of the best k so far, visiting chunks
    // of kChunk scores in order of their best score: the first chunks fill
    // the array with high scores, and a chunk whose best is below the k-th
    // held ends the search (every later chunk's best is lower still), so
    // few scores are compared and fewer inserted.
    using Bits = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    constexpr Bits kInf = std::bit_cast<Bits>(std::numeric_limits<T>::infinity());
    Bits max[kMaxChunks];
    int order[kMaxChunks];
    const int chunks = (size + kChunk - 1) / kChunk;
    ChunkMaxBits(scores.data(), size, max);
    for (int c = 0; c < chunks; ++c) {
      if (max[c] > kInf) max[c] = kInf;  // holds a NaN: visit it early
      int i = c;
      while (i > 0 && max[order[i - 1]] < max[c]) {
        order[i] = order[i - 1];
        --i;
      }
      order[i] = c;
    }
    int best[kSmall];
    T held[kSmall];  // scores[best[i]]
    int n = 0;
    for (int j = 0; j < chunks; ++j) {
      const int c = order[j];
      if (max[c] <= 0) break;  // no positive score here or later
      if (n == k && max[c] < std::bit_cast<Bits>(held[k - 1])) break;
      const int end = std::min(size, (c + 1) * kChunk);
      for (int e = c * kChunk; e < end; ++e) {
        const T se = scores[e];
        if (!(se > 0)) continue;
        if (n == k && (se < held[k - 1] || (se == held[k - 1] && e > best[k - 1]))) continue;
        // Its place: the number of held entries better than it, counted
        // without branching on each comparison.
        int pos = 0;
        for (int i = 0; i < n; ++i) {
          pos += int(held[i] > se) | (int(held[i] == se) & int(best[i] < e));
        }
        for (int i = n < k ? n++ : n - 1; i > pos; --i) {
          best[i] = best[i - 1];
          held[i] = held[i - 1];
        }
        best[pos] = e;
        held[pos] = se;
      }
    }
    if (n == 0) return;
    const double top = absolute ? 1.0 : scores[best[0]];
    for (int i = 0; i < n; ++i) {
      out->push_back(ExpertGuess{ExpertKey{uint16_t(layer), uint16_t(best[i])},
                                 float(std::min(1.0, scores[best[i]] / top))});
    }
    return;
  }
  thread_local std::vector<int> ids;
  ids.clear();
  for (size_t e = 0; e < scores.size(); ++e) {
    if (scores[e] > 0) ids.push_back(int(e));
  }
  size_t n = std::min(ids.size(), size_t(k));
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), better);
  if (n == 0) return;
  double top = absolute ? 1.0 : scores[ids[0]];
  for (size_t i = 0; i < n; ++i) {
    out->push_back(ExpertGuess{ExpertKey{uint16_t(layer), uint16_t(ids[i])},
                               float(std::min(1.0, scores[ids[i]] / top))});
  }
}

}  // namespace

void AppendTopK(std::span<const double> scores, int layer, int k, std::vector<ExpertGuess>* out,
                bool absolute) {
  AppendTopKOf(scores, layer, k, out, absolute);
}

void AppendTopK(std::span<const float> scores, int layer, int k, std::vector<ExpertGuess>* out,
                bool absolute) {
  AppendTopKOf(scores, layer, k, out, absolute);
}

MOESTREAM_VECTOR_CLONES
void AddScaledRow(float* __restrict acc, const float* __restrict row, float s, int n) {
  for (int i = 0; i < n; ++i) acc[i] += s * row[i];
}

MOESTREAM_VECTOR_CLONES
void AddScaledCounts(float* __restrict acc, const uint16_t* __restrict row, float s, int n) {
  for (int i = 0; i < n; ++i) acc[i] += s * float(row[i]);
}

}  // namespace moestream::policies
