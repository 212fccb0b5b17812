// AVX2 + FMA + F16C row kernels of attention (q·k and out += p·v over one KV
// row, F32 or F16), used by AttentionHeads when the CPU has them. Eight-wide
// FMAs with two accumulators; a scalar tail for head sizes not a multiple of 8.
// Tested through the attention op against a double-precision reference.
#include <immintrin.h>

#include "kernels/cpu/ops_scalar.h"
#include "kernels/cpu/simd_x86.h"

namespace moestream::kernels::cpu {
namespace {

inline __m256 LoadF16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <bool kHalf>
float Dot(const float* q, const void* k, int64_t d) {
  const auto* kh = static_cast<const uint16_t*>(k);
  const auto* kf = static_cast<const float*>(k);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) {
    const __m256 k0 = kHalf ? LoadF16x8(kh + i) : _mm256_loadu_ps(kf + i);
    const __m256 k1 = kHalf ? LoadF16x8(kh + i + 8) : _mm256_loadu_ps(kf + i + 8);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), k1, a1);
  }
  for (; i + 8 <= d; i += 8) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kHalf ? LoadF16x8(kh + i) : _mm256_loadu_ps(kf + i), a0);
  }
  float s = Hsum(_mm256_add_ps(a0, a1));
  for (; i < d; ++i) s += q[i] * (kHalf ? simd::H2F(kh[i]) : kf[i]);
  return s;
}

template <bool kHalf>
void Axpy(float* out, float p, const void* v, int64_t d) {
  const auto* vh = static_cast<const uint16_t*>(v);
  const auto* vf = static_cast<const float*>(v);
  const __m256 pv = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) {
    const __m256 x = kHalf ? LoadF16x8(vh + i) : _mm256_loadu_ps(vf + i);
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, x, _mm256_loadu_ps(out + i)));
  }
  for (; i < d; ++i) out[i] += p * (kHalf ? simd::H2F(vh[i]) : vf[i]);
}

}  // namespace

KvRowKernels Avx2KvKernels(GgmlType kv_type) {
  KvRowKernels k;
  if (kv_type == GgmlType::kF16) {
    k.dot = Dot<true>;
    k.axpy = Axpy<true>;
  } else {
    k.dot = Dot<false>;
    k.axpy = Axpy<false>;
  }
  return k;
}

}  // namespace moestream::kernels::cpu
