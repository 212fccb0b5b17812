// The one way moestream writes a file: readers of `path` see either the old
// file or the complete new one, never a prefix, and an error, a destructor
// without Commit() or SIGINT/SIGTERM leaves no temporary behind.
//
//   MOESTREAM_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(path));
//   MOESTREAM_RETURN_IF_ERROR(f.Write(header));
//   MOESTREAM_RETURN_IF_ERROR(f.WriteAt(0, patched_header));  // pwrite-style
//   MOESTREAM_RETURN_IF_ERROR(f.Commit());
//
//   MOESTREAM_RETURN_IF_ERROR(WriteFileAtomically(path, contents));
//
// Protocol: Create() makes `<path>.tmp.<pid>.<n>` in the target's directory
// (a rename is atomic only within one file system); Commit() fsyncs the file,
// renames it over `path`, then fsyncs the directory so the rename itself
// survives a power cut. Until Commit() succeeds the target is untouched.
//
// Only regular files are replaced; "-" is refused (see kStdoutPath). A symlink, FIFO, device node (/dev/full)
// or directory at `path` is refused at Create() with kFailedPrecondition
// naming the path, before anything is written: renaming over a symlink
// would silently cut it, and a FIFO or device was never meant to become a
// file.
//
// Errors name the target path. Any failed Write/WriteAt/Commit removes the
// temporary at once, and every later call returns kFailedPrecondition.
// Error codes follow errno: ENOSPC/EDQUOT/EFBIG -> kResourceExhausted,
// EACCES/EPERM/EROFS -> kPermissionDenied, ENOENT/ENOTDIR -> kNotFound,
// EIO and the rest -> kUnavailable; a write that makes no progress is
// kDataLoss.
//
// Signals: live temporaries are listed in a fixed-size process-wide registry
// that a SIGINT/SIGTERM handler walks with unlink() only (async-signal-safe),
// before the signal's default action is re-raised. Create() installs the
// handler for each signal whose disposition is the default at that moment;
// a program that ignores or handles the signal itself keeps its choice (and
// its own cleanup duty). A forked child never removes its parent's
// temporaries.
#ifndef MOESTREAM_BASE_ATOMIC_FILE_H_
#define MOESTREAM_BASE_ATOMIC_FILE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moestream {

class AtomicFile {
 public:
  // Checks the target, creates the temporary (mode 0644 less the umask) and
  // registers it for signal cleanup.
  static absl::StatusOr<AtomicFile> Create(const std::string& path);

  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  // Removes the temporary unless Commit() succeeded.
  ~AtomicFile();

  // The temporary's descriptor, for callers that need e.g. fstat; -1 after
  // Commit() or an error. Prefer Write/WriteAt, which report errors properly.
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  // Appends all of `bytes` at the current file offset.
  absl::Status Write(std::string_view bytes);
  // Writes all of `bytes` at `offset` without moving the file offset, for
  // writers that fill a file out of order (the packed store).
  absl::Status WriteAt(uint64_t offset, std::string_view bytes);
  // Before writing `bytes` (the whole file): checks that the file system has
  // that much free (kResourceExhausted naming the path, the bytes needed and
  // the bytes free), then allocates it (fallocate, where the file system
  // supports it) so the write cannot run out of space half way. Call it
  // before any long work that produces the bytes.
  absl::Status Reserve(uint64_t bytes);
  // fsync, rename over the target, fsync the directory.
  absl::Status Commit();

 private:
  AtomicFile(std::string path, std::string tmp, int fd, int slot)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd), slot_(slot) {}
  // Closes and unlinks the temporary and leaves the registry; idempotent.
  void Abandon();
  // Abandons the file and returns `s`: every error path goes through here.
  absl::Status Fail(absl::Status s);
  absl::Status CheckWritable() const;

  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  int slot_ = -1;  // registry slot, -1 when none (registry full or done)
  bool done_ = false;
};

// Writes `contents` to `path` through an AtomicFile.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// The path that means standard output for text outputs that accept it
// (WriteOutput). AtomicFile::Create refuses it rather than making a file
// named "-" (give "./-" for that).
inline constexpr std::string_view kStdoutPath = "-";

// Checks now, before any long work, that an output could be written to
// `path` later: what AtomicFile::Create checks (a regular file or nothing at
// the path, its directory exists and is writable), by creating the temporary
// and removing it at once. With `stdout_ok`, "-" passes.
absl::Status CheckOutputPath(const std::string& path, bool stdout_ok = false);

// Text outputs: "-" writes `contents` to stdout (checking the write),
// anything else goes through WriteFileAtomically.
absl::Status WriteOutput(const std::string& path, std::string_view contents);

}  // namespace moestream

#endif  // MOESTREAM_BASE_ATOMIC_FILE_H_
