// The CUDA backend's weight formats, written once for host and device: the
// list of types the CUDA kernels compute with, and for each type the unpacking
// of 32 consecutive weights into an integer form the kernels consume. The
// kernels in cuda_ops.cu instantiate one kernel per entry of the type list
// (MOESTREAM_CUDA_QUANT_TYPES / MOESTREAM_CUDA_FLOAT_TYPES), and CudaCanCompute
// is expanded from the same list, so "accepted" and "has a kernel" cannot drift.
// This header compiles as plain C++ too: tests/kernels/cuda_quant_test.cc
// checks every unpacker against kernels/quant.cc's DequantizeRow on the CPU,
// with no GPU.
//
//   if (!cuda::CudaCanCompute(t)) refuse the tensor;
//   cuda::Chunk32 c;
//   cuda::UnpackChunk<GgmlType::kQ4_K>(row, chunk, &c);   // weights 32*chunk ..
//   float w_j = c.scale[j / 16] * c.Q(j) + c.min[j / 16];
//
// Layouts are ggml's blocks byte for byte (kernels/cpu/quant_blocks.h names
// the fields); offsets are spelled out here because the device side cannot
// rely on host struct packing. Every quantized type's weights factor, per 16
// consecutive weights, as scale * q + min with q a signed 8-bit integer, which
// is what lets one int8 dot-product kernel (dp4a) serve all of them:
//   Q4_0 q-8, d          Q4_1 q, d, +m          Q5_0 q-16, d     Q5_1 q, d, +m
//   Q8_0 q, d            Q8_K q, d (float)      Q2_K q, d*sc, -dmin*m (groups of 16)
//   Q3_K q-4*!h, d*(s-32) (16)    Q4_K/Q5_K q, d*sc, -dmin*m (32)
//   Q6_K q-32, d*sc (16)          MXFP4 2*E2M1 as int8, 2^(e-128) (32)
// MXFP4 (OCP microscaling, as gpt-oss ships it): 32 weights = one E8M0 byte e
// then 16 bytes of 4-bit E2M1 codes, element j < 16 in the low nibble of byte
// j, element j + 16 in its high nibble; value = E2M1(code) * 2^(e-127). E2M1
// magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6} are kept doubled as integers
// {0, 1, 2, 3, 4, 6, 8, 12} (bit 3 is the sign) and the scale halved.
#ifndef MOESTREAM_KERNELS_CUDA_CUDA_QUANT_H_
#define MOESTREAM_KERNELS_CUDA_CUDA_QUANT_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#include "base/ggml_type.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define MOESTREAM_HD __host__ __device__ __forceinline__
#else
#define MOESTREAM_HD inline
#endif

