// TierLoader: tier read (NVMe) → staging → link copy → event, as described
// in tier_loader.h.
#include "cache/tier_loader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"

namespace moestream::cache {

TierSource TierSource::Host(const io::HostTier& host) {
  TierSource s;
  s.tier = Tier::kHost;
  const io::HostTier* h = &host;
  s.blob_bytes = [h](ExpertKey k) -> uint64_t {
    const io::ExpertInfo* e = h->layout().Find(k.layer, k.expert);
    return e != nullptr ? e->blob_bytes : 0;
  };
  s.host_blob = [h](ExpertKey k) -> const void* { return h->Blob(k.layer, k.expert); };
  return s;
}

TierSource TierSource::Nvme(io::ExpertReader& reader) {
  TierSource s;
  s.tier = Tier::kNvme;
  io::ExpertReader* r = &reader;
  s.blob_bytes = [r](ExpertKey k) -> uint64_t {
    const io::ExpertInfo* e = r->layout().Find(k.layer, k.expert);
    return e != nullptr ? e->blob_bytes : 0;
  };
  s.reader = r;
  return s;
}

absl::Status TierLoaderOptions::Validate() const {
  if (copies_in_flight_max < 1 || copies_in_flight_max > 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tier loader: copies in flight must be in [1, 64], got ", copies_in_flight_max));
  }
  if (staging_buffers < 1 || staging_buffers > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tier loader: staging buffers must be in [1, 4096], got ", staging_buffers));
  }
  if (reads_in_flight_max < 1 || reads_in_flight_max > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tier loader: reads in flight must be in [1, 4096], got ", reads_in_flight_max));
  }
  if (host_cache_slots < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tier loader: host cache slots must be >= 0, got ", host_cache_slots));
  }
  if (host_cache_slots > 0 && read_into_slot) {
    return absl::InvalidArgumentError(
        "tier loader: a host cache needs reads to land in host memory, not in the slot");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TierLoader>> TierLoader::Create(kernels::Backend* backend,
                                                               TierSource source,
                                                               const TierLoaderOptions& options) {
  MOESTREAM_CHECK(backend != nullptr);
  MOESTREAM_RETURN_IF_ERROR(options.Validate());
  if (!source.blob_bytes) return absl::InvalidArgumentError("tier loader: source lacks blob_bytes");
  if (source.tier == Tier::kHost && !source.host_blob) {
    return absl::InvalidArgumentError("tier loader: host tier source lacks host_blob");
  }
  if (source.tier == Tier::kNvme && source.reader == nullptr) {
    return absl::InvalidArgumentError("tier loader: nvme tier source lacks a reader");
  }
  if (source.tier != Tier::kNvme && options.host_cache_slots > 0) {
    return absl::InvalidArgumentError(
        "tier loader: a host expert cache sits between NVMe and the device: it needs the nvme "
        "tier");
  }
  std::unique_ptr<TierLoader> l(new TierLoader(backend, std::move(source), options));
  MOESTREAM_RETURN_IF_ERROR(l->Init());
  return l;
}

absl::Status TierLoader::Init() {
  MOESTREAM_ASSIGN_OR_RETURN(stream_, backend_->CreateStream(kernels::StreamKind::kCopy));
  MutexLock lock(&mu_);
  copies_.resize(size_t(opt_.copies_in_flight_max));
  for (Copy& c : copies_) {
    MOESTREAM_ASSIGN_OR_RETURN(c.event, backend_->CreateEvent());
  }
  if (source_.tier == Tier::kNvme && !opt_.read_into_slot) {
    const uint64_t bytes = source_.reader->layout().max_blob_bytes();
    for (int i = 0; i < opt_.staging_buffers; ++i) {
      auto p = backend_->HostPinnedAlloc(bytes, absl::StrCat("expert staging buffer ", i));
      if (!p.ok()) {
        return absl::Status(p.status().code(),
                            absl::StrCat("tier loader: staging buffer ", i, " of ",
                                         opt_.staging_buffers, ": ", p.status().message()));
      }
      staging_.push_back(static_cast<uint8_t*>(*p));
    }
    for (int i = opt_.staging_buffers - 1; i >= 0; --i) free_staging_.push_back(i);
  }
  if (opt_.host_cache_slots > 0) {
    const io::ExpertLayout& layout = source_.reader->layout();
    policies::PolicyEnv env;
    for (int l : layout.moe_layers()) {
      env.n_layers = std::max(env.n_layers, l + 1);
      env.n_experts = std::max(env.n_experts, layout.n_experts(l));
    }
    env.top_k = opt_.top_k;
    HostCacheOptions ho;
    ho.slots = opt_.host_cache_slots;
    ho.slot_bytes = layout.max_blob_bytes();
    ho.policy = opt_.host_cache_policy;
    MOESTREAM_ASSIGN_OR_RETURN(host_cache_, HostExpertCache::Create(backend_, ho, env));
    host_stats_.slots = uint64_t(opt_.host_cache_slots);
  }
  loads_.reserve(256);
  if (source_.tier == Tier::kNvme) read_thread_ = std::thread([this] { ReadLoop(); });
  copy_thread_ = std::thread([this] { CopyLoop(); });
  return absl::OkStatus();
}

TierLoader::~TierLoader() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  if (read_thread_.joinable()) read_thread_.join();
  if (copy_thread_.joinable()) copy_thread_.join();
  if (stream_ != nullptr) (void)stream_->Synchronize();
  for (uint8_t* p : staging_) backend_->HostPinnedFree(p);
  MutexLock lock(&mu_);
  host_cache_.reset();  // no read or copy is left to use its slots
}

uint64_t TierLoader::NowNs() const { return SteadyClock().NowNs(); }

void TierLoader::BeginMoving() {
  if (moving_++ == 0) moving_since_ns_ = NowNs();
}

void TierLoader::EndMoving() {
  if (--moving_ == 0) busy_ns_ += NowNs() - moving_since_ns_;
}

uint64_t TierLoader::busy_ns() const {
  MutexLock lock(&mu_);
  return busy_ns_ + (moving_ > 0 ? NowNs() - moving_since_ns_ : 0);
}

HostCacheStats TierLoader::host_cache_stats() const {
  MutexLock lock(&mu_);
  HostCacheStats s = host_stats_;
  if (host_cache_ != nullptr) s.evictions = host_cache_->evictions();
  return s;
}

void TierLoader::CheckHostCacheInvariants() const {
  MutexLock lock(&mu_);
  if (host_cache_ != nullptr) host_cache_->CheckInvariants();
}

size_t TierLoader::outstanding() const {
  MutexLock lock(&mu_);
  return loads_.size() + finished_.size();
}

void TierLoader::Queue(LoadStage stage, LoadId id, bool prefetch) {
  if (stage == LoadStage::kQueuedRead) {
    (prefetch ? read_prefetch_ : read_demand_).push_back(id);
  } else {
    (prefetch ? copy_prefetch_ : copy_demand_).push_back(id);
  }
}

absl::Status TierLoader::StartLoad(const LoadRequest& r) {
  if (r.dst == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("tier loader: load ", r.id, " has no slot memory"));
  }
  MutexLock lock(&mu_);
  if (loads_.contains(r.id)) {
    return absl::InvalidArgumentError(absl::StrCat("tier loader: load id ", r.id, " reused"));
  }
  Load& l = loads_[r.id];
  l.req = r;
  l.bytes = source_.blob_bytes(r.key);
  l.stage = source_.tier == Tier::kNvme ? LoadStage::kQueuedRead : LoadStage::kQueuedCopy;
  if (host_cache_ != nullptr) {
    // Held in host RAM: no NVMe read, the copy takes it from the host slot
    // (pinned until the copy completes or the load is cancelled).
    l.host_slot = host_cache_->Lookup(r.key);
    if (l.host_slot >= 0) {
      l.host_hit = true;
      l.stage = LoadStage::kQueuedCopy;
      ++host_stats_.hits;
    }
  }
  Queue(l.stage, r.id, r.is_prefetch);
  return absl::OkStatus();
}

static bool EraseFrom(std::deque<LoadId>& q, LoadId id) {
  auto it = std::find(q.begin(), q.end(), id);
  if (it == q.end()) return false;
  q.erase(it);
  return true;
}

void TierLoader::Promote(LoadId id) {
  MutexLock lock(&mu_);
  auto it = loads_.find(id);
  if (it == loads_.end() || !it->second.req.is_prefetch) return;
  Load& l = it->second;
  l.req.is_prefetch = false;
  if (l.stage == LoadStage::kQueuedRead && EraseFrom(read_prefetch_, id)) read_demand_.push_back(id);
  if (l.stage == LoadStage::kQueuedCopy && EraseFrom(copy_prefetch_, id)) copy_demand_.push_back(id);
}

bool TierLoader::Cancel(LoadId id) {
  MutexLock lock(&mu_);
  auto it = loads_.find(id);
  if (it == loads_.end()) return false;
  Load& l = it->second;
  if (l.stage == LoadStage::kQueuedRead) {
    if (!EraseFrom(l.req.is_prefetch ? read_prefetch_ : read_demand_, id)) return false;
  } else if (l.stage == LoadStage::kQueuedCopy) {
    if (!EraseFrom(l.req.is_prefetch ? copy_prefetch_ : copy_demand_, id)) return false;
    if (l.staging >= 0) free_staging_.push_back(l.staging);
    // A read landed or a hit waited here: the slot stays cached, unpinned.
    if (l.host_slot >= 0) host_cache_->Unpin(l.host_slot);
  } else {
    return false;  // bytes are moving
  }
  loads_.erase(it);
  return true;
}

void TierLoader::Finish(LoadId id, absl::Status s, uint64_t link_bytes) {
  auto it = loads_.find(id);
  MOESTREAM_CHECK(it != loads_.end()) << "tier loader: finishing unknown load " << id;
  const Load& l = it->second;
  if (l.staging >= 0) free_staging_.push_back(l.staging);
  if (l.host_slot >= 0) host_cache_->Unpin(l.host_slot);  // evictable once unused
  LoadCompletion c;
  c.id = id;
  // A host-cache hit is a read from host RAM, not from the source's tier.
  c.tier = l.host_hit ? Tier::kHost : source_.tier;
  if (s.ok()) {
    c.tier_bytes = l.bytes;
    c.link_bytes = link_bytes;
    if (l.host_hit) host_stats_.host_bytes += l.bytes;
  }
  c.status = std::move(s);
  finished_.push_back(std::move(c));
  loads_.erase(it);
}

bool TierLoader::CanSubmitRead() const {
  return reads_in_flight_ < opt_.reads_in_flight_max &&
         (opt_.read_into_slot || !free_staging_.empty() ||
          (host_cache_ != nullptr && host_cache_->CanReserve())) &&
         (!read_demand_.empty() || !read_prefetch_.empty());
}

bool TierLoader::CanIssueCopy() const {
  return copy_order_.size() < copies_.size() &&
         (!copy_demand_.empty() || !copy_prefetch_.empty());
}

void TierLoader::ReadLoop() {
  std::vector<io::ExpertReadCompletion> landed;
  MutexLock lock(&mu_);
  for (;;) {
    // Submit what can start: demand first, into a host cache slot (kept
    // after the copy), else a free staging buffer, or the slot itself,
    // within the reads-in-flight limit.
    while (!stop_ && CanSubmitRead()) {
      std::deque<LoadId>& q = !read_demand_.empty() ? read_demand_ : read_prefetch_;
      const LoadId id = q.front();
      Load& l = loads_.at(id);
      io::ExpertReadRequest rr;
      rr.layer = l.req.key.layer;
      rr.expert = l.req.key.expert;
      if (opt_.read_into_slot) {
        rr.dst = static_cast<uint8_t*>(l.req.dst);
      } else {
        if (host_cache_ != nullptr) l.host_slot = host_cache_->Reserve(l.req.key);
        if (l.host_slot >= 0) {
          rr.dst = host_cache_->data(l.host_slot);
        } else if (!free_staging_.empty()) {
          l.staging = free_staging_.back();
          free_staging_.pop_back();
          rr.dst = staging_[size_t(l.staging)];
        } else {
          break;  // every buffer is taken: a finished copy frees one
        }
      }
      q.pop_front();
      rr.tag = id;
      absl::Status s = source_.reader->Submit(rr);
      if (!s.ok()) {
        if (l.host_slot >= 0) host_cache_->Filled(l.host_slot, false);
        l.host_slot = -1;
        Finish(id, std::move(s), 0);
        continue;
      }
      l.stage = LoadStage::kReading;
      ++reads_in_flight_;
      BeginMoving();
    }
    if (reads_in_flight_ == 0) {
      if (stop_) return;
      auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || CanSubmitRead(); };
      mu_.Await(absl::Condition(&wake));
      continue;
    }
    // Wait for reads without holding the lock: the engine keeps queueing.
    landed.clear();
    mu_.Unlock();
    source_.reader->Reap(&landed, /*wait=*/true);
    mu_.Lock();
    for (io::ExpertReadCompletion& rc : landed) {
      --reads_in_flight_;
      auto it = loads_.find(rc.tag);
      MOESTREAM_CHECK(it != loads_.end()) << "read completion for unknown load " << rc.tag;
      if (it->second.host_slot >= 0) {
        // Kept (and findable) only when the bytes are good; a failed read
        // frees its slot at once.
        host_cache_->Filled(it->second.host_slot, rc.status.ok());
        if (!rc.status.ok()) it->second.host_slot = -1;
      }
      if (host_cache_ != nullptr && rc.status.ok()) {
        // A miss is an NVMe read that delivered, whether or not its load is
        // later cancelled: the disk did the work either way.
        ++host_stats_.misses;
        host_stats_.nvme_bytes += it->second.bytes;
        ++(it->second.host_slot >= 0 ? host_stats_.fills : host_stats_.bypassed);
      }
      if (!rc.status.ok() || opt_.read_into_slot) {
        EndMoving();
        Finish(rc.tag, std::move(rc.status), 0);
        continue;
      }
      EndMoving();
      it->second.stage = LoadStage::kQueuedCopy;
      Queue(LoadStage::kQueuedCopy, rc.tag, it->second.req.is_prefetch);
    }
  }
}

