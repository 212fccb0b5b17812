#include "base/ggml_type.h"

#include "gtest/gtest.h"

namespace moestream {
namespace {

// Block geometry from the format description of each block struct: the
// expected byte counts are sums of the struct fields, not our table.
TEST(GgmlTypeTest, BlockBytesMatchStructFields) {
  struct Case {
    GgmlType t;
    uint32_t elems;
    uint32_t bytes;
  };
  const Case cases[] = {
      {GgmlType::kQ8_0, 32, 2 + 32},                   // d, qs[32]
      {GgmlType::kQ4_0, 32, 2 + 16},                   // d, qs[16]
      {GgmlType::kQ4_K, 256, 2 + 2 + 12 + 128},        // d, dmin, scales, qs
      {GgmlType::kQ6_K, 256, 128 + 64 + 16 + 2},       // ql, qh, scales, d
      {GgmlType::kQ5_K, 256, 2 + 2 + 12 + 32 + 128},   // d, dmin, scales, qh, qs
      {GgmlType::kQ2_K, 256, 16 + 64 + 2 + 2},         // scales, qs, d, dmin
      {GgmlType::kQ3_K, 256, 32 + 64 + 12 + 2},        // hmask, qs, scales, d
      {GgmlType::kQ8_K, 256, 4 + 256 + 32},            // d (f32), qs, bsums[16]
      {GgmlType::kBF16, 1, 2},
      {GgmlType::kF16, 1, 2},
      {GgmlType::kF32, 1, 4},
  };
  for (const Case& c : cases) {
    const GgmlTypeTraits* t = GgmlTypeTraitsOf(c.t);
    ASSERT_NE(t, nullptr) << GgmlTypeName(c.t);
    EXPECT_EQ(t->block_elems, c.elems) << t->name;
    EXPECT_EQ(t->block_bytes, c.bytes) << t->name;
  }
}

TEST(GgmlTypeTest, RowBytesAndWholeness) {
  EXPECT_EQ(RowBytes(GgmlType::kQ4_K, 4096), 4096u / 256 * 144);
  EXPECT_TRUE(RowIsWhole(GgmlType::kQ8_0, 64));
  EXPECT_FALSE(RowIsWhole(GgmlType::kQ8_0, 33));
  EXPECT_FALSE(RowIsWhole(GgmlType::kQ4_K, 128));
}

TEST(GgmlTypeTest, UnknownIdsAndNames) {
  EXPECT_EQ(GgmlTypeTraitsOf(4u), nullptr);  // removed Q4_2
  EXPECT_EQ(GgmlTypeTraitsOf(1000u), nullptr);
  EXPECT_EQ(ParseGgmlType("Q4_K"), GgmlType::kQ4_K);
  EXPECT_EQ(ParseGgmlType("bf16"), GgmlType::kBF16);
  EXPECT_FALSE(ParseGgmlType("q9_9").has_value());
}

TEST(GgmlTypeTest, NamesListReadsAsASentence) {
  const GgmlType three[] = {GgmlType::kF32, GgmlType::kQ8_0, GgmlType::kQ4_K};
  EXPECT_EQ(GgmlTypeNames(three), "f32, q8_0 or q4_k");
  EXPECT_EQ(GgmlTypeNames(std::span<const GgmlType>(three, 1)), "f32");
  EXPECT_EQ(GgmlTypeNames({}), "");
}

}  // namespace
}  // namespace moestream