namespace moestream::kernels::cuda {

// Quantized weight types: each has an UnpackChunk specialisation below and
// one instance of every quantized kernel in cuda_ops.cu.
#define MOESTREAM_CUDA_QUANT_TYPES(X) \
  X(Q4_0) X(Q4_1) X(Q5_0) X(Q5_1) X(Q8_0) X(Q8_K) X(Q2_K) X(Q3_K) X(Q4_K) X(Q5_K) X(Q6_K) X(MXFP4)
// Plain types: UnpackFloat32 below; products through cuBLAS or the float
// matrix-vector kernel.
#define MOESTREAM_CUDA_FLOAT_TYPES(X) X(F32) X(F16) X(BF16)

#define MOESTREAM_CUDA_TYPE_ENTRY(T) GgmlType::k##T,
inline constexpr GgmlType kCudaQuantTypes[] = {MOESTREAM_CUDA_QUANT_TYPES(MOESTREAM_CUDA_TYPE_ENTRY)};
inline constexpr GgmlType kCudaFloatTypes[] = {MOESTREAM_CUDA_FLOAT_TYPES(MOESTREAM_CUDA_TYPE_ENTRY)};
#undef MOESTREAM_CUDA_TYPE_ENTRY

constexpr bool CudaIsQuantType(GgmlType t) {
  for (GgmlType q : kCudaQuantTypes) {
    if (q == t) return true;
  }
  return false;
}
constexpr bool CudaIsFloatType(GgmlType t) {
  for (GgmlType q : kCudaFloatTypes) {
    if (q == t) return true;
  }
  return false;
}
// True for every type the CUDA kernels compute with (matmul and GetRows).
constexpr bool CudaCanCompute(GgmlType t) { return CudaIsQuantType(t) || CudaIsFloatType(t); }

// ---------------------------------------------------------------- scalars

MOESTREAM_HD uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
MOESTREAM_HD float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
MOESTREAM_HD float LoadF32(const uint8_t* p) {
  return BitsToFloat(uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
                     (uint32_t(p[3]) << 24));
}
// IEEE binary16 bits to float by integer arithmetic (the same on host and
// device, subnormals included).
MOESTREAM_HD float HalfToF32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  if (exp == 0x1F) return BitsToFloat(sign | 0x7F800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return BitsToFloat(sign);
    exp = 127 - 15 + 1;
    while ((man & 0x400u) == 0) {
      man <<= 1;
      --exp;
    }
    man &= 0x3FFu;
    return BitsToFloat(sign | (exp << 23) | (man << 13));
  }
  return BitsToFloat(sign | ((exp + 127 - 15) << 23) | (man << 13));
}
MOESTREAM_HD float Bf16ToF32(uint16_t b) { return BitsToFloat(uint32_t(b) << 16); }
// 2^(e - 128): half the E8M0 scale, so that the doubled E2M1 integers times
// it give the format's values. e = 0 and 1 are float subnormals.
MOESTREAM_HD float E8m0Half(uint8_t e) {
  return BitsToFloat(e < 2 ? (0x00200000u << e) : (uint32_t(e) - 1) << 23);
}

// A 4-bit E2M1 code as twice its value: magnitudes {0, 1, 2, 3, 4, 6, 8, 12}
// for codes 0..7 (0 .. 3 as they are, then (2 + low bit) << (exponent - 1)),
// bit 3 the sign.
MOESTREAM_HD int E2m1x2(int code) {
  const int m = code & 7;
  const int mag = m < 4 ? m : (2 + (m & 1)) << ((m >> 1) - 1);
  return (code & 8) ? -mag : mag;
}

// ---------------------------------------------------------------- chunks

// 32 consecutive weights of a row: w[j] = scale[j / 16] * Q(j) + min[j / 16],
// with Q(j) the signed byte j of qw (little-endian in each word, the order
// dp4a multiplies).
struct Chunk32 {
  int32_t qw[8];
  float scale[2];
  float min[2];
  MOESTREAM_HD int Q(int j) const {
    return static_cast<int8_t>(static_cast<uint32_t>(qw[j / 4]) >> (8 * (j % 4)));
  }
};

MOESTREAM_HD int32_t Pack4(int a, int b, int c, int d) {
  return static_cast<int32_t>((uint32_t(a) & 0xFFu) | ((uint32_t(b) & 0xFFu) << 8) |
                              ((uint32_t(c) & 0xFFu) << 16) | ((uint32_t(d) & 0xFFu) << 24));
}

// Fills the chunk's quants with q_of(j) for j = 0..31.
template <typename QuantOf>
MOESTREAM_HD void PackQuants(Chunk32* out, QuantOf q_of) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int w = 0; w < 8; ++w) {
    out->qw[w] = Pack4(q_of(4 * w), q_of(4 * w + 1), q_of(4 * w + 2), q_of(4 * w + 3));
  }
}

// Block geometry of the quantized types, as the device needs it.
template <GgmlType T>
struct QuantBlock;
#define MOESTREAM_CUDA_BLOCK(T, ELEMS, BYTES)        \
  template <>                                        \
  struct QuantBlock<GgmlType::k##T> {                \
    static constexpr int kElems = ELEMS;             \
    static constexpr int kBytes = BYTES;             \
    static constexpr int kChunks = ELEMS / 32;       \
  };
