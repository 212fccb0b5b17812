#include "base/ggml_type.h"

#include <array>
#include <cctype>
#include <string>

namespace moestream {
namespace {

// Block geometry from the GGUF/ggml format description (block structs of
// ggml-common.h): QK_K = 256 super-blocks for the k-quants and i-quants.
constexpr GgmlTypeTraits kTraits[] = {
    {GgmlType::kF32, "f32", 1, 4},          {GgmlType::kF16, "f16", 1, 2},
    {GgmlType::kQ4_0, "q4_0", 32, 18},      {GgmlType::kQ4_1, "q4_1", 32, 20},
    {GgmlType::kQ5_0, "q5_0", 32, 22},      {GgmlType::kQ5_1, "q5_1", 32, 24},
    {GgmlType::kQ8_0, "q8_0", 32, 34},      {GgmlType::kQ8_1, "q8_1", 32, 36},
    {GgmlType::kQ2_K, "q2_k", 256, 84},     {GgmlType::kQ3_K, "q3_k", 256, 110},
    {GgmlType::kQ4_K, "q4_k", 256, 144},    {GgmlType::kQ5_K, "q5_k", 256, 176},
    {GgmlType::kQ6_K, "q6_k", 256, 210},    {GgmlType::kQ8_K, "q8_k", 256, 292},
    {GgmlType::kIQ2_XXS, "iq2_xxs", 256, 66}, {GgmlType::kIQ2_XS, "iq2_xs", 256, 74},
    {GgmlType::kIQ3_XXS, "iq3_xxs", 256, 98}, {GgmlType::kIQ1_S, "iq1_s", 256, 50},
    {GgmlType::kIQ4_NL, "iq4_nl", 32, 18},  {GgmlType::kIQ3_S, "iq3_s", 256, 110},
    {GgmlType::kIQ2_S, "iq2_s", 256, 82},   {GgmlType::kIQ4_XS, "iq4_xs", 256, 136},
    {GgmlType::kI8, "i8", 1, 1},            {GgmlType::kI16, "i16", 1, 2},
    {GgmlType::kI32, "i32", 1, 4},          {GgmlType::kI64, "i64", 1, 8},
    {GgmlType::kF64, "f64", 1, 8},          {GgmlType::kIQ1_M, "iq1_m", 256, 56},
    {GgmlType::kBF16, "bf16", 1, 2},        {GgmlType::kTQ1_0, "tq1_0", 256, 54},
    {GgmlType::kTQ2_0, "tq2_0", 256, 66},   {GgmlType::kMXFP4, "mxfp4", 32, 17},
};

}  // namespace

const GgmlTypeTraits* GgmlTypeTraitsOf(uint32_t type_id) {
  for (const auto& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == type_id) return &t;
  }
  return nullptr;
}

std::string_view GgmlTypeName(GgmlType t) {
  const GgmlTypeTraits* tr = GgmlTypeTraitsOf(t);
  return tr ? tr->name : std::string_view("unknown");
}

std::string GgmlTypeNames(std::span<const GgmlType> types) {
  std::string out;
  for (size_t i = 0; i < types.size(); ++i) {
    if (i > 0) out += i + 1 == types.size() ? " or " : ", ";
    out += GgmlTypeName(types[i]);
  }
  return out;
}

std::optional<GgmlType> ParseGgmlType(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& t : kTraits) {
    if (t.name == lower) return t.type;
  }
  return std::nullopt;
}

bool RowIsWhole(GgmlType t, uint64_t elems) {
  const GgmlTypeTraits* tr = GgmlTypeTraitsOf(t);
  return tr != nullptr && elems % tr->block_elems == 0;
}

uint64_t RowBytes(GgmlType t, uint64_t elems) {
  const GgmlTypeTraits* tr = GgmlTypeTraitsOf(t);
  return tr ? elems / tr->block_elems * tr->block_bytes : 0;
}

}  // namespace moestream
