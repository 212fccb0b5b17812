#include "server/stop_matcher.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moestream::server {
namespace {

// Feeds `pieces` and returns everything released (Flush included when no stop).
std::string Feed(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) {
    out += m.Push(p);
    if (m.stopped()) return out;
  }
  return out + m.Flush();
}

TEST(StopMatcherTest, WithoutStopsEverythingPassesAtOnce) {
  StopMatcher m;
  EXPECT_EQ(m.Push("Once"), "Once");
  EXPECT_EQ(m.Push(" upon"), " upon");
  EXPECT_EQ(m.Flush(), "");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcherTest, CutsAtAStopSplitAcrossPieces) {
  StopMatcher m({"The end"});
  EXPECT_EQ(Feed(m, {"and they were happy. Th", "e e", "nd. More"}), "and they were happy. ");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Push("anything"), "");
}

TEST(StopMatcherTest, HoldsBackOnlyAPossibleStart) {
  StopMatcher m({"\n\n"});
  EXPECT_EQ(m.Push("a\n"), "a");  // "\n" may start the stop
  EXPECT_EQ(m.Push("b"), "\nb");  // it did not
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcherTest, EarliestOfSeveralStopsWins) {
  StopMatcher m({"cat", "dog"});
  EXPECT_EQ(Feed(m, {"a dog and a cat"}), "a ");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcherTest, UnmatchedPrefixIsReleasedAtTheEnd) {
  StopMatcher m({"xyz"});
  EXPECT_EQ(m.Push("abcxy"), "abc");
  EXPECT_EQ(m.Flush(), "xy");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcherTest, StopAtTheVeryStartReleasesNothing) {
  StopMatcher m({"Once"});
  EXPECT_EQ(Feed(m, {"On", "ce upon"}), "");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcherTest, EmptyStopStringsAreIgnored) {
  StopMatcher m({""});
  EXPECT_EQ(m.Push("abc"), "abc");
  EXPECT_FALSE(m.stopped());
}

}  // namespace
}  // namespace moestream::server
