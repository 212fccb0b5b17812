#include "base/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "base/strings.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace moestream {
namespace {

using ::moestream::testing::ReadFileOrDie;
using ::moestream::testing::ScratchDir;
using ::moestream::testing::WriteFileOrDie;

// Names in `dir`, sorted: what a writer left behind.
std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool Contains(absl::string_view haystack, absl::string_view needle) {
  return absl::StrContains(haystack, needle);
}

TEST(AtomicFileTest, CreatesThenReplacesLeavingOnlyTheTarget) {
  ScratchDir dir;
  const std::string path = dir.Path("out.bin");
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  EXPECT_EQ(ReadFileOrDie(path), "first");
  ASSERT_TRUE(WriteFileAtomically(path, "second, longer").ok());
  EXPECT_EQ(ReadFileOrDie(path), "second, longer");
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFileTest, TargetUntouchedUntilCommit) {
  ScratchDir dir;
  const std::string path = dir.Path("out.bin");
  WriteFileOrDie(path, "old");
  auto f = AtomicFile::Create(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(f->Write("new contents").ok());
  EXPECT_EQ(ReadFileOrDie(path), "old");
  EXPECT_EQ(Entries(dir.path()).size(), 2u);  // target and temporary, side by side
  ASSERT_TRUE(f->Commit().ok());
  EXPECT_EQ(ReadFileOrDie(path), "new contents");
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFileTest, WriteAtFillsOutOfOrder) {
  ScratchDir dir;
  const std::string path = dir.Path("out.bin");
  auto f = AtomicFile::Create(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(f->WriteAt(4, "5678").ok());
  ASSERT_TRUE(f->WriteAt(0, "1234").ok());
  ASSERT_TRUE(f->Write("abcd").ok());  // WriteAt does not move the append offset
  ASSERT_TRUE(f->Commit().ok());
  EXPECT_EQ(ReadFileOrDie(path), "abcd5678");
}

TEST(AtomicFileTest, DestructionWithoutCommitRemovesTemporary) {
  ScratchDir dir;
  const std::string path = dir.Path("out.bin");
  WriteFileOrDie(path, "old");
  {
    auto f = AtomicFile::Create(path);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE(f->Write("abandoned").ok());
  }
  EXPECT_EQ(ReadFileOrDie(path), "old");
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFileTest, MovedFileCommitsOnceAndMovedFromIsInert) {
  ScratchDir dir;
  const std::string path = dir.Path("out.bin");
  auto f = AtomicFile::Create(path);
  ASSERT_TRUE(f.ok()) << f.status();
  AtomicFile a = std::move(f).value();
  ASSERT_TRUE(a.Write("moved").ok());
  AtomicFile b = std::move(a);
  ASSERT_TRUE(b.Commit().ok());
  EXPECT_EQ(ReadFileOrDie(path), "moved");
  EXPECT_EQ(b.Commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.Write("x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFileTest, MissingDirectoryIsNotFoundNamingThePath) {
  ScratchDir dir;
  const std::string path = dir.Path("no/such/out.bin");
  absl::Status s = WriteFileAtomically(path, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(Contains(s.message(), path)) << s;
}

// A write that the kernel refuses (EFBIG past RLIMIT_FSIZE, the same path as
// ENOSPC) fails naming the target and leaves nothing behind. Run in a child
// so the limit does not outlive the test; the child reports by exit code.
TEST(AtomicFileTest, FailedWriteLeavesNothingBehind) {
  ScratchDir dir;
  const std::string path = dir.Path("out.bin");
  for (bool positional : {false, true}) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of death
      struct rlimit lim = {4096, 4096};
      if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(10);
      auto f = AtomicFile::Create(path);
      if (!f.ok()) ::_exit(11);
      const std::string big(64 << 10, 'x');
      absl::Status s = positional ? f->WriteAt(0, big) : f->Write(big);
      if (s.code() != absl::StatusCode::kResourceExhausted) ::_exit(12);
      if (!Contains(s.message(), path)) ::_exit(13);
      // Removed at the error, not only at destruction.
      if (Entries(dir.path()).size() != 0) ::_exit(14);
      if (f->Commit().code() != absl::StatusCode::kFailedPrecondition) ::_exit(15);
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << (positional ? "WriteAt" : "Write");
    EXPECT_TRUE(Entries(dir.path()).empty());
  }
}

// Reserve() refuses more bytes than the file system has free, naming the
// path and both sizes, and removes the temporary at once; a size that fits
// is allocated and the file still commits.
TEST(AtomicFileTest, ReserveChecksFreeSpaceBeforeWriting) {
  ScratchDir dir;
  const std::string path = dir.Path("huge.bin");
  auto f = AtomicFile::Create(path);
  ASSERT_TRUE(f.ok()) << f.status();
  absl::Status s = f->Reserve(uint64_t{1} << 62);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_TRUE(Contains(s.message(), path)) << s;
  EXPECT_TRUE(Contains(s.message(), "needs 4194304.0 TiB")) << s;
  EXPECT_TRUE(Contains(s.message(), "free")) << s;
  EXPECT_TRUE(Entries(dir.path()).empty());
  EXPECT_EQ(f->Commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(std::filesystem::exists(path));

  auto g = AtomicFile::Create(path);
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(g->Reserve(8192).ok());
  ASSERT_TRUE(g->Write(std::string(8192, 'x')).ok());
  ASSERT_TRUE(g->Commit().ok());
  EXPECT_EQ(std::filesystem::file_size(path), 8192u);
}

// "-" is never a file name an output is written to; CheckOutputPath and
// WriteOutput accept it as standard output where asked.
TEST(AtomicFileTest, DashIsStandardOutputNeverAFile) {
  ScratchDir dir;
  ASSERT_EQ(::chdir(dir.path().c_str()), 0);
  auto f = AtomicFile::Create("-");
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(CheckOutputPath("-").ok());
  EXPECT_TRUE(CheckOutputPath("-", /*stdout_ok=*/true).ok());
  EXPECT_TRUE(CheckOutputPath(dir.Path("ok.csv")).ok());
  EXPECT_FALSE(CheckOutputPath(dir.Path("no/such/dir/x.csv")).ok());
  EXPECT_TRUE(Entries(dir.path()).empty());  // the check leaves nothing behind
  ASSERT_TRUE(WriteOutput("-", "").ok());
  EXPECT_TRUE(Entries(dir.path()).empty());
  ASSERT_EQ(::chdir("/"), 0);
}

// Every kind of non-regular target is refused at Create(), nothing is
// written, and what was there is still there.
class NonRegularTargetTest : public ::testing::Test {
 protected:
  void ExpectRefused(const std::string& path, std::string_view kind) {
    const std::vector<std::string> before = Entries(dir_.path());
    auto f = AtomicFile::Create(path);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition) << f.status();
    EXPECT_TRUE(Contains(f.status().message(), path)) << f.status();
    EXPECT_TRUE(Contains(f.status().message(), Av(kind))) << f.status();
    EXPECT_EQ(f.status().message().find('\n'), std::string::npos);
    absl::Status s = WriteFileAtomically(path, "data");
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(Entries(dir_.path()), before);
  }
  ScratchDir dir_;
};

TEST_F(NonRegularTargetTest, Fifo) {
  const std::string path = dir_.Path("fifo");
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
  ExpectRefused(path, "FIFO");
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(NonRegularTargetTest, Symlink) {
  const std::string real = dir_.Path("real");
  const std::string link = dir_.Path("link");
  WriteFileOrDie(real, "kept");
  ASSERT_EQ(::symlink("real", link.c_str()), 0);
  ExpectRefused(link, "symbolic link");
  EXPECT_EQ(ReadFileOrDie(real), "kept");
  struct stat st;
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(NonRegularTargetTest, Directory) {
  const std::string path = dir_.Path("sub");
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  ExpectRefused(path, "directory");
  EXPECT_TRUE(std::filesystem::is_empty(path));
}

TEST_F(NonRegularTargetTest, DeviceNode) {
  if (::access("/dev/full", F_OK) != 0) GTEST_SKIP() << "no /dev/full on this system";
  auto f = AtomicFile::Create("/dev/full");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition) << f.status();
  EXPECT_TRUE(Contains(f.status().message(), "/dev/full")) << f.status();
  EXPECT_TRUE(Contains(f.status().message(), "character device")) << f.status();
  struct stat st;
  ASSERT_EQ(::lstat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

// A child writing a large file is killed by `sig` mid-write: it dies of that
// signal (default action re-raised) and its temporary is gone.
class SignalCleanupTest : public ::testing::TestWithParam<int> {};

TEST_P(SignalCleanupTest, TemporaryRemovedAndSignalReraised) {
  const int sig = GetParam();
  ScratchDir dir;
  const std::string path = dir.Path("out.bin");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(ready[0]);
    // A test runner started in the background may ignore SIGINT; the child
    // restores the default so that Create() takes the signal over.
    ::signal(sig, SIG_DFL);
    auto f = AtomicFile::Create(path);
    if (!f.ok()) ::_exit(11);
    const std::string chunk(64 << 10, 'x');
    if (!f->Write(chunk).ok()) ::_exit(12);
    if (::write(ready[1], "r", 1) != 1) ::_exit(13);
    // Keep writing until the signal lands; bounded so a lost signal cannot
    // fill the disk, then wait for it.
    for (int i = 0; i < 4096; ++i) {
      if (!f->Write(chunk).ok()) ::_exit(14);
    }
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  // The temporary exists while the child writes.
  EXPECT_EQ(Entries(dir.path()).size(), 1u);
  ASSERT_EQ(::kill(pid, sig), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), sig);
  EXPECT_TRUE(Entries(dir.path()).empty());
}

INSTANTIATE_TEST_SUITE_P(Signals, SignalCleanupTest, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGTERM ? "Sigterm" : "Sigint");
                         });

}  // namespace
}  // namespace moestream
