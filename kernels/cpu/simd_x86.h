// 256-bit helpers shared by the AVX2 and AVX-512 kernel files (and only
// included there: they need -mavx2 -mf16c). Every function has internal
// linkage on purpose: an ordinary inline function compiled in the AVX-512
// file could be the copy the linker keeps for the AVX2 file, and would then
// execute AVX-512 instructions on a CPU without them.
//
//   __m256i q = UnpackNibbles16(block.qs);   // 32 values 0..15, low nibbles first
#ifndef MOESTREAM_KERNELS_CPU_SIMD_X86_H_
#define MOESTREAM_KERNELS_CPU_SIMD_X86_H_

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/quant_blocks.h"

namespace moestream::kernels::cpu::simd {

static inline float H2F(uint16_t h) { return _cvtsh_ss(h); }

static inline __m256i Load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// 16 bytes of nibbles → 32 bytes: low nibbles (elements 0..15) then high.
static inline __m256i UnpackNibbles16(const uint8_t* q) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i m = _mm_set1_epi8(0xF);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

// Byte j of the result is `value` where bit j of `bits` is set, else 0.
static inline __m256i BitsToBytes(uint32_t bits, uint8_t value) {
  const __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)),
                                        _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202,
                                                           0x0303030303030303));
  const __m256i sel = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(b, sel), sel);
  return _mm256_and_si256(set, _mm256_set1_epi8(static_cast<char>(value)));
}

// Unpacks the 12-byte Q4_K/Q5_K scales (6-bit scales and mins, the top
// bits of 4..7 in the top bits of 0..3) into one xmm: bytes 0..7 the group
// scales, 8..15 the mins. Reads 16 bytes at `packed` (the 12 scale bytes and 4 of the block's next
// field), with no general-purpose register round trip.
static inline __m128i UnpackKScalesVec(const uint8_t* packed) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));
  // Dwords [u0, u2, u1, u2 >> 4] masked to 6, 4, 6, 4 bits per byte ...
  __m128i a = _mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4));
  a = _mm_and_si128(a, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  // ... with the top two bits of u0's (for scales 4..7) and u1's (mins
  // 4..7) bytes as bits 4-5.
  const __m128i b = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)), 2),
                                  _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm_or_si128(a, b);
}

// Block i of a Q4_K (kFive false) or Q5_K row: the fields both dots read.
struct KBlockView {
  const uint8_t* scales;
  const uint8_t* q4;
  const uint8_t* qh;  // null for Q4_K
  float d, dmin;
};
template <bool kFive>
static inline KBlockView ViewK45(const void* row, int64_t i) {
  if constexpr (kFive) {
    const auto& a = static_cast<const BlockQ5K*>(row)[i];
    return {a.scales, a.qs, a.qh, H2F(a.d), H2F(a.dmin)};
  } else {
    const auto& a = static_cast<const BlockQ4K*>(row)[i];
    return {a.scales, a.qs, nullptr, H2F(a.d), H2F(a.dmin)};
  }
}

// The 4-bit values of groups 2j (lo) and 2j+1 (hi) of a Q4_K/Q5_K block from
// 32 bytes of nibbles, with Q5_K's fifth bits (bits 2j, 2j+1 of qh) merged in
// when `hbits` is given.
static inline void UnpackK45Pair(const uint8_t* q4, const __m256i* hbits, int j, __m256i* lo,
                                 __m256i* hi) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  const __m256i bits = Load256(q4);
  *lo = _mm256_and_si256(bits, m4);
  *hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
  if (hbits != nullptr) {
    const __m256i one = _mm256_set1_epi8(1);
    const __m128i s0 = _mm_cvtsi32_si128(2 * j), s1 = _mm_cvtsi32_si128(2 * j + 1);
    *lo = _mm256_or_si256(*lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(*hbits, s0), one), 4));
    *hi = _mm256_or_si256(*hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(*hbits, s1), one), 4));
  }
}

// The 6-bit values (0..63) of one 128-element half of a Q6_K block, as four
// vectors of 32 consecutive elements.
static inline void UnpackQ6KHalf(const uint8_t* ql, const uint8_t* qh_half, __m256i q[4]) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  const __m256i m2 = _mm256_set1_epi8(3);
  const __m256i qlA = Load256(ql), qlB = Load256(ql + 32);
  const __m256i qh = Load256(qh_half);
  q[0] = _mm256_or_si256(_mm256_and_si256(qlA, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(qlB, m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qlA, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qlB, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
}

}  // namespace moestream::kernels::cpu::simd

#endif  // MOESTREAM_KERNELS_CPU_SIMD_X86_H_
