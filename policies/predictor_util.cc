#include "policies/predictor_util.h"

#include <algorithm>

namespace moestream::policies {

void AppendTopK(std::span<const double> scores, int layer, int k, std::vector<ExpertGuess>* out) {
  if (k <= 0) return;
  // Small k over at most a few hundred experts: a partial selection.
  thread_local std::vector<int> ids;
  ids.clear();
  for (size_t e = 0; e < scores.size(); ++e) {
    if (scores[e] > 0) ids.push_back(int(e));
  }
  size_t n = std::min(ids.size(), size_t(k));
  auto better = [&](int a, int b) {
    return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;
  };
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), better);
  if (n == 0) return;
  double top = scores[ids[0]];
  for (size_t i = 0; i < n; ++i) {
    out->push_back(ExpertGuess{ExpertKey{uint16_t(layer), uint16_t(ids[i])},
                               float(scores[ids[i]] / top)});
  }
}

}  // namespace moestream::policies
