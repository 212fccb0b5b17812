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
  loads_.reserve(256);
}

uint64_t SimLoader::ExpertBytes(ExpertKey key) const {
  if (!opt_.expert_bytes_per_layer.empty()) {
    MOESTREAM_CHECK(key.layer < opt_.expert_bytes_per_layer.size())
        << "layer " << key.layer << " beyond expert_bytes_per_layer";
    return opt_.expert_bytes_per_layer[key.layer];
  }
  return opt_.expert_bytes;
}

uint64_t SimLoader::ServiceNs(const Stage& s, uint64_t bytes) const {
  // bytes / (gbps * 1e9 B/s) seconds = bytes / gbps nanoseconds.
  uint64_t t = s.latency_ns;
  if (s.gbps > 0) t += uint64_t(std::llround(double(bytes) / s.gbps));
  return t;
}

void SimLoader::Enqueue(Stage& s, LoadId id, bool prefetch) {
  (prefetch ? s.prefetch : s.demand).push_back(id);
}

void SimLoader::TryStart(Stage& s, uint64_t at_ns) {
  if (s.current != 0) return;
  std::deque<LoadId>* q = !s.demand.empty() ? &s.demand : &s.prefetch;
  if (q->empty()) return;
  LoadId id = q->front();
  q->pop_front();
  Load& l = loads_.at(id);
  l.started = true;
  uint64_t t = ServiceNs(s, l.bytes);
  s.current = id;
  s.finish_ns = at_ns + t;
  s.busy_ns += t;
}

void SimLoader::RunUntil(uint64_t t_ns) {
  for (;;) {
    bool tier_due = tier_.current != 0 && tier_.finish_ns <= t_ns;
    bool link_due = link_.current != 0 && link_.finish_ns <= t_ns;
    if (!tier_due && !link_due) return;
    // Earliest first; on a tie the tier goes first so its output is queued
    // when the link picks its next copy.
    if (tier_due && (!link_due || tier_.finish_ns <= link_.finish_ns)) {
      LoadId id = tier_.current;
      uint64_t at = tier_.finish_ns;
      tier_.current = 0;
      Load& l = loads_.at(id);
      l.stage = 1;
      Enqueue(link_, id, l.prefetch);
      TryStart(link_, at);
      TryStart(tier_, at);
    } else {
      LoadId id = link_.current;
      uint64_t at = link_.finish_ns;
      link_.current = 0;
      loads_.at(id).stage = 2;
      finished_.push_back(id);
      TryStart(link_, at);
    }
  }
}

absl::Status SimLoader::StartLoad(const LoadRequest& r) {
  if (loads_.contains(r.id)) {
    return absl::InvalidArgumentError(absl::StrCat("sim loader: load id ", r.id, " reused"));
  }
  uint64_t now = clock_->NowNs();
  RunUntil(now);
  Load& l = loads_[r.id];
  l.bytes = ExpertBytes(r.key);
  l.prefetch = r.is_prefetch;
  l.stage = has_tier() ? 0 : 1;
  Stage& s = has_tier() ? tier_ : link_;
  Enqueue(s, r.id, r.is_prefetch);
  TryStart(s, now);
  return absl::OkStatus();
}

void SimLoader::Promote(LoadId id) {
  RunUntil(clock_->NowNs());
  auto it = loads_.find(id);
  if (it == loads_.end() || !it->second.prefetch) return;
  Load& l = it->second;
  if (l.stage == 2) return;
  Stage& s = l.stage == 0 ? tier_ : link_;
  auto q = std::find(s.prefetch.begin(), s.prefetch.end(), id);
  l.prefetch = false;  // later stages queue it as demand
  if (q != s.prefetch.end()) {
    s.prefetch.erase(q);
    s.demand.push_back(id);
  }
}

bool SimLoader::Cancel(LoadId id) {
  RunUntil(clock_->NowNs());
  auto it = loads_.find(id);
  if (it == loads_.end() || it->second.started) return false;
  Load& l = it->second;
  Stage& s = l.stage == 0 ? tier_ : link_;
  auto& q = l.prefetch ? s.prefetch : s.demand;
  auto pos = std::find(q.begin(), q.end(), id);
  MOESTREAM_CHECK(pos != q.end()) << "queued load " << id << " missing from its queue";
  q.erase(pos);
  loads_.erase(it);
  return true;
}

absl::Status SimLoader::Poll(std::vector<LoadCompletion>* done, bool block) {
  RunUntil(clock_->NowNs());
  while (block && finished_.empty() && !loads_.empty()) {
    uint64_t next = UINT64_MAX;
    if (tier_.current != 0) next = std::min(next, tier_.finish_ns);
    if (link_.current != 0) next = std::min(next, link_.finish_ns);
    MOESTREAM_CHECK(next != UINT64_MAX) << "outstanding loads but both stages idle";
    clock_->AdvanceTo(next);
    RunUntil(next);
  }
  for (LoadId id : finished_) {
    auto it = loads_.find(id);
    MOESTREAM_CHECK(it != loads_.end());
    LoadCompletion c;
    c.id = id;
    c.tier = opt_.tier;
    c.tier_bytes = it->second.bytes;
    c.link_bytes = it->second.bytes;
    done->push_back(std::move(c));
    loads_.erase(it);
  }
  finished_.clear();
  return absl::OkStatus();
}

}  // namespace moestream::cache
