// AVX2 + FMA + F16C row kernels of attention (q·k and out += p·v over one KV
// row, F32 or F16), used by AttentionHeads when the CPU has them. Eight-wide
// FMAs with two accumulators; a scalar tail for head sizes not a multiple of 8.
// Tested through the attention op against a double-precision reference.
#include <immintrin.h>

#include <algorithm>

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

constexpr int64_t kB = kAttentionKeyBlock;  // 64 keys: 8 vectors of 8
static_assert(kB == 64);

// Scores of a tile against up to 64 keys: the keys transposed once into kt
// (d × 64, zero past n), then per query row 8 accumulators of 8 keys, one
// broadcast and 8 FMAs per element of the head: no horizontal sums.
template <bool kHalf>
void BlockScores(const float* const* q, int64_t rows, const void* k, size_t k_stride, int64_t n,
                 int64_t d, float scale, float* s, float* kt) {
  for (int64_t j = 0; j < n; ++j) {
    const auto* row = static_cast<const uint8_t*>(k) + j * k_stride;
    const auto* kh = reinterpret_cast<const uint16_t*>(row);
    const auto* kf = reinterpret_cast<const float*>(row);
    for (int64_t c = 0; c < d; ++c) kt[c * kB + j] = kHalf ? simd::H2F(kh[c]) : kf[c];
  }
  for (int64_t c = 0; c < d; ++c) std::fill(kt + c * kB + n, kt + (c + 1) * kB, 0.0f);
  const __m256 sv = _mm256_set1_ps(scale);
  for (int64_t r = 0; r < rows; ++r) {
    __m256 acc[8];
    for (int u = 0; u < 8; ++u) acc[u] = _mm256_setzero_ps();
    const float* qr = q[r];
    for (int64_t c = 0; c < d; ++c) {
      const __m256 b = _mm256_broadcast_ss(qr + c);
      const float* col = kt + c * kB;
      for (int u = 0; u < 8; ++u) acc[u] = _mm256_fmadd_ps(b, _mm256_loadu_ps(col + 8 * u), acc[u]);
    }
    for (int u = 0; u < 8; ++u) _mm256_storeu_ps(s + r * kB + 8 * u, _mm256_mul_ps(acc[u], sv));
  }
}

// o[r] += Σ_j p[r][j] · v_j with 64 (then 8, then 1) columns of o held in
// registers across the keys, so o is loaded and stored once per block.
template <bool kHalf>
void BlockValues(const float* p, int64_t p_stride, int64_t rows, const void* v, size_t v_stride,
                 int64_t n, int64_t dv, float* o) {
  auto vrow = [&](int64_t j) { return static_cast<const uint8_t*>(v) + j * v_stride; };
  auto load = [](const uint8_t* row, int64_t c) {
    return kHalf ? LoadF16x8(reinterpret_cast<const uint16_t*>(row) + c)
                 : _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c);
  };
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = p + r * p_stride;
    float* orow = o + r * dv;
    int64_t c0 = 0;
    for (; c0 + 64 <= dv; c0 += 64) {
      __m256 acc[8];
      for (int u = 0; u < 8; ++u) acc[u] = _mm256_loadu_ps(orow + c0 + 8 * u);
      for (int64_t j = 0; j < n; ++j) {
        const __m256 b = _mm256_broadcast_ss(pr + j);
        const uint8_t* row = vrow(j);
        for (int u = 0; u < 8; ++u) acc[u] = _mm256_fmadd_ps(b, load(row, c0 + 8 * u), acc[u]);
      }
      for (int u = 0; u < 8; ++u) _mm256_storeu_ps(orow + c0 + 8 * u, acc[u]);
    }
    for (; c0 + 8 <= dv; c0 += 8) {
      __m256 acc = _mm256_loadu_ps(orow + c0);
      for (int64_t j = 0; j < n; ++j) acc = _mm256_fmadd_ps(_mm256_broadcast_ss(pr + j), load(vrow(j), c0), acc);
      _mm256_storeu_ps(orow + c0, acc);
    }
    for (; c0 < dv; ++c0) {
      for (int64_t j = 0; j < n; ++j) {
        const uint8_t* row = vrow(j);
        const float x = kHalf ? simd::H2F(reinterpret_cast<const uint16_t*>(row)[c0])
                              : reinterpret_cast<const float*>(row)[c0];
        orow[c0] += pr[j] * x;  // Axpy's tail expression, so the same bits
      }
    }
  }
}

