// The AVX-512 register-tiled kernels of the quantized types (Q8_0, Q4_0,
// Q5_0, MXFP4, Q4_K, Q5_K, Q6_K), written once for two integer back ends chosen by
// the `Ops` parameter: AVX-512BW's maddubs + madd (matmul_avx512.cc) and
// VNNI's vpdpbusd / vpdpwssd (matmul_avx512vnni.cc). Included only by those
// two files, which are compiled with their ISA flags; everything here has
// internal linkage (see simd_x86.h for why).
//
// Layouts: weights are ggml's blocks read in place (quant_blocks.h);
// activations are the standard Q8_0 / Q8_K blocks of the scalar converters,
// so every ISA reads the same activation bytes. One zmm holds 64 weights:
// two 32-element blocks of the legacy quants; for Q4_K/Q5_K the low and high
// nibbles of 64 bytes (groups 2c/2c+1 of two 64-element chunks, matched by
// joining the two 32-byte activation runs they multiply); for Q6_K 64
// consecutive elements. Per (row, token) pair the integer sums are exact
// (the scalar kernels' sums, only grouped into lanes differently) and are
// scaled in float once per block; each pair has its own accumulator updated
// in block order, so a result is bit-identical whatever tile it falls in.
// Tested against the scalar kernels (tests/kernels/matmul_test.cc, and
// KernelsFor's start-up check against the AVX2 kernels).
//
// Legacy blocks are read as unsigned codes u of value u - off (Q8_0: q XOR
// 0x80, off 128; Q4_0: the nibble, off 8; Q5_0: five bits, off 16), and the
// Σ u·x of vpdpbusd (or maddubs + madd) is corrected by -off·Σx, computed
// once per activation block and shared by every row. The nibble types
// (Q4_0, MXFP4) unpack both blocks of a step at once and MXFP4 reads its
// scales from a 256-entry table, both by broadcasts from memory: these
// kernels were bound by the one port that executes 512-bit shuffles. Q8_0 without VNNI uses
// signed products instead (its codes would overflow maddubs's pair sums). K-quant codes are unsigned
// already; there vpdpwssd fuses the products with the group scales and
// their sum.
#ifndef MOESTREAM_KERNELS_CPU_AVX512_TILES_H_
#define MOESTREAM_KERNELS_CPU_AVX512_TILES_H_

// GCC 12's AVX-512 intrinsic headers initialise their "undefined" vectors
// from themselves, which -Wuninitialized reports inside every intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/simd_x86.h"
#include "kernels/cpu/tile_loops.h"

namespace moestream::kernels::cpu::avx512 {
namespace {

using simd::H2F;
using simd::Load256;

inline __m512i Load512(const void* p) { return _mm512_loadu_si512(p); }
inline __m512i Join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
inline __m512i Broadcast256(const void* p) { return _mm512_broadcast_i64x4(Load256(p)); }
// The low 128 or 256 bits of a zmm with the rest zero.
inline __m512i Widen(__m128i v) { return _mm512_inserti32x4(_mm512_setzero_si512(), v, 0); }
inline __m512i Widen(__m256i v) { return _mm512_inserti64x4(_mm512_setzero_si512(), v, 0); }

// 32 words: a ×16 then b ×16 (indices for vpermw, or shift counts).
inline __m512i WordPair(int16_t a, int16_t b) { return Join(_mm256_set1_epi16(a), _mm256_set1_epi16(b)); }
// 32 words: a, b, c, e ×8 each.
inline __m512i WordQuad(int16_t a, int16_t b, int16_t c, int16_t e) {
  const __m256i lo = _mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a));
  const __m256i hi = _mm256_set_m128i(_mm_set1_epi16(e), _mm_set1_epi16(c));
  return Join(lo, hi);
}
// 64 bytes: a ×32 then b ×32.
inline __m512i BytePair(uint8_t a, uint8_t b) {
  return Join(_mm256_set1_epi8(static_cast<char>(a)), _mm256_set1_epi8(static_cast<char>(b)));
}

