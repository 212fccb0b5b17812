// tinylfu[:window=W,sample=S]: W-TinyLFU (Einziger, Friedman & Manes, 2017).
// Frequencies come from a count-min sketch (4 rows of 4-bit counters) that
// forgets: after `sample` x capacity demand accesses every counter is halved,
// so an expert's estimate covers roughly the last few recency windows. A key
// enters the cache in a small LRU window; once the window holds more than
// its share of the scope's resident keys (a layer's pool, or all layers for
// a global pool), its oldest key is a candidate for the main segment
// (an LRU), admitted only if its estimated frequency beats that of the main
// segment's victim. The loser of that comparison is the victim: the
// newcomer when it is not more frequent, else the main victim, and the
// candidate then moves to the main segment (done when the victim is erased).
// A key that cannot be compared (nothing evictable in one segment) loses to
// nothing: the other segment's first evictable key is the victim.
//
// Options:
//   window  (0, 1], default 0.2: the window's share of the resident keys
//           (at least one key).
//   sample  [1, 1000], default 10: the sketch ages every sample x capacity
//           demand accesses (env.capacity, or the most keys ever resident).
// Both segments live in ScoredPolicy's ordered sets: primary 0 = window,
// 1 = main, each by last access tick.
#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

// Count-min sketch with 4-bit counters (stored a byte each: the key space is
// small) and halving.
class FrequencySketch {
 public:
  explicit FrequencySketch(size_t keys) {
    size_t w = 16;
    while (w < keys) w <<= 1;
    mask_ = w - 1;
    for (auto& row : rows_) row.assign(w, 0);
  }
  // Returns true when the estimate grew.
  void Add(uint32_t key) {
    for (int r = 0; r < kRows; ++r) {
      uint8_t& c = rows_[r][Slot(key, r)];
      if (c < 15) ++c;
    }
  }
  int Estimate(uint32_t key) const {
    int m = 15;
    for (int r = 0; r < kRows; ++r) m = std::min<int>(m, rows_[r][Slot(key, r)]);
    return m;
  }
  void Halve() {
    for (auto& row : rows_) {
      for (uint8_t& c : row) c >>= 1;
    }
  }

 private:
  static constexpr int kRows = 4;
  size_t Slot(uint32_t key, int row) const {
    static constexpr uint64_t kSeeds[kRows] = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full,
                                               0x165667b19e3779f9ull, 0xd6e8feb86659fd93ull};
    uint64_t h = (uint64_t(key) + 1) * kSeeds[row];
    h ^= h >> 29;
    return size_t(h) & mask_;
  }
  size_t mask_;
  std::array<std::vector<uint8_t>, kRows> rows_;
};

class TinyLfuPolicy final : public ScoredPolicy {
 public:
  TinyLfuPolicy(const PolicyEnv& env, double window, int64_t sample)
      : ScoredPolicy(env),
        window_(window),
        sample_(sample),
        capacity_(env.capacity),
        sketch_(size_t(std::max(1, env.n_layers)) * index_.stride()) {}
  std::string name() const override {
    return absl::StrCat("tinylfu:window=", window_, ",sample=", sample_);
  }

  // After the insert, a window over its share passes its oldest key to the
  // main segment: after a free slot was taken (no victim was asked for), or
  // after the main segment gave up its victim to the candidate.
  void OnInsert(ExpertKey k, const AccessContext& ctx) override {
    ScoredPolicy::OnInsert(k, ctx);
    const int scope = per_layer_seen_ ? int(k.layer) : -1;
    if (WindowOver(scope, 0)) Promote(scope);
  }

  std::optional<ExpertKey> PickVictim(const VictimQuery& q) override {
    const Entry* candidate = nullptr;  // oldest evictable window key
    const Entry* main = nullptr;       // main segment's victim
    Firsts(q, &candidate, &main);
    if (candidate == nullptr && main == nullptr) return std::nullopt;
    if (candidate == nullptr) return ExpertKey::FromPacked(main->key);
    // The newcomer is about to enter the window: does that overflow it?
    if (main == nullptr || !WindowOver(q.layer, 1)) return ExpertKey::FromPacked(candidate->key);
    // Admission: the candidate enters main only by being more frequent.
    if (sketch_.Estimate(candidate->key) > sketch_.Estimate(main->key)) {
      return ExpertKey::FromPacked(main->key);
    }
    return ExpertKey::FromPacked(candidate->key);
  }

