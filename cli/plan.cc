// `moestream plan -m MODEL --device-budget 24G [--host-budget 64G] [run's
// engine and offload flags] [--json]`: the memory plan a `run` with the
// same flags would allocate, from the GGUF header only: every device and
// pinned host buffer (resident weights as uploaded, KV cache, scratch,
// expert slots, host tier or host cache, staging, the reader's ring), the
// experts' tiers, and whether it fits. Exit 0 when it fits; when it does
// not, one line on stderr says what is short and by how much, exit 1 (the
// plan is still printed on stdout, with "fits": false in --json).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "cli/command.h"
#include "cli/engine_flags.h"
#include "engine/cached_expert_provider.h"
#include "io/gguf.h"
#include "model/memory_planner.h"

namespace moestream::cli {
namespace {

class PlanCommand : public Command {
 public:
  void Register(CLI::App& app) override {
    flags_.Register(app);
    app.add_flag("--json", json_, "print the plan as one JSON object");
  }

  absl::Status Run() override {
    if (flags_.model.empty()) return absl::InvalidArgumentError("--model (-m) is required");
    if (flags_.device_budget == 0) {
      return absl::InvalidArgumentError("--device-budget is required: the plan is for a budget");
    }
    MOESTREAM_ASSIGN_OR_RETURN(engine::OffloadOptions oo, flags_.OffloadOptions());
    MOESTREAM_ASSIGN_OR_RETURN(engine::EngineOptions eo, flags_.EngineOptions());
    MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile f, io::GgufFile::Open(flags_.model));
    MOESTREAM_ASSIGN_OR_RETURN(model::MemoryPlan plan,
                               engine::PlanOffloadUnchecked(f, oo, eo.n_batch));
    const std::string out = json_ ? plan.Json() + "\n" : plan.Text();
    std::fputs(out.c_str(), stdout);
    if (!plan.fits) return absl::ResourceExhaustedError(flags_.model + ": " + plan.message);
    return absl::OkStatus();
  }

 private:
  EngineFlags flags_;
  bool json_ = false;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(plan, "memory plan of a run with these flags (header only)",
                           PlanCommand);

}  // namespace moestream::cli
