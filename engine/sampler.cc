#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace moestream::engine {

absl::Status SamplerOptions::Validate() const {
  auto bad = [](const char* flag, double v, const char* want) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", v, ": expected ", want));
  };
  if (!std::isfinite(temperature)) return bad("--temp", temperature, "a finite number");
  if (top_k < 0) return bad("--top-k", double(top_k), ">= 0");
  if (!(top_p > 0 && top_p <= 1)) return bad("--top-p", top_p, "a value in (0, 1]");
  if (!(min_p >= 0 && min_p <= 1)) return bad("--min-p", min_p, "a value in [0, 1]");
  if (!(repeat_penalty > 0) || !std::isfinite(repeat_penalty)) {
    return bad("--repeat-penalty", repeat_penalty, "a positive number");
  }
  if (repeat_last_n < -1) return bad("--repeat-last-n", double(repeat_last_n), ">= -1");
  return absl::OkStatus();
}

Sampler::Sampler(const SamplerOptions& o) : o_(o) {
  seed_ = o.seed == kRandomSeed ? std::random_device{}() : o.seed;
  rng_.seed(static_cast<std::mt19937::result_type>(seed_));
}

void Sampler::Reset() {
  recent_.clear();
  rng_.seed(static_cast<std::mt19937::result_type>(seed_));
}

void Sampler::Accept(int32_t id) {
  if (o_.repeat_last_n == 0) return;
  recent_.push_back(id);
  if (o_.repeat_last_n > 0 && recent_.size() > static_cast<size_t>(o_.repeat_last_n)) {
    recent_.pop_front();
  }
}

int32_t Sampler::Sample(std::span<const float> logits_in) {
  std::span<const float> logits = logits_in;
  if (o_.repeat_penalty != 1.0 && !recent_.empty()) {
    penalized_.assign(logits_in.begin(), logits_in.end());
    const float pen = static_cast<float>(o_.repeat_penalty);
    // Each distinct recent token is penalised once, as llama.cpp does.
    seen_.assign(recent_.begin(), recent_.end());
    std::sort(seen_.begin(), seen_.end());
    seen_.erase(std::unique(seen_.begin(), seen_.end()), seen_.end());
    for (int32_t id : seen_) {
      if (id < 0 || static_cast<size_t>(id) >= penalized_.size()) continue;
      float& l = penalized_[id];
      l = l <= 0 ? l * pen : l / pen;
    }
    logits = penalized_;
  }
  const int64_t n = static_cast<int64_t>(logits.size());

  if (o_.temperature <= 0) {
    int32_t best = 0;
    for (int64_t i = 1; i < n; ++i) {
      if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
    }
    return best;
  }

  cand_.resize(n);
  for (int64_t i = 0; i < n; ++i) cand_[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
  auto by_logit = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  size_t keep = cand_.size();
  if (o_.top_k > 0 && static_cast<size_t>(o_.top_k) < keep) {
    keep = static_cast<size_t>(o_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  cand_.resize(keep);

  auto softmax = [&] {
    const float mx = cand_[0].logit;
    double sum = 0;
    for (Candidate& c : cand_) sum += (c.p = std::exp(c.logit - mx));
    for (Candidate& c : cand_) c.p = static_cast<float>(c.p / sum);
  };
  if (o_.top_p < 1.0) {
    softmax();
    double cum = 0;
    size_t i = 0;
    for (; i < cand_.size(); ++i) {
      cum += cand_[i].p;
      if (cum >= o_.top_p) break;
    }
    cand_.resize(std::min(cand_.size(), i + 1));
  }
  if (o_.min_p > 0) {
    const float floor = cand_[0].logit + std::log(static_cast<float>(o_.min_p));
    size_t i = 1;
    while (i < cand_.size() && cand_[i].logit >= floor) ++i;
    cand_.resize(i);
  }
  for (Candidate& c : cand_) c.logit = static_cast<float>(c.logit / o_.temperature);
  softmax();
  const double r = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  double cum = 0;
  for (const Candidate& c : cand_) {
    cum += c.p;
    if (r < cum) return c.id;
  }
  return cand_.back().id;
}

}  // namespace moestream::engine
