// Tensor element types as GGUF numbers them (ggml's `ggml_type` ids), with the
// block geometry every module needs: the GGUF reader validates tensor byte
// sizes with it, kernels/ dispatches on it, the planner sizes experts with it.
//
//   const GgmlTypeTraits* t = GgmlTypeTraitsOf(GgmlType::kQ4_K);
//   uint64_t row = RowBytes(GgmlType::kQ4_K, 4096);   // 4096/256*144
#ifndef MOESTREAM_BASE_GGML_TYPE_H_
#define MOESTREAM_BASE_GGML_TYPE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace moestream {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;     // "q4_K", as ggml prints it
  uint32_t block_elems;      // elements per block (1 for plain types)
  uint32_t block_bytes;      // bytes per block
};

// Traits of a known type id, or nullptr for an id GGUF does not define.
const GgmlTypeTraits* GgmlTypeTraitsOf(uint32_t type_id);
inline const GgmlTypeTraits* GgmlTypeTraitsOf(GgmlType t) {
  return GgmlTypeTraitsOf(static_cast<uint32_t>(t));
}

// Lower-case name ("f32", "q8_0", "q4_k"); "unknown" for undefined ids.
std::string_view GgmlTypeName(GgmlType t);

// The names of `types` as one list for messages and help: "f32, f16 or
// bf16" (so a list of accepted types is written once, as code).
std::string GgmlTypeNames(std::span<const GgmlType> types);

// Parses a user-facing name, case-insensitive ("q4_k", "Q4_K", "bf16").
std::optional<GgmlType> ParseGgmlType(std::string_view name);

// Bytes of one row of `elems` elements. Requires elems % block_elems == 0
// (callers validate first with RowIsWhole).
uint64_t RowBytes(GgmlType t, uint64_t elems);
bool RowIsWhole(GgmlType t, uint64_t elems);

}  // namespace moestream

#endif  // MOESTREAM_BASE_GGML_TYPE_H_
