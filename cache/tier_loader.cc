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
        "tier loader: copies_in_flight_max must be in [1, 64], got ", copies_in_flight_max));
  }
  if (staging_buffers < 1 || staging_buffers > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tier loader: staging_buffers must be in [1, 4096], got ", staging_buffers));
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
  std::unique_ptr<TierLoader> l(new TierLoader(backend, std::move(source), options));
  MOESTREAM_RETURN_IF_ERROR(l->Init());
  return l;
}

absl::Status TierLoader::Init() {
  MOESTREAM_ASSIGN_OR_RETURN(stream_, backend_->CreateStream(kernels::StreamKind::kCopy));
  copies_.resize(size_t(opt_.copies_in_flight_max));
  for (Copy& c : copies_) {
    MOESTREAM_ASSIGN_OR_RETURN(c.event, backend_->CreateEvent());
  }
  if (source_.tier == Tier::kNvme) {
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
  loads_.reserve(256);
  return absl::OkStatus();
}

TierLoader::~TierLoader() {
  if (source_.reader != nullptr) {
    std::vector<io::ExpertReadCompletion> sink;
    while (source_.reader->in_flight() > 0) source_.reader->Reap(&sink, true);
  }
  if (stream_ != nullptr) (void)stream_->Synchronize();
  for (uint8_t* p : staging_) backend_->HostPinnedFree(p);
}

void TierLoader::QueueFor(int stage, LoadId id, bool prefetch) {
  if (stage == 0) {
    (prefetch ? read_prefetch_ : read_demand_).push_back(id);
  } else {
    (prefetch ? copy_prefetch_ : copy_demand_).push_back(id);
  }
}

absl::Status TierLoader::StartLoad(const LoadRequest& r) {
  if (loads_.contains(r.id)) {
    return absl::InvalidArgumentError(absl::StrCat("tier loader: load id ", r.id, " reused"));
  }
  if (r.dst == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("tier loader: load ", r.id, " has no slot memory"));
  }
  Load& l = loads_[r.id];
  l.req = r;
  l.bytes = source_.blob_bytes(r.key);
  l.stage = source_.tier == Tier::kNvme ? 0 : 2;
  QueueFor(l.stage, r.id, r.is_prefetch);
  return Pump();
}

static bool EraseFrom(std::deque<LoadId>& q, LoadId id) {
  auto it = std::find(q.begin(), q.end(), id);
  if (it == q.end()) return false;
  q.erase(it);
  return true;
}

void TierLoader::Promote(LoadId id) {
  auto it = loads_.find(id);
  if (it == loads_.end() || !it->second.req.is_prefetch) return;
  Load& l = it->second;
  l.req.is_prefetch = false;
  if (l.stage == 0 && EraseFrom(read_prefetch_, id)) read_demand_.push_back(id);
  if (l.stage == 2 && EraseFrom(copy_prefetch_, id)) copy_demand_.push_back(id);
}

bool TierLoader::Cancel(LoadId id) {
  auto it = loads_.find(id);
  if (it == loads_.end()) return false;
  Load& l = it->second;
  if (l.stage == 0) {
    if (!EraseFrom(l.req.is_prefetch ? read_prefetch_ : read_demand_, id)) return false;
  } else if (l.stage == 2) {
    if (!EraseFrom(l.req.is_prefetch ? copy_prefetch_ : copy_demand_, id)) return false;
    if (l.staging >= 0) free_staging_.push_back(l.staging);
  } else {
    return false;  // bytes are moving
  }
  loads_.erase(it);
  return true;
}

void TierLoader::Fail(LoadId id, absl::Status s, std::vector<LoadCompletion>* done) {
  auto it = loads_.find(id);
  MOESTREAM_CHECK(it != loads_.end());
  if (it->second.staging >= 0) free_staging_.push_back(it->second.staging);
  LoadCompletion c;
  c.id = id;
  c.status = std::move(s);
  c.tier = source_.tier;
  done->push_back(std::move(c));
  loads_.erase(it);
}

