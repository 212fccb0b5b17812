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
#include "cli/flags.h"
#include "model/memory_planner.h"

namespace moestream::cli {
namespace {

absl::Status Plan(const std::vector<std::string>& args, bool* printed_help) {
  FlagParser p("plan");
  std::string model, kv_type = "f16";
  model::PlanOptions o;
  int64_t ctx = 0;
  bool json = false;
  p.String("model", 'm', "MODEL", "GGUF file (only its header is read)", &model);
  p.Bytes("device-budget", "BYTES", "device memory budget, e.g. 24G", &o.device_budget_bytes);
  p.Bytes("host-budget", "BYTES", "pinned host memory budget, e.g. 64G", &o.host_budget_bytes);
  p.Int("ctx", 0, "N", "context length for the KV cache (default: training context, max 4096)",
        &ctx);
  p.String("kv-type", 0, "TYPE", "KV cache type: f16 or f32", &kv_type);
  p.String("experts-on", 0, "TIER", "routed experts on auto|host|nvme", &o.experts_on);
  p.Bool("json", "print the plan as one JSON object", &json);
  MOESTREAM_RETURN_IF_ERROR(p.Parse(args));
  if (p.help_requested()) {
    std::fputs(p.Usage().c_str(), stdout);
    *printed_help = true;
    return absl::OkStatus();
  }
  if (model.empty()) return absl::InvalidArgumentError("--model (-m) is required");
  if (kv_type == "f16") {
    o.kv_type = GgmlType::kF16;
  } else if (kv_type == "f32") {
    o.kv_type = GgmlType::kF32;
  } else {
    return absl::InvalidArgumentError("--kv-type must be f16 or f32, got '" + kv_type + "'");
  }
  o.n_ctx = ctx;
  MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile f, io::GgufFile::Open(model));
  MOESTREAM_ASSIGN_OR_RETURN(model::MemoryPlan plan, model::PlanMemory(f, o));
  std::string out = json ? plan.Json() + "\n" : plan.Text();
  std::fputs(out.c_str(), stdout);
  if (!plan.fits) return absl::ResourceExhaustedError(model + ": " + plan.message);
  return absl::OkStatus();
}

int RunPlan(std::vector<std::string> args) {
  bool help = false;
  absl::Status s = Plan(args, &help);
  return s.ok() ? 0 : ReportError("plan", s);
}

}  // namespace

MOESTREAM_REGISTER_COMMAND(plan, "memory plan for a model and budgets (header only)", RunPlan);

}  // namespace moestream::cli
