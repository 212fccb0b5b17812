// Floors under the hit rates of the policies that predict (predict, tinylfu,
// shift, shift:move=1 whose per-layer pools move, and markov) and under the
// co-activation predictor's precision and recall, on every shared trace
// (decode, 12.5 % and 25 % of a layer's experts), so a change that makes
// them worse fails here. The floors are the measured
// values (README, "Policies on the shared traces") less 0.001; replay is
// deterministic, so any drop past that is a real regression. MIN stays the
// ceiling of each.
#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "trace/replay.h"
#include "trace/trace_import.h"

namespace moestream::trace {
namespace {

struct Floors {
  const char* dir;
  // [pool][capacity][policy]: pool 0 per-layer, 1 global; capacity 12.5 %,
  // 25 %; policy predict, tinylfu, shift, shift:move=1 (on a global pool
  // the same as shift), markov.
  double hit[2][2][5];
  // coact, one layer ahead, 25 % per-layer (the scores do not depend on
  // the capacity): precision, recall; the same for coact:temporal=0,step=1
  // (guesses sized to the layer's steps: more than top_k only where a step
  // batches several sequences, Qwen1.5-MoE).
  double coact[2];
  double step[2];
  // coact:temporal=0,skip=1,weights=1 (the layer before the previous as a
  // third source, conditioning experts weighed by their gates).
  double skip[2];
};

// Named by its trace in test listings.
void PrintTo(const Floors& f, std::ostream* os) { *os << f.dir; }

constexpr Floors kFloors[] = {
    {"data/qwen3-30b-a3b-route-trace",
     {{{0.644, 0.625, 0.648, 0.627, 0.653}, {0.819, 0.817, 0.822, 0.820, 0.825}},
      {{0.613, 0.441, 0.621, 0.621, 0.636}, {0.819, 0.820, 0.818, 0.818, 0.828}}},
     {0.548, 0.543},
     {0.537, 0.533},
     {0.584, 0.579}},
    {"data/gemma4-26b-a4b-route-trace",
     {{{0.646, 0.630, 0.654, 0.625, 0.656}, {0.805, 0.806, 0.812, 0.806, 0.813}},
      {{0.634, 0.600, 0.622, 0.622, 0.643}, {0.802, 0.803, 0.806, 0.806, 0.811}}},
     {0.524, 0.520},
     {0.518, 0.514},
     {0.564, 0.559}},
    {"data/gpt-oss-120b-route-trace",
     {{{0.578, 0.613, 0.624, 0.630, 0.626}, {0.707, 0.701, 0.709, 0.718, 0.709}},
      {{0.579, 0.614, 0.629, 0.629, 0.612}, {0.717, 0.709, 0.718, 0.718, 0.716}}},
     {0.313, 0.308},
     {0.342, 0.337},
     {0.370, 0.364}},
    {"data/qwen15-moe-routing",
     // Per-layer: its decode steps exceed the pool and are acquired in
     // parts, announced whole (the cache keeps what the step still needs).
     {{{0.136, 0.136, 0.140, 0.138, 0.140}, {0.257, 0.259, 0.263, 0.263, 0.265}},
      {{0.0, 0.0, 0.0, 0.0, 0.0}, {0.015, 0.0, 0.016, 0.016, 0.014}}},
     {0.747, 0.066},
     {0.768, 0.720},
     {0.803, 0.072}},
    {"data/olmoe-routing-layer0",
     {{{0.241, 0.241, 0.241, 0.241, 0.241}, {0.462, 0.411, 0.465, 0.465, 0.467}},
      {{0.241, 0.241, 0.241, 0.241, 0.241}, {0.462, 0.411, 0.465, 0.465, 0.467}}},
     {0.330, 0.330},
     {0.297, 0.297},
     {0.297, 0.297}},
};

constexpr const char* kPolicies[] = {"predict", "tinylfu", "shift", "shift:move=1", "markov"};
constexpr const char* kCapacities[] = {"12.5%", "25%"};

class PolicyFloorTest : public ::testing::TestWithParam<Floors> {};

TEST_P(PolicyFloorTest, HitRatesStayAboveTheirFloors) {
  const Floors& f = GetParam();
  auto t = LoadTrace(testing::SharedPath(f.dir));
  ASSERT_TRUE(t.ok()) << t.status();
  for (int pool = 0; pool < 2; ++pool) {
    for (int c = 0; c < 2; ++c) {
      ReplayOptions o;
      o.link = "none";
      o.per_layer = pool == 0;
      o.capacity = *ParseCapacity(kCapacities[c], t->shape.n_experts);
      for (int p = 0; p < 5; ++p) {
        o.policy = kPolicies[p];
        auto r = Replay(*t, o);
        ASSERT_TRUE(r.ok()) << r.status();
        EXPECT_GE(r->hit_rate, f.hit[pool][c][p])
            << f.dir << " " << o.policy << " " << kCapacities[c] << (pool ? " global" : " per-layer");
        // (With moving quotas per-layer MIN is not a proven ceiling, the
        // global pool's is; on these traces it holds all the same.)
        EXPECT_LE(r->hit_rate, r->min_hit_rate + 1e-12) << f.dir << " " << o.policy;
      }
    }
  }
}

TEST_P(PolicyFloorTest, CoactPrecisionAndRecallStayAboveTheirFloors) {
  const Floors& f = GetParam();
  auto t = LoadTrace(testing::SharedPath(f.dir));
  ASSERT_TRUE(t.ok()) << t.status();
  ReplayOptions o;
  o.link = "none";
  o.per_layer = true;
  o.run_min = false;
  o.capacity = *ParseCapacity("25%", t->shape.n_experts);
  o.predictor = "coact";
  o.lookahead = 2;
  auto r = Replay(*t, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->prefetch_precision, f.coact[0]) << f.dir;
  EXPECT_GE(r->prefetch_recall, f.coact[1]) << f.dir;
  // One score per distance (a single-layer trace has only distance 1); the
  // first is the headline pair.
  const size_t distances = t->shape.n_layers > 2 ? 2 : 1;
  ASSERT_EQ(r->precision_by_distance.size(), distances);
  ASSERT_EQ(r->recall_by_distance.size(), distances);
  EXPECT_EQ(r->precision_by_distance[0], r->prefetch_precision);
  EXPECT_EQ(r->recall_by_distance[0], r->prefetch_recall);
  o.predictor = "coact:temporal=0,step=1";
  o.lookahead = 1;
  r = Replay(*t, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->prefetch_precision, f.step[0]) << f.dir;
  EXPECT_GE(r->prefetch_recall, f.step[1]) << f.dir;
  o.predictor = "coact:temporal=0,skip=1,weights=1";
  r = Replay(*t, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->prefetch_precision, f.skip[0]) << f.dir;
  EXPECT_GE(r->prefetch_recall, f.skip[1]) << f.dir;
}

INSTANTIATE_TEST_SUITE_P(SharedTraces, PolicyFloorTest, ::testing::ValuesIn(kFloors),
                         [](const auto& info) {
                           std::string n = info.param.dir + 5;  // after "data/"
                           for (char& ch : n) {
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace moestream::trace
