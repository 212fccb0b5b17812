// AVX-512 with VNNI: the quantized types' tiles of avx512_tiles.h with
// vpdpbusd (unsigned × signed bytes summed in fours into int32) and vpdpwssd
// (word pairs times the group scales, summed into int32), one instruction
// where AVX-512BW needs two or three. This file is compiled with
// -mavx512vnni and only called when CPUID reports it (Isa::kAvx512Vnni);
// before first use its kernels are checked against the AVX2 kernels like the
// AVX-512 ones (KernelsFor).
#include "kernels/cpu/avx512_tiles.h"  // first: its pragmas cover <immintrin.h>

#include <immintrin.h>

#include "kernels/cpu/matmul_kernels.h"

namespace moestream::kernels::cpu {
namespace avx512 {
namespace {

struct VnniOps {
  static constexpr bool kVnni = true;
  static __m512i DpBusd(__m512i acc, __m512i u, __m512i s) { return _mm512_dpbusd_epi32(acc, u, s); }
  static __m512i DpWssd(__m512i acc, __m512i a, __m512i b) { return _mm512_dpwssd_epi32(acc, a, b); }
};

}  // namespace
}  // namespace avx512

// The AVX-512 table (float dots included) with the VNNI quantized tiles.
void FillAvx512VnniKernels(MatmulKernels& k) { avx512::FillQuantTiles<avx512::VnniOps>(k); }

}  // namespace moestream::kernels::cpu
