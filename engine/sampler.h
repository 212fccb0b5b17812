// Picks the next token from a row of logits, as llama.cpp's default sampler
// chain does: repetition penalty over the last `repeat_last_n` accepted
// tokens, then greedy (temperature 0: argmax, ties to the lowest id) or
// top-k → top-p → min-p → temperature → a draw from a seeded generator.
//
//   SamplerOptions o;  o.temperature = 0;          // greedy
//   MOESTREAM_RETURN_IF_ERROR(o.Validate());
//   Sampler s(o);
//   int32_t id = s.Sample(engine.last_logits());
//   s.Accept(id);                                  // feeds the penalty window
#ifndef MOESTREAM_ENGINE_SAMPLER_H_
#define MOESTREAM_ENGINE_SAMPLER_H_

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

#include "absl/status/status.h"

namespace moestream::engine {

inline constexpr uint64_t kRandomSeed = 0xFFFFFFFFu;  // llama.cpp's "pick one"

struct SamplerOptions {
  // Softmax temperature; <= 0 selects greedy decoding. Default 0.8.
  double temperature = 0.8;
  // Keep the k most likely tokens; 0 = all. Default 40.
  int64_t top_k = 40;
  // Keep the smallest set whose probability reaches p; 1 = all. Default 0.95.
  double top_p = 0.95;
  // Drop tokens below min_p times the top probability; 0 = none. Default 0.05.
  double min_p = 0.05;
  // Divide positive (multiply negative) logits of recent tokens; 1 = off.
  double repeat_penalty = 1.0;
  // Window of recent tokens the penalty looks at; 0 = none, -1 = all. Default 64.
  int64_t repeat_last_n = 64;
  // Generator seed; kRandomSeed draws one from std::random_device.
  uint64_t seed = kRandomSeed;
  // kInvalidArgument naming the flag for an out-of-range value.
  absl::Status Validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& o);

  // The next token id (allocates nothing after the first call).
  int32_t Sample(std::span<const float> logits);
  // Records an accepted token (prompt or generated) for the penalty.
  void Accept(int32_t id);
  void Reset();
  uint64_t seed() const { return seed_; }
  const SamplerOptions& options() const { return o_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  SamplerOptions o_;
  uint64_t seed_;
  std::mt19937 rng_;
  std::deque<int32_t> recent_;
  std::vector<Candidate> cand_;
  std::vector<float> penalized_;
  std::vector<int32_t> seen_;
};

}  // namespace moestream::engine

#endif  // MOESTREAM_ENGINE_SAMPLER_H_
