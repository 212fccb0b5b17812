#include "policies/predictor_util.h"

#include <algorithm>

namespace moestream::policies {

namespace {

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
  if (k <= kSmall) {
    // Insertion into a sorted array of the best k so far: one comparison
    // per expert once the array is full and the scores are skewed.
    // Ids arrive in increasing order, so a newcomer beats the current k-th
    // best only by a strictly higher score.
    int best[kSmall];
    int n = 0;
    T floor = 0;  // score to beat: 0 until k are held, then the k-th best
    for (int e = 0; e < int(scores.size()); ++e) {
      if (!(scores[e] > floor)) continue;
      int i = n < k ? n++ : n - 1;
      while (i > 0 && better(e, best[i - 1])) {
        best[i] = best[i - 1];
        --i;
      }
      best[i] = e;
      if (n == k) floor = scores[best[k - 1]];
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