MOESTREAM_CUDA_BLOCK(Q4_0, 32, 18)
MOESTREAM_CUDA_BLOCK(Q4_1, 32, 20)
MOESTREAM_CUDA_BLOCK(Q5_0, 32, 22)
MOESTREAM_CUDA_BLOCK(Q5_1, 32, 24)
MOESTREAM_CUDA_BLOCK(Q8_0, 32, 34)
MOESTREAM_CUDA_BLOCK(Q8_K, 256, 292)
MOESTREAM_CUDA_BLOCK(Q2_K, 256, 84)
MOESTREAM_CUDA_BLOCK(Q3_K, 256, 110)
MOESTREAM_CUDA_BLOCK(Q4_K, 256, 144)
MOESTREAM_CUDA_BLOCK(Q5_K, 256, 176)
MOESTREAM_CUDA_BLOCK(Q6_K, 256, 210)
MOESTREAM_CUDA_BLOCK(MXFP4, 32, 17)
#undef MOESTREAM_CUDA_BLOCK

// Unpacks chunk c (weights 32c .. 32c+31) of a row that starts at `row`.
template <GgmlType T>
MOESTREAM_HD void UnpackChunk(const uint8_t* row, int64_t c, Chunk32* out);

namespace detail {

// Legacy 32-element blocks: nibble (or byte) j, optional fifth bit from qh.
template <int kBias, bool kMin, bool kFifth>
MOESTREAM_HD void UnpackLegacy4(const uint8_t* b, Chunk32* out) {
  const float d = HalfToF32(LoadU16(b));
  const float m = kMin ? HalfToF32(LoadU16(b + 2)) : 0.0f;
  const uint8_t* qh = b + (kMin ? 4 : 2);
  const uint8_t* qs = qh + (kFifth ? 4 : 0);
  const uint32_t h = kFifth ? (uint32_t(qh[0]) | (uint32_t(qh[1]) << 8) |
                               (uint32_t(qh[2]) << 16) | (uint32_t(qh[3]) << 24))
                            : 0u;
  PackQuants(out, [&](int j) {
    const int nib = j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4);
    const int high = kFifth ? static_cast<int>((h >> j) & 1u) << 4 : 0;
    return (nib | high) - kBias;
  });
  out->scale[0] = out->scale[1] = d;
  out->min[0] = out->min[1] = m;
}

// The 6-bit scale and min of group j (0..7) of a Q4_K/Q5_K block.
MOESTREAM_HD void KScaleMin6(const uint8_t* q, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

template <bool kFive>
MOESTREAM_HD void UnpackQ45K(const uint8_t* row, int64_t c, Chunk32* out) {
  constexpr int kBytes = kFive ? 176 : 144;
  const uint8_t* b = row + (c / 8) * kBytes;
  const int g = static_cast<int>(c % 8);  // group of 32
  const float d = HalfToF32(LoadU16(b)), dmin = HalfToF32(LoadU16(b + 2));
  int sc, m;
  KScaleMin6(b + 4, g, &sc, &m);
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + (kFive ? 48 : 16) + (g / 2) * 32;
  const int shift = (g % 2) * 4;
  PackQuants(out, [&](int l) {
    const int q = (qs[l] >> shift) & 0xF;
    return kFive ? q | (((qh[l] >> g) & 1) << 4) : q;
  });
  out->scale[0] = out->scale[1] = d * static_cast<float>(sc);
  out->min[0] = out->min[1] = -(dmin * static_cast<float>(m));
}

}  // namespace detail