void TierLoader::CopyLoop() {
  MutexLock lock(&mu_);
  for (;;) {
    while (!stop_ && CanIssueCopy()) {
      std::deque<LoadId>& q = !copy_demand_.empty() ? copy_demand_ : copy_prefetch_;
      const LoadId id = q.front();
      q.pop_front();
      Load& l = loads_.at(id);
      const void* src = l.host_slot >= 0 ? host_cache_->data(l.host_slot)
                        : l.staging >= 0   ? staging_[size_t(l.staging)]
                                           : source_.host_blob(l.req.key);
      if (src == nullptr) {
        Finish(id,
               absl::NotFoundError(absl::StrCat("tier loader: layer ", l.req.key.layer,
                                                " expert ", l.req.key.expert,
                                                " is not in the host tier")),
               0);
        continue;
      }
      int ci = 0;
      while (copies_[size_t(ci)].id != 0) ++ci;
      Copy& c = copies_[size_t(ci)];
      absl::Status s = backend_->CopyToDeviceAsync(l.req.dst, src, l.bytes, *stream_);
      if (s.ok()) s = stream_->Record(*c.event);
      if (!s.ok()) {
        // The stream is unusable: wait for what was issued, then report.
        (void)stream_->Synchronize();
        Finish(id, std::move(s), 0);
        continue;
      }
      c.id = id;
      l.copy = ci;
      l.stage = LoadStage::kCopying;
      copy_order_.push_back(id);
      BeginMoving();
    }
    if (copy_order_.empty()) {
      if (stop_) return;
      auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || CanIssueCopy(); };
      mu_.Await(absl::Condition(&wake));
      continue;
    }
    // Wait for the oldest copy without holding the lock.
    const LoadId id = copy_order_.front();
    Load& l = loads_.at(id);
    Copy& c = copies_[size_t(l.copy)];
    kernels::Event* ev = c.event.get();
    mu_.Unlock();
    absl::Status s = ev->Synchronize();
    mu_.Lock();
    copy_order_.pop_front();
    c.id = 0;
    EndMoving();
    const uint64_t bytes = loads_.at(id).bytes;
    Finish(id, std::move(s), bytes);
  }
}

absl::Status TierLoader::Poll(std::vector<LoadCompletion>* done, bool block) {
  MutexLock lock(&mu_);
  if (block) {
    // The next finished load, finished by the read or the copy thread.
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !finished_.empty() || loads_.empty();
    };
    mu_.Await(absl::Condition(&ready));
  }
  for (LoadCompletion& c : finished_) done->push_back(std::move(c));
  finished_.clear();
  return absl::OkStatus();
}

}  // namespace moestream::cache
