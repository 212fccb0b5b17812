// AVX-512 (F, BW, VL, DQ) matrix-product kernels: this file is compiled with
// those flags and its kernels are only called when CPUID reports them. The
// activation converters are the AVX2 ones; the dots process 64 bytes of
// weights per instruction with the same integer scheme as the AVX2 kernels
// (unsigned × signed byte products, 16-bit pair sums, int32 group sums, one
// float FMA per group of blocks). Before first use each kernel here is
// checked against the AVX2 kernel (KernelsFor); a kernel that disagrees is
// replaced by the AVX2 one and reported by Avx512RejectedKernels().
// GCC 12's AVX-512 intrinsic headers initialise their "undefined" vectors
// from themselves, which -Wuninitialized reports inside every intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/simd_x86.h"

namespace moestream::kernels::cpu {
namespace {

using simd::H2F;
using simd::Load256;
using simd::UnpackNibbles16;
inline __m512i Load512(const void* p) { return _mm512_loadu_si512(p); }
inline __m512i Join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// Σ x·y over signed byte pairs as 16 int32 lanes (lane i: bytes 4i..4i+3).
inline __m512i MulSumI8(__m512i x, __m512i y) {
  const __mmask64 neg = _mm512_movepi8_mask(x);
  const __m512i ax = _mm512_abs_epi8(x);
  const __m512i sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
  return _mm512_madd_epi16(_mm512_maddubs_epi16(ax, sy), _mm512_set1_epi16(1));
}

// [a ×8 | b ×8]
inline __m512 TwoScales(float a, float b) {
  return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

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

// ---------------------------------------------------------------- legacy quants

float DotQ8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ8_0*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  const int64_t nb = n / kQK;
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512i qa = Join(Load256(a[i].qs), Load256(a[i + 1].qs));
    const __m512i qb = Join(Load256(b[i].qs), Load256(b[i + 1].qs));
    const __m512 d = TwoScales(H2F(a[i].d) * H2F(b[i].d), H2F(a[i + 1].d) * H2F(b[i + 1].d));
    acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(MulSumI8(qa, qb)), acc);
  }
  if (i < nb) {
    const __m512i qa = Join(Load256(a[i].qs), _mm256_setzero_si256());
    const __m512i qb = Join(Load256(b[i].qs), _mm256_setzero_si256());
    const __m512 d = TwoScales(H2F(a[i].d) * H2F(b[i].d), 0.0f);
    acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(MulSumI8(qa, qb)), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

float DotQ4_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ4_0*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  const int64_t nb = n / kQK;
  const __m512i off = _mm512_set1_epi8(8);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512i qa = _mm512_sub_epi8(Join(UnpackNibbles16(a[i].qs), UnpackNibbles16(a[i + 1].qs)), off);
    const __m512i qb = Join(Load256(b[i].qs), Load256(b[i + 1].qs));
    const __m512 d = TwoScales(H2F(a[i].d) * H2F(b[i].d), H2F(a[i + 1].d) * H2F(b[i + 1].d));
    acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(MulSumI8(qa, qb)), acc);
  }
  if (i < nb) {
    const __m512i qa = _mm512_sub_epi8(Join(UnpackNibbles16(a[i].qs), _mm256_set1_epi8(8)), off);
    const __m512i qb = Join(Load256(b[i].qs), _mm256_setzero_si256());
    const __m512 d = TwoScales(H2F(a[i].d) * H2F(b[i].d), 0.0f);
    acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(MulSumI8(qa, qb)), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

// ---------------------------------------------------------------- k-quants

template <bool kFive>
float DotQ45K(int64_t n, const void* w, const void* x) {
  const auto* b = static_cast<const BlockQ8K*>(x);
  __m512 acc = _mm512_setzero_ps();
  float acc_m = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const simd::KBlockView v = simd::ViewK45<kFive>(w, i);
    const uint8_t* scales = v.scales;
    const uint8_t* q4 = v.q4;
    const uint8_t* qh = v.qh;
    float d = v.d, dmin = v.dmin;
    uint32_t u[4];
    simd::UnpackKScales(scales, u);
    uint8_t sc[8], mn[8];
    std::memcpy(sc, u, 8);
    std::memcpy(mn, u + 2, 8);
    int summ = 0;
    for (int g = 0; g < 8; ++g) summ += mn[g] * (b[i].bsums[2 * g] + b[i].bsums[2 * g + 1]);
    acc_m += dmin * b[i].d * static_cast<float>(summ);
    const __m256i hbits = kFive ? Load256(qh) : _mm256_setzero_si256();
    __m512i sumi = _mm512_setzero_si512();
    const int8_t* q8 = b[i].qs;
    for (int j = 0; j < 4; ++j, q4 += 32, q8 += 64) {
      __m256i lo, hi;
      simd::UnpackK45Pair(q4, kFive ? &hbits : nullptr, j, &lo, &hi);
      const __m512i p = _mm512_maddubs_epi16(Join(lo, hi), Load512(q8));
      const __m512i s = Join(_mm256_set1_epi16(sc[2 * j]), _mm256_set1_epi16(sc[2 * j + 1]));
      sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(p, s));
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d * b[i].d), _mm512_cvtepi32_ps(sumi), acc);
  }
  return _mm512_reduce_add_ps(acc) - acc_m;
}

float DotQ6K(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ6K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  const __m512i m32 = _mm512_set1_epi8(32);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n / kQKK; ++i) {
    __m512i sumi = _mm512_setzero_si512();
    for (int half = 0; half < 2; ++half) {
      const int8_t* sc = a[i].scales + 8 * half;
      const int8_t* q8 = b[i].qs + 128 * half;
      __m256i q[4];
      simd::UnpackQ6KHalf(a[i].ql + 64 * half, a[i].qh + 32 * half, q);
      const __m512i qs[2] = {Join(q[0], q[1]), Join(q[2], q[3])};
      for (int k = 0; k < 2; ++k) {
        const __m512i y = Load512(q8 + 64 * k);
        const __m512i p = _mm512_sub_epi16(_mm512_maddubs_epi16(qs[k], y), _mm512_maddubs_epi16(m32, y));
        // 8 int16 lanes (16 elements) per scale: groups 4k .. 4k+3.
        const __m512i s = _mm512_inserti32x4(
            _mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(_mm_set1_epi16(sc[4 * k])),
                                                  _mm_set1_epi16(sc[4 * k + 1]), 1),
                               _mm_set1_epi16(sc[4 * k + 2]), 2),
            _mm_set1_epi16(sc[4 * k + 3]), 3);
        sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(p, s));
      }
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(H2F(a[i].d) * b[i].d), _mm512_cvtepi32_ps(sumi), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

}  // namespace

// Only the dots are replaced; activation converters stay the AVX2 ones. Set
// by index (see FillAvx2Kernels).
void FillAvx512Kernels(MatmulKernels& k) {
  auto set = [&k](GgmlType t, DotFn dot) { k.types[static_cast<int>(t)].dot = dot; };
  set(GgmlType::kF32, DotF32);
  set(GgmlType::kF16, DotF16);
  set(GgmlType::kBF16, DotBF16);
  set(GgmlType::kQ8_0, DotQ8_0);
  set(GgmlType::kQ4_0, DotQ4_0);
  set(GgmlType::kQ4_K, DotQ45K<false>);
  set(GgmlType::kQ5_K, DotQ45K<true>);
  set(GgmlType::kQ6_K, DotQ6K);
}

}  // namespace moestream::kernels::cpu
