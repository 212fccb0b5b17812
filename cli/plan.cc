// `moestream plan -m MODEL --device-budget 24G --host-budget 64G [--ctx N]
//  [--kv-type f16|f32] [--experts-on auto|host|nvme] [--json]`: what the
// memory planner decides for a GGUF and budgets, from the header only: the
// resident bytes, KV cache, scratch, expert slots (global and per layer),
// the experts' tier, and whether it fits. Exit 0 when it fits; when it does
// not, one line on stderr says what is short and by how much, exit 1 (the
// plan is still printed on stdout with --json, "fits": false).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "io/gguf.h"
#include "cli/command.h"
#include "model/memory_planner.h"

namespace moestream::cli {
namespace {

class PlanCommand : public Command {
 public:
  void Register(CLI::App& app) override {
    app.add_option("-m,--model", model_, "GGUF file (only its header is read)");
    AddByteSizeOption(app, "--device-budget", &options_.device_budget_bytes,
                      "device memory budget, e.g. 24G");
    AddByteSizeOption(app, "--host-budget", &options_.host_budget_bytes,
                      "pinned host memory budget, e.g. 64G");
    app.add_option("--ctx", options_.n_ctx,
                   "context length for the KV cache; 0 = training context, at most 4096");
    app.add_option("--kv-type", kv_type_, "KV cache type: f16 or f32");
    app.add_option("--experts-on", options_.experts_on, "routed experts on auto, host or nvme");
    app.add_flag("--json", json_, "print the plan as one JSON object");
  }

  absl::Status Run() override {
    if (model_.empty()) return absl::InvalidArgumentError("--model (-m) is required");
    if (kv_type_ == "f16") {
      options_.kv_type = GgmlType::kF16;
    } else if (kv_type_ == "f32") {
      options_.kv_type = GgmlType::kF32;
    } else {
      return absl::InvalidArgumentError("--kv-type must be f16 or f32, got '" + kv_type_ + "'");
    }
    MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile f, io::GgufFile::Open(model_));
    MOESTREAM_ASSIGN_OR_RETURN(model::MemoryPlan plan, model::PlanMemory(f, options_));
    const std::string out = json_ ? plan.Json() + "\n" : plan.Text();
    std::fputs(out.c_str(), stdout);
    if (!plan.fits) return absl::ResourceExhaustedError(model_ + ": " + plan.message);
    return absl::OkStatus();
  }

 private:
  std::string model_;
  std::string kv_type_ = "f16";
  model::PlanOptions options_;
  bool json_ = false;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(plan, "memory plan for a model and budgets (header only)", PlanCommand);

}  // namespace moestream::cli
