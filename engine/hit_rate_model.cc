// EstimateHitRates: trace replay or the Zipf model (hit_rate_model.h).
#include "engine/hit_rate_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "trace/replay.h"
#include "trace/trace.h"
#include "trace/trace_import.h"

namespace moestream::engine {
namespace {

// The shared traces (../shared/data/*/SOURCE.md): where, the experts per
// layer of the model they were recorded from, and its architecture family.
struct SharedTrace {
  const char* path;
  int n_expert;
  const char* arch;
};
constexpr SharedTrace kSharedTraces[] = {
    {"mixtral-8x7b-routing", 8, "llama"},
    {"qwen3-30b-a3b-route-trace/qwen3-30b-a3b.even-layers.route.csv", 128, "qwen3moe"},
    {"gpt-oss-120b-route-trace/gpt-oss-120b.even-layers.route.csv", 128, "gpt-oss"},
    {"gemma4-26b-a4b-route-trace/gemma4-26b-a4b.even-layers.route.csv", 128, "gemma4"},
    {"olmoe-routing-layer0/moe_routes.jsonl", 64, "olmoe"},
    {"qwen15-moe-routing", 60, "qwen2moe"},
};

struct Candidate {
  std::string path;
  std::string arch;
  trace::Trace trace;
};

// The trace with each sequence's decode cells played twice in a row (the
// second time as later steps of the same sequence), so that the second
// pass meets a warm cache.
trace::Trace Doubled(const trace::Trace& t) {
  trace::Trace d;
  d.shape = t.shape;
  uint32_t last_seq = 0;
  std::vector<size_t> seq_cells;
  auto flush = [&]() {
    uint32_t steps = 0;
    for (size_t i : seq_cells) steps = std::max(steps, t.cells[i].step + 1);
    for (uint32_t pass = 0; pass < 2; ++pass) {
      for (size_t i : seq_cells) {
        trace::TraceCell c = t.cells[i];
        c.step += pass * steps;
        const std::span<const uint16_t> ex = t.Experts(c);
        std::vector<int32_t> ids(ex.begin(), ex.end());
        const std::span<const float> w = t.weights.empty() ? std::span<const float>() : t.Weights(c);
        d.AddCell(c, ids, w);
      }
    }
    seq_cells.clear();
  };
  for (size_t i = 0; i < t.cells.size(); ++i) {
    const trace::TraceCell& c = t.cells[i];
    if (c.phase != trace::Phase::kDecode) continue;
    if (!seq_cells.empty() && c.seq != last_seq) flush();
    last_seq = c.seq;
    seq_cells.push_back(i);
  }
  flush();
  return d;
}

// Replayed at `capacity` experts per layer (an integer, at least 1; one
// global pool of capacity x the trace's layers).
absl::StatusOr<trace::ReplayResult> ReplayAt(const trace::Trace& t, int capacity,
                                             const std::string& policy) {
  trace::ReplayOptions ro;
  ro.policy = policy;
  ro.capacity = std::max(1, capacity);
  ro.per_layer = false;
  ro.phase = "decode";
  ro.link = "none";
  ro.run_min = true;
  return trace::Replay(t, ro);
}

// Hit rates at one integer capacity: from an empty cache, once warm (the
// second pass of Doubled), and MIN's.
struct Rates {
  double cold = 0, warm = 0, min = 0;
  std::string policy;
  uint64_t accesses = 0;
};

absl::StatusOr<Rates> RatesAt(const trace::Trace& t, const trace::Trace& doubled, int capacity,
                              const std::string& policy) {
  MOESTREAM_ASSIGN_OR_RETURN(trace::ReplayResult once, ReplayAt(t, capacity, policy));
  MOESTREAM_ASSIGN_OR_RETURN(trace::ReplayResult twice, ReplayAt(doubled, capacity, policy));
  Rates r;
  r.cold = once.hit_rate;
  r.min = std::max(once.min_hit_rate, once.hit_rate);
  const uint64_t second = twice.accesses - once.accesses;
  r.warm = second > 0 ? double(twice.hits - once.hits) / double(second) : once.hit_rate;
  r.policy = once.policy;
  r.accesses = once.accesses;
  return r;
}

// At a fractional capacity (the plan's slots per layer): linear between
// the integer capacities around it (hit rate climbs steeply where the
// working set meets the capacity, so rounding down would misstate it).
absl::StatusOr<Rates> RatesAtFraction(const trace::Trace& t, const trace::Trace& doubled,
                                      double capacity, const std::string& policy) {
  const double c = std::max(1.0, capacity);
  const int lo = static_cast<int>(std::floor(c));
  MOESTREAM_ASSIGN_OR_RETURN(Rates a, RatesAt(t, doubled, lo, policy));
  const double f = c - lo;
  if (f <= 0) return a;
  MOESTREAM_ASSIGN_OR_RETURN(Rates b, RatesAt(t, doubled, lo + 1, policy));
  a.cold += f * (b.cold - a.cold);
  a.warm += f * (b.warm - a.warm);
  a.min += f * (b.min - a.min);
  return a;
}

std::string Describe(const std::string& path, const trace::TraceShape& s, int model_k) {
  return absl::StrCat("trace ", path, " (", s.model.empty() ? s.source : s.model, ", ",
                      s.n_layers, " layers, ", s.n_experts, " experts, top-", s.top_k,
                      s.top_k != model_k ? absl::StrCat("; the model uses top-", model_k) : "",
                      ")");
}

}  // namespace

absl::Status HitRateOptions::Validate() const {
  if (!(zipf_s >= 0 && zipf_s <= 10)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--zipf ", zipf_s, " is out of range 0..10"));
  }
  return absl::OkStatus();
}

ZipfHitRates ZipfLayerHitRates(int n_expert, int top_k, double capacity, double s) {
  ZipfHitRates r;
  if (n_expert <= 0 || top_k <= 0) return r;
  if (capacity >= n_expert) return {1, 1};
  if (capacity <= 0) return r;
  std::vector<double> q(static_cast<size_t>(n_expert));
  double sum = 0;
  for (int i = 0; i < n_expert; ++i) sum += q[size_t(i)] = std::pow(1.0 + i, -s);
  // Requests per token: k choices, none more than once per token.
  for (double& v : q) v = std::min(1.0, top_k * v / sum);
  double total = 0;
  for (double v : q) total += v;
  // Che: find T with sum(1 - exp(-q T)) = C (monotone in T).
  auto occupied = [&](double t) {
    double o = 0;
    for (double v : q) o += 1 - std::exp(-v * t);
    return o;
  };
  double lo = 0, hi = 1;
  while (occupied(hi) < capacity && hi < 1e12) hi *= 2;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    (occupied(mid) < capacity ? lo : hi) = mid;
  }
  const double t = 0.5 * (lo + hi);
  double hits = 0;
  for (double v : q) hits += v * (1 - std::exp(-v * t));
  r.lru = hits / total;
  // Static: the C most popular (q is sorted by rank), a fractional slot pro rata.
  double top = 0;
  for (int i = 0; i < n_expert; ++i) {
    const double share = std::clamp(capacity - i, 0.0, 1.0);
    top += share * q[size_t(i)];
  }
  r.top_c = top / total;
  return r;
}

