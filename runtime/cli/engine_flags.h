// The flags every model-running command shares (backend, threads, KV cache,
// context, batch), turned into the options of runtime::LoadModel. `run` and
// `bench` use them; the offloading flags belong here too, with their
// provider passed through runtime::LoadOptions::provider_factory.
//
//   EngineFlags ef;  FlagParser p("run");
//   ef.Register(p);                      // -m, --backend, -t, --kv-type, --ctx, --batch
//   MOESTREAM_RETURN_IF_ERROR(p.Parse(args));
//   MOESTREAM_ASSIGN_OR_RETURN(auto m, LoadModel(ef, runtime::LoadOptions{}));
//   m->engine->Process(...);
#ifndef MOESTREAM_RUNTIME_CLI_ENGINE_FLAGS_H_
#define MOESTREAM_RUNTIME_CLI_ENGINE_FLAGS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "io/gguf.h"
#include "kernels/backend.h"
#include "runtime/cli/flags.h"
#include "runtime/engine.h"
#include "runtime/expert_provider.h"
#include "runtime/session.h"

namespace moestream::cli {

struct EngineFlags {
  std::string model;             // -m: GGUF path (required)
  std::string backend = "auto";  // --backend cpu|cuda|auto
  int64_t threads = 0;           // -t: compute threads (cpu); 0 = one per core
  std::string kv_type = "f32";   // --kv-type f32|f16
  int64_t ctx = 0;               // --ctx: KV positions; 0 = model context capped at 4096
  int64_t batch = 512;           // --batch: most tokens per forward chunk
  std::string isa = "auto";      // --isa auto|scalar|avx2|avx512 (cpu kernels)

  void Register(FlagParser& p);
  // kInvalidArgument naming the flag.
  absl::StatusOr<kernels::BackendOptions> BackendOptions() const;
  absl::StatusOr<runtime::EngineOptions> EngineOptions() const;
};

// runtime::LoadModel with the flags' options.
absl::StatusOr<std::unique_ptr<runtime::LoadedModel>> LoadModel(const EngineFlags& f,
                                                                const runtime::LoadOptions& o);

// JSON text of a string (quoted and escaped) and of an id array.
std::string JsonString(std::string_view s);
std::string JsonIds(const std::vector<int32_t>& ids);

}  // namespace moestream::cli

#endif  // MOESTREAM_RUNTIME_CLI_ENGINE_FLAGS_H_
