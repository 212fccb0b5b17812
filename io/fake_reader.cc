#include "io/fake_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#include "base/check.h"

namespace moestream::io {

class FakeQueue : public IoQueue {
 public:
  FakeQueue(std::string image, bool direct, uint64_t seed)
      : image_(std::move(image)), direct_(direct), rng_(seed) {}

  void Submit(const IoOp& op) override { pending_.push_back(op); }

  // Completes a random non-empty subset of the pending ops (all of them when
  // few), in random order.
  void Poll(std::vector<IoResult>* out, bool wait) override {
    if (pending_.empty()) return;
    std::shuffle(pending_.begin(), pending_.end(), rng_);
    size_t n = pending_.size() <= 2 ? pending_.size()
                                    : 1 + std::uniform_int_distribution<size_t>(
                                              0, pending_.size() - 1)(rng_);
    if (!wait && std::uniform_int_distribution<int>(0, 3)(rng_) == 0) n = 0;  // nothing ready yet
    for (size_t i = 0; i < n; ++i) out->push_back({pending_[i].id, Execute(pending_[i])});
    pending_.erase(pending_.begin(), pending_.begin() + long(n));
  }

  std::vector<FakeFault> faults;
  uint64_t fired = 0;
  std::string image_;

 private:
  int64_t Execute(const IoOp& op) {
    if (direct_ && (op.offset % 4096 != 0 || op.len % 4096 != 0 ||
                    reinterpret_cast<uintptr_t>(op.buf) % 4096 != 0)) {
      return -EINVAL;
    }
    uint64_t len = op.len;
    for (FakeFault& f : faults) {
      if (f.times == 0 || f.offset < op.offset || f.offset >= op.offset + op.len) continue;
      if (f.kind == FakeFault::Kind::kShortRead) {
        // Stop before the fault offset, aligned as O_DIRECT would; an op too
        // small to shorten that way is left alone.
        uint64_t keep = direct_ ? std::max<uint64_t>(4096, f.offset - op.offset) / 4096 * 4096
                                : std::max<uint64_t>(1, f.offset - op.offset);
        if (keep >= op.len) continue;
        len = keep;
      }
      if (f.times > 0) --f.times;
      ++fired;
      if (f.kind == FakeFault::Kind::kEio) return -EIO;
      if (f.kind == FakeFault::Kind::kEagain) return -EAGAIN;
      break;
    }
    if (op.offset >= image_.size()) return 0;
    len = std::min<uint64_t>(len, image_.size() - op.offset);
    std::memcpy(op.buf, image_.data() + op.offset, len);
    return int64_t(len);
  }

  bool direct_;
  std::mt19937_64 rng_;
  std::vector<IoOp> pending_;
};

FakeReader::FakeReader(std::shared_ptr<const ExpertLayout> layout, const ReaderOptions& options,
                       bool direct, std::unique_ptr<StagingRing> staging)
    : ChunkedReader("fake", std::move(layout), options, direct, std::move(staging)) {}

std::unique_ptr<FakeReader> FakeReader::Create(std::shared_ptr<const ExpertLayout> layout,
                                               std::string image, const ReaderOptions& options,
                                               bool direct, uint64_t seed) {
  MOESTREAM_CHECK(options.Validate().ok()) << options.Validate();
  auto ring = StagingRing::Create(options.queue_depth, options.block_bytes, nullptr);
  MOESTREAM_CHECK(ring.ok()) << ring.status();
  std::unique_ptr<FakeReader> r(
      new FakeReader(std::move(layout), options, direct, std::move(ring).value()));
  auto q = std::make_unique<FakeQueue>(std::move(image), direct, seed);
  r->fake_ = q.get();
  r->set_queue(std::move(q));
  return r;
}

void FakeReader::InjectFault(const FakeFault& fault) { fake_->faults.push_back(fault); }
void FakeReader::Truncate(uint64_t size) {
  if (size < fake_->image_.size()) fake_->image_.resize(size);
}
void FakeReader::CorruptByte(uint64_t offset) {
  MOESTREAM_CHECK(offset < fake_->image_.size());
  fake_->image_[offset] = char(fake_->image_[offset] ^ 0x5a);
}
uint64_t FakeReader::faults_fired() const { return fake_->fired; }

}  // namespace moestream::io