absl::Status TierLoader::Pump() {
  // NVMe reads into free staging buffers, demand first.
  while (!free_staging_.empty() && (!read_demand_.empty() || !read_prefetch_.empty())) {
    std::deque<LoadId>& q = !read_demand_.empty() ? read_demand_ : read_prefetch_;
    LoadId id = q.front();
    q.pop_front();
    Load& l = loads_.at(id);
    l.staging = free_staging_.back();
    free_staging_.pop_back();
    io::ExpertReadRequest rr;
    rr.layer = l.req.key.layer;
    rr.expert = l.req.key.expert;
    rr.dst = staging_[size_t(l.staging)];
    rr.tag = id;
    absl::Status s = source_.reader->Submit(rr);
    if (!s.ok()) {
      Fail(id, std::move(s), &failed_);
      continue;
    }
    l.stage = 1;
  }
  // Copies onto the copy stream, demand first, at most copies_in_flight_max.
  while (copy_order_.size() < copies_.size() && (!copy_demand_.empty() || !copy_prefetch_.empty())) {
    std::deque<LoadId>& q = !copy_demand_.empty() ? copy_demand_ : copy_prefetch_;
    LoadId id = q.front();
    q.pop_front();
    Load& l = loads_.at(id);
    const void* src = l.staging >= 0 ? staging_[size_t(l.staging)] : source_.host_blob(l.req.key);
    if (src == nullptr) {
      Fail(id,
           absl::NotFoundError(absl::StrCat("tier loader: layer ", l.req.key.layer, " expert ",
                                            l.req.key.expert, " is not in the host tier")),
           &failed_);
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
      Fail(id, std::move(s), &failed_);
      continue;
    }
    c.id = id;
    l.copy = ci;
    l.stage = 3;
    copy_order_.push_back(id);
  }
  return absl::OkStatus();
}

absl::Status TierLoader::ReapReads(bool wait, std::vector<LoadCompletion>* done) {
  if (source_.reader == nullptr || source_.reader->in_flight() == 0) return absl::OkStatus();
  read_done_.clear();
  source_.reader->Reap(&read_done_, wait);
  for (io::ExpertReadCompletion& rc : read_done_) {
    auto it = loads_.find(rc.tag);
    MOESTREAM_CHECK(it != loads_.end()) << "read completion for unknown load " << rc.tag;
    if (!rc.status.ok()) {
      Fail(rc.tag, std::move(rc.status), done);
      continue;
    }
    it->second.stage = 2;
    QueueFor(2, rc.tag, it->second.req.is_prefetch);
  }
  return absl::OkStatus();
}

absl::Status TierLoader::ReapCopies(bool block, std::vector<LoadCompletion>* done) {
  bool first = true;
  while (!copy_order_.empty()) {
    LoadId id = copy_order_.front();
    Load& l = loads_.at(id);
    Copy& c = copies_[size_t(l.copy)];
    if (!c.event->Query()) {
      if (!(block && first)) break;
      MOESTREAM_RETURN_IF_ERROR(c.event->Synchronize());
    }
    first = false;
    LoadCompletion lc;
    lc.id = id;
    lc.tier = source_.tier;
    lc.tier_bytes = l.bytes;
    lc.link_bytes = l.bytes;
    done->push_back(std::move(lc));
    c.id = 0;
    if (l.staging >= 0) free_staging_.push_back(l.staging);
    loads_.erase(id);
    copy_order_.pop_front();
    block = false;
  }
  return absl::OkStatus();
}

absl::Status TierLoader::Poll(std::vector<LoadCompletion>* done, bool block) {
  const size_t n0 = done->size();
  for (;;) {
    for (LoadCompletion& f : failed_) done->push_back(std::move(f));
    failed_.clear();
    MOESTREAM_RETURN_IF_ERROR(ReapReads(false, done));
    MOESTREAM_RETURN_IF_ERROR(Pump());
    MOESTREAM_RETURN_IF_ERROR(ReapCopies(false, done));
    MOESTREAM_RETURN_IF_ERROR(Pump());
    if (!failed_.empty()) continue;
    if (!block || done->size() > n0 || loads_.empty()) return absl::OkStatus();
    if (!copy_order_.empty()) {
      MOESTREAM_RETURN_IF_ERROR(ReapCopies(true, done));
    } else if (source_.reader != nullptr && source_.reader->in_flight() > 0) {
      MOESTREAM_RETURN_IF_ERROR(ReapReads(true, done));
    } else {
      return absl::InternalError(absl::StrCat("tier loader: ", loads_.size(),
                                              " loads outstanding but none in flight"));
    }
  }
}

}  // namespace moestream::cache