template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ4_0>(const uint8_t* row, int64_t c, Chunk32* out) {
  detail::UnpackLegacy4<8, false, false>(row + c * 18, out);
}
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ4_1>(const uint8_t* row, int64_t c, Chunk32* out) {
  detail::UnpackLegacy4<0, true, false>(row + c * 20, out);
}
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ5_0>(const uint8_t* row, int64_t c, Chunk32* out) {
  detail::UnpackLegacy4<16, false, true>(row + c * 22, out);
}
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ5_1>(const uint8_t* row, int64_t c, Chunk32* out) {
  detail::UnpackLegacy4<0, true, true>(row + c * 24, out);
}
// 32 signed bytes as they are, one scale.
MOESTREAM_HD void UnpackInt8(const uint8_t* q, float d, Chunk32* out) {
  PackQuants(out, [&](int j) { return static_cast<int>(q[j]); });
  out->scale[0] = out->scale[1] = d;
  out->min[0] = out->min[1] = 0.0f;
}
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ8_0>(const uint8_t* row, int64_t c, Chunk32* out) {
  const uint8_t* b = row + c * 34;
  UnpackInt8(b + 2, HalfToF32(LoadU16(b)), out);
}
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ8_K>(const uint8_t* row, int64_t c, Chunk32* out) {
  const uint8_t* b = row + (c / 8) * 292;
  UnpackInt8(b + 4 + (c % 8) * 32, LoadF32(b), out);
}
// Q2_K: weight 32c + 16h + l is bits 2*(c%4) of qs[32*(c/4) + 16h + l], group 2c + h.
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ2_K>(const uint8_t* row, int64_t c, Chunk32* out) {
  const uint8_t* b = row + (c / 8) * 84;
  const int cc = static_cast<int>(c % 8);
  const uint8_t* qs = b + 16 + (cc / 4) * 32;
  const int shift = 2 * (cc % 4);
  const float d = HalfToF32(LoadU16(b + 80)), dmin = HalfToF32(LoadU16(b + 82));
  PackQuants(out, [&](int l) { return (qs[l] >> shift) & 3; });
  for (int h = 0; h < 2; ++h) {
    const uint8_t sc = b[2 * cc + h];
    out->scale[h] = d * static_cast<float>(sc & 0xF);
    out->min[h] = -(dmin * static_cast<float>(sc >> 4));
  }
}
// Q3_K: low two bits as Q2_K; the high bit of weight 16h + l of chunk cc is
// bit cc of hmask[16h + l] (set: +0, clear: -4); 6-bit scales biased by 32.
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ3_K>(const uint8_t* row, int64_t c, Chunk32* out) {
  const uint8_t* b = row + (c / 8) * 110;
  const int cc = static_cast<int>(c % 8);
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32 + (cc / 4) * 32;
  const uint8_t* sp = b + 96;
  const int shift = 2 * (cc % 4);
  const float d = HalfToF32(LoadU16(b + 108));
  PackQuants(out, [&](int l) { return ((qs[l] >> shift) & 3) - (((hmask[l] >> cc) & 1) ? 0 : 4); });
  for (int h = 0; h < 2; ++h) {
    const int j = 2 * cc + h;
    const int lo = j < 8 ? (sp[j] & 0xF) : (sp[j - 8] >> 4);
    const int hi = (sp[8 + (j % 4)] >> (2 * (j / 4))) & 3;
    out->scale[h] = d * static_cast<float>((lo | (hi << 4)) - 32);
    out->min[h] = 0.0f;
  }
}
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ4_K>(const uint8_t* row, int64_t c, Chunk32* out) {
  detail::UnpackQ45K<false>(row, c, out);
}
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ5_K>(const uint8_t* row, int64_t c, Chunk32* out) {
  detail::UnpackQ45K<true>(row, c, out);
}
// Q6_K: in each half block of 128, chunk quad (0..3) takes the low (quad < 2)
// or high nibbles of ql[l + 32*(quad&1)] and bits 2*quad of qh[l]; scale
// 2*quad + l/16 of the half's 8.
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kQ6_K>(const uint8_t* row, int64_t c, Chunk32* out) {
  const uint8_t* b = row + (c / 8) * 210;
  const int cc = static_cast<int>(c % 8);
  const int n = cc / 4, quad = cc % 4;
  const uint8_t* ql = b + n * 64 + (quad & 1) * 32;
  const uint8_t* qh = b + 128 + n * 32;
  const int lshift = quad >= 2 ? 4 : 0;
  const int hshift = 2 * quad;
  PackQuants(out, [&](int l) {
    return (((ql[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4)) - 32;
  });
  const float d = HalfToF32(LoadU16(b + 208));
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + n * 8;
  out->scale[0] = d * static_cast<float>(sc[2 * quad]);
  out->scale[1] = d * static_cast<float>(sc[2 * quad + 1]);
  out->min[0] = out->min[1] = 0.0f;
}
template <>
MOESTREAM_HD void UnpackChunk<GgmlType::kMXFP4>(const uint8_t* row, int64_t c, Chunk32* out) {
  const uint8_t* b = row + c * 17;
  const uint8_t* qs = b + 1;
  PackQuants(out, [&](int j) { return E2m1x2(j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4)); });
  out->scale[0] = out->scale[1] = E8m0Half(b[0]);
  out->min[0] = out->min[1] = 0.0f;
}

// Weights 32c .. 32c+31 of a plain-typed row as floats.
template <GgmlType T>
MOESTREAM_HD void UnpackFloat32(const uint8_t* row, int64_t c, float out[32]) {
  const uint8_t* p = row + c * 32 * (T == GgmlType::kF32 ? 4 : 2);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int j = 0; j < 32; ++j) {
    if constexpr (T == GgmlType::kF32) {
      out[j] = LoadF32(p + 4 * j);
    } else if constexpr (T == GgmlType::kF16) {
      out[j] = HalfToF32(LoadU16(p + 2 * j));
    } else {
      out[j] = Bf16ToF32(LoadU16(p + 2 * j));
    }
  }
}

