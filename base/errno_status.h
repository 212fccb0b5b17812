// One mapping from a failed system call's errno to a Status, so every module
// reports a missing file, a refused permission or a full disk with the same
// canonical code and the same one-line shape: "<path>: <what>: <strerror>".
//
//   int fd = ::open(path.c_str(), O_RDONLY);
//   if (fd < 0) return ErrnoStatus(errno, path, "cannot open");
#ifndef MOESTREAM_BASE_ERRNO_STATUS_H_
#define MOESTREAM_BASE_ERRNO_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace moestream {

// ENOENT, ENOTDIR -> kNotFound; EACCES, EPERM, EROFS -> kPermissionDenied;
// ENOSPC, EDQUOT, EFBIG -> kResourceExhausted; anything else (EIO, ...) ->
// kUnavailable.
absl::Status ErrnoStatus(int err, std::string_view path, std::string_view what);

}  // namespace moestream

#endif  // MOESTREAM_BASE_ERRNO_STATUS_H_
