#include "cli/flags.h"

#include "gtest/gtest.h"

namespace moestream::cli {
namespace {

TEST(ByteSizeTest, Units) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("24G"), 24ull << 30);
  EXPECT_EQ(*ParseByteSize("512M"), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("1.5GiB"), 3ull << 29);
  EXPECT_EQ(*ParseByteSize("8k"), 8192u);
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("-1G").ok());
  EXPECT_FALSE(ParseByteSize("twelve").ok());
  EXPECT_FALSE(ParseByteSize("1e30T").ok());
}

TEST(FlagParserTest, ParsesLongShortAndPositionals) {
  FlagParser p("x");
  std::string model;
  int64_t n = 5;
  double temp = 1;
  bool json = false;
  uint64_t budget = 0;
  std::vector<std::string> pos;
  p.String("model", 'm', "MODEL", "", &model);
  p.Int("n-predict", 'n', "N", "", &n);
  p.Double("temp", 0, "T", "", &temp);
  p.Bool("json", "", &json);
  p.Bytes("device-budget", "SIZE", "", &budget);
  p.Positionals("TEXT", &pos);
  ASSERT_TRUE(p.Parse({"-m", "a.gguf", "--n-predict=7", "--temp", "0", "--json",
                       "--device-budget", "2G", "hello", "--", "-dash"})
                  .ok());
  EXPECT_EQ(model, "a.gguf");
  EXPECT_EQ(n, 7);
  EXPECT_EQ(temp, 0);
  EXPECT_TRUE(json);
  EXPECT_EQ(budget, 2ull << 30);
  EXPECT_EQ(pos, (std::vector<std::string>{"hello", "-dash"}));
  EXPECT_TRUE(p.was_set("temp"));
}

TEST(FlagParserTest, ErrorsNameTheFlag) {
  FlagParser p("x");
  int64_t n = 0;
  bool b = false;
  p.Int("n-predict", 'n', "N", "", &n);
  p.Bool("json", "", &b);
  auto s = p.Parse({"--bogus"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--bogus"), absl::string_view::npos);
  FlagParser q("x");
  q.Int("n-predict", 'n', "N", "", &n);
  s = q.Parse({"-n", "abc"});
  EXPECT_NE(s.message().find("n-predict"), absl::string_view::npos);
  FlagParser r("x");
  r.Int("n-predict", 'n', "N", "", &n);
  s = r.Parse({"--n-predict"});
  EXPECT_NE(s.message().find("needs a value"), absl::string_view::npos);
  FlagParser t("x");
  t.Bool("json", "", &b);
  EXPECT_FALSE(t.Parse({"--json=1"}).ok());
  FlagParser u("x");
  EXPECT_FALSE(u.Parse({"stray"}).ok());
}

}  // namespace
}  // namespace moestream::cli