// Σ x·y over signed byte pairs as 16 int32 lanes (lane i: bytes 4i..4i+3).
inline __m512i MulSumI8(__m512i x, __m512i y) {
  const __mmask64 neg = _mm512_movepi8_mask(x);
  const __m512i ax = _mm512_abs_epi8(x);
  const __m512i sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
  return _mm512_madd_epi16(_mm512_maddubs_epi16(ax, sy), _mm512_set1_epi16(1));
}

// acc + Σ over groups of four of u·s (unsigned × signed bytes, int32 lanes).
// Without VNNI through 16-bit pair sums, exact while u <= 128.
template <class Ops>
inline __m512i DotBytes(__m512i acc, __m512i u, __m512i s) {
  if constexpr (Ops::kVnni) {
    return Ops::DpBusd(acc, u, s);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
  }
}

// acc + Σ over word pairs of a·b (int32 lanes).
template <class Ops>
inline __m512i DotWords(__m512i acc, __m512i a, __m512i b) {
  if constexpr (Ops::kVnni) {
    return Ops::DpWssd(acc, a, b);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
  }
}

// Per (row, token) accumulators of a tile, and their sums stored as
// y[t * ys + r].
template <int RM, int RN>
inline void ZeroAll(__m512 (&acc)[RM][RN]) {
  for (int r = 0; r < RM; ++r) {
    for (int t = 0; t < RN; ++t) acc[r][t] = _mm512_setzero_ps();
  }
}
template <int RM, int RN>
inline void StoreSums(const __m512 (&acc)[RM][RN], float* y, size_t ys) {
  for (int r = 0; r < RM; ++r) {
    for (int t = 0; t < RN; ++t) y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
  }
}

// ---------------------------------------------------------------- legacy quants

// The 4-bit codes of two 32-element nibble blocks (16 bytes each, element j
// in the low nibble of byte j, element j + 16 in its high nibble) as 64
// bytes: block 0's 32 codes in element order, then block 1's. The 128-bit
// lanes are filled by broadcasts from memory ([q0 q0 q1 q1]) and the odd
// lanes shifted by a nibble, so no cross-lane shuffle is needed: this kernel
// is bound by the shuffle port, not by its loads.
inline __m512i NibblePair(const uint8_t* q0, const uint8_t* q1) {
  const __m512i z = _mm512_mask_broadcast_i32x4(
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q0))), 0xFF00,
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(q1)));
  const __m512i s = _mm512_mask_srli_epi16(z, 0xFF00FF00u, z, 4);  // words of lanes 1 and 3
  return _mm512_and_si512(s, _mm512_set1_epi8(0xF));
}

// [a ×8 | b ×8] from two floats in memory, by broadcasts (no shuffle).
inline __m512 ScalePairOf(const float* a, const float* b) {
  return _mm512_mask_broadcastss_ps(_mm512_set1_ps(*a), 0xFF00, _mm_load_ss(b));
}

// Each type's 32 quants of one block as unsigned codes u (value u - kOffset)
// and as signed values.
struct Q8_0Codes {
  using Block = BlockQ8_0;
  static constexpr int kOffset = 128;
  static __m256i Unsigned(const Block& b) { return _mm256_xor_si256(Load256(b.qs), _mm256_set1_epi8(-128)); }
  static __m256i Signed(const Block& b) { return Load256(b.qs); }
};
struct Q4_0Codes {
  using Block = BlockQ4_0;
  static constexpr int kOffset = 8;
  static __m256i Unsigned(const Block& b) { return simd::UnpackNibbles16(b.qs); }
  static __m256i Signed(const Block& b) { return _mm256_sub_epi8(Unsigned(b), _mm256_set1_epi8(8)); }
  // Unsigned() of two consecutive blocks as one zmm.
  static constexpr bool kUnsignedPair = true;
  static __m512i UnsignedPair(const Block* b) { return NibblePair(b[0].qs, b[1].qs); }
};
struct Q5_0Codes {
  using Block = BlockQ5_0;
  static constexpr int kOffset = 16;
  static __m256i Unsigned(const Block& b) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    return _mm256_or_si256(simd::UnpackNibbles16(b.qs), simd::BitsToBytes(qh, 0x10));
  }
  static __m256i Signed(const Block& b) { return _mm256_sub_epi8(Unsigned(b), _mm256_set1_epi8(16)); }
};

