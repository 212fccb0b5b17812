// AVX-512 (F, BW, VL, DQ) matrix-product kernels: this file is compiled with
// those flags and its kernels are only called when CPUID reports them. The
// float dots are here; the quantized types use the register-tiled kernels of
// avx512_tiles.h with AVX-512BW's integer products (unsigned × signed byte
// products, 16-bit pair sums, int32 group sums, one float FMA per block).
// Before first use each kernel is checked against the AVX2 kernel
// (KernelsFor); a kernel that disagrees is replaced by the AVX2 one and
// reported by Avx512RejectedKernels().
#include "kernels/cpu/avx512_tiles.h"  // first: its pragmas cover <immintrin.h>

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/simd_x86.h"

namespace moestream::kernels::cpu {
namespace avx512 {
namespace {

// AVX-512BW's integer products (for CPUs without VNNI).
struct MaddOps {
  static constexpr bool kVnni = false;
};

}  // namespace
}  // namespace avx512

namespace {

// ---------------------------------------------------------------- floats

template <typename LoadW>
inline float DotFloatLike(int64_t n, const float* x, LoadW load) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_fmadd_ps(load(i, 0xFFFF), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(load(i + 16, 0xFFFF), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(load(i + 32, 0xFFFF), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(load(i + 48, 0xFFFF), _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i < n; i += 16) {
    const int64_t rem = n - i;
    const __mmask16 m = rem >= 16 ? static_cast<__mmask16>(0xFFFF)
                                  : static_cast<__mmask16>((1u << rem) - 1);
    a0 = _mm512_fmadd_ps(load(i, m), _mm512_maskz_loadu_ps(m, x + i), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

float DotF32(int64_t n, const void* w, const void* x) {
  const float* a = static_cast<const float*>(w);
  return DotFloatLike(n, static_cast<const float*>(x),
                      [a](int64_t i, __mmask16 m) { return _mm512_maskz_loadu_ps(m, a + i); });
}

float DotF16(int64_t n, const void* w, const void* x) {
  const uint16_t* a = static_cast<const uint16_t*>(w);
  return DotFloatLike(n, static_cast<const float*>(x), [a](int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a + i));
  });
}

float DotBF16(int64_t n, const void* w, const void* x) {
  const uint16_t* a = static_cast<const uint16_t*>(w);
  return DotFloatLike(n, static_cast<const float*>(x), [a](int64_t i, __mmask16 m) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, a + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  });
}

}  // namespace

// Float dots here; the quantized types' dots and tiles from avx512_tiles.h
// with maddubs + madd. Activation converters stay the AVX2 ones. Set by index
// (see FillAvx2Kernels).
void FillAvx512Kernels(MatmulKernels& k) {
  auto set = [&k](GgmlType t, DotFn dot) { k.types[static_cast<int>(t)].dot = dot; };
  set(GgmlType::kF32, DotF32);
  set(GgmlType::kF16, DotF16);
  set(GgmlType::kBF16, DotBF16);
  avx512::FillQuantTiles<avx512::MaddOps>(k);
}

}  // namespace moestream::kernels::cpu
