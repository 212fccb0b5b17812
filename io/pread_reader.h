// PreadReader: the ExpertReader fallback for kernels or sandboxes without
// io_uring. A pool of `options.threads` threads runs pread(2) on the same
// aligned, block-sized operations the io_uring reader would issue (see
// io/chunked_reader.h), with O_DIRECT where the file system allows it.
//
//   ReaderOptions o;  o.kind = "pread";  o.threads = 8;
//   MOESTREAM_ASSIGN_OR_RETURN(auto r, PreadReader::Open(layout, o));
#ifndef MOESTREAM_IO_PREAD_READER_H_
#define MOESTREAM_IO_PREAD_READER_H_

#include <memory>

#include "io/expert_tier.h"

namespace moestream::io {

class PreadReader {
 public:
  static absl::StatusOr<std::unique_ptr<ExpertReader>> Open(
      std::shared_ptr<const ExpertLayout> layout, const ReaderOptions& options,
      HostAllocator* staging = nullptr);
};

}  // namespace moestream::io

#endif  // MOESTREAM_IO_PREAD_READER_H_
