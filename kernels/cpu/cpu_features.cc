#include "kernels/cpu/cpu_features.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace moestream::kernels::cpu {

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
    // libgcc's CPUID probe also checks XCR0, so a feature the OS does not
    // save on context switch reads as absent.
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.f16c = __builtin_cpu_supports("f16c");
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
    f.avx512vnni = __builtin_cpu_supports("avx512vnni");
#endif
    return f;
  }();
  return features;
}

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Vnni: return "avx512vnni";
  }
  return "unknown";
}

absl::StatusOr<Isa> ResolveIsa(std::string_view name) {
  const CpuFeatures& f = DetectCpuFeatures();
  if (name == "auto" || name.empty()) {
    if (f.HasAvx512VnniSet()) return Isa::kAvx512Vnni;
    if (f.HasAvx512Set()) return Isa::kAvx512;
    if (f.HasAvx2Set()) return Isa::kAvx2;
    return Isa::kScalar;
  }
  if (name == "scalar") return Isa::kScalar;
  if (name == "avx2") {
    if (f.HasAvx2Set()) return Isa::kAvx2;
    return absl::UnavailableError("isa avx2 requested but this CPU lacks avx2/fma/f16c");
  }
  if (name == "avx512") {
    if (f.HasAvx512Set()) return Isa::kAvx512;
    return absl::UnavailableError(
        "isa avx512 requested but this CPU lacks avx512f/avx512bw/avx512vl/avx512dq");
  }
  if (name == "avx512vnni") {
    if (f.HasAvx512VnniSet()) return Isa::kAvx512Vnni;
    return absl::UnavailableError(
        "isa avx512vnni requested but this CPU lacks avx512f/avx512bw/avx512vl/avx512dq/avx512vnni");
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "isa '", Av(name), "' is not one of auto, scalar, avx2, avx512, avx512vnni"));
}

}  // namespace moestream::kernels::cpu
