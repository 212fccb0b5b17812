// `moestream plan -m MODEL --device-budget 24G [--host-budget 64G] [run's
// engine and offload flags] [decode prediction flags] [--json]`: the memory
// plan a `run` with the same flags would allocate, from the GGUF header
// only: every device and pinned host buffer (resident weights as uploaded,
// KV cache, scratch, expert slots, host tier or host cache, staging, the
// reader's ring), the experts' tiers, and whether it fits; then the
// predicted decode tok/s on the hardware described by --device-gbps,
// --host-gbps, --link and --nvme-gbps (model/decode_predictor.h), from the
// expert cache's hit rate at the plan's capacity (engine/hit_rate_model.h:
// a routing trace replayed, or a Zipf model), with the assumptions printed.
// With `--preset NAME [--type q4_k_m] [--scale F]` instead of -m, the model
// is `moestream gen`'s preset, its header made on the spot (nothing to
// download or keep). Exit 0 when it fits; when it does not, one line on stderr says what is
// short and by how much, exit 1 (the plan is still printed on stdout, with
// "fits": false in --json, and no prediction).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cli/command.h"
#include "cli/engine_flags.h"
#include "engine/cached_expert_provider.h"
#include "engine/hit_rate_model.h"
#include "gen/model_gen.h"
#include "io/gguf.h"
#include "kernels/backend.h"
#include "model/decode_predictor.h"
#include "model/memory_planner.h"
#include "nlohmann/json.hpp"

