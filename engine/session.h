// Loading a model for generation (backend → GGUF → config → weights →
// expert provider → engine) and one generation: prefill a prompt as one batch, then sample and feed back
// tokens one at a time until a token count or an end-of-generation token,
// timing each phase. `moestream run` and `moestream bench` both use it.
//
//   GenerateOptions g;  g.n_predict = 64;
//   MOESTREAM_ASSIGN_OR_RETURN(GenerationResult r,
//       Generate(*engine, sampler, prompt, g, [](int32_t id) { Print(id); return true; }));
//   printf("%.1f tok/s\n", r.stats.decode_tok_s());
#ifndef MOESTREAM_ENGINE_SESSION_H_
#define MOESTREAM_ENGINE_SESSION_H_

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "io/gguf.h"
#include "kernels/backend.h"
#include "engine/engine.h"
#include "engine/expert_provider.h"
#include "model/model_config.h"
#include "engine/sampler.h"
#include "model/weights.h"

namespace moestream::engine {

class RecordingExpertProvider;

struct GenerateOptions {
  // Tokens to generate (sample). Default 32.
  int64_t n_predict = 32;
  // Stop after sampling an end-of-generation token (it is still reported).
  bool stop_at_eog = true;
  // Compute logits of every processed position and hand them to on_logits
  // (prompt rows first, then one row per fed-back token).
  bool all_logits = false;
};

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // sampled
  int64_t decoded_tokens = 0;    // fed back through the model
  double prefill_ms = 0;         // Process(prompt)
  double decode_ms = 0;          // all single-token Process() calls
  double sample_ms = 0;          // all Sample() calls
  double ttft_ms = 0;            // start to the first sampled token
  double total_ms = 0;
  // Process CPU time (all threads, user + system) of the two phases: on a
  // shared machine tokens per CPU-second say what wall-clock rates cannot.
  double prefill_cpu_ms = 0;
  double decode_cpu_ms = 0;
  // Wall time of each single-token Process(), in order (decode latency).
  std::vector<double> token_ms;
  double prefill_tok_s() const { return prefill_ms > 0 ? prompt_tokens * 1e3 / prefill_ms : 0; }
  double decode_tok_s() const { return decode_ms > 0 ? decoded_tokens * 1e3 / decode_ms : 0; }
  // The q-quantile (0..1) of token_ms, nearest rank; 0 with no decode step.
  double TokenLatencyMs(double q) const;
};

struct GenerationResult {
  std::vector<int32_t> generated_ids;
  bool stopped_at_eog = false;
  GenerationStats stats;
};

// Called with each sampled id as soon as it exists; returning false stops.
using TokenFn = std::function<bool(int32_t id)>;
// Called with `rows` rows of n_vocab logits, in position order.
using LogitsFn = std::function<absl::Status(std::span<const float> logits, int64_t rows)>;

// Continues from the engine's current position (Reset() it for a fresh
// context). The prompt must not be empty; its tokens are Accept()ed by the
// sampler for the repetition penalty.
absl::StatusOr<GenerationResult> Generate(Engine& engine, Sampler& sampler,
                                          std::span<const int32_t> prompt,
                                          const GenerateOptions& o, const TokenFn& on_token,
                                          const LogitsFn& on_logits = nullptr);

// Builds the provider of routed experts for a loaded model. The default
// (null) is the all-resident ResidentExpertProvider.
using ExpertProviderFactory = std::function<absl::StatusOr<std::unique_ptr<ExpertProvider>>(
    kernels::Backend& backend, const io::GgufFile& file, const model::ModelConfig& config,
    const model::ModelWeights& weights, int64_t n_batch)>;

struct LoadOptions {
  // Upload the routed experts with the dense weights (all-resident).
  bool upload_routed_experts = true;
  ExpertProviderFactory provider_factory;
  // Print loading progress and the model summary on stderr. Default false.
  bool verbose = false;
  // Record the routing into this trace file (trace/trace.h): the provider
  // is wrapped in a RecordingExpertProvider (LoadedModel::recorder). Empty =
  // no recording.
  std::string record_trace;
};

// Everything one loaded model consists of; members are destroyed in reverse
// order (engine before provider before weights before the backend).
struct LoadedModel {
  std::unique_ptr<kernels::Backend> backend;
  io::GgufFile file;
  model::ModelConfig config;
  std::unique_ptr<model::ModelWeights> weights;
  std::unique_ptr<ExpertProvider> provider;
  RecordingExpertProvider* recorder = nullptr;  // set when LoadOptions::record_trace is
  std::unique_ptr<Engine> engine;
  double load_ms = 0;
};

// Loads `path` onto a new backend. Errors name the file, tensor or option.
absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& path,
                                                       const kernels::BackendOptions& bo,
                                                       const EngineOptions& eo,
                                                       const LoadOptions& lo);

}  // namespace moestream::engine

#endif  // MOESTREAM_ENGINE_SESSION_H_
