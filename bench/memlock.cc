// memlock: the memory-pressure helper of bench/pressure.sh.
//
//   memlock evict FILE...   drops FILE's pages from the page cache
//                           (posix_fadvise DONTNEED: clean pages of files
//                           nobody maps), as dropping every cache would,
//                           without needing /proc/sys/vm/drop_caches
//   memlock leave SIZE      locks all available memory but SIZE (K/M/G
//                           suffixes) with mlock, prints "locked N bytes,
//                           M available" and waits for SIGINT/SIGTERM;
//                           what it holds cannot be reclaimed, so the
//                           page cache and every allocation of the
//                           benchmarked process share the SIZE left
//
// Needs CAP_IPC_LOCK (root) or an RLIMIT_MEMLOCK as large as the lock.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "base/bytes.h"

namespace {

// MemAvailable from /proc/meminfo, bytes; 0 when unreadable.
uint64_t MemAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib << 10;
  }
  return 0;
}

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

int Evict(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    const int fd = ::open(argv[i], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      std::fprintf(stderr, "memlock: evict: cannot open %s: %s\n", argv[i], std::strerror(errno));
      return 1;
    }
    const int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
    if (err != 0) {
      std::fprintf(stderr, "memlock: evict: %s: %s\n", argv[i], std::strerror(err));
      return 1;
    }
  }
  return 0;
}

int Leave(const char* size_text) {
  auto keep = moestream::ParseByteSize(size_text);
  if (!keep.ok()) {
    std::fprintf(stderr, "memlock: leave: %s\n", std::string(keep.status().message()).c_str());
    return 2;
  }
  const uint64_t avail = MemAvailable();
  if (avail == 0) {
    std::fprintf(stderr, "memlock: leave: cannot read MemAvailable from /proc/meminfo\n");
    return 1;
  }
  const uint64_t lock = avail > *keep ? avail - *keep : 0;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  void* p = nullptr;
  if (lock > 0) {
    p = ::mmap(nullptr, lock, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "memlock: leave: cannot map %llu bytes: %s\n",
                   static_cast<unsigned long long>(lock), std::strerror(errno));
      return 1;
    }
    if (::mlock(p, lock) != 0) {
      std::fprintf(stderr, "memlock: leave: mlock of %llu bytes: %s\n",
                   static_cast<unsigned long long>(lock), std::strerror(errno));
      return 1;
    }
  }
  std::printf("locked %llu bytes, %llu available\n", static_cast<unsigned long long>(lock),
              static_cast<unsigned long long>(MemAvailable()));
  std::fflush(stdout);
  while (!g_stop) ::pause();
  if (p != nullptr) ::munmap(p, lock);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "evict") == 0) return Evict(argc, argv);
  if (argc == 3 && std::strcmp(argv[1], "leave") == 0) return Leave(argv[2]);
  std::fprintf(stderr, "usage: memlock evict FILE... | memlock leave SIZE\n");
  return 2;
}
