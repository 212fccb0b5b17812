// AVX2 + FMA + F16C matrix-product kernels (this file is compiled with those
// flags; KernelsFor(Isa::kAvx2) is only used when CPUID reports them).
//
// Integer kernels follow ggml's scheme: 8-bit activation blocks, unsigned ×
// signed byte products with _mm256_maddubs_epi16 (never saturating for these
// ranges: at most 2·63·127), widened and scaled with _mm256_madd_epi16, then
// one float FMA per block. Float kernels use four FMA accumulators. The same
// integer sums as the scalar kernels (matmul_scalar.cc), which the tests
// compare against.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/simd_x86.h"
#include "kernels/cpu/tile_loops.h"

namespace moestream::kernels::cpu {
namespace {

using simd::H2F;
using simd::Load256;
using simd::UnpackNibbles16;
using tiles::RunTiled;

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Σ x·y over signed byte pairs, as 8 int32 lanes.
inline __m256i MulSumI8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

// ---------------------------------------------------------------- activations

// Rounds 32 floats times `id` to int8 (nearest even), in element order.
inline __m256i QuantizeBlock32(const float* x, __m256 id) {
  __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
  __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
  __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
  __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
  i0 = _mm256_packs_epi32(i0, i1);
  i2 = _mm256_packs_epi32(i2, i3);
  i0 = _mm256_packs_epi16(i0, i2);
  return _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline __m256 AbsMax8(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  return m;
}

inline float ReduceMax(__m256 m) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void QuantizeActQ8_0(const float* x, int64_t n, void* out) {
  auto* y = static_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    // As llama.cpp rounds activations: id = 127/amax, ties to even.
    const float amax = ReduceMax(AbsMax8(x, kQK));
    y[i].d = _cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT);
    const __m256 id = _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), QuantizeBlock32(x, id));
  }
}

void QuantizeActQ8K(const float* x, int64_t n, void* out) {
  auto* y = static_cast<BlockQ8K*>(out);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    // The signed value of largest magnitude (first one on ties, as scalar).
    const float amax = ReduceMax(AbsMax8(x, kQKK));
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(y[i]));
      continue;
    }
    float max = 0;
    for (int j = 0; j < kQKK; ++j) {
      if (x[j] == amax || x[j] == -amax) {
        max = x[j];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m256 id = _mm256_set1_ps(iscale);
    for (int j = 0; j < kQKK; j += 32) {
      const __m256i q = QuantizeBlock32(x + j, id);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + j), q);
      // Group sums of 16: widen to int16 and add neighbours.
      const __m256i w = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);  // 16 pair sums
      const __m256i s4 = _mm256_madd_epi16(w, _mm256_set1_epi16(1));    // 8 quad sums
      alignas(32) int32_t quad[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(quad), s4);
      y[i].bsums[j / 16] = static_cast<int16_t>(quad[0] + quad[1] + quad[2] + quad[3]);
      y[i].bsums[j / 16 + 1] = static_cast<int16_t>(quad[4] + quad[5] + quad[6] + quad[7]);
    }
    y[i].d = 1.0f / iscale;
  }
}

void CopyActF32(const float* x, int64_t n, void* out) { std::memcpy(out, x, n * sizeof(float)); }

// ---------------------------------------------------------------- float weights

