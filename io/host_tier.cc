#include "io/host_tier.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/mutex.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "io/chunked_reader.h"

namespace moestream::io {

// ---------------------------------------------------- AlignedHostAllocator --

absl::StatusOr<void*> AlignedHostAllocator::Alloc(size_t bytes, std::string_view what) {
  MutexLock lock(&mu_);
  if (options_.budget_bytes != 0 && used_ + bytes > options_.budget_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "host memory for ", Av(what), ": ", bytes, " bytes requested, ", used_, " of ",
        options_.budget_bytes, " budget bytes in use: short by ",
        used_ + bytes - options_.budget_bytes, " bytes"));
  }
  void* p = nullptr;
  if (posix_memalign(&p, 4096, std::max<size_t>(bytes, 1)) != 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("host memory for ", Av(what), ": cannot allocate ", bytes, " bytes"));
  }
  if (options_.mlock && ::mlock(p, bytes) != 0) {
    SayOnce("mlock of host-tier memory refused (raise RLIMIT_MEMLOCK); continuing unlocked");
  }
  live_.push_back({p, bytes});
  used_ += bytes;
  high_water_ = std::max(high_water_, used_);
  return p;
}

void AlignedHostAllocator::Free(void* p) {
  if (p == nullptr) return;
  MutexLock lock(&mu_);
  auto it = std::find_if(live_.begin(), live_.end(), [p](const auto& e) { return e.first == p; });
  MOESTREAM_CHECK(it != live_.end()) << "AlignedHostAllocator::Free of unknown pointer";
  if (options_.mlock) ::munlock(p, it->second);
  used_ -= it->second;
  live_.erase(it);
  std::free(p);
}

uint64_t AlignedHostAllocator::used_bytes() const {
  MutexLock lock(&mu_);
  return used_;
}
uint64_t AlignedHostAllocator::high_water_bytes() const {
  MutexLock lock(&mu_);
  return high_water_;
}

// --------------------------------------------------------------- HostTier --

absl::Status HostTierOptions::Validate() const { return absl::OkStatus(); }

uint64_t HostTier::RequiredBytes(const ExpertLayout& layout) { return layout.total_blob_bytes(); }

namespace {

// Progress on stderr: in place on a terminal, every 10% otherwise.
class ProgressLine {
 public:
  explicit ProgressLine(bool on) : on_(on), tty_(on && isatty(2)) {}
  void Update(uint64_t done, uint64_t total) {
    if (!on_ || total == 0) return;
    int pct = int(done * 100 / total);
    if (pct == last_ || (!tty_ && pct / 10 == last_ / 10 && pct != 100)) return;
    last_ = pct;
    std::fprintf(stderr, "%smoestream: loading experts into host memory: %.1f / %.1f MiB (%d%%)%s",
                 tty_ ? "\r" : "", double(done) / (1 << 20), double(total) / (1 << 20), pct,
                 tty_ && pct < 100 ? "" : "\n");
  }

 private:
  bool on_, tty_;
  int last_ = -1;
};

}  // namespace

absl::StatusOr<std::unique_ptr<HostTier>> HostTier::Load(
    std::shared_ptr<const ExpertLayout> layout, ExpertReader& reader, HostAllocator& alloc,
    const HostTierOptions& options, const ProgressFn& progress) {
  MOESTREAM_RETURN_IF_ERROR(options.Validate());
  const uint64_t need = RequiredBytes(*layout);
  std::vector<int> layers = layout->moe_layers();
  if (options.host_budget_bytes != 0 && need > options.host_budget_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "host tier: the routed experts of ", layout->path(), " need ", need, " bytes (",
        layout->size(), " experts in ", layers.size(), " layers) but the host budget is ",
        options.host_budget_bytes, " bytes: short by ", need - options.host_budget_bytes,
        " bytes (raise --host-budget or put the experts on nvme)"));
  }
  if (reader.in_flight() != 0) {
    return absl::FailedPreconditionError("HostTier::Load: the reader has reads in flight");
  }
  std::unique_ptr<HostTier> tier(new HostTier);
  tier->layout_ = layout;
  tier->alloc_ = &alloc;
  tier->blobs_.assign(layout->size(), nullptr);
  for (int l : layers) {
    uint64_t bytes = 0;
    for (int e = 0; e < layout->n_experts(l); ++e) bytes += layout->Find(l, e)->blob_bytes;
    MOESTREAM_ASSIGN_OR_RETURN(void* region,
                               alloc.Alloc(bytes, absl::StrCat("host tier, layer ", l, " experts")));
    tier->regions_.push_back(region);  // freed by ~HostTier on any error below
    tier->bytes_ += bytes;
    uint8_t* p = static_cast<uint8_t*>(region);
    for (int e = 0; e < layout->n_experts(l); ++e) {
      tier->blobs_[size_t(layout->IndexOf(l, e))] = p;
      p += layout->Find(l, e)->blob_bytes;
    }
  }

  ProgressLine line(options.show_progress && !progress);
  const size_t window = 64;  // experts in flight; the reader bounds its own queue depth
  size_t next = 0;
  uint64_t done_bytes = 0;
  absl::Status first_error;
  std::vector<ExpertReadCompletion> done;
  auto experts = layout->experts();
  while (next < experts.size() || reader.in_flight() > 0) {
    while (first_error.ok() && next < experts.size() && reader.in_flight() < window) {
      const ExpertInfo& e = experts[next];
      first_error =
          reader.Submit({e.layer, e.expert, const_cast<uint8_t*>(tier->blobs_[next]), next});
      ++next;
    }
    if (!first_error.ok() && reader.in_flight() == 0) break;
    done.clear();
    reader.Reap(&done, /*wait=*/true);
    for (const ExpertReadCompletion& c : done) {
      if (!c.status.ok()) {
        if (first_error.ok()) first_error = c.status;
        continue;
      }
      done_bytes += experts[c.tag].blob_bytes;
    }
    if (progress) progress(done_bytes, need);
    line.Update(done_bytes, need);
  }
  MOESTREAM_RETURN_IF_ERROR(first_error);
  return tier;
}

HostTier::~HostTier() {
  for (void* r : regions_) alloc_->Free(r);
}

const uint8_t* HostTier::Blob(int layer, int expert) const {
  long i = layout_->IndexOf(layer, expert);
  return i < 0 ? nullptr : blobs_[size_t(i)];
}

const uint8_t* HostTier::Matrix(int layer, int expert, ExpertMatrix m) const {
  const uint8_t* b = Blob(layer, expert);
  return b == nullptr ? nullptr : b + layout_->Find(layer, expert)->matrix(m).blob_offset;
}

}  // namespace moestream::io
