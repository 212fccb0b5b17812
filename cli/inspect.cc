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
#include "base/bytes.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "io/gguf.h"
#include "cli/command.h"
#include "model/model_info.h"
#include "nlohmann/json.hpp"

namespace moestream::cli {
namespace {

using model::ModelInfo;

nlohmann::ordered_json JsonValue(const io::GgufValue& v) {
  if (v.is_array()) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const io::GgufValue& item : v.items()) out.push_back(JsonValue(item));
    return out;
  }
  switch (v.type()) {
    case io::GgufType::kString: return v.raw_string();
    case io::GgufType::kBool: return v.raw_uint() != 0;
    case io::GgufType::kUint8:
    case io::GgufType::kUint16:
    case io::GgufType::kUint32:
    case io::GgufType::kUint64: return v.raw_uint();
    case io::GgufType::kInt8:
    case io::GgufType::kInt16:
    case io::GgufType::kInt32:
    case io::GgufType::kInt64: return v.raw_int();
    case io::GgufType::kFloat32:
      // Print a float32 with the digits it has (1e-05, not 9.99999974738e-06).
      if (!std::isfinite(v.raw_float())) return nullptr;
      return static_cast<double>(std::stod(absl::StrFormat("%.9g", v.raw_float())));
    default:
      if (!std::isfinite(v.raw_float())) return nullptr;  // JSON has no NaN or infinity
      return v.raw_float();
  }
}

std::string HumanCount(uint64_t n) {
  if (n >= 1000000000ull) return absl::StrFormat("%.2f B", n / 1e9);
  if (n >= 1000000ull) return absl::StrFormat("%.2f M", n / 1e6);
  if (n >= 1000ull) return absl::StrFormat("%.1f K", n / 1e3);
  return absl::StrCat(n);
}

void PrintJson(const io::GgufFile& f, const ModelInfo& info) {
  nlohmann::ordered_json o;
  o["file"] = f.path();
  o["version"] = f.version();
  o["alignment"] = f.alignment();
  o["data_offset"] = f.data_offset();
  o["file_size"] = f.file_size();
  o["arch"] = info.arch;
  o["name"] = info.name;
  nlohmann::ordered_json hparams = nlohmann::ordered_json::object();
  for (const model::ModelHparam& h : info.hparams) hparams[h.key] = JsonValue(h.value);
  o["hparams"] = std::move(hparams);
  o["n_expert"] = info.n_expert;
  o["n_expert_used"] = info.n_expert_used;
  o["n_moe_layers"] = info.n_moe_layers;
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  for (const io::GgufTensorInfo& t : f.tensors()) {
    nlohmann::ordered_json tensor;
    tensor["name"] = t.name;
    tensor["type"] = std::string(GgmlTypeName(t.type));
    tensor["shape"] = std::vector<int64_t>(t.ne, t.ne + t.n_dims);
    tensor["bytes"] = t.size_bytes;
    tensor["offset"] = t.file_offset;
    tensor["routed"] = model::RoutedExpertLayer(t.name).has_value();
    tensors.push_back(std::move(tensor));
  }
  o["tensors"] = std::move(tensors);
  o["n_tensors"] = f.tensors().size();
  o["params_total"] = info.params_total;
  o["params_active"] = info.params_active;
  o["resident_bytes"] = info.resident_bytes;
  o["expert_bytes"] = info.expert_bytes;
  o["bytes_per_expert"] = info.bytes_per_expert;
  o["expert_bytes_per_layer"] = info.expert_bytes_per_layer;
  // Names and strings in a GGUF need not be valid UTF-8: replace, not throw.
  const std::string text = o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::fwrite(text.data(), 1, text.size(), stdout);
}

void PrintHuman(const io::GgufFile& f, const ModelInfo& info) {
  std::printf("file:  %s\n", f.path().c_str());
  std::printf("gguf:  v%u, %s, %zu tensors, %zu metadata keys, alignment %u, data at %llu\n",
              f.version(), FormatBytes(f.file_size()).c_str(), f.tensors().size(),
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
                  t.ShapeString().c_str(), FormatBytes(t.size_bytes).c_str(),
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
              FormatBytes(info.resident_bytes).c_str());
  if (info.n_expert != 0) {
    std::printf("routed experts:  %s in %llu layers\n", FormatBytes(info.expert_bytes).c_str(),
                static_cast<unsigned long long>(info.n_moe_layers));
    std::printf("  per layer:     %s\n", FormatBytes(info.expert_bytes_per_layer).c_str());
    std::printf("  per expert:    %s (gate+up+down of one layer)\n",
                FormatBytes(info.bytes_per_expert).c_str());
  }
}

class InspectCommand : public Command {
 public:
  void Register(CLI::App& app) override {
    app.add_flag("--json", json_, "print one JSON object instead of the report");
    app.add_option("model", models_, "GGUF file")->default_str("");
  }

  absl::Status Run() override {
    if (models_.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected exactly one MODEL argument, got ", models_.size()));
    }
    MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile f, io::GgufFile::Open(models_[0]));
    MOESTREAM_ASSIGN_OR_RETURN(ModelInfo info, model::SummarizeModel(f));
    if (json_) {
      PrintJson(f, info);
    } else {
      PrintHuman(f, info);
    }
    return absl::OkStatus();
  }

 private:
  bool json_ = false;
  std::vector<std::string> models_;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(inspect, "architecture, hyper-parameters, tensors and sizes of a GGUF",
                           InspectCommand);

}  // namespace moestream::cli
