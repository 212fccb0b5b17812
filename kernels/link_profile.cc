// Named host→device link profiles. Figures are sustained host-to-device copy
// rates from pinned memory as measured by bandwidth tests on each generation
// (about 80-85% of the raw PCIe rate), and the per-copy latency of a
// cudaMemcpyAsync launch plus DMA setup.
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/strings.h"
#include "kernels/backend.h"

namespace moestream::kernels {

absl::StatusOr<LinkProfile> FindLinkProfile(std::string_view name) {
  if (name == "none" || name.empty()) return LinkProfile{"none", 0.0, 0.0};
  if (name == "pcie3x4") return LinkProfile{"pcie3x4", 3.0, 10.0};  // eGPU / x4 slot
  if (name == "pcie3x16") return LinkProfile{"pcie3x16", 12.0, 10.0};
  if (name == "pcie4x16") return LinkProfile{"pcie4x16", 25.0, 8.0};
  if (name == "pcie5x16") return LinkProfile{"pcie5x16", 50.0, 6.0};
  // "custom:GBPS:LATENCY_US", e.g. "custom:0.5:20", for other links and tests.
  if (name.substr(0, 7) == "custom:") {
    std::vector<absl::string_view> parts = absl::StrSplit(Av(name.substr(7)), ':');
    double gbps = 0, latency_us = 0;
    if (parts.size() == 2 && absl::SimpleAtod(parts[0], &gbps) &&
        absl::SimpleAtod(parts[1], &latency_us) && gbps > 0 && latency_us >= 0) {
      return LinkProfile{std::string(name), gbps, latency_us};
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "link profile '", Av(name), "': expected custom:GBPS:LATENCY_US with GBPS > 0"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown link profile '", Av(name),
      "' (known: pcie3x4, pcie3x16, pcie4x16, pcie5x16, none, custom:GBPS:LATENCY_US)"));
}

absl::Status BackendOptions::Validate() const {
  if (kind != "cpu" && kind != "cuda" && kind != "auto") {
    return absl::InvalidArgumentError(
        absl::StrCat("backend '", kind, "' is not one of cpu, cuda, auto"));
  }
  if (threads < 0 || threads > kMaxThreads) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads ", threads, " is out of range 0..", kMaxThreads, " (0 = one per core)"));
  }
  if (isa != "auto" && isa != "scalar" && isa != "avx2" && isa != "avx512" && isa != "avx512vnni") {
    return absl::InvalidArgumentError(
        absl::StrCat("isa '", isa, "' is not one of auto, scalar, avx2, avx512, avx512vnni"));
  }
  auto p = FindLinkProfile(link);
  if (!p.ok()) return p.status();
  return absl::OkStatus();
}

}  // namespace moestream::kernels
