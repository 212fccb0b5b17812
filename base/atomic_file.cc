#include "base/atomic_file.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/bytes.h"
#include "base/errno_status.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace moestream {
namespace {

// ---- Registry of live temporaries, read by the signal handler ----
//
// A fixed array (no allocation, no locks) so the handler can walk it with
// nothing but atomic loads and unlink(). A slot is claimed (kFree -> kBusy),
// filled, then published (kLive); the handler only touches kLive slots.
// 128 temporaries alive at once is far beyond any writer here; past that a
// file still works but is not removed on a signal.

enum SlotState : int { kFree = 0, kBusy = 1, kLive = 2 };

struct Slot {
  std::atomic<int> state{kFree};
  pid_t owner = 0;  // a forked child must not remove its parent's files
  char path[PATH_MAX] = {};
};

constexpr int kSlots = 128;
Slot g_slots[kSlots];
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free atomics");

std::atomic<uint64_t> g_next_temp{0};

int Register(const std::string& tmp) {
  if (tmp.size() >= PATH_MAX) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (g_slots[i].state.compare_exchange_strong(expected, kBusy, std::memory_order_acquire)) {
      std::memcpy(g_slots[i].path, tmp.c_str(), tmp.size() + 1);
      g_slots[i].owner = ::getpid();
      g_slots[i].state.store(kLive, std::memory_order_release);
      return i;
    }
  }
  return -1;
}

void Unregister(int slot) {
  if (slot >= 0) g_slots[slot].state.store(kFree, std::memory_order_release);
}

// Async-signal-safe: atomic loads, getpid(), unlink() and raise() only.
extern "C" void RemoveTemporariesAndReraise(int sig) {
  const int saved_errno = errno;
  const pid_t self = ::getpid();
  for (Slot& s : g_slots) {
    if (s.state.load(std::memory_order_acquire) == kLive && s.owner == self) ::unlink(s.path);
  }
  // SA_RESETHAND restored the default action on entry; the raised signal is
  // delivered when this handler returns and ends the process as `sig` would.
  ::raise(sig);
  errno = saved_errno;
}

// Checked at every Create() rather than once: one sigaction() call is
// nothing next to creating a file, and a program that resets a signal to its
// default later still gets the cleanup.
void InstallSignalCleanup() {
  for (int sig : {SIGINT, SIGTERM}) {
    struct sigaction old;
    if (::sigaction(sig, nullptr, &old) != 0) continue;
    // Only a default disposition is ours to replace: an ignored signal must
    // stay ignored, and a program's own handler owns the shutdown.
    if ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL) continue;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = RemoveTemporariesAndReraise;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    ::sigaction(sig, &sa, nullptr);
  }
}

// ---- Target checks ----

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "directory";
  if (S_ISLNK(mode)) return "symbolic link";
  if (S_ISFIFO(mode)) return "FIFO";
  if (S_ISCHR(mode)) return "character device";
  if (S_ISBLK(mode)) return "block device";
  if (S_ISSOCK(mode)) return "socket";
  return "special file";
}

// OK when nothing is at `path` or a regular file is; an error otherwise.
absl::Status CheckReplaceable(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    // ENOENT: a new file (a missing directory is reported by open()).
    return errno == ENOENT ? absl::OkStatus() : ErrnoStatus(errno, path, "cannot stat");
  }
  if (S_ISREG(st.st_mode)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      path, ": is a ", KindOf(st.st_mode), ", not a regular file; refusing to replace it"));
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::StatusOr<AtomicFile> AtomicFile::Create(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("expected an output path, got an empty one");
  if (path == kStdoutPath) {
    return absl::InvalidArgumentError(
        "'-' (standard output) cannot take this output; give ./- for a file named '-'");
  }
  if (path.back() == '/') {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a file name, got a directory"));
  }
  MOESTREAM_RETURN_IF_ERROR(CheckReplaceable(path));
  InstallSignalCleanup();
  // O_EXCL plus a per-process counter: two writers of one target in one
  // process, or a stale temporary of an earlier process with our pid, never
  // share a temporary.
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::string tmp = absl::StrCat(path, ".tmp.", ::getpid(), ".",
                                   g_next_temp.fetch_add(1, std::memory_order_relaxed));
    // Registered before it exists: a signal between open() and Register()
    // would otherwise leave it behind (unlinking a missing name is harmless).
    int slot = Register(tmp);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return AtomicFile(path, std::move(tmp), fd, slot);
    const int err = errno;
    Unregister(slot);
    if (err == EINTR || err == EEXIST) continue;
    return ErrnoStatus(err, path, "cannot create a temporary next to it");
  }
  return absl::AlreadyExistsError(
      absl::StrCat(path, ": cannot create a temporary next to it: every name tried exists"));
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)),
      tmp_(std::move(other.tmp_)),
      fd_(std::exchange(other.fd_, -1)),
      slot_(std::exchange(other.slot_, -1)),
      done_(std::exchange(other.done_, true)) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    Abandon();
    path_ = std::move(other.path_);
    tmp_ = std::move(other.tmp_);
    fd_ = std::exchange(other.fd_, -1);
    slot_ = std::exchange(other.slot_, -1);
    done_ = std::exchange(other.done_, true);
  }
  return *this;
}