template <typename LoadW, typename ElemW>
inline float DotFloatLike(int64_t n, const float* x, LoadW load, ElemW elem) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(load(i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(load(i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(load(i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(load(i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load(i), _mm256_loadu_ps(x + i), a0);
  float s = Hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) s += elem(i) * x[i];
  return s;
}

float DotF32(int64_t n, const void* w, const void* x) {
  const float* a = static_cast<const float*>(w);
  return DotFloatLike(
      n, static_cast<const float*>(x), [a](int64_t i) { return _mm256_loadu_ps(a + i); },
      [a](int64_t i) { return a[i]; });
}

float DotF16(int64_t n, const void* w, const void* x) {
  const uint16_t* a = static_cast<const uint16_t*>(w);
  return DotFloatLike(
      n, static_cast<const float*>(x),
      [a](int64_t i) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
      },
      [a](int64_t i) { return H2F(a[i]); });
}

float DotBF16(int64_t n, const void* w, const void* x) {
  const uint16_t* a = static_cast<const uint16_t*>(w);
  return DotFloatLike(
      n, static_cast<const float*>(x),
      [a](int64_t i) {
        const __m256i v =
            _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
      },
      [a](int64_t i) {
        const uint32_t u = static_cast<uint32_t>(a[i]) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
      });
}

// ---------------------------------------------------------------- legacy quants

// Weight rows of the legacy types, one 32-element block at a time. Q8_0's
// codes are signed bytes (`Quants`); the others are read as unsigned codes u
// of value u - kOffset (`Codes`: Q4_0 the nibble, offset 8; Q5_0 five bits,
// offset 16; MXFP4 its doubled E2M1 value + 12), whose products with the
// activations need no sign fix-up: the offset is taken out once per
// activation block for every row. `ScaleVec` is the block's scale in all lanes.
struct Q8_0Weights {
  using Block = BlockQ8_0;
  static constexpr int kOffset = 0;
  static __m256i Quants(const Block& b) { return Load256(b.qs); }
  static __m256 ScaleVec(const Block& b) { return _mm256_set1_ps(H2F(b.d)); }
};
struct Q4_0Weights {
  using Block = BlockQ4_0;
  static constexpr int kOffset = 8;
  static __m256i Codes(const Block& b) { return UnpackNibbles16(b.qs); }
  static __m256 ScaleVec(const Block& b) { return _mm256_set1_ps(H2F(b.d)); }
};
struct Mxfp4Weights {
  using Block = BlockMXFP4;
  static constexpr int kOffset = 12;
  static __m256i Codes(const Block& b) {
    const __m256i table = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Codes)));
    return _mm256_shuffle_epi8(table, UnpackNibbles16(b.qs));
  }
  // Mxfp4Scale(e) from a table, broadcast from memory.
  static __m256 ScaleVec(const Block& b) { return _mm256_broadcast_ss(&kMxfp4Scales[b.e]); }
};

struct Q5_0Weights {
  using Block = BlockQ5_0;
  static constexpr int kOffset = 16;
  static __m256i Codes(const Block& b) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    return _mm256_or_si256(UnpackNibbles16(b.qs), simd::BitsToBytes(qh, 0x10));
  }
  static __m256 ScaleVec(const Block& b) { return _mm256_set1_ps(H2F(b.d)); }
};

// RM weight rows × RN activation rows of 32-element blocks against Q8_0
// activations. Each (row, token) pair has one 8-lane accumulator updated once
// per block in block order and one final horizontal sum, so its result does
// not depend on RM, RN or where the pair falls in a larger product. Weight
// blocks are loaded (and made unsigned) once per RN tokens, activation blocks
// once per RM rows. Unsigned codes u are exact in maddubs's pair sums (at
// most 2·31·127); their offset is taken out as -kOffset·Σx per activation
// block, so the integer sums are the scalar kernel's.
template <class W, int RM, int RN>
inline void TileLegacy(int64_t nb, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs,
                       float* y, size_t ys) {
  using WB = typename W::Block;
  constexpr bool kUnsigned = W::kOffset > 0;
  __m256 acc[RM][RN];
  for (int r = 0; r < RM; ++r) {
    for (int t = 0; t < RN; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < nb; ++i) {
    __m256i xq[RN], negcorr[RN];
    __m256 dx[RN];
    for (int t = 0; t < RN; ++t) {
      const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(x + t * xs)[i];
      xq[t] = Load256(b.qs);
      dx[t] = _mm256_set1_ps(H2F(b.d));
      if constexpr (kUnsigned) {
        negcorr[t] = _mm256_sub_epi32(
            _mm256_setzero_si256(),
            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(W::kOffset), xq[t]), ones));
      }
    }
    for (int r = 0; r < RM; ++r) {
      const WB& a = reinterpret_cast<const WB*>(w + r * ws)[i];
      // Short rows read side by side are not followed by the hardware
      // prefetcher: fetch the rows two tiles ahead (the next in memory).
      _mm_prefetch(reinterpret_cast<const char*>(&a) + 2 * RM * ws, _MM_HINT_T0);
      const __m256 dw = W::ScaleVec(a);
      if constexpr (kUnsigned) {
        const __m256i u = W::Codes(a);
        for (int t = 0; t < RN; ++t) {
          const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(u, xq[t]), ones), negcorr[t]);
          acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx[t]), _mm256_cvtepi32_ps(p), acc[r][t]);
        }
      } else {
        const __m256i q = W::Quants(a);
        const __m256i aq = _mm256_sign_epi8(q, q);
        for (int t = 0; t < RN; ++t) {
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(xq[t], q)), ones);
          acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx[t]), _mm256_cvtepi32_ps(p), acc[r][t]);
        }
      }
    }
  }
  for (int r = 0; r < RM; ++r) {
    for (int t = 0; t < RN; ++t) y[t * ys + r] = Hsum(acc[r][t]);
  }
}

