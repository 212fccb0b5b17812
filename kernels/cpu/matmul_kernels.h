// The per-ISA kernel table behind the CPU backend's matrix products.
//
// A product y = x · Wᵀ first converts each activation row once into the
// weight type's "activation type" (F32 for float weights, Q8_0 blocks for
// Q8_0/Q4_0/Q5_0, Q8_K blocks for Q4_K/Q5_K/Q6_K), then each output is one
// row dot product `dot(n, w_row, x_row)`. The activation type and its
// rounding are llama.cpp's (Q8_0: d = amax/127, q = x·127/amax to nearest
// even; Q8_K: iscale = -127/(signed max), q = min(127, x·iscale to nearest
// even)), so a model quantized by llama.cpp follows its greedy path; the
// result differs from the float product by that 8-bit rounding, which the
// tests bound. Types without a specialised dot (Q4_1, Q5_1, Q2_K, Q3_K) take
// F32 activations and dequantize one weight block at a time.
//
//   const MatmulKernels& k = KernelsFor(Isa::kAvx2);
//   const TypeKernels& t = k.For(GgmlType::kQ4_K);
//   t.quantize_act(x, n, xq);  float v = t.dot(n, w_row, xq);
//
// Every ISA table covers every type CanCompute() accepts; an ISA without a
// specialised entry inherits the narrower ISA's.
#ifndef MOESTREAM_KERNELS_CPU_MATMUL_KERNELS_H_
#define MOESTREAM_KERNELS_CPU_MATMUL_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/ggml_type.h"
#include "kernels/cpu/cpu_features.h"

namespace moestream::kernels::cpu {

// dot of one weight row (n elements, weight type) with one activation row
// (activation type).
using DotFn = float (*)(int64_t n, const void* w, const void* x);
// A block of weight rows against a block of activation rows:
//   y[t * y_stride + r] = dot(w + r * w_stride, x + t * x_stride)
// for r < rows, t < n_tok. Register-tiled kernels reuse each loaded weight
// block across several tokens and each activation block across several rows.
// Every (r, t) result is bit-identical to `dot` of that pair, whatever the
// tile shape, so a prefill agrees exactly with token-by-token decode.
using DotTileFn = void (*)(int64_t n, const void* w, size_t w_stride, int64_t rows,
                           const void* x, size_t x_stride, int64_t n_tok, float* y,
                           size_t y_stride);
// Converts an F32 activation row to the activation type.
using QuantizeActFn = void (*)(const float* x, int64_t n, void* out);

struct TypeKernels {
  GgmlType act_type = GgmlType::kF32;
  QuantizeActFn quantize_act = nullptr;
  DotFn dot = nullptr;
  DotTileFn dot_tile = nullptr;  // optional; the driver falls back to dot
};

inline constexpr int kMaxTypeId = 40;

struct MatmulKernels {
  Isa isa = Isa::kScalar;
  TypeKernels types[kMaxTypeId];
  const TypeKernels& For(GgmlType t) const { return types[static_cast<int>(t)]; }
  TypeKernels& For(GgmlType t) { return types[static_cast<int>(t)]; }
};

// The table of `isa` (which the caller has checked the CPU supports).
const MatmulKernels& KernelsFor(Isa isa);

// Types whose AVX-512 (or AVX-512 VNNI) kernel disagreed with the AVX2
// kernel in the check KernelsFor runs before first use (and which therefore
// use the AVX2 kernel). Empty when all agree or the CPU lacks AVX-512.
std::vector<GgmlType> Avx512RejectedKernels();
// The check itself: types whose `wide` dot (or dot_tile, over several row and
// token counts) disagrees with `base`'s dot on quantized random rows
// (activations converted by `base`).
std::vector<GgmlType> CheckKernelsAgainst(const MatmulKernels& wide, const MatmulKernels& base);

// Bytes of one activation row of n elements converted for weight type t.
size_t ActRowBytes(const TypeKernels& k, int64_t n);

// Fills the tables; defined per ISA (matmul_scalar.cc, *_avx2.cc, *_avx512.cc).
void FillScalarKernels(MatmulKernels& k);
void FillAvx2Kernels(MatmulKernels& k);
void FillAvx512Kernels(MatmulKernels& k);
// Applied to a filled AVX-512 table.
void FillAvx512VnniKernels(MatmulKernels& k);

}  // namespace moestream::kernels::cpu

#endif  // MOESTREAM_KERNELS_CPU_MATMUL_KERNELS_H_
