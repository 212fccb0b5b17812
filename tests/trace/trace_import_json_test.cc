// The JSON-lines importers read JSON, not text that looks like it: any key
// order, escapes, nested values, and one error naming file and line.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "trace/trace_import.h"

namespace moestream::trace {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(TraceImportJson, MixtralAnyKeyOrderEscapesAndNesting) {
  testing::ScratchDir dir;
  const std::string path = dir.Path("x_routing.jsonl");
  // Keys in another order than the files we ship, a nested object and an
  // escaped string holding a bracket and a key name before the real keys.
  testing::WriteFileOrDie(
      path,
      "{\"note\": \"say \\\"experts\\\": [9]\", \"meta\": {\"layer\": 7, \"experts\": [5]}, "
      "\"gating_probs\": [0.75, 0.25], \"experts\": [3, 1], \"token_idx\": 0, \"layer\": 0, "
      "\"problem_id\": 4}\n"
      "\n"
      "{\"problem_id\": 4, \"layer\": 1, \"token_idx\": 0, \"experts\": [2, 0], "
      "\"gating_probs\": [5e-1, 0.5]}\n");
  auto t = LoadTrace(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->shape.source, "mixtral-jsonl");
  ASSERT_EQ(t->cells.size(), 2u);
  auto e0 = t->Experts(t->cells[0]);
  EXPECT_THAT(std::vector<int>(e0.begin(), e0.end()), ElementsAre(3, 1));
  auto w0 = t->Weights(t->cells[0]);
  EXPECT_FLOAT_EQ(w0[0], 0.75f);
  EXPECT_EQ(t->cells[1].layer, 1);
  EXPECT_EQ(t->shape.n_layers, 2);
}

TEST(TraceImportJson, BadRecordNamesFileAndLine) {
  testing::ScratchDir dir;
  const std::string path = dir.Path("bad_routing.jsonl");
  const std::string good =
      "{\"problem_id\": 0, \"layer\": 0, \"token_idx\": 0, \"experts\": [1, 2], "
      "\"gating_probs\": [0.5, 0.5]}\n";
  // Line 3 is blank, line 4 is cut short.
  testing::WriteFileOrDie(path, good + good + "\n" + good.substr(0, 40) + "\n");
  auto t = LoadTrace(path);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("bad_routing.jsonl' line 4: "));
  // A well-formed object with a wrong type is named too.
  testing::WriteFileOrDie(path, good + "{\"problem_id\": 0, \"layer\": 0, \"token_idx\": 0, "
                                       "\"experts\": \"1,2\", \"gating_probs\": [0.5, 0.5]}\n");
  t = LoadTrace(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("line 2: experts value '\"1,2\"' is not an array"));
}

TEST(TraceImportJson, VllmLoggerKeyOrderAndBadLine) {
  testing::ScratchDir dir;
  const std::string path = dir.Path("moe_layer0.jsonl");
  testing::WriteFileOrDie(
      path,
      "{\"num_experts\": 8, \"model_id\": \"org/m\\u00e9\", \"type\": \"meta\", \"top_k\": 2}\n"
      "{\"topk_weights\": [0.6, 0.4], \"topk_ids\": [1, 2], \"layer\": 0, \"token_idx\": 0, "
      "\"type\": \"route\"}\n"
      "{\"type\": \"route\", \"token_idx\": 1, \"layer\": 0, \"topk_ids\": [3, 4], "
      "\"topk_weights\": [0.5, 0.5]}\n"
      "{\"type\": \"route\", \"token_idx\": 0, \"layer\": 0, \"topk_ids\": [5, 6], "
      "\"topk_weights\": [0.5, 0.5]}\n");
  auto t = LoadTrace(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->shape.source, "vllm-logger");
  EXPECT_EQ(t->shape.model, "org/m\xc3\xa9");
  EXPECT_EQ(t->shape.n_experts, 8);
  testing::WriteFileOrDie(path,
                          "{\"type\": \"meta\", \"top_k\": 2}\n"
                          "{\"type\": \"route\", \"token_idx\": 0, \"layer\": 0, "
                          "\"topk_ids\": [1, 2], \"topk_weights\": [0.5, 0.5]} trailing\n");
  t = LoadTrace(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("moe_layer0.jsonl' line 2: "));
}

TEST(TraceImportJson, RouteCsvWithQuotedFields) {
  testing::ScratchDir dir;
  const std::string path = dir.Path("q.route.csv");
  testing::WriteFileOrDie(path,
                          "# route_trace v1 arch=test n_expert=4 n_expert_used=2\n"
                          "turn,phase,step,layer,slot,expert,weight,\"note, quoted\"\n"
                          "0,1,0,0,0,1,0.5,\"a, b\"\n"
                          "0,1,0,0,1,\"2\",0.5,x\n"
                          "0,1,0,0,2,3,0.5,\"unclosed\n");
  auto t = LoadTrace(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("q.route.csv' line 5: "));
  testing::WriteFileOrDie(path,
                          "# route_trace v1 arch=test n_expert=4 n_expert_used=2\n"
                          "turn,phase,step,layer,slot,expert,weight,\"note, quoted\"\n"
                          "0,1,0,0,0,1,0.5,\"a, b\"\n"
                          "0,1,0,0,1,\"2\",0.5,x\n");
  t = LoadTrace(path);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->cells.size(), 1u);
  auto e = t->Experts(t->cells[0]);
  EXPECT_THAT(std::vector<int>(e.begin(), e.end()), ElementsAre(1, 2));
}

}  // namespace
}  // namespace moestream::trace
