// Quantization formats with exactly ggml's block layouts (so GGUF tensors are
// used in place): conversion of F32 rows to and from every supported type.
// The dot-product kernels that consume these blocks live in kernels/cpu/.
//
//   std::vector<uint8_t> q(RowBytes(GgmlType::kQ4_K, n));
//   MOESTREAM_RETURN_IF_ERROR(QuantizeRow(GgmlType::kQ4_K, x, n, q.data()));
//   MOESTREAM_RETURN_IF_ERROR(DequantizeRow(GgmlType::kQ4_K, q.data(), n, y));
#ifndef MOESTREAM_KERNELS_QUANT_H_
#define MOESTREAM_KERNELS_QUANT_H_

#include <cstdint>

#include "absl/status/status.h"
#include "base/ggml_type.h"

namespace moestream::kernels {

// True for types we can quantize to (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, ...).
bool CanQuantize(GgmlType t);
// True for types we can dequantize and compute with.
bool CanCompute(GgmlType t);

// `n` must be a multiple of the type's block size (kInvalidArgument otherwise,
// or kUnimplemented for an unsupported type). `out` holds RowBytes(t, n) bytes.
absl::Status QuantizeRow(GgmlType t, const float* x, int64_t n, void* out);
absl::Status DequantizeRow(GgmlType t, const void* in, int64_t n, float* y);

// IEEE half and bfloat16 conversions (round to nearest even).
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);
uint16_t FloatToBf16(float f);
float Bf16ToFloat(uint16_t b);

}  // namespace moestream::kernels

#endif  // MOESTREAM_KERNELS_QUANT_H_
