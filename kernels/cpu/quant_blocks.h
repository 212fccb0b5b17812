// ggml's quantization block layouts, byte for byte (the block structs of the
// GGUF format description), so GGUF tensor data is read and computed in place.
// Shared by the row converters (kernels/quant.cc) and the dot-product kernels
// (kernels/cpu/*). Half-precision fields are raw IEEE binary16 bits.
//
//   const BlockQ4K* b = static_cast<const BlockQ4K*>(row);   // n / 256 blocks
//   float d = HalfToFloat(b->d);
#ifndef MOESTREAM_KERNELS_CPU_QUANT_BLOCKS_H_
#define MOESTREAM_KERNELS_CPU_QUANT_BLOCKS_H_

#include <array>
#include <bit>
#include <cstdint>

namespace moestream::kernels {

inline constexpr int kQK = 32;    // elements per block of the legacy quants
inline constexpr int kQKK = 256;  // elements per k-quant super-block
inline constexpr int kKScaleBytes = 12;

// x = d * (q - 8), q in [0,15]; element j in the low nibble of qs[j], j+16 high.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// x = d * q + m.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
// x = d * (q - 16); the fifth bit of element j is bit j of qh.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x = d * q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// Activation blocks of the k-quant dot products: float scale and the sums of
// each group of 16 quants.
struct BlockQ8K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};
// 16 groups of 16: x = d*(sc&15)*q - dmin*(sc>>4), q 2 bits.
struct BlockQ2K {
  uint8_t scales[kQKK / 16];
  uint8_t qs[kQKK / 4];
  uint16_t d;
  uint16_t dmin;
};
// 16 groups of 16: x = d*(s-32)*(q - 4*!hbit), 6-bit scales packed in 12 bytes.
struct BlockQ3K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];
  uint16_t d;
};
// 8 groups of 32: x = d*sc*q - dmin*m, 6-bit sc and m packed in 12 bytes.
struct BlockQ4K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQKK / 2];
};
struct BlockQ5K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
// 16 groups of 16: x = d*scales[g]*(q - 32), q 6 bits (4 in ql, 2 in qh).
struct BlockQ6K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};

// MXFP4 (OCP microscaling FP4, as GGUF stores it): 32 E2M1 values sharing
// an E8M0 exponent. x = kMxfp4Values[code] * 2^(e - 128), where the table
// holds E2M1's values doubled (so the scale is 2^(e-127) / 2); element j in
// the low nibble of qs[j], j + 16 in the high nibble.
struct BlockMXFP4 {
  uint8_t e;
  uint8_t qs[kQK / 2];
};
inline constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
// The same values as unsigned codes (value + 12, 0..24), for kernels whose
// byte products take an unsigned operand.
inline constexpr uint8_t kMxfp4Codes[16] = {12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0};
// 2^(e - 128) as a float (denormal for e < 2), built from its bits. Static:
// each kernel file, whatever its ISA flags, keeps its own copy.
static constexpr float Mxfp4Scale(uint8_t e) {
  return std::bit_cast<float>(e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23);
}
// Mxfp4Scale(e) for every e, for kernels that load the scale from memory
// (a broadcast from memory needs no shuffle unit). Data, built at compile
// time; static like Mxfp4Scale, which it is made from.
static constexpr std::array<float, 256> kMxfp4Scales = [] {
  std::array<float, 256> t{};
  for (int e = 0; e < 256; ++e) t[e] = Mxfp4Scale(static_cast<uint8_t>(e));
  return t;
}();

static_assert(sizeof(BlockMXFP4) == 17);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8K) == 292);
static_assert(sizeof(BlockQ2K) == 84);
static_assert(sizeof(BlockQ3K) == 110);
static_assert(sizeof(BlockQ4K) == 144);
static_assert(sizeof(BlockQ5K) == 176);
static_assert(sizeof(BlockQ6K) == 210);

// The 6-bit scale and min of group j (0..7) of a Q4_K/Q5_K block.
inline void KScaleMin(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Unpacks the 16 6-bit scales of a Q3_K block (biased by 32) into signed bytes.
inline void Q3KScales(const uint8_t* packed, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
    const int hi = (packed[8 + (j % 4)] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
}

}  // namespace moestream::kernels

#endif  // MOESTREAM_KERNELS_CPU_QUANT_BLOCKS_H_