namespace moestream::cli {
namespace {

// Where `plan` looks for the shared routing traces when --trace-dir is not
// given: $MOESTREAM_TRACE_DIR, else ../shared/data when it exists.
std::string DefaultTraceDir() {
  if (const char* env = std::getenv("MOESTREAM_TRACE_DIR"); env != nullptr) return env;
  return "../shared/data";
}

// A rate with three significant digits, never in exponent notation.
std::string Rate(double x) {
  if (x >= 100) return absl::StrFormat("%.0f", x);
  if (x >= 10) return absl::StrFormat("%.1f", x);
  return absl::StrFormat("%.2f", x);
}

// A header-only GGUF of a gen preset in a temporary file, removed with this.
class PresetHeader {
 public:
  ~PresetHeader() {
    if (!path_.empty()) std::filesystem::remove(path_, ec_);
  }
  absl::Status Make(const std::string& preset, const std::string& type, double scale,
                    bool scale_given) {
    MOESTREAM_ASSIGN_OR_RETURN(gen::GenOptions o,
                               gen::PresetOptions(preset, gen::PresetDefaultArch(preset)));
    if (scale_given) MOESTREAM_RETURN_IF_ERROR(gen::ScaleOptions(scale, false, &o));
    MOESTREAM_ASSIGN_OR_RETURN(gen::GenType t, gen::ParseGenType(type));
    o.type = t.type;
    o.mix = t.mix;
    o.header_only = true;
    o.threads = 1;
    MOESTREAM_RETURN_IF_ERROR(o.Validate());
    std::string tmpl =
        (std::filesystem::temp_directory_path(ec_) / "moestream-plan-XXXXXX").string();
    const int fd = mkstemp(tmpl.data());
    if (fd < 0) return absl::InternalError("plan --preset: cannot create a temporary file");
    close(fd);
    path_ = tmpl;
    return gen::GenerateModel(o, path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::error_code ec_;
};

class PlanCommand : public Command {
 public:
  void Register(CLI::App& app) override {
    app_ = &app;
    flags_.Register(app);
    app.add_flag("--json", json_, "print the plan as one JSON object");
    app.add_option("--preset", preset_,
                   "plan a `gen` preset instead of -m (its header, made on the spot)");
    app.add_option("--type", type_, "with --preset: tensor types as gen --type (default q4_k_m)");
    app.add_option("--scale", scale_, "with --preset: shrink it as gen --scale");
    app.add_option("--device-gbps", hw_.device_gbps,
                   "prediction: device memory bandwidth, GB/s (cuda backend)");
    app.add_option("--host-gbps", hw_.host_gbps,
                   "prediction: host memory bandwidth (read traffic), GB/s");
    app.add_option("--nvme-gbps", hw_.nvme_gbps, "prediction: NVMe read bandwidth, GB/s");
    app.add_option("--efficiency", efficiency_,
                   "prediction: fraction of each bandwidth reached, LOW:HIGH (the range)");
    app.add_option("--layer-overhead-us", overhead_us_,
                   "prediction: fixed cost per layer per token, us (default 100 cpu, 10 cuda)");
    app.add_option("--trace", trace_,
                   "prediction: routing trace for the hit rate (any format replay reads), or "
                   "zipf; default: a shared trace of a model with as many experts, else zipf");
    app.add_option("--trace-dir", trace_dir_,
                   "prediction: folder of the shared traces (default $MOESTREAM_TRACE_DIR or "
                   "../shared/data)");
    app.add_option("--zipf", zipf_s_, "prediction: Zipf exponent of expert popularity");
    app.add_option("--kv-position", kv_position_,
                   "prediction: decode position whose KV cache is read (default half of --ctx)");
  }

  absl::Status Run() override {
    PresetHeader header;
    std::string name = flags_.model;
    if (!preset_.empty()) {
      if (!flags_.model.empty()) {
        return absl::InvalidArgumentError("give -m MODEL or --preset NAME, not both");
      }
      MOESTREAM_RETURN_IF_ERROR(
          header.Make(preset_, type_, scale_, app_->count("--scale") > 0));
      flags_.model = header.path();
      name = absl::StrCat("preset ", preset_, " (", type_, ")");
    } else if (app_->count("--type") > 0 || app_->count("--scale") > 0) {
      return absl::InvalidArgumentError("--type and --scale go with --preset");
    }
    if (flags_.model.empty()) {
      return absl::InvalidArgumentError("--model (-m) or --preset is required");
    }
    if (flags_.device_budget == 0) {
      return absl::InvalidArgumentError("--device-budget is required: the plan is for a budget");
    }
    // --link takes the run's profiles, and for plan also a bare GB/s.
    double link_number = 0;
    const bool link_given = app_->count("--link") > 0;
    const bool link_is_number = absl::SimpleAtod(flags_.link, &link_number);
    if (link_is_number) {
      if (!(link_number > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--link ", flags_.link, ": GB/s must be > 0"));
      }
      flags_.link = absl::StrCat("custom:", flags_.link, ":0");
    }
    engine::HitRateOptions ho;
    ho.trace = trace_;
    ho.trace_dir = app_->count("--trace-dir") > 0 ? trace_dir_ : DefaultTraceDir();
    ho.zipf_s = zipf_s_;
    ho.policy = flags_.cache_policy;
    MOESTREAM_RETURN_IF_ERROR(ho.Validate());
    std::error_code ec;
    if (!trace_.empty() && trace_ != "zipf" && !std::filesystem::exists(trace_, ec)) {
      return absl::NotFoundError(absl::StrCat("--trace ", trace_, ": no such file or folder"));
    }
    MOESTREAM_ASSIGN_OR_RETURN(engine::OffloadOptions oo, flags_.OffloadOptions());
    MOESTREAM_ASSIGN_OR_RETURN(engine::EngineOptions eo, flags_.EngineOptions());
    MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile f, io::GgufFile::Open(flags_.model));
    MOESTREAM_ASSIGN_OR_RETURN(model::MemoryPlan plan,
                               engine::PlanOffloadUnchecked(f, oo, eo.n_batch));
    if (!plan.fits) {
      std::fputs((json_ ? plan.Json() + "\n" : plan.Text()).c_str(), stdout);
      return absl::ResourceExhaustedError(name + ": " + plan.message);
    }

    // The hardware.
    model::DecodeHardware hw = hw_;
    hw.backend = oo.backend_kind;
    MOESTREAM_ASSIGN_OR_RETURN(kernels::LinkProfile profile, kernels::FindLinkProfile(flags_.link));
    std::string link_note;
    if (profile.gbps > 0) {
      hw.link_gbps = profile.gbps;
      hw.link_latency_us = profile.latency_us;
      link_note = link_is_number ? absl::StrFormat("%.3g GB/s", profile.gbps)
                                 : absl::StrFormat("%s (%.3g GB/s, %.3g us per copy)",
                                                   profile.name, profile.gbps, profile.latency_us);
    } else if (hw.backend == "cuda") {
      hw.link_gbps = 25;
      hw.link_latency_us = 8;
      link_note = link_given ? "none given for a GPU: pcie4x16 assumed (25 GB/s)"
                             : "pcie4x16 assumed (25 GB/s)";
    } else {
      hw.link_gbps = 0;
      link_note = "none (a miss is a memcpy into its slot, at host bandwidth)";
    }
    MOESTREAM_RETURN_IF_ERROR(ParseEfficiency(&hw));
    hw.layer_overhead_us = overhead_us_ >= 0 ? overhead_us_ : (hw.backend == "cpu" ? 100 : 10);
    if (hw.backend == "cpu") {
      // The CPU backend computes a host-tier miss in place with --miss-policy
      // host, or auto when that is cheaper than the modelled copy.
      hw.host_compute_misses =
          flags_.miss_policy == "host" ||
          (flags_.miss_policy == "auto" && hw.link_gbps > 0 && hw.host_gbps > hw.link_gbps);
    }
    MOESTREAM_RETURN_IF_ERROR(hw.Validate());

    // The workload and the hit rates at the plan's capacity.
    const int64_t kv_pos = kv_position_ >= 0 ? kv_position_ : plan.n_ctx / 2;
    MOESTREAM_ASSIGN_OR_RETURN(model::DecodeWorkload w, model::DecodeWorkloadOf(f, plan, kv_pos));
    engine::HitRateEstimate hits;
    if (w.experts_tier != "device" && w.experts_tier != "mmap" && plan.n_moe_layers > 0) {
      const double per_layer = double(plan.n_moe_layers);
      const double dev = double(plan.slots_global) / per_layer;
      const double ram = w.experts_tier == "host"
                             ? double(plan.n_expert)
                             : double(plan.slots_global + plan.host_cache_slots) / per_layer;
      MOESTREAM_ASSIGN_OR_RETURN(
          hits, engine::EstimateHitRates({int(plan.n_expert), int(plan.n_expert_used), plan.arch},
                                         dev, ram, ho));
    } else {
      hits.kind = "resident";
      hits.source = plan.experts_total == 0    ? "a dense model: no routed experts"
                    : w.experts_tier == "mmap" ? "experts computed in place from the mapped file"
                                               : "every expert has a device slot: no misses";
    }
    model::DecodeHitRates h{hits.device, hits.device_and_host, hits.device_cold,
                            hits.device_and_host_cold};
    MOESTREAM_ASSIGN_OR_RETURN(model::DecodePrediction p, model::PredictDecode(w, hw, h));

    if (json_) {
      nlohmann::ordered_json j = nlohmann::ordered_json::parse(plan.Json());
      nlohmann::ordered_json d;
      d["tok_s"] = p.tok_s;
      d["tok_s_low"] = p.tok_s_low;
      d["tok_s_high"] = p.tok_s_high;
      d["token_ms"] = p.token_ms;
      d["dense_ms"] = p.dense_ms;
      d["experts_ms"] = p.experts_ms;
      d["link_ms"] = p.link_ms;
      d["nvme_ms"] = p.nvme_ms;
      d["overhead_ms"] = p.overhead_ms;
      d["dense_bytes"] = w.dense_bytes;
      d["kv_bytes"] = w.kv_bytes;
      d["expert_bytes"] = w.expert_bytes;
      d["link_bytes"] = p.link_bytes;
      d["nvme_bytes"] = p.nvme_bytes;
      d["experts_tier"] = w.experts_tier;
      d["hit_rate_source"] = hits.kind;
      d["hit_rate_detail"] = hits.source;
      d["hit_rate_device"] = hits.device;
      d["hit_rate_device_high"] = hits.device_high;
      d["hit_rate_device_cold"] = hits.device_cold;
      d["hit_rate_device_and_host"] = hits.device_and_host;
      d["hit_rate_device_and_host_cold"] = hits.device_and_host_cold;
      d["backend"] = hw.backend;
      d["device_gbps"] = hw.backend == "cuda" ? hw.device_gbps : 0.0;
      d["host_gbps"] = hw.host_gbps;
      d["link_gbps"] = hw.link_gbps;
      d["nvme_gbps"] = hw.nvme_gbps;
      d["efficiency_low"] = hw.efficiency_low;
      d["efficiency_high"] = hw.efficiency_high;
      d["layer_overhead_us"] = hw.layer_overhead_us;
      d["host_compute_misses"] = hw.host_compute_misses;
      d["kv_position"] = kv_pos;
      j["decode"] = d;
      std::puts(j.dump().c_str());
      return absl::OkStatus();
    }
    std::string s = plan.Text();
    absl::StrAppendFormat(
        &s,
        "decode          predicted %s tok/s (range %s .. %s) on the %s backend: %s ms "
        "per token = resident %s + experts %s + link %s + nvme %s + overhead %s\n",
        Rate(p.tok_s), Rate(p.tok_s_low), Rate(p.tok_s_high), hw.backend, Rate(p.token_ms),
        Rate(p.dense_ms), Rate(p.experts_ms), Rate(p.link_ms), Rate(p.nvme_ms),
        Rate(p.overhead_ms));
    absl::StrAppendFormat(&s,
                          "  per token     %.1f MB resident weights, %.1f MB KV cache (position "
                          "%d), %.1f MB of experts (%.1f MB over the link, %.1f MB from NVMe)\n",
                          w.dense_bytes / 1e6, w.kv_bytes / 1e6, kv_pos, w.expert_bytes / 1e6,
                          p.link_bytes / 1e6, p.nvme_bytes / 1e6);
    if (hits.kind == "resident") {
      absl::StrAppend(&s, "  hit rate      1 (", hits.source, ")\n");
    } else {
      absl::StrAppendFormat(&s,
                            "  hit rate      device %.3f warm (%.3f from empty, at most %.3f), device + "
                            "host RAM %.3f warm (%.3f from empty); source: %s\n",
                            hits.device, hits.device_cold, hits.device_high,
                            hits.device_and_host, hits.device_and_host_cold, hits.source);
    }
    absl::StrAppendFormat(
        &s,
        "  assumes       %shost %.3g GB/s, link %s, NVMe %.3g GB/s, %.2f..%.2f of each "
        "bandwidth reached, %.3g us per layer%s\n",
        hw.backend == "cuda" ? absl::StrFormat("device %.4g GB/s, ", hw.device_gbps) : "",
        hw.host_gbps, link_note, hw.nvme_gbps, hw.efficiency_low, hw.efficiency_high,
        hw.layer_overhead_us, hw.host_compute_misses ? "; misses computed on the host" : "");
    std::fputs(s.c_str(), stdout);
    return absl::OkStatus();
  }

 private:
  absl::Status ParseEfficiency(model::DecodeHardware* hw) const {
    const size_t colon = efficiency_.find(':');
    double lo = 0, hi = 0;
    if (colon == std::string::npos || !absl::SimpleAtod(efficiency_.substr(0, colon), &lo) ||
        !absl::SimpleAtod(efficiency_.substr(colon + 1), &hi)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--efficiency '", efficiency_, "' is not LOW:HIGH (e.g. 0.55:0.85)"));
    }
    hw->efficiency_low = lo;
    hw->efficiency_high = hi;
    return absl::OkStatus();
  }

  const CLI::App* app_ = nullptr;  // to tell which flags were given
  EngineFlags flags_;
  bool json_ = false;
  model::DecodeHardware hw_;
  std::string preset_;
  std::string type_ = "q4_k_m";
  double scale_ = 1;
  std::string efficiency_ = "0.55:0.85";
  double overhead_us_ = -1;
  std::string trace_;
  std::string trace_dir_;
  double zipf_s_ = 1.0;
  int64_t kv_position_ = -1;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(plan, "memory plan and predicted decode speed of a run (header only)",
                           PlanCommand);

}  // namespace moestream::cli