// MXFP4: each nibble looks its value up in a table, doubled E2M1 values
// (-12..12) as codes u = value + 12 (0..24); the scale is an E8M0 exponent.
struct Mxfp4Codes {
  using Block = BlockMXFP4;
  static constexpr int kOffset = 12;
  static constexpr bool kE8M0Scale = true;
  static __m256i Unsigned(const Block& b) {
    const __m256i t = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Codes)));
    return _mm256_shuffle_epi8(t, simd::UnpackNibbles16(b.qs));
  }
  static __m256i Signed(const Block& b) {
    const __m256i t = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Values)));
    return _mm256_shuffle_epi8(t, simd::UnpackNibbles16(b.qs));
  }
  static constexpr bool kUnsignedPair = true;
  static __m512i UnsignedPair(const Block* b) {
    const __m512i t = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Codes)));
    return _mm512_shuffle_epi8(t, NibblePair(b[0].qs, b[1].qs));
  }
  // The two blocks' scales (Mxfp4Scale: 2^(e - 128), E8M0 halved for the
  // doubled codes), ×8 each: [block 0's | block 1's], read from a table.
  static __m512 ScalePair(const Block* b) { return ScalePairOf(&kMxfp4Scales[b[0].e], &kMxfp4Scales[b[1].e]); }
};

template <class C, class = void>
struct HasE8M0Scale : std::false_type {};
template <class C>
struct HasE8M0Scale<C, std::void_t<decltype(C::kE8M0Scale)>> : std::true_type {};
template <class C, class = void>
struct HasUnsignedPair : std::false_type {};
template <class C>
struct HasUnsignedPair<C, std::void_t<decltype(C::kUnsignedPair)>> : std::true_type {};

// RM rows × RN tokens of a legacy type against Q8_0 activations, two blocks
// per step (the last step of an odd count has an empty upper half).
template <class Ops, class C>
struct LegacyTile {
  template <int RM, int RN>
  static void Run(int64_t nb, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y,
                  size_t ys) {
    using WB = typename C::Block;
    // Unsigned codes with the offset corrected afterwards, unless the codes
    // would overflow maddubs's pair sums (Q8_0 without VNNI: signed products).
    constexpr bool kUnsigned = Ops::kVnni || C::kOffset < 128;
    __m512i negcorr[RN];
    __m512 acc[RM][RN];
    ZeroAll(acc);
    // [first block's scale ×8 | second's ×8] from the two lowest floats.
    const __m512i spread = Join(_mm256_set1_epi32(0), _mm256_set1_epi32(1));
    for (int64_t i = 0; i < nb; i += 2) {
      const bool two = i + 1 < nb;
      __m512i xq[RN];
      __m512 dx[RN];
      for (int t = 0; t < RN; ++t) {
        const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(x + t * xs) + i;
        xq[t] = Join(Load256(b[0].qs), two ? Load256(b[1].qs) : _mm256_setzero_si256());
        const __m128i h = _mm_insert_epi16(_mm_cvtsi32_si128(b[0].d), two ? b[1].d : 0, 1);
        dx[t] = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_cvtph_ps(h)));
        if constexpr (kUnsigned) {
          negcorr[t] = _mm512_sub_epi32(
              _mm512_setzero_si512(), DotBytes<Ops>(_mm512_setzero_si512(), _mm512_set1_epi8(C::kOffset), xq[t]));
        }
      }
      tiles::PrefetchAhead<RM, 2 * sizeof(WB)>(w, ws, i / 2);
#pragma GCC unroll 4
      for (int r = 0; r < RM; ++r) {
        const WB* a = reinterpret_cast<const WB*>(w + r * ws) + i;
        __m512 dw;
        if constexpr (HasE8M0Scale<C>::value) {
          if (two) {
            dw = C::ScalePair(a);
          } else {
            const __m128 f = _mm_setr_ps(Mxfp4Scale(a[0].e), 0.0f, 0, 0);
            dw = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(f));
          }
        } else {
          const __m128i h = _mm_insert_epi16(_mm_cvtsi32_si128(a[0].d), two ? a[1].d : 0, 1);
          dw = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_cvtph_ps(h)));
        }
        __m512i q;
        if constexpr (kUnsigned && HasUnsignedPair<C>::value) {
          q = two ? C::UnsignedPair(a) : Widen(C::Unsigned(a[0]));
        } else if constexpr (kUnsigned) {
          q = Join(C::Unsigned(a[0]), two ? C::Unsigned(a[1]) : _mm256_setzero_si256());
        } else {
          q = Join(C::Signed(a[0]), two ? C::Signed(a[1]) : _mm256_setzero_si256());
        }