template <class W>
struct LegacyTile {
  template <int RM, int RN>
  static void Run(int64_t nb, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y, size_t ys) {
    TileLegacy<W, RM, RN>(nb, w, ws, x, xs, y, ys);
  }
};

// Decode: Q8_0 one row at a time (it streams faster so), the unsigned-code
// types four, so the offset correction of each activation block serves four
// rows (measured, one thread: Q4_0 7.5 -> 10.3 GB/s, MXFP4 7.7 -> 11.1).
template <class W>
void DotTileLegacy(int64_t n, const void* w, size_t ws, int64_t rows, const void* x, size_t xs,
                   int64_t n_tok, float* y, size_t ys) {
  RunTiled<LegacyTile<W>, 4, 3, (W::kOffset > 0 ? 4 : 1)>(n / kQK, w, ws, rows, x, xs, n_tok, y, ys);
}

template <class W>
float DotLegacy(int64_t n, const void* w, const void* x) {
  float y;
  TileLegacy<W, 1, 1>(n / kQK, static_cast<const uint8_t*>(w), 0, static_cast<const uint8_t*>(x),
                      0, &y, 0);
  return y;
}

// ---------------------------------------------------------------- k-quants

// Per (row, token) accumulators of a k-quant tile, and their sums stored as
// y[t * ys + r].
template <int RM, int RN>
inline void ZeroAll(__m256 (&acc)[RM][RN]) {
  for (int r = 0; r < RM; ++r) {
    for (int t = 0; t < RN; ++t) acc[r][t] = _mm256_setzero_ps();
  }
}
template <int RM, int RN>
inline void StoreSums(const __m256 (&acc)[RM][RN], float* y, size_t ys) {
  for (int r = 0; r < RM; ++r) {
    for (int t = 0; t < RN; ++t) y[t * ys + r] = Hsum(acc[r][t]);
  }
}

// RM rows × RN tokens of Q4_K (kFive false) or Q5_K against Q8_K activations:
// each row's block is unpacked once (8 vectors of 32 values) for all RN
// tokens. x = d·sc·q - dmin·m per group of 32; the min term (4 lanes, from
// the activation's group sums) is added into the same accumulator.
template <bool kFive>
struct K45Tile {
  template <int RM, int RN>
  static void Run(int64_t nb, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y,
                  size_t ys) {
    __m256 acc[RM][RN];
    ZeroAll(acc);
    for (int64_t i = 0; i < nb; ++i) {
      tiles::PrefetchAhead<RM, kFive ? sizeof(BlockQ5K) : sizeof(BlockQ4K)>(w, ws, i);
#pragma GCC unroll 4
      for (int r = 0; r < RM; ++r) {
        const simd::KBlockView v = simd::ViewK45<kFive>(w + r * ws, i);
        const __m256i mins_and_scales = _mm256_cvtepu8_epi16(simd::UnpackKScalesVec(v.scales));
        const __m128i mins = _mm256_extracti128_si256(mins_and_scales, 1);
        alignas(16) int16_t sc[8];
        _mm_store_si128(reinterpret_cast<__m128i*>(sc), _mm256_castsi256_si128(mins_and_scales));
        const __m256i hbits = kFive ? Load256(v.qh) : _mm256_setzero_si256();
        __m256i q[8];
        for (int j = 0; j < 4; ++j) simd::UnpackK45Pair(v.q4 + 32 * j, kFive ? &hbits : nullptr, j, &q[2 * j], &q[2 * j + 1]);
#pragma GCC unroll 4
        for (int t = 0; t < RN; ++t) {
          const BlockQ8K& b = reinterpret_cast<const BlockQ8K*>(x + t * xs)[i];
          const __m256i q8sums = Load256(b.bsums);
          const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
          const __m128i prod = _mm_madd_epi16(mins, q8s);
          __m256i sumi = _mm256_setzero_si256();
          for (int g = 0; g < 8; ++g) {
            const __m256i p = _mm256_maddubs_epi16(q[g], Load256(b.qs + 32 * g));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sc[g]), p));
          }
          acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(v.d * b.d), _mm256_cvtepi32_ps(sumi), acc[r][t]);
          acc[r][t] = _mm256_fnmadd_ps(_mm256_set1_ps(v.dmin * b.d), _mm256_zextps128_ps256(_mm_cvtepi32_ps(prod)),
                                       acc[r][t]);
        }
      }
    }
    StoreSums(acc, y, ys);
  }
};