// ---------------------------------------------------------------- activations

// How a product's activations are rounded, per weight type: exactly as the
// CPU backend (kernels/cpu/matmul_kernels.h) and llama.cpp's CPU matmuls
// round them, so CUDA follows the same greedy path on a llama.cpp-quantized
// model. kQ8_0: per 32 elements, d = amax / 127 stored as binary16, q =
// x * (127 / amax) rounded to nearest even. kQ8_K: per 256 elements, iscale =
// -127 / (the signed value of largest magnitude, first on ties), q =
// min(127, x * iscale to nearest even), d = 1 / iscale. kF32: not rounded (the
// kernel reads the float activations).
enum class ActMode { kF32, kQ8_0, kQ8_K };
constexpr ActMode ActModeOf(GgmlType t) {
  switch (t) {
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ5_0:
    case GgmlType::kMXFP4:
      return ActMode::kQ8_0;
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
      return ActMode::kQ8_K;
    default:
      return ActMode::kF32;
  }
}

// An int8 activation chunk's scale record: x[j] ≈ d * q[j], with
// dsum0/dsum1 = d * (sum of q over elements 0..15 / 16..31) for the min terms.
struct ActScale {
  float d;
  float dsum0;
  float dsum1;
  float pad;
};

}  // namespace moestream::kernels::cuda
namespace moestream::kernels {
uint16_t FloatToHalf(float f);  // kernels/quant.h (host side of RoundToHalf)
}  // namespace moestream::kernels
namespace moestream::kernels::cuda {

// Round to nearest, ties to even (the default floating-point rounding mode).
MOESTREAM_HD int RoundEven(float v) {
#if defined(__CUDA_ARCH__)
  return __float2int_rn(v);
#else
  return static_cast<int>(std::nearbyint(v));
#endif
}
// f rounded to binary16 and back (round to nearest even).
MOESTREAM_HD float RoundToHalf(float f) {
#if defined(__CUDA_ARCH__)
  return __half2float(__float2half_rn(f));
#else
  return HalfToF32(FloatToHalf(f));
#endif
}

// kQ8_0 rounding of one 32-element chunk.
MOESTREAM_HD void QuantizeActQ8_0Chunk(const float* x, int8_t* q, ActScale* s) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) {
    const float a = x[j] < 0 ? -x[j] : x[j];
    amax = a > amax ? a : amax;
  }
  const float d = RoundToHalf(amax / 127.0f);
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int sum0 = 0, sum1 = 0;
  for (int j = 0; j < 32; ++j) {
    const int r = RoundEven(x[j] * id);
    q[j] = static_cast<int8_t>(r);
    (j < 16 ? sum0 : sum1) += r;
  }
  *s = ActScale{d, d * static_cast<float>(sum0), d * static_cast<float>(sum1), 0.0f};
}

