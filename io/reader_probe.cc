// OpenExpertReader: picks the reader options.kind names, probing for "auto".
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "io/expert_tier.h"
#include "io/chunked_reader.h"
#include "io/pread_reader.h"
#ifdef MOESTREAM_HAVE_URING
#include "io/uring_reader.h"
#endif

namespace moestream::io {

absl::StatusOr<std::unique_ptr<ExpertReader>> OpenExpertReader(
    std::shared_ptr<const ExpertLayout> layout, const ReaderOptions& options,
    HostAllocator* staging) {
  MOESTREAM_RETURN_IF_ERROR(options.Validate());
  if (!layout->has_data()) {
    return absl::FailedPreconditionError(absl::StrCat(
        layout->path(), ": a header-only GGUF has no expert data to read (moestream gen "
                        "--header-only writes it for planning)"));
  }
  if (options.kind == "pread") return PreadReader::Open(std::move(layout), options, staging);
#ifdef MOESTREAM_HAVE_URING
  auto uring = UringReader::Open(layout, options, staging);
  if (uring.ok() || options.kind == "uring" || !absl::IsUnavailable(uring.status())) return uring;
  SayOnce(absl::StrCat("io_uring unavailable (", uring.status().message(),
                       "); reading experts with a pread thread pool"));
#else
  if (options.kind == "uring") {
    return absl::UnavailableError("this moestream was built without io_uring (liburing not found)");
  }
  SayOnce("built without io_uring; reading experts with a pread thread pool");
#endif
  return PreadReader::Open(std::move(layout), options, staging);
}

}  // namespace moestream::io
