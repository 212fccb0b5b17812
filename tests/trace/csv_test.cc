#include "trace/csv.h"

#include "gtest/gtest.h"

namespace moestream::trace {
namespace {

TEST(CsvTest, QuotesOnlyWhereNeeded) {
  EXPECT_EQ(CsvField("lru"), "lru");
  EXPECT_EQ(CsvField(""), "");
  EXPECT_EQ(CsvField("lfu:decay=0.9,period=10"), "\"lfu:decay=0.9,period=10\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(CsvField("cr\r"), "\"cr\r\"");
  EXPECT_EQ(CsvRow({"a", "b,c", "7"}), "a,\"b,c\",7\n");
}

TEST(CsvTest, SplitUndoesQuoting) {
  const std::vector<std::string> fields = {"plain", "lfu:decay=0.9,period=10", "q\"uote", "", "x"};
  std::string row;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) row += ',';
    row += CsvField(fields[i]);
  }
  auto split = SplitCsvRecord(row);
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(*split, fields);
  EXPECT_EQ(*SplitCsvRecord("a,,b,"), (std::vector<std::string>{"a", "", "b", ""}));
  EXPECT_EQ(*SplitCsvRecord(""), (std::vector<std::string>{""}));
  EXPECT_EQ(*SplitCsvRecord("\"\""), (std::vector<std::string>{""}));
}

TEST(CsvTest, SplitRejectsBrokenQuotes) {
  EXPECT_FALSE(SplitCsvRecord("a,\"open").ok());
  EXPECT_FALSE(SplitCsvRecord("\"closed\"junk,b").ok());
}

}  // namespace
}  // namespace moestream::trace