// kQ8_K rounding of one 256-element block: 8 chunk records.
MOESTREAM_HD void QuantizeActQ8KBlock(const float* x, int8_t* q, ActScale* s) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 256; ++j) {
    const float a = x[j] < 0 ? -x[j] : x[j];
    if (a > amax) {
      amax = a;
      max = x[j];
    }
  }
  if (max == 0.0f) {
    for (int j = 0; j < 256; ++j) q[j] = 0;
    for (int c = 0; c < 8; ++c) s[c] = ActScale{0.0f, 0.0f, 0.0f, 0.0f};
    return;
  }
  const float iscale = -127.0f / max;
  const float d = 1.0f / iscale;
  for (int c = 0; c < 8; ++c) {
    int sum[2] = {0, 0};
    for (int j = 0; j < 32; ++j) {
      int r = RoundEven(iscale * x[32 * c + j]);
      r = r < 127 ? r : 127;
      q[32 * c + j] = static_cast<int8_t>(r);
      sum[j / 16] += r;
    }
    s[c] = ActScale{d, d * static_cast<float>(sum[0]), d * static_cast<float>(sum[1]), 0.0f};
  }
}

// Sum of four byte products (the host's spelling of the device's __dp4a).
MOESTREAM_HD int Dp4a(int32_t a, int32_t b, int acc) {
#if defined(__CUDA_ARCH__)
  return __dp4a(a, b, acc);
#else
  for (int i = 0; i < 4; ++i) {
    acc += static_cast<int8_t>(static_cast<uint32_t>(a) >> (8 * i)) *
           static_cast<int8_t>(static_cast<uint32_t>(b) >> (8 * i));
  }
  return acc;
#endif
}

// Dot product of a weight chunk with an activation chunk (xq: 8 words).
MOESTREAM_HD float ChunkDot(const Chunk32& w, const int32_t* xq, const ActScale& s) {
  int s0 = 0, s1 = 0;
  for (int i = 0; i < 4; ++i) s0 = Dp4a(w.qw[i], xq[i], s0);
  for (int i = 4; i < 8; ++i) s1 = Dp4a(w.qw[i], xq[i], s1);
  return s.d * (w.scale[0] * static_cast<float>(s0) + w.scale[1] * static_cast<float>(s1)) +
         w.min[0] * s.dsum0 + w.min[1] * s.dsum1;
}

// Dot product of a weight chunk with 32 float activations (ActMode::kF32).
MOESTREAM_HD float ChunkDotF(const Chunk32& w, const float* x) {
  float s[2] = {0.0f, 0.0f}, xs[2] = {0.0f, 0.0f};
  for (int j = 0; j < 32; ++j) {
    s[j / 16] += static_cast<float>(w.Q(j)) * x[j];
    xs[j / 16] += x[j];
  }
  return w.scale[0] * s[0] + w.scale[1] * s[1] + w.min[0] * xs[0] + w.min[1] * xs[1];
}

}  // namespace moestream::kernels::cuda

#endif  // MOESTREAM_KERNELS_CUDA_CUDA_QUANT_H_