absl::StatusOr<HitRateEstimate> EstimateHitRates(const HitRateModelShape& shape,
                                                 double device_slots_per_layer,
                                                 double ram_slots_per_layer,
                                                 const HitRateOptions& o) {
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  HitRateEstimate e;
  if (shape.n_expert <= 0 || device_slots_per_layer >= shape.n_expert) {
    e.kind = "resident";
    e.source = "every expert has a device slot: no misses";
    return e;
  }
  const double ram = std::max(ram_slots_per_layer, device_slots_per_layer);

  // The trace: given, or chosen among the shared ones.
  std::vector<Candidate> found;
  if (!o.trace.empty() && o.trace != "zipf") {
    MOESTREAM_ASSIGN_OR_RETURN(trace::Trace t, trace::LoadTrace(o.trace));
    found.push_back({o.trace, "", std::move(t)});
  } else if (o.trace.empty() && !o.trace_dir.empty()) {
    for (const SharedTrace& s : kSharedTraces) {
      if (s.n_expert != shape.n_expert) continue;
      const std::string path = (std::filesystem::path(o.trace_dir) / s.path).string();
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) continue;
      absl::StatusOr<trace::Trace> t = trace::LoadTrace(path);
      if (!t.ok()) continue;  // a shared file that does not load is not a match
      if (t->shape.n_experts != shape.n_expert) continue;
      found.push_back({path, s.arch, std::move(t).value()});
    }
  }
  if (!found.empty()) {
    // Same top-k, else same architecture, else the nearest top-k.
    auto rank = [&](const Candidate& c) {
      const int dk = std::abs(c.trace.shape.top_k - shape.top_k);
      return std::make_tuple(dk != 0, c.arch != shape.arch, dk);
    };
    const Candidate& c =
        *std::min_element(found.begin(), found.end(),
                          [&](const Candidate& a, const Candidate& b) { return rank(a) < rank(b); });
    const trace::Trace doubled = Doubled(c.trace);
    MOESTREAM_ASSIGN_OR_RETURN(Rates dev,
                               RatesAtFraction(c.trace, doubled, device_slots_per_layer, o.policy));
    e.kind = "trace";
    e.source = absl::StrFormat("%s, %s replay of %d decode requests at %.3g slots per layer",
                               Describe(c.path, c.trace.shape, shape.top_k), dev.policy,
                               dev.accesses, device_slots_per_layer);
    e.device = dev.warm;
    e.device_cold = dev.cold;
    e.device_high = std::max(dev.min, dev.warm);
    if (ram >= shape.n_expert) {
      e.device_and_host = e.device_and_host_cold = 1;
    } else {
      MOESTREAM_ASSIGN_OR_RETURN(Rates both, RatesAtFraction(c.trace, doubled, ram, o.policy));
      e.device_and_host = std::max(both.warm, e.device);
      e.device_and_host_cold = std::max(both.cold, e.device_cold);
    }
    return e;
  }
  const ZipfHitRates dev =
      ZipfLayerHitRates(shape.n_expert, shape.top_k, device_slots_per_layer, o.zipf_s);
  e.kind = "zipf";
  e.source = absl::StrFormat(
      "zipf s=%.2f (expert popularity (1+rank)^-s, LRU by Che's approximation; %s)", o.zipf_s,
      o.trace == "zipf" ? "asked for"
                        : absl::StrCat("no routing trace of a ", shape.n_expert,
                                       "-expert model", o.trace_dir.empty() ? " given" : " found"));
  e.device = dev.lru;
  e.device_cold = dev.lru;
  e.device_high = std::max(dev.top_c, dev.lru);
  e.device_and_host = e.device_and_host_cold =
      ram >= shape.n_expert
          ? 1.0
          : std::max(e.device, ZipfLayerHitRates(shape.n_expert, shape.top_k, ram, o.zipf_s).lru);
  return e;
}

}  // namespace moestream::engine
