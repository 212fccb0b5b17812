// `moestream inspect MODEL [--json]`: architecture, hyper-parameters, the
// tensor table, total vs active parameters, and the resident vs routed-expert
// bytes of a GGUF file, read from its header only.
//
//   moestream inspect m.gguf            # human-readable report
//   moestream inspect m.gguf --json     # one JSON object on stdout
//
// JSON keys: file, version, alignment, data_offset, file_size, arch, name,
// hparams{key: value}, n_expert, n_expert_used, n_moe_layers, tensors[{name,
// type, shape, bytes, offset, routed}], n_tensors, params_total,
// params_active, resident_bytes, expert_bytes, bytes_per_expert,
// expert_bytes_per_layer. Offsets are absolute file offsets.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "io/gguf.h"
#include "cli/command.h"
#include "cli/engine_flags.h"  // JsonString
#include "cli/flags.h"
#include "model/model_info.h"

namespace moestream::cli {
namespace {

using model::ModelInfo;

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.9g", v);
}

std::string JsonValue(const io::GgufValue& v) {
  if (v.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < v.items().size(); ++i) {
      absl::StrAppend(&out, i ? "," : "", JsonValue(v.items()[i]));
    }
    return out + "]";
  }
  if (v.is_string()) return JsonString(v.raw_string());
  if (v.type() == io::GgufType::kBool) return v.raw_uint() ? "true" : "false";
  if (v.is_float()) return JsonNumber(v.raw_float());
  return v.DebugString();  // integers print exactly
}

std::string HumanBytes(uint64_t b) {
  if (b >= (uint64_t{1} << 30)) return absl::StrFormat("%.2f GiB", b / double(uint64_t{1} << 30));
  if (b >= (uint64_t{1} << 20)) return absl::StrFormat("%.2f MiB", b / double(1 << 20));
  if (b >= 1024) return absl::StrFormat("%.1f KiB", b / 1024.0);
  return absl::StrCat(b, " B");
}

std::string HumanCount(uint64_t n) {
  if (n >= 1000000000ull) return absl::StrFormat("%.2f B", n / 1e9);
  if (n >= 1000000ull) return absl::StrFormat("%.2f M", n / 1e6);
  if (n >= 1000ull) return absl::StrFormat("%.1f K", n / 1e3);
  return absl::StrCat(n);
}

std::string ShapeJson(const io::GgufTensorInfo& t) {
  std::string s = "[";
  for (uint32_t d = 0; d < t.n_dims; ++d) absl::StrAppend(&s, d ? "," : "", t.ne[d]);
  return s + "]";
}

void PrintJson(const io::GgufFile& f, const ModelInfo& info) {
  std::string o = "{";
  absl::StrAppend(&o, "\"file\":", JsonString(f.path()), ",\"version\":", f.version(),
                  ",\"alignment\":", f.alignment(), ",\"data_offset\":", f.data_offset(),
                  ",\"file_size\":", f.file_size(), ",\"arch\":", JsonString(info.arch),
                  ",\"name\":", JsonString(info.name), ",\"hparams\":{");
  for (size_t i = 0; i < info.hparams.size(); ++i) {
    absl::StrAppend(&o, i ? "," : "", JsonString(info.hparams[i].key), ":",
                    JsonValue(info.hparams[i].value));
  }
  absl::StrAppend(&o, "},\"n_expert\":", info.n_expert, ",\"n_expert_used\":", info.n_expert_used,
                  ",\"n_moe_layers\":", info.n_moe_layers, ",\"tensors\":[");
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const io::GgufTensorInfo& t = f.tensors()[i];
    absl::StrAppend(&o, i ? "," : "", "{\"name\":", JsonString(t.name),
                    ",\"type\":", JsonString(GgmlTypeName(t.type)), ",\"shape\":", ShapeJson(t),
                    ",\"bytes\":", t.size_bytes, ",\"offset\":", t.file_offset, ",\"routed\":",
                    model::RoutedExpertLayer(t.name).has_value() ? "true" : "false", "}");
  }
  absl::StrAppend(&o, "],\"n_tensors\":", f.tensors().size(),
                  ",\"params_total\":", info.params_total,
                  ",\"params_active\":", info.params_active,
                  ",\"resident_bytes\":", info.resident_bytes,
                  ",\"expert_bytes\":", info.expert_bytes,
                  ",\"bytes_per_expert\":", info.bytes_per_expert,
                  ",\"expert_bytes_per_layer\":", info.expert_bytes_per_layer, "}\n");
  std::fwrite(o.data(), 1, o.size(), stdout);
}