 protected:
  Score Rescore(ExpertKey k, const AccessContext& ctx, bool insert) override {
    const uint32_t i = index_.Of(k);
    if (i >= segment_.size()) segment_.resize(index_.SizeFor(k), 0);
    if (k.layer >= window_count_.size()) window_count_.resize(k.layer + 1, 0);
    if (!ctx.prefetch) {
      sketch_.Add(k.packed());
      const size_t cap = capacity_ > 0 ? size_t(capacity_) : max_resident_;
      if (++samples_ >= uint64_t(sample_) * std::max<size_t>(cap, 1)) {
        sketch_.Halve();
        samples_ = 0;
      }
    }
    if (insert) {
      max_resident_ = std::max(max_resident_, resident_count() + 1);
      segment_[i] = 0;
      ++window_count_[k.layer];
      ++window_total_;
    }
    return {double(segment_[i]), ctx.tick};
  }

  void Erased(ExpertKey k) override {
    if (segment_[index_.Of(k)] == 0) {
      --window_count_[k.layer];
      --window_total_;
    }
  }

 private:
  void Firsts(const VictimQuery& q, const Entry** candidate, const Entry** main) {
    if (q.layer >= 0) per_layer_seen_ = true;
    const size_t lo = q.layer >= 0 ? size_t(q.layer) : 0;
    const size_t hi = q.layer >= 0 ? std::min(size_t(q.layer) + 1, by_layer_.size())
                                   : by_layer_.size();
    for (size_t l = lo; l < hi; ++l) {
      const Entry* w = nullptr;
      const Entry* m = nullptr;
      for (const Entry& e : by_layer_[l]) {
        if (q.evictable && !q.evictable(ExpertKey::FromPacked(e.key))) continue;
        const Entry*& slot = e.primary == 0 ? w : m;
        if (slot == nullptr) slot = &e;
        if (w != nullptr && m != nullptr) break;
      }
      if (w != nullptr && (*candidate == nullptr || w->secondary < (*candidate)->secondary)) {
        *candidate = w;
      }
      if (m != nullptr && (*main == nullptr || m->secondary < (*main)->secondary)) *main = m;
    }
  }
  void Promote(int scope) {
    const Entry* oldest = nullptr;
    for (size_t l = scope >= 0 ? size_t(scope) : 0;
         l < (scope >= 0 ? std::min(size_t(scope) + 1, by_layer_.size()) : by_layer_.size()); ++l) {
      const Entry* e = OldestWindow(int(l));
      if (e != nullptr && (oldest == nullptr || e->secondary < oldest->secondary)) oldest = e;
    }
    if (oldest == nullptr) return;
    const ExpertKey w = ExpertKey::FromPacked(oldest->key);
    segment_[index_.Of(w)] = 1;
    --window_count_[w.layer];
    --window_total_;
    SetScore(w, Score{1.0, oldest->secondary});
  }
  const Entry* OldestWindow(int layer) const {
    if (size_t(layer) >= by_layer_.size()) return nullptr;
    const LayerSet& set = by_layer_[layer];
    return !set.empty() && set.begin()->primary == 0 ? &*set.begin() : nullptr;
  }
  // The window, with `extra` more keys, holds more than its share of the
  // scope's resident keys.
  bool WindowOver(int layer, size_t extra) const {
    const size_t in = layer >= 0 ? (size_t(layer) < window_count_.size() ? window_count_[layer] : 0)
                                 : window_total_;
    const size_t resident = (layer >= 0 ? resident_in_layer(layer) : resident_count()) + extra;
    return double(in + extra) > std::max(1.0, window_ * double(resident));
  }

  double window_;
  int64_t sample_;
  int capacity_;
  FrequencySketch sketch_;
  uint64_t samples_ = 0;
  size_t max_resident_ = 0;
  bool per_layer_seen_ = false;          // victims have been asked per layer
  std::vector<uint8_t> segment_;         // by key index: 0 window, 1 main
  std::vector<size_t> window_count_;     // per layer
  size_t window_total_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateTinyLfuPolicy(PolicySpec& spec,
                                                                   const PolicyEnv& env) {
  double window = 0.2;
  int64_t sample = 10;
  MOESTREAM_RETURN_IF_ERROR(spec.Double("window", 1e-6, 1.0, &window));
  MOESTREAM_RETURN_IF_ERROR(spec.Int("sample", 1, 1000, &sample));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("window, sample"));
  return std::unique_ptr<EvictionPolicy>(new TinyLfuPolicy(env, window, sample));
}

}  // namespace moestream::policies
