#include "kernels/cpu/huge_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace moestream::kernels::cpu {
namespace {

size_t PageRounded(size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer the blocks come from its allocator, which puts
// redzones around them, so an overflow of a weight or KV buffer is still
// caught; the advice is the same.
void* HugePageAlloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t len = PageRounded(bytes);
  void* p = nullptr;
  if (posix_memalign(&p, kHugePageBytes, len) != 0) return nullptr;  // no size rule, unlike aligned_alloc
  (void)madvise(p, len, MADV_HUGEPAGE);
  return p;
}

void HugePageFree(void* p, size_t bytes) {
  (void)bytes;
  std::free(p);
}
#else
void* HugePageAlloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t len = PageRounded(bytes);
  // Map 2 MiB more than needed, then unmap the unaligned head and the tail.
  const size_t span = len + kHugePageBytes;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t a = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t start = (a + kHugePageBytes - 1) & ~(uintptr_t{kHugePageBytes} - 1);
  if (start > a) munmap(raw, start - a);
  const uintptr_t end = start + len;
  if (a + span > end) munmap(reinterpret_cast<void*>(end), a + span - end);
  // Advice only: a kernel without transparent huge pages refuses it, and the
  // block still works on 4 KiB pages.
  (void)madvise(reinterpret_cast<void*>(start), len, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(start);
}

void HugePageFree(void* p, size_t bytes) {
  if (p != nullptr) munmap(p, PageRounded(bytes));
}
#endif

}  // namespace moestream::kernels::cpu
