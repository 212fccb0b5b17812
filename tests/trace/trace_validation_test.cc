// Trace input is checked, never coerced: every importer names the file, the
// line, the field, its value and the allowed range for an expert id at or
// above the header's count, a layer out of range, and numbers that are huge,
// negative or fractional where an integer is expected; the binary reader
// caps the shape a header may claim; the checksum is the standard FNV-1a 64
// (version 2) and version 1 files, with the old basis, still load.
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "trace/trace.h"
#include "trace/trace_import.h"

namespace moestream::trace {
namespace {

using ::testing::HasSubstr;

std::string LoadError(const std::string& path) {
  auto t = LoadTrace(path);
  EXPECT_FALSE(t.ok()) << path << " loaded: " << t->shape.n_experts << " experts";
  if (t.ok()) return "";
  EXPECT_EQ(t.status().code(), absl::StatusCode::kDataLoss);
  const std::string msg(t.status().message());
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  return msg;
}

constexpr char kCsvPreamble[] =
    "# route_trace v1\n"
    "# model=m.gguf arch=qwen3moe n_layer=4 n_expert=8 n_expert_used=2\n"
    "# layer=0 expert_bytes=4096\n"
    "turn,phase,step,layer,slot,expert,weight\n"
    "0,1,0,0,0,3,0.6\n"
    "0,1,0,0,1,5,0.4\n";

std::string CsvWithRow(const testing::ScratchDir& dir, const std::string& row) {
  const std::string path = dir.Path("t.route.csv");
  testing::WriteFileOrDie(path, std::string(kCsvPreamble) + row + "\n");
  return path;
}

TEST(TraceValidation, RouteCsvExpertAtHeaderCountIsAnError) {
  testing::ScratchDir dir;
  // The good rows load, with the header's expert count.
  auto t = LoadTrace(CsvWithRow(dir, "0,1,1,0,0,7,0.5"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->shape.n_experts, 8);
  EXPECT_EQ(t->shape.top_k, 2);
  // Expert 8 of 8 used to grow the trace to 9 experts.
  const std::string path = CsvWithRow(dir, "0,1,1,0,0,8,0.5");
  EXPECT_EQ(LoadError(path),
            "trace '" + path + "' line 7: expert value '8' is not an integer in [0, 7]");
  EXPECT_THAT(LoadError(CsvWithRow(dir, "0,1,1,4,0,1,0.5")),
              HasSubstr("line 7: layer value '4' is not an integer in [0, 3]"));
  EXPECT_THAT(LoadError(CsvWithRow(dir, "0,1,1,0,2,1,0.5")),
              HasSubstr("line 7: slot value '2' is not an integer in [0, 1]"));
  // Three experts for one token of a top-2 model.
  EXPECT_THAT(LoadError(CsvWithRow(dir, "0,1,0,0,0,1,0.5")),
              HasSubstr("line 7: more than 2 experts for one token"));
}

TEST(TraceValidation, RouteCsvNumbersAreNotCoerced) {
  testing::ScratchDir dir;
  struct Case {
    const char* row;
    const char* want;
  } cases[] = {
      {"0,1,1,0,0,1e20,0.5", "expert value '1e20' is not an integer in [0, 7]"},
      {"0,1,1,0,0,-1,0.5", "expert value '-1' is not an integer in [0, 7]"},
      {"0,1,1,0,0,2.5,0.5", "expert value '2.5' is not an integer in [0, 7]"},
      {"-1,1,1,0,0,2,0.5", "turn value '-1' is not an integer in [0, 2147483647]"},
      {"0,1,1e20,0,0,2,0.5", "step value '1e20' is not an integer in [0, 2147483647]"},
      {"0,2,1,0,0,2,0.5", "phase value '2' is not an integer in [0, 1]"},
      {"0,1,1,0.5,0,2,0.5", "layer value '0.5' is not an integer in [0, 3]"},
      {"0,1,1,0,0,2,-0.25", "weight value '-0.25' is not a finite number >= 0"},
      {"0,1,1,0,0,2,nan", "weight value 'nan' is not a finite number >= 0"},
      {"0,1,1,0,0,2,1e39", "weight value '1e39' is not a finite number >= 0"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(LoadError(CsvWithRow(dir, c.row)), HasSubstr(std::string("line 7: ") + c.want))
        << c.row;
  }
}

TEST(TraceValidation, RouteCsvRowShorterThanARepeatedHeaderColumn) {
  testing::ScratchDir dir;
  const std::string path = dir.Path("r.route.csv");
  // "turn" repeated last: a row needs 8 fields although the header names 7
  // distinct columns.
  testing::WriteFileOrDie(path,
                          "# route_trace v1\nturn,phase,step,layer,slot,expert,weight,turn\n"
                          "0,1,0,0,0,3,0.6,0\n0,1,1,0,0,3,0.6\n");
  EXPECT_THAT(LoadError(path),
              HasSubstr("line 4: malformed row '0,1,1,0,0,3,0.6': 7 fields, the header's "
                        "columns need 8"));
}

TEST(TraceValidation, RouteCsvPreambleCountsAreChecked) {
  testing::ScratchDir dir;
  const std::string path = dir.Path("p.route.csv");
  const std::string rows = "turn,phase,step,layer,slot,expert,weight\n0,1,0,0,0,3,0.6\n";
  testing::WriteFileOrDie(path, "# route_trace v1\n# n_layer=4 n_expert=1e9 n_expert_used=2\n" + rows);
  EXPECT_EQ(LoadError(path), "trace '" + path +
                                 "' line 2: n_expert value '1e9' is not an integer in [1, 4096]");
  testing::WriteFileOrDie(path, "# route_trace v1\n# n_layer=4 n_expert=1000000000 n_expert_used=2\n" + rows);
  EXPECT_THAT(LoadError(path), HasSubstr("n_expert value '1000000000' is not an integer in [1, 4096]"));
  testing::WriteFileOrDie(path, "# route_trace v1\n# n_layer=1000000 n_expert=8\n" + rows);
  EXPECT_THAT(LoadError(path), HasSubstr("n_layer value '1000000' is not an integer in [1, 1024]"));
  testing::WriteFileOrDie(path, "# route_trace v1\n# n_layer=4 n_expert=8 n_expert_used=9\n" + rows);
  EXPECT_THAT(LoadError(path), HasSubstr("n_expert_used value '9' is not an integer in [1, 8]"));
  testing::WriteFileOrDie(path, "# route_trace v1\n# n_layer=4 n_expert=8\n# layer=4 expert_bytes=1\n" + rows);
  EXPECT_THAT(LoadError(path), HasSubstr("line 3: layer value '4' is not an integer in [0, 3]"));
  testing::WriteFileOrDie(path, "# route_trace v1\n# n_layer=4 n_expert=8\n# layer=0 expert_bytes=-5\n" + rows);
  EXPECT_THAT(LoadError(path), HasSubstr("expert_bytes value '-5' is not an integer in [0, "));
}

TEST(TraceValidation, VllmExpertAtMetaCountIsAnError) {
  testing::ScratchDir dir;
  const std::string path = dir.Path("moe_routes.jsonl");
  const std::string meta =
      "{\"type\": \"meta\", \"model_id\": \"m\", \"top_k\": 2, \"num_experts\": 64}\n";
  auto route = [](const std::string& idx, const std::string& layer, const std::string& ids,
                  const std::string& w) {
    return "{\"type\": \"route\", \"token_idx\": " + idx + ", \"layer\": " + layer +
           ", \"topk_ids\": " + ids + ", \"topk_weights\": " + w + "}\n";
  };
  testing::WriteFileOrDie(path, meta + route("0", "0", "[1, 63]", "[0.5, 0.5]"));
  auto t = LoadTrace(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->shape.n_experts, 64);
  testing::WriteFileOrDie(path, meta + route("0", "0", "[1, 64]", "[0.5, 0.5]"));
  EXPECT_EQ(LoadError(path), "trace '" + path +
                                 "' line 2: topk_ids[1] value '64' is not an integer in [0, 63]");
  for (auto [idx, layer, ids, w, want] : std::vector<std::tuple<const char*, const char*,
                                                               const char*, const char*,
                                                               const char*>>{
           {"1e20", "0", "[1]", "[1]", "token_idx value '1e+20' is not an integer"},
           {"-3", "0", "[1]", "[1]", "token_idx value '-3' is not an integer"},
           {"0", "2.5", "[1]", "[1]", "layer value '2.5' is not an integer in [0, 1023]"},
           {"0", "0", "[1.5]", "[1]", "topk_ids[0] value '1.5' is not an integer in [0, 63]"},
           {"0", "0", "[1]", "[-1]", "topk_weights[0] value '-1' is not a finite number >= 0"},
           {"0", "0", "[1, 2, 3]", "[1, 1, 1]", "topk_ids value '[3 values]' is not an array "
                                                "of at most 2 ids"},
       }) {
    testing::WriteFileOrDie(path, meta + route(idx, layer, ids, w));
    EXPECT_THAT(LoadError(path), HasSubstr(std::string("line 2: ") + want)) << idx << layer << ids;
  }
  testing::WriteFileOrDie(
      path, "{\"type\": \"meta\", \"top_k\": 2, \"num_experts\": 1e9}\n" +
                route("0", "0", "[1]", "[1]"));
  EXPECT_THAT(LoadError(path),
              HasSubstr("line 1: num_experts value '1000000000.0' is not an integer in [1, 4096]"));
}

TEST(TraceValidation, MixtralNumbersAreNotCoerced) {
  testing::ScratchDir dir;
  const std::string path = dir.Path("x_routing.jsonl");
  auto rec = [](const std::string& problem, const std::string& layer, const std::string& idx,
                const std::string& ids, const std::string& w) {
    return "{\"problem_id\": " + problem + ", \"layer\": " + layer + ", \"token_idx\": " + idx +
           ", \"experts\": " + ids + ", \"gating_probs\": " + w + "}\n";
  };
  const std::string good = rec("0", "0", "0", "[1, 2]", "[0.5, 0.5]");
  for (auto [p, l, i, ids, w, want] :
       std::vector<std::tuple<const char*, const char*, const char*, const char*, const char*,
                              const char*>>{
           {"0", "1e20", "0", "[1, 2]", "[0.5, 0.5]", "layer value '1e+20' is not an integer in [0, 1023]"},
           {"0", "-1", "0", "[1, 2]", "[0.5, 0.5]", "layer value '-1' is not an integer in [0, 1023]"},
           {"0.5", "0", "0", "[1, 2]", "[0.5, 0.5]", "problem_id value '0.5' is not an integer"},
           {"0", "0", "2.5", "[1, 2]", "[0.5, 0.5]", "token_idx value '2.5' is not an integer"},
           {"0", "0", "0", "[1, 1e20]", "[0.5, 0.5]", "experts[1] value '1e+20' is not an integer in [0, 4095]"},
           {"0", "0", "0", "[1, -2]", "[0.5, 0.5]", "experts[1] value '-2' is not an integer in [0, 4095]"},
           {"0", "0", "0", "[1, 2]", "[0.5, -0.5]", "gating_probs[1] value '-0.5' is not a finite number >= 0"},
       }) {
    testing::WriteFileOrDie(path, good + rec(p, l, i, ids, w));
    EXPECT_THAT(LoadError(path), HasSubstr(std::string("line 2: ") + want)) << p << l << i << ids << w;
  }
}

TEST(TraceValidation, PopularityValuesAreFiniteAndNonNegative) {
  testing::ScratchDir dir;
  TraceShape shape;
  shape.n_layers = 1;
  shape.n_experts = 2;
  shape.layer_ids = {0};
  const std::string path = dir.Path("pop.csv");
  testing::WriteFileOrDie(path, "Layer,lang,Expert_0,Expert_1\n0,en,0.5,1.5\n");
  auto pop = LoadPopularity(path, shape);
  ASSERT_TRUE(pop.ok()) << pop.status();
  EXPECT_EQ(*pop, (std::vector<double>{0.5, 1.5}));
  for (const char* bad : {"nan", "-1", "inf", "1e400"}) {
    testing::WriteFileOrDie(path, std::string("Layer,lang,Expert_0,Expert_1\n0,en,0.5,") + bad + "\n");
    pop = LoadPopularity(path, shape);
    ASSERT_FALSE(pop.ok()) << bad;
    EXPECT_EQ(std::string(pop.status().message()),
              "trace '" + path + "' line 2: Expert_1 value '" + bad +
                  "' is not a finite number >= 0");
  }
}

// A valid trace's bytes with the u32 at `offset` replaced and the checksum
// recomputed for version `version` (so only the field is wrong).
std::string Patched(std::string bytes, size_t offset, uint32_t value, uint32_t version) {
  std::memcpy(bytes.data() + offset, &value, 4);
  std::memcpy(bytes.data() + 8, &version, 4);
  const uint64_t sum = Fnv1a64(std::string_view(bytes).substr(0, bytes.size() - 8),
                               version == 1 ? kFnv1a64LegacyBasis : kFnv1a64Basis);
  std::memcpy(bytes.data() + bytes.size() - 8, &sum, 8);
  return bytes;
}

Trace SmallTrace() {
  Trace t;
  t.shape = {"m", "test", 2, 8, 2, {0, 1}, {}};
  std::vector<int32_t> ids = {3, 5};
  std::vector<float> w = {0.75f, 0.25f};
  for (uint32_t pos = 0; pos < 3; ++pos) {
    for (uint16_t l = 0; l < 2; ++l) t.AddCell({.seq = 0, .step = pos, .pos = pos, .layer = l}, ids, w);
  }
  return t;
}

TEST(TraceValidation, BinaryHeaderShapeIsCapped) {
  testing::ScratchDir dir;
  const std::string good = dir.Path("t.mstrace");
  ASSERT_TRUE(WriteTrace(SmallTrace(), good).ok());
  const std::string bytes = testing::ReadFileOrDie(good);
  const std::string path = dir.Path("bad.mstrace");
  // n_layers at byte 12, n_experts at 16, top_k at 20.
  testing::WriteFileOrDie(path, Patched(bytes, 16, 1000000000, 2));
  EXPECT_EQ(LoadError(path), "trace '" + path +
                                 "' header: n_experts value '1000000000' is not an integer in "
                                 "[1, 4096]");
  testing::WriteFileOrDie(path, Patched(bytes, 12, 1000000000, 2));
  EXPECT_THAT(LoadError(path), HasSubstr("header: n_layers value '1000000000' is not an integer in [1, 1024]"));
  testing::WriteFileOrDie(path, Patched(bytes, 20, 9, 2));
  EXPECT_THAT(LoadError(path), HasSubstr("header: top_k value '9' is not an integer in [0, 8]"));
  // An expert id the header does not have (n_experts 4: expert 5 is out).
  testing::WriteFileOrDie(path, Patched(bytes, 16, 4, 2));
  EXPECT_THAT(LoadError(path), HasSubstr("expert value '5' is not an integer in [0, 3]"));
  // A non-finite gate weight.
  std::string nan_weight = bytes;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Weights follow the 12 expert ids (u16) that end 12 * 2 + 12 * 4 + 8 bytes before the end.
  std::memcpy(nan_weight.data() + nan_weight.size() - 8 - 12 * 4, &nan, 4);
  testing::WriteFileOrDie(path, Patched(nan_weight, 12, 2, 2));
  EXPECT_THAT(LoadError(path), HasSubstr("weight value 'nan' is not a finite number >= 0"));
}

TEST(TraceChecksum, StandardFnv1a64) {
  // The published test vectors of FNV-1a 64.
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ull);
  EXPECT_EQ(kFnv1a64Basis, 14695981039346656037ull);
}

TEST(TraceChecksum, NewFilesAreVersion2WithTheStandardChecksum) {
  testing::ScratchDir dir;
  ASSERT_TRUE(WriteTrace(SmallTrace(), dir.Path("t.mstrace")).ok());
  const std::string bytes = testing::ReadFileOrDie(dir.Path("t.mstrace"));
  uint32_t version = 0;
  uint64_t stored = 0;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(stored, Fnv1a64(std::string_view(bytes).substr(0, bytes.size() - 8)));
}

TEST(TraceChecksum, Version1FilesStillLoad) {
  testing::ScratchDir dir;
  const Trace small = SmallTrace();
  ASSERT_TRUE(WriteTrace(small, dir.Path("t.mstrace")).ok());
  const std::string v2 = testing::ReadFileOrDie(dir.Path("t.mstrace"));
  // Version 1: the same layout, checksummed from the basis lacking a digit.
  std::string v1 = Patched(v2, 12, 2, 1);
  testing::WriteFileOrDie(dir.Path("v1.mstrace"), v1);
  auto t = LoadTrace(dir.Path("v1.mstrace"));
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->cells.size(), small.cells.size());
  EXPECT_EQ(t->experts, small.experts);
  EXPECT_EQ(t->weights, small.weights);
  // Each version is checked with its own basis only.
  std::string v1_standard = v2;
  v1_standard[8] = 1;
  testing::WriteFileOrDie(dir.Path("x.mstrace"), v1_standard);
  EXPECT_THAT(LoadError(dir.Path("x.mstrace")), HasSubstr("checksum mismatch"));
  std::string v2_legacy = v1;
  v2_legacy[8] = 2;
  testing::WriteFileOrDie(dir.Path("x.mstrace"), v2_legacy);
  EXPECT_THAT(LoadError(dir.Path("x.mstrace")), HasSubstr("checksum mismatch"));
}

}  // namespace
}  // namespace moestream::trace
