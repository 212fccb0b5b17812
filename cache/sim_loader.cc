// SimLoader: the two-stage (tier read, link copy) event model described in
// sim_loader.h.
#include "cache/sim_loader.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace moestream::cache {

std::string_view TierName(Tier t) { return t == Tier::kHost ? "host" : "nvme"; }

absl::Status SimLoaderOptions::Validate() const {
  if (link.gbps < 0 || link.latency_us < 0) {
    return absl::InvalidArgumentError(absl::StrCat("link profile '", link.name,
                                                   "': gbps and latency_us must be >= 0"));
  }
  if (tier == Tier::kNvme && !(tier_gbps > 0)) {
    return absl::InvalidArgumentError("sim loader: experts on nvme need tier_gbps > 0");
  }
  if (tier_latency_us < 0) {
    return absl::InvalidArgumentError("sim loader: tier_latency_us must be >= 0");
  }
  if (expert_bytes_per_layer.empty() && expert_bytes == 0) {
    return absl::InvalidArgumentError("sim loader: expert_bytes must be > 0");
  }
  for (size_t l = 0; l < expert_bytes_per_layer.size(); ++l) {
    if (expert_bytes_per_layer[l] == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("sim loader: expert_bytes_per_layer[", l, "] must be > 0"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SimLoader>> SimLoader::Create(const SimLoaderOptions& o,
                                                             SimClock* clock) {
  MOESTREAM_CHECK(clock != nullptr);
  if (absl::Status s = o.Validate(); !s.ok()) return s;
  return std::unique_ptr<SimLoader>(new SimLoader(o, clock));
}

SimLoader::SimLoader(const SimLoaderOptions& o, SimClock* clock) : opt_(o), clock_(clock) {
  link_.gbps = o.link.gbps;
  link_.latency_ns = uint64_t(std::llround(o.link.latency_us * 1e3));
  tier_.gbps = o.tier_gbps;
  tier_.latency_ns = uint64_t(std::llround(o.tier_latency_us * 1e3));
  pool_.reserve(256);
  free_.reserve(256);
  direct_.assign(kDirect, kNone);
}

uint32_t SimLoader::FindLoad(LoadId id) const {
  const uint32_t li = direct_[id & (kDirect - 1)];
  if (li != kNone && pool_[li].id == id) return li;
  if (index_.empty()) return kNone;
  auto it = index_.find(id);
  return it == index_.end() ? kNone : it->second;
}

void SimLoader::InsertLoad(LoadId id, uint32_t li) {
  uint32_t& d = direct_[id & (kDirect - 1)];
  if (d == kNone) {
    d = li;
  } else {
    index_.emplace(id, li);
  }
  ++outstanding_;
}

void SimLoader::EraseLoad(LoadId id, uint32_t li) {
  uint32_t& d = direct_[id & (kDirect - 1)];
  if (d == li) {
    d = kNone;
  } else {
    index_.erase(id);
  }
  --outstanding_;
}

uint64_t SimLoader::ExpertBytes(ExpertKey key) const {
  if (!opt_.expert_bytes_per_layer.empty()) {
    MOESTREAM_CHECK(key.layer < opt_.expert_bytes_per_layer.size())
        << "layer " << key.layer << " beyond expert_bytes_per_layer";
    return opt_.expert_bytes_per_layer[key.layer];
  }
  return opt_.expert_bytes;
}

uint64_t SimLoader::ServiceNs(Stage& s, uint64_t bytes) const {
  if (bytes == s.memo_bytes) return s.memo_ns;
  // bytes / (gbps * 1e9 B/s) seconds = bytes / gbps nanoseconds.
  uint64_t t = s.latency_ns;
  if (s.gbps > 0) t += uint64_t(std::llround(double(bytes) / s.gbps));
  s.memo_bytes = bytes;
  s.memo_ns = t;
  return t;
}

void SimLoader::Enqueue(Stage& s, uint32_t li, bool prefetch) {
  (prefetch ? s.prefetch : s.demand).push_back(li);
}

void SimLoader::TryStart(Stage& s, uint64_t at_ns) {
  if (s.current != kNone) return;
  std::deque<uint32_t>* q = !s.demand.empty() ? &s.demand : &s.prefetch;
  if (q->empty()) return;
  uint32_t li = q->front();
  q->pop_front();
  Load& l = pool_[li];
  l.started = true;
  uint64_t t = ServiceNs(s, l.bytes);
  s.current = li;
  s.finish_ns = at_ns + t;
  s.busy_ns += t;
}

void SimLoader::RunUntil(uint64_t t_ns) {
  for (;;) {
    bool tier_due = tier_.current != kNone && tier_.finish_ns <= t_ns;
    bool link_due = link_.current != kNone && link_.finish_ns <= t_ns;
    if (!tier_due && !link_due) return;
    // Earliest first; on a tie the tier goes first so its output is queued
    // when the link picks its next copy.
    if (tier_due && (!link_due || tier_.finish_ns <= link_.finish_ns)) {
      uint32_t li = tier_.current;
      uint64_t at = tier_.finish_ns;
      tier_.current = kNone;
      Load& l = pool_[li];
      l.stage = SimStage::kLink;
      Enqueue(link_, li, l.prefetch);
      TryStart(link_, at);
      TryStart(tier_, at);
    } else {
      uint32_t li = link_.current;
      uint64_t at = link_.finish_ns;
      link_.current = kNone;
      pool_[li].stage = SimStage::kDone;
      finished_.push_back(li);
      TryStart(link_, at);
    }
  }
}

absl::Status SimLoader::StartLoad(const LoadRequest& r) {
  uint32_t li;
  if (free_.empty()) {
    li = uint32_t(pool_.size());
  } else {
    li = free_.back();
  }
  if (FindLoad(r.id) != kNone) {
    return absl::InvalidArgumentError(absl::StrCat("sim loader: load id ", r.id, " reused"));
  }
  if (li == pool_.size()) {
    pool_.emplace_back();
  } else {
    free_.pop_back();
  }
  uint64_t now = clock_->NowNs();
  RunUntil(now);
  Load& l = pool_[li];
  l = Load{};
  l.id = r.id;
  InsertLoad(r.id, li);
  l.bytes = ExpertBytes(r.key);
  l.prefetch = r.is_prefetch;
  l.stage = has_tier() ? SimStage::kTier : SimStage::kLink;
  Stage& s = has_tier() ? tier_ : link_;
  Enqueue(s, li, r.is_prefetch);
  TryStart(s, now);
  return absl::OkStatus();
}

void SimLoader::Promote(LoadId id) {
  RunUntil(clock_->NowNs());
  const uint32_t li = FindLoad(id);
  if (li == kNone) return;
  Load& l = pool_[li];
  if (!l.prefetch || l.stage == SimStage::kDone) return;
  Stage& s = l.stage == SimStage::kTier ? tier_ : link_;
  auto q = std::find(s.prefetch.begin(), s.prefetch.end(), li);
  l.prefetch = false;  // later stages queue it as demand
  if (q != s.prefetch.end()) {
    s.prefetch.erase(q);
    s.demand.push_back(li);
  }
}

bool SimLoader::Cancel(LoadId id) {
  RunUntil(clock_->NowNs());
  const uint32_t li = FindLoad(id);
  if (li == kNone) return false;
  Load& l = pool_[li];
  if (l.started) return false;
  Stage& s = l.stage == SimStage::kTier ? tier_ : link_;
  auto& q = l.prefetch ? s.prefetch : s.demand;
  auto pos = std::find(q.begin(), q.end(), li);
  MOESTREAM_CHECK(pos != q.end()) << "queued load " << id << " missing from its queue";
  q.erase(pos);
  EraseLoad(id, li);
  free_.push_back(li);
  return true;
}

absl::Status SimLoader::Poll(std::vector<LoadCompletion>* done, bool block) {
  RunUntil(clock_->NowNs());
  while (block && finished_.empty() && outstanding_ > 0) {
    uint64_t next = UINT64_MAX;
    if (tier_.current != kNone) next = std::min(next, tier_.finish_ns);
    if (link_.current != kNone) next = std::min(next, link_.finish_ns);
    MOESTREAM_CHECK(next != UINT64_MAX) << "outstanding loads but both stages idle";
    clock_->AdvanceTo(next);
    RunUntil(next);
  }
  for (uint32_t li : finished_) {
    const Load& l = pool_[li];
    LoadCompletion& c = done->emplace_back();
    c.id = l.id;
    c.tier = opt_.tier;
    c.tier_bytes = l.bytes;
    c.link_bytes = l.bytes;
    EraseLoad(l.id, li);
    free_.push_back(li);
  }
  finished_.clear();
  return absl::OkStatus();
}

}  // namespace moestream::cache