void PrintHuman(const io::GgufFile& f, const ModelInfo& info) {
  std::printf("file:  %s\n", f.path().c_str());
  std::printf("gguf:  v%u, %s, %zu tensors, %zu metadata keys, alignment %u, data at %llu\n",
              f.version(), HumanBytes(f.file_size()).c_str(), f.tensors().size(),
              f.metadata().size(), f.alignment(),
              static_cast<unsigned long long>(f.data_offset()));
  std::printf("arch:  %s%s%s\n", info.arch.empty() ? "(none)" : info.arch.c_str(),
              info.name.empty() ? "" : "  name: ", info.name.c_str());
  if (!info.hparams.empty()) {
    std::printf("\nhyper-parameters:\n");
    for (const model::ModelHparam& h : info.hparams) {
      std::printf("  %-36s %s\n", h.key.c_str(), h.value.DebugString().c_str());
    }
  }

  size_t name_w = 4;
  for (const io::GgufTensorInfo& t : f.tensors()) name_w = std::max(name_w, t.name.size());
  if (!f.tensors().empty()) {
    std::printf("\ntensors:\n  %-*s  %-7s  %-22s %12s  %14s\n", int(name_w), "name", "type",
                "shape", "bytes", "offset");
    for (const io::GgufTensorInfo& t : f.tensors()) {
      std::printf("  %-*s  %-7.*s  %-22s %12s  %14llu%s\n", int(name_w), t.name.c_str(),
                  int(GgmlTypeName(t.type).size()), GgmlTypeName(t.type).data(),
                  t.ShapeString().c_str(), HumanBytes(t.size_bytes).c_str(),
                  static_cast<unsigned long long>(t.file_offset),
                  model::RoutedExpertLayer(t.name) ? "  (routed)" : "");
    }
  }

  std::printf("\nparameters:      %s total (%llu)\n", HumanCount(info.params_total).c_str(),
              static_cast<unsigned long long>(info.params_total));
  if (info.n_expert != 0) {
    std::printf("active/token:    %s (%llu; %llu of %llu routed experts)\n",
                HumanCount(info.params_active).c_str(),
                static_cast<unsigned long long>(info.params_active),
                static_cast<unsigned long long>(info.n_expert_used),
                static_cast<unsigned long long>(info.n_expert));
  }
  std::printf("resident:        %s (everything but routed experts)\n",
              HumanBytes(info.resident_bytes).c_str());
  if (info.n_expert != 0) {
    std::printf("routed experts:  %s in %llu layers\n", HumanBytes(info.expert_bytes).c_str(),
                static_cast<unsigned long long>(info.n_moe_layers));
    std::printf("  per layer:     %s\n", HumanBytes(info.expert_bytes_per_layer).c_str());
    std::printf("  per expert:    %s (gate+up+down of one layer)\n",
                HumanBytes(info.bytes_per_expert).c_str());
  }
}

absl::Status Inspect(const std::vector<std::string>& args) {
  FlagParser p("inspect");
  bool json = false;
  std::vector<std::string> positionals;
  p.Bool("json", "print one JSON object instead of the report", &json);
  p.Positionals("MODEL", &positionals);
  MOESTREAM_RETURN_IF_ERROR(p.Parse(args));
  if (p.help_requested()) {
    std::printf("%s", p.Usage().c_str());
    return absl::OkStatus();
  }
  if (positionals.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected exactly one MODEL argument, got ", positionals.size()));
  }
  MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile f, io::GgufFile::Open(positionals[0]));
  MOESTREAM_ASSIGN_OR_RETURN(ModelInfo info, model::SummarizeModel(f));
  if (json) {
    PrintJson(f, info);
  } else {
    PrintHuman(f, info);
  }
  return absl::OkStatus();
}

int RunInspect(std::vector<std::string> args) {
  absl::Status s = Inspect(args);
  if (!s.ok()) return ReportError("inspect", s);
  if (std::fflush(stdout) != 0) {
    return ReportError("inspect", absl::UnavailableError("writing to stdout failed"));
  }
  return 0;
}

}  // namespace

MOESTREAM_REGISTER_COMMAND(inspect, "architecture, hyper-parameters, tensors and sizes of a GGUF",
                           RunInspect);

}  // namespace moestream::cli