AtomicFile::~AtomicFile() { Abandon(); }

void AtomicFile::Abandon() {
  if (done_) return;
  done_ = true;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  // After the unlink: a signal in between finds the name already gone.
  Unregister(std::exchange(slot_, -1));
}

absl::Status AtomicFile::Fail(absl::Status s) {
  Abandon();
  return s;
}

absl::Status AtomicFile::CheckWritable() const {
  if (done_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": already committed or abandoned after an error"));
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Write(std::string_view bytes) {
  MOESTREAM_RETURN_IF_ERROR(CheckWritable());
  const char* p = bytes.data();
  size_t n = bytes.size();
  while (n > 0) {
    // Linux moves at most ~2 GiB per call; ask for 1 GiB at a time.
    ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Fail(ErrnoStatus(errno, path_, "write failed"));
    if (w == 0) {
      return Fail(absl::DataLossError(
          absl::StrCat(path_, ": short write: the file system accepted 0 of ", n, " bytes")));
    }
    p += w;
    n -= size_t(w);
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::WriteAt(uint64_t offset, std::string_view bytes) {
  MOESTREAM_RETURN_IF_ERROR(CheckWritable());
  const char* p = bytes.data();
  size_t n = bytes.size();
  while (n > 0) {
    ssize_t w = ::pwrite(fd_, p, std::min<size_t>(n, size_t{1} << 30), off_t(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      const int err = errno;  // before StrCat allocates
      return Fail(ErrnoStatus(err, path_, absl::StrCat("write at offset ", offset, " failed")));
    }
    if (w == 0) {
      return Fail(absl::DataLossError(absl::StrCat(path_, ": short write at offset ", offset,
                                                   ": the file system accepted 0 of ", n, " bytes")));
    }
    p += w;
    n -= size_t(w);
    offset += uint64_t(w);
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Reserve(uint64_t bytes) {
  MOESTREAM_RETURN_IF_ERROR(CheckWritable());
  struct statvfs fs;
  if (::fstatvfs(fd_, &fs) == 0) {
    const uint64_t free_bytes = uint64_t(fs.f_bavail) * uint64_t(fs.f_frsize);
    if (bytes > free_bytes) {
      return Fail(absl::ResourceExhaustedError(absl::StrCat(
          path_, ": needs ", FormatBytes(bytes), " but its file system has ",
          FormatBytes(free_bytes), " free")));
    }
  }
  if (bytes == 0) return absl::OkStatus();
  int rc;
  do {
    rc = ::fallocate(fd_, 0, 0, off_t(bytes));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) {
    const int err = errno;
    return Fail(ErrnoStatus(err, path_, absl::StrCat("cannot allocate ", FormatBytes(bytes))));
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Commit() {
  MOESTREAM_RETURN_IF_ERROR(CheckWritable());
  // fsync before rename: otherwise a crash can leave the new name pointing
  // at a file whose data never reached the disk.
  if (::fsync(fd_) != 0) return Fail(ErrnoStatus(errno, path_, "fsync failed"));
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) return Fail(ErrnoStatus(errno, path_, "close failed"));
  // Something may have appeared at the target since Create().
  if (absl::Status s = CheckReplaceable(path_); !s.ok()) return Fail(std::move(s));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    return Fail(ErrnoStatus(errno, path_, "rename from the temporary failed"));
  }
  done_ = true;
  Unregister(std::exchange(slot_, -1));
  // The rename is durable only once the directory entry is on disk.
  const std::string dir = DirName(path_);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return ErrnoStatus(errno, path_, "written, but its directory cannot be opened to fsync");
  }
  int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  // Some file systems cannot fsync a directory (EINVAL); nothing more to do there.
  if (rc != 0 && err != EINVAL && err != ENOTSUP) {
    return ErrnoStatus(err, path_, "written, but fsync of its directory failed");
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  MOESTREAM_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(path));
  MOESTREAM_RETURN_IF_ERROR(file.Write(contents));
  return file.Commit();
}

absl::Status CheckOutputPath(const std::string& path, bool stdout_ok) {
  if (stdout_ok && path == kStdoutPath) return absl::OkStatus();
  // The temporary is removed when `file` goes out of scope.
  return AtomicFile::Create(path).status();
}

absl::Status WriteOutput(const std::string& path, std::string_view contents) {
  if (path != kStdoutPath) return WriteFileAtomically(path, contents);
  std::fflush(stdout);
  const size_t n = std::fwrite(contents.data(), 1, contents.size(), stdout);
  if (n != contents.size() || std::fflush(stdout) != 0) {
    const int err = errno;
    return ErrnoStatus(err, "standard output", "write failed");
  }
  return absl::OkStatus();
}

}  // namespace moestream