#pragma GCC unroll 4
        for (int t = 0; t < RN; ++t) {
          __m512i p;
          if constexpr (kUnsigned) {
            p = DotBytes<Ops>(negcorr[t], q, xq[t]);
          } else {
            p = MulSumI8(q, xq[t]);
          }
          acc[r][t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx[t]), _mm512_cvtepi32_ps(p), acc[r][t]);
        }
      }
    }
    StoreSums(acc, y, ys);
  }
};

// ---------------------------------------------------------------- k-quants

// RM rows × RN tokens of Q4_K (kFive false) or Q5_K against Q8_K activations.
// x = d·sc·q - dmin·m per group of 32: Σ sc·(q·x) by maddubs and word dots
// with the group's scale, Σ m·(group sum of x) from the activation's sums.
// Vector k holds groups 2k and 2k+1 (the low and the high nibbles of the
// same 32 bytes, broadcast to both halves), which multiply 64 consecutive
// activation bytes: the activations are read straight from memory, so no
// register holds them and a tile can span four tokens. The mins part of
// the four rows goes into one vector per token (lanes 4r..4r+3 for row r),
// one multiply for the whole tile; each row's four lanes are summed in a
// fixed order at the end, so every (row, token) result is the same bits
// whatever the tile.
template <class Ops, bool kFive>
struct K45Tile {
  template <int RM, int RN>
  static void Run(int64_t nb, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y,
                  size_t ys) {
    static_assert(RM <= 4, "the mins vector has four lanes per row");
    using WB = std::conditional_t<kFive, BlockQ5K, BlockQ4K>;
    __m512 acc[RM][RN];
    ZeroAll(acc);
    __m512 accm[RN];
    for (int t = 0; t < RN; ++t) accm[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0xF);
    const __m512i nibble_shift = WordPair(0, 4);  // low half: low nibbles; high half: high
    const __m512i pick[4] = {WordPair(0, 1), WordPair(2, 3), WordPair(4, 5), WordPair(6, 7)};
    for (int64_t i = 0; i < nb; ++i) {
      tiles::PrefetchAhead<RM, sizeof(WB)>(w, ws, i);
      __m512i mins = _mm512_setzero_si512();  // row r's 8 mins in words 8r..8r+7
      __m512 dmin = _mm512_setzero_ps();      // row r's dmin in lanes 4r..4r+3
#pragma GCC unroll 4
      for (int r = 0; r < RM; ++r) {
        const WB& a = reinterpret_cast<const WB*>(w + r * ws)[i];
        const __m256i sm = _mm256_cvtepu8_epi16(simd::UnpackKScalesVec(a.scales));
        const __m512i sc = _mm512_castsi256_si512(sm);  // words 0..7: scales
        const __mmask16 lanes = static_cast<__mmask16>(0xF << (4 * r));
        mins = _mm512_mask_broadcast_i32x4(mins, lanes, _mm256_extracti128_si256(sm, 1));
        dmin = _mm512_mask_broadcastss_ps(dmin, lanes, _mm_set_ss(H2F(a.dmin)));
        __m512i wq[4];
        for (int k = 0; k < 4; ++k) {
          wq[k] = _mm512_and_si512(_mm512_srlv_epi16(Broadcast256(a.qs + 32 * k), nibble_shift), m4);
        }
        if constexpr (kFive) {
          // Element l of group g has its fifth bit in bit g of qh[l].
          const __m512i h = Broadcast256(a.qh);
          const __m512i bit = _mm512_set1_epi8(0x10);
          for (int k = 0; k < 4; ++k) {
            const __mmask64 set = _mm512_test_epi8_mask(h, BytePair(1 << (2 * k), 1 << (2 * k + 1)));
            wq[k] = _mm512_mask_add_epi8(wq[k], set, wq[k], bit);
          }
        }
        __m512i s[4];
        for (int k = 0; k < 4; ++k) s[k] = _mm512_permutexvar_epi16(pick[k], sc);
        const float d = H2F(a.d);
#pragma GCC unroll 4
        for (int t = 0; t < RN; ++t) {
          const BlockQ8K& b = reinterpret_cast<const BlockQ8K*>(x + t * xs)[i];
          __m512i sumi = _mm512_setzero_si512();
          for (int k = 0; k < 4; ++k) {
            sumi = DotWords<Ops>(sumi, _mm512_maddubs_epi16(wq[k], Load512(b.qs + 64 * k)), s[k]);
          }
          acc[r][t] = _mm512_fmadd_ps(_mm512_set1_ps(d * b.d), _mm512_cvtepi32_ps(sumi), acc[r][t]);
        }
      }
#pragma GCC unroll 4
      for (int t = 0; t < RN; ++t) {
        const BlockQ8K& b = reinterpret_cast<const BlockQ8K*>(x + t * xs)[i];
        const __m128i* bs = reinterpret_cast<const __m128i*>(b.bsums);
        const __m128i gsum = _mm_hadd_epi16(_mm_loadu_si128(bs), _mm_loadu_si128(bs + 1));  // 8 sums of 32
        const __m512i pm = _mm512_madd_epi16(mins, _mm512_broadcast_i32x4(gsum));
        accm[t] = _mm512_fmadd_ps(_mm512_mul_ps(dmin, _mm512_set1_ps(b.d)), _mm512_cvtepi32_ps(pm), accm[t]);
      }
    }
    for (int t = 0; t < RN; ++t) {
      alignas(64) float m[16];
      _mm512_store_ps(m, accm[t]);
      for (int r = 0; r < RM; ++r) {
        y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]) - ((m[4 * r] + m[4 * r + 1]) + (m[4 * r + 2] + m[4 * r + 3]));
      }
    }
  }
};

