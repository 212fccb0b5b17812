// What the running x86-64 CPU can execute, read from CPUID (with the OS's
// XSAVE support for the wider registers), and the kernel ISA chosen from it.
// Kernels compiled with -mavx2 / -mavx512* live in *_avx2.cc / *_avx512.cc and
// are only called when these flags say so: the binary itself stays baseline.
//
//   const CpuFeatures& f = DetectCpuFeatures();
//   absl::StatusOr<Isa> isa = ResolveIsa("auto");   // kAvx512Vnni, kAvx512, kAvx2 or kScalar
#ifndef MOESTREAM_KERNELS_CPU_CPU_FEATURES_H_
#define MOESTREAM_KERNELS_CPU_CPU_FEATURES_H_

#include <string_view>

#include "absl/status/statusor.h"

namespace moestream::kernels::cpu {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  // What our kernel sets need.
  bool HasAvx2Set() const { return avx2 && fma && f16c; }
  bool HasAvx512Set() const {
    return HasAvx2Set() && avx512f && avx512bw && avx512vl && avx512dq;
  }
  bool HasAvx512VnniSet() const { return HasAvx512Set() && avx512vnni; }
};

const CpuFeatures& DetectCpuFeatures();

// kAvx512Vnni: the AVX-512 kernels with their integer dot products done by
// VNNI's vpdpbusd / vpdpwssd (Ice Lake, Zen 4 and later).
enum class Isa { kScalar, kAvx2, kAvx512, kAvx512Vnni };
inline constexpr int kIsaCount = 4;
std::string_view IsaName(Isa isa);

// "auto" picks the widest set the CPU runs; naming a set the CPU lacks fails
// with kUnavailable saying which feature is missing.
absl::StatusOr<Isa> ResolveIsa(std::string_view name);

}  // namespace moestream::kernels::cpu

#endif  // MOESTREAM_KERNELS_CPU_CPU_FEATURES_H_