// Four sums of eight lanes each, as one vector's four lanes.
inline __m128 Hsum4(__m256 a, __m256 b, __m256 c, __m256 e) {
  const __m256 ab = _mm256_hadd_ps(a, b), ce = _mm256_hadd_ps(c, e);
  const __m256 abce = _mm256_hadd_ps(ab, ce);  // per 128-bit half: a b c e
  return _mm_add_ps(_mm256_castps256_ps128(abce), _mm256_extractf128_ps(abce, 1));
}

// Decode scores: two query rows × four keys at a time, each key's elements
// loaded once for both rows, no horizontal sum per (row, key).
template <bool kHalf>
void RowScores(const float* const* q, int64_t rows, const void* k, size_t k_stride, int64_t n,
               int64_t d, float scale, float* s, int64_t s_stride) {
  const int64_t d8 = d / 8 * 8;
  auto key = [&](int64_t j) { return static_cast<const uint8_t*>(k) + j * k_stride; };
  auto load = [](const uint8_t* row, int64_t c) {
    return kHalf ? LoadF16x8(reinterpret_cast<const uint16_t*>(row) + c)
                 : _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c);
  };
  auto tail = [&](const float* qr, const uint8_t* row) {
    float t = 0;
    for (int64_t c = d8; c < d; ++c) {
      t += qr[c] * (kHalf ? simd::H2F(reinterpret_cast<const uint16_t*>(row)[c])
                          : reinterpret_cast<const float*>(row)[c]);
    }
    return t;
  };
  int64_t r = 0;
  for (; r < rows; r += 2) {
    const bool two = r + 1 < rows;
    const float* q0 = q[r];
    const float* q1 = two ? q[r + 1] : q[r];
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      __m256 a0[4], a1[4];
      for (int u = 0; u < 4; ++u) a0[u] = a1[u] = _mm256_setzero_ps();
      for (int64_t c = 0; c < d8; c += 8) {
        const __m256 x0 = _mm256_loadu_ps(q0 + c), x1 = _mm256_loadu_ps(q1 + c);
        for (int u = 0; u < 4; ++u) {
          const __m256 kv = load(key(j + u), c);
          a0[u] = _mm256_fmadd_ps(x0, kv, a0[u]);
          a1[u] = _mm256_fmadd_ps(x1, kv, a1[u]);
        }
      }
      alignas(16) float s0[4], s1[4];
      _mm_store_ps(s0, Hsum4(a0[0], a0[1], a0[2], a0[3]));
      _mm_store_ps(s1, Hsum4(a1[0], a1[1], a1[2], a1[3]));
      for (int u = 0; u < 4; ++u) {
        s[r * s_stride + j + u] = (s0[u] + tail(q0, key(j + u))) * scale;
        if (two) s[(r + 1) * s_stride + j + u] = (s1[u] + tail(q1, key(j + u))) * scale;
      }
    }
    for (; j < n; ++j) {
      s[r * s_stride + j] = Dot<kHalf>(q0, key(j), d) * scale;
      if (two) s[(r + 1) * s_stride + j] = Dot<kHalf>(q1, key(j), d) * scale;
    }
  }
}

}  // namespace

KvRowKernels Avx2KvKernels(GgmlType kv_type) {
  KvRowKernels k;
  if (kv_type == GgmlType::kF16) {
    k.dot = Dot<true>;
    k.axpy = Axpy<true>;
    k.block_scores = BlockScores<true>;
    k.block_values = BlockValues<true>;
    k.row_scores = RowScores<true>;
  } else {
    k.dot = Dot<false>;
    k.axpy = Axpy<false>;
    k.block_scores = BlockScores<false>;
    k.block_values = BlockValues<false>;
    k.row_scores = RowScores<false>;
  }
  return k;
}

}  // namespace moestream::kernels::cpu