// RM rows × RN tokens of Q6_K against Q8_K activations: x = d·sc·(q - 32)
// per group of 16, computed as Σ sc·q·x - 32·Σ sc·(group sum of x).
template <class Ops>
struct Q6KTile {
  template <int RM, int RN>
  static void Run(int64_t nb, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* y,
                  size_t ys) {
    __m512 acc[RM][RN];
    ZeroAll(acc);
    const __m512i m4 = _mm512_set1_epi8(0xF), m2 = _mm512_set1_epi8(0x30);
    // High bits of elements [0,32) and [32,64) of a half: qh bits 0-1 and 2-3
    // moved to 4-5; of [64,96) and [96,128): bits 4-5 and 6-7.
    const __m512i shl = WordPair(4, 2), shr = WordPair(0, 2);
    const __m512i pick[4] = {WordQuad(0, 1, 2, 3), WordQuad(4, 5, 6, 7), WordQuad(8, 9, 10, 11),
                             WordQuad(12, 13, 14, 15)};
    for (int64_t i = 0; i < nb; ++i) {
      tiles::PrefetchAhead<RM, sizeof(BlockQ6K)>(w, ws, i);
#pragma GCC unroll 4
      for (int r = 0; r < RM; ++r) {
        const BlockQ6K& a = reinterpret_cast<const BlockQ6K*>(w + r * ws)[i];
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.scales)));
        __m512i wq[4];
        for (int half = 0; half < 2; ++half) {
          const __m512i ql = Load512(a.ql + 64 * half);
          const __m512i qh = Broadcast256(a.qh + 32 * half);
          wq[2 * half] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi16(qh, shl), m2));
          wq[2 * half + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                             _mm512_and_si512(_mm512_srlv_epi16(qh, shr), m2));
        }
        __m512i s[4];
        for (int k = 0; k < 4; ++k) s[k] = _mm512_permutexvar_epi16(pick[k], _mm512_castsi256_si512(sc16));
        const float d = H2F(a.d);
