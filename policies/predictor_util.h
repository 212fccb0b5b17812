// Helpers shared by the prefetch predictors: the layer a prediction targets
// (wrapping from the last layer to the next token's first), and picking the
// best k experts of one layer from a score array.
#ifndef MOESTREAM_POLICIES_PREDICTOR_UTIL_H_
#define MOESTREAM_POLICIES_PREDICTOR_UTIL_H_

#include <cstdint>
#include <span>
#include <vector>

#include "policies/prefetch_predictor.h"

namespace moestream::policies {

// Layer `layer + ahead`, wrapping past the last layer (n_layers > 0).
inline int TargetLayer(int layer, int ahead, int n_layers) {
  return n_layers > 0 ? (layer + ahead) % n_layers : layer + ahead;
}

// Appends the k experts of `layer` with the highest positive scores (ties by
// lower expert id) to `out`, confidence = score / max score, or the score
// itself (clamped to [0, 1]) when `absolute` (scores that are probabilities).
void AppendTopK(std::span<const double> scores, int layer, int k, std::vector<ExpertGuess>* out,
                bool absolute = false);
void AppendTopK(std::span<const float> scores, int layer, int k, std::vector<ExpertGuess>* out,
                bool absolute = false);

// Function attribute for the predictors' per-expert loops: a copy per
// vector width (AVX-512, AVX2, baseline), chosen when the program loads.
// Not under the sanitizers: the choosing (an ifunc resolver) runs while the
// program is being relocated, before the sanitizer's runtime is up, and an
// instrumented resolver crashes there (ThreadSanitizer does).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#define MOESTREAM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MOESTREAM_VECTOR_CLONES
#endif

// acc[i] += s * row[i] for i < n.
void AddScaledRow(float* __restrict acc, const float* __restrict row, float s, int n);
void AddScaledCounts(float* __restrict acc, const uint16_t* __restrict row, float s, int n);


// Number of guesses per layer: the `k` option if set (> 0), else top_k.
inline int GuessCount(int k_option, int top_k) { return k_option > 0 ? k_option : top_k; }

}  // namespace moestream::policies

#endif  // MOESTREAM_POLICIES_PREDICTOR_UTIL_H_
