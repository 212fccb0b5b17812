#include "base/errno_status.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace moestream {
namespace {

TEST(ErrnoStatusTest, CodeFollowsErrno) {
  struct Case {
    int err;
    absl::StatusCode code;
  };
  const Case cases[] = {
      {ENOENT, absl::StatusCode::kNotFound},          {ENOTDIR, absl::StatusCode::kNotFound},
      {EACCES, absl::StatusCode::kPermissionDenied},  {EPERM, absl::StatusCode::kPermissionDenied},
      {EROFS, absl::StatusCode::kPermissionDenied},   {ENOSPC, absl::StatusCode::kResourceExhausted},
      {EDQUOT, absl::StatusCode::kResourceExhausted}, {EFBIG, absl::StatusCode::kResourceExhausted},
      {EIO, absl::StatusCode::kUnavailable},          {EBADF, absl::StatusCode::kUnavailable},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrnoStatus(c.err, "f", "op").code(), c.code) << std::strerror(c.err);
  }
}

TEST(ErrnoStatusTest, MessageNamesPathWhatAndReason) {
  absl::Status s = ErrnoStatus(ENOSPC, "/tmp/out.gguf", "write failed");
  EXPECT_EQ(std::string(s.message()),
            std::string("/tmp/out.gguf: write failed: ") + std::strerror(ENOSPC));
}

}  // namespace
}  // namespace moestream
