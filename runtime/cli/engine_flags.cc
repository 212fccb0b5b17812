#include "runtime/cli/engine_flags.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace moestream::cli {

void EngineFlags::Register(FlagParser& p) {
  p.String("model", 'm', "MODEL", "GGUF model file (required)", &model);
  p.String("backend", 0, "cpu|cuda|auto", "compute backend (default auto)", &backend);
  p.Int("threads", 't', "N", "compute threads of the cpu backend (default: one per core)",
        &threads);
  p.String("kv-type", 0, "f32|f16", "KV cache element type (default f32)", &kv_type);
  p.Int("ctx", 0, "N", "KV cache positions (default: the model's context, at most 4096)", &ctx);
  p.Int("batch", 0, "N", "most tokens per forward chunk (default 512)", &batch);
  p.String("isa", 0, "auto|scalar|avx2|avx512", "cpu kernel ISA (default auto)", &isa);
}

absl::StatusOr<kernels::BackendOptions> EngineFlags::BackendOptions() const {
  if (model.empty()) return absl::InvalidArgumentError("-m MODEL is required");
  if (backend != "cpu" && backend != "cuda" && backend != "auto") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend '", backend, "': expected cpu, cuda or auto"));
  }
  if (threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  kernels::BackendOptions o;
  o.kind = backend;
  o.threads = static_cast<int>(threads);
  o.isa = isa;
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  return o;
}

absl::StatusOr<runtime::EngineOptions> EngineFlags::EngineOptions() const {
  runtime::EngineOptions o;
  if (kv_type == "f32") {
    o.kv_type = GgmlType::kF32;
  } else if (kv_type == "f16") {
    o.kv_type = GgmlType::kF16;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--kv-type '", kv_type, "': expected f32 or f16"));
  }
  o.n_ctx = ctx;
  o.n_batch = batch;
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  return o;
}

absl::StatusOr<std::unique_ptr<runtime::LoadedModel>> LoadModel(const EngineFlags& f,
                                                                const runtime::LoadOptions& o) {
  MOESTREAM_ASSIGN_OR_RETURN(kernels::BackendOptions bo, f.BackendOptions());
  MOESTREAM_ASSIGN_OR_RETURN(runtime::EngineOptions eo, f.EngineOptions());
  return runtime::LoadModel(f.model, bo, eo, o);
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string JsonIds(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&out, i ? "," : "", ids[i]);
  return out + "]";
}

}  // namespace moestream::cli
