#include "base/bytes.h"

#include "gtest/gtest.h"

namespace moestream {
namespace {

TEST(ParseByteSizeTest, Units) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("24G"), 24ull << 30);
  EXPECT_EQ(*ParseByteSize("512M"), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("1.5GiB"), 3ull << 29);
  EXPECT_EQ(*ParseByteSize("8k"), 8192u);
  EXPECT_EQ(*ParseByteSize(" 64KB "), 65536u);
  EXPECT_EQ(*ParseByteSize("2T"), 2ull << 40);
  EXPECT_EQ(*ParseByteSize("100B"), 100u);
  EXPECT_EQ(*ParseByteSize("0"), 0u);
}

TEST(ParseByteSizeTest, RejectsBadSizes) {
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("-1G").ok());
  EXPECT_FALSE(ParseByteSize("twelve").ok());
  EXPECT_FALSE(ParseByteSize("1e30T").ok());
  EXPECT_FALSE(ParseByteSize("G").ok());
  EXPECT_FALSE(ParseByteSize("nanG").ok());
  EXPECT_EQ(ParseByteSize("lots").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ParseByteSize("lots").status().message().find("'lots'"), absl::string_view::npos);
}

TEST(ParseByteSizeTest, LargestSizesDoNotOverflow) {
  // 15 EiB is above 2^63 but below 2^64.
  EXPECT_EQ(*ParseByteSize("15728640T"), 15ull << 60);
  EXPECT_FALSE(ParseByteSize("16777216T").ok());  // 2^64
}

TEST(FormatBytesTest, BinaryUnitsWithOneDecimal) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(3ull << 20), "3.0 MiB");
  EXPECT_EQ(FormatBytes(24ull << 30), "24.0 GiB");
  EXPECT_EQ(FormatBytes(2048ull << 40), "2048.0 TiB");
}

TEST(BytesTest, FormatThenParseRoundTripsWholeUnits) {
  EXPECT_EQ(*ParseByteSize(FormatBytes(5ull << 30)), 5ull << 30);
}

}  // namespace
}  // namespace moestream
