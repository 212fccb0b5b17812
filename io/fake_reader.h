// FakeReader: an ExpertReader over an in-memory file image, with injected
// faults, for tests of everything above the NVMe tier (the expert cache, the
// engine) and of the read machinery itself. It runs the same chunking,
// staging, retry and checksum logic as UringReader and PreadReader
// (io/chunked_reader.h); only the I/O queue is fake. Operations complete out
// of order (seeded), and with `direct` the O_DIRECT alignment rules are
// enforced (an unaligned offset, length or buffer fails with EINVAL), so an
// alignment bug shows up here, not first on a real disk.
//
//   auto r = FakeReader::Create(layout, ReadFileOrDie(path), ReaderOptions{});
//   r->InjectFault({FakeFault::Kind::kEio, /*offset=*/layout->Find(1, 2)->segments[0].file_offset});
//   r->Truncate(4096);        // the file shrank after it was opened
//   r->CorruptByte(offset);   // a store blob no longer matches its checksum
#ifndef MOESTREAM_IO_FAKE_READER_H_
#define MOESTREAM_IO_FAKE_READER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "io/chunked_reader.h"

namespace moestream::io {

struct FakeFault {
  enum class Kind {
    kEio,        // the op covering `offset` fails with -EIO
    kShortRead,  // the op covering `offset` returns fewer bytes than asked
    kEagain,     // the op covering `offset` fails with -EAGAIN (retried)
  };
  Kind kind = Kind::kEio;
  uint64_t offset = 0;
  int times = 1;  // ops it affects; -1 = every op, forever
};

class FakeQueue;

class FakeReader : public ChunkedReader {
 public:
  static std::unique_ptr<FakeReader> Create(std::shared_ptr<const ExpertLayout> layout,
                                            std::string image, const ReaderOptions& options,
                                            bool direct = true, uint64_t seed = 1);

  void InjectFault(const FakeFault& fault);
  void Truncate(uint64_t size);
  void CorruptByte(uint64_t offset);
  uint64_t faults_fired() const;

 private:
  FakeReader(std::shared_ptr<const ExpertLayout> layout, const ReaderOptions& options, bool direct,
             std::unique_ptr<StagingRing> staging);
  FakeQueue* fake_ = nullptr;  // owned by the base class
};

}  // namespace moestream::io

#endif  // MOESTREAM_IO_FAKE_READER_H_