#pragma GCC unroll 4
        for (int t = 0; t < RN; ++t) {
          // Activations straight from memory (no registers held across rows).
          const BlockQ8K& b = reinterpret_cast<const BlockQ8K*>(x + t * xs)[i];
          __m512i sumi = Widen(_mm256_slli_epi32(_mm256_madd_epi16(sc16, Load256(b.bsums)), 5));
          sumi = _mm512_sub_epi32(_mm512_setzero_si512(), sumi);
          for (int k = 0; k < 4; ++k) {
            sumi = DotWords<Ops>(sumi, _mm512_maddubs_epi16(wq[k], Load512(b.qs + 64 * k)), s[k]);
          }
          acc[r][t] = _mm512_fmadd_ps(_mm512_set1_ps(d * b.d), _mm512_cvtepi32_ps(sumi), acc[r][t]);
        }
      }
    }
    StoreSums(acc, y, ys);
  }
};

// ---------------------------------------------------------------- table entries

// The row dot is the 1 × 1 tile, so tiles and dots agree bit for bit.
template <class Tile, int kBlock>
float RowDot(int64_t n, const void* w, const void* x) {
  float y;
  Tile::template Run<1, 1>(n / kBlock, static_cast<const uint8_t*>(w), 0, static_cast<const uint8_t*>(x), 0, &y, 0);
  return y;
}

// Prefill in kRows × kToks tiles; decode (one token) kRows1 rows side by side.
template <class Tile, int kBlock, int kRows, int kToks, int kRows1>
void TileDot(int64_t n, const void* w, size_t ws, int64_t rows, const void* x, size_t xs, int64_t n_tok,
             float* y, size_t ys) {
  tiles::RunTiled<Tile, kRows, kToks, kRows1>(n / kBlock, w, ws, rows, x, xs, n_tok, y, ys);
}

// Sets the quantized types' dot and dot_tile (activation converters are
// the narrower ISA's, already in the table).
template <class Ops>
void FillQuantTiles(MatmulKernels& k) {
  auto set = [&k](GgmlType t, DotFn dot, DotTileFn tile) {
    k.types[static_cast<int>(t)].dot = dot;
    k.types[static_cast<int>(t)].dot_tile = tile;
  };
  // Four rows side by side share each activation join and horizontal sum:
  // measured on a generated qwen3moe Q4_K model (1024-wide rows), decode is
  // ~30% faster than one row at a time. On long rows streamed from DRAM
  // (4096 wide) the two measured within noise of each other.
  constexpr int kDecodeRows = 4;
  set(GgmlType::kQ8_0, RowDot<LegacyTile<Ops, Q8_0Codes>, kQK>,
      TileDot<LegacyTile<Ops, Q8_0Codes>, kQK, 4, 3, kDecodeRows>);
  set(GgmlType::kQ4_0, RowDot<LegacyTile<Ops, Q4_0Codes>, kQK>,
      TileDot<LegacyTile<Ops, Q4_0Codes>, kQK, 4, 3, kDecodeRows>);
  set(GgmlType::kQ5_0, RowDot<LegacyTile<Ops, Q5_0Codes>, kQK>,
      TileDot<LegacyTile<Ops, Q5_0Codes>, kQK, 4, 3, kDecodeRows>);
  set(GgmlType::kMXFP4, RowDot<LegacyTile<Ops, Mxfp4Codes>, kQK>,
      TileDot<LegacyTile<Ops, Mxfp4Codes>, kQK, 4, 3, kDecodeRows>);
  set(GgmlType::kQ4_K, RowDot<K45Tile<Ops, false>, kQKK>,
      TileDot<K45Tile<Ops, false>, kQKK, 4, 4, kDecodeRows>);
  set(GgmlType::kQ5_K, RowDot<K45Tile<Ops, true>, kQKK>,
      TileDot<K45Tile<Ops, true>, kQKK, 4, 4, kDecodeRows>);
  set(GgmlType::kQ6_K, RowDot<Q6KTile<Ops>, kQKK>,
      TileDot<Q6KTile<Ops>, kQKK, 4, 4, kDecodeRows>);
}

}  // namespace
}  // namespace moestream::kernels::cpu::avx512

#endif  // MOESTREAM_KERNELS_CPU_AVX512_TILES_H_