// RM rows × RN tokens of Q6_K against Q8_K activations: x = d·sc·(q - 32)
// per group of 16, as Σ sc·q·x - 32·Σ sc·(group sum of x).
struct Q6KTile {
  template <int RM, int RN>
  static void Run(int64_t nb, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y,
                  size_t ys) {
    __m256 acc[RM][RN];
    ZeroAll(acc);
    for (int64_t i = 0; i < nb; ++i) {
      tiles::PrefetchAhead<RM, sizeof(BlockQ6K)>(w, ws, i);
#pragma GCC unroll 4
      for (int r = 0; r < RM; ++r) {
        const BlockQ6K& a = reinterpret_cast<const BlockQ6K*>(w + r * ws)[i];
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.scales)));
        __m256i q[8];
        simd::UnpackQ6KHalf(a.ql, a.qh, q);
        simd::UnpackQ6KHalf(a.ql + 64, a.qh + 32, q + 4);
#pragma GCC unroll 4
        for (int t = 0; t < RN; ++t) {
          const BlockQ8K& b = reinterpret_cast<const BlockQ8K*>(x + t * xs)[i];
          const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, Load256(b.bsums)), 5);
          __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), corr);
          for (int k = 0; k < 8; ++k) {
            const __m256i p = _mm256_maddubs_epi16(q[k], Load256(b.qs + 32 * k));
            const __m256i s = _mm256_set_m128i(_mm_set1_epi16(a.scales[2 * k + 1]), _mm_set1_epi16(a.scales[2 * k]));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
          }
          acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(H2F(a.d) * b.d), _mm256_cvtepi32_ps(sumi), acc[r][t]);
        }
      }
    }
    StoreSums(acc, y, ys);
  }
};

template <class Tile, int kBlock>
float TileRowDot(int64_t n, const void* w, const void* x) {
  float y;
  Tile::template Run<1, 1>(n / kBlock, static_cast<const uint8_t*>(w), 0, static_cast<const uint8_t*>(x), 0, &y, 0);
  return y;
}

// Prefill 2 rows × 2 tokens (16 registers); decode 4 rows at a time with the
// next 4 prefetched (measured on a generated qwen3moe Q4_K model: faster than
// one row at a time).
template <class Tile>
void DotTileK(int64_t n, const void* w, size_t ws, int64_t rows, const void* x, size_t xs,
              int64_t n_tok, float* y, size_t ys) {
  RunTiled<Tile, 2, 2, 4>(n / kQKK, w, ws, rows, x, xs, n_tok, y, ys);
}

}  // namespace

// Table entries are set by index, not through the header's inline accessors,
// so no inline function is ever emitted from this file with AVX2 code in it.
void FillAvx2Kernels(MatmulKernels& k) {
  auto set = [&k](GgmlType t, GgmlType act, QuantizeActFn q, DotFn dot, DotTileFn tile = nullptr) {
    k.types[static_cast<int>(t)] = TypeKernels{act, q, dot, tile};
  };
  set(GgmlType::kF32, GgmlType::kF32, CopyActF32, DotF32);
  set(GgmlType::kF16, GgmlType::kF32, CopyActF32, DotF16);
  set(GgmlType::kBF16, GgmlType::kF32, CopyActF32, DotBF16);
  set(GgmlType::kQ8_0, GgmlType::kQ8_0, QuantizeActQ8_0, DotLegacy<Q8_0Weights>,
      DotTileLegacy<Q8_0Weights>);
  set(GgmlType::kQ4_0, GgmlType::kQ8_0, QuantizeActQ8_0, DotLegacy<Q4_0Weights>,
      DotTileLegacy<Q4_0Weights>);
  set(GgmlType::kQ5_0, GgmlType::kQ8_0, QuantizeActQ8_0, DotLegacy<Q5_0Weights>,
      DotTileLegacy<Q5_0Weights>);
  set(GgmlType::kMXFP4, GgmlType::kQ8_0, QuantizeActQ8_0, DotLegacy<Mxfp4Weights>,
      DotTileLegacy<Mxfp4Weights>);
  set(GgmlType::kQ4_K, GgmlType::kQ8_K, QuantizeActQ8K, TileRowDot<K45Tile<false>, kQKK>,
      DotTileK<K45Tile<false>>);
  set(GgmlType::kQ5_K, GgmlType::kQ8_K, QuantizeActQ8K, TileRowDot<K45Tile<true>, kQKK>,
      DotTileK<K45Tile<true>>);
  set(GgmlType::kQ6_K, GgmlType::kQ8_K, QuantizeActQ8K, TileRowDot<Q6KTile, kQKK>, DotTileK<Q6KTile>);
}

}  // namespace moestream::kernels::cpu
