// Large CPU buffers on 2 MiB pages. A decode step streams gigabytes of
// weights; on 4 KiB pages the hardware prefetcher stops at every page
// boundary and each page costs a TLB walk, so the same kernel reads the same
// bytes measurably slower. Buffers of at least kHugePageBytes are mapped
// directly, their start aligned to 2 MiB, and marked MADV_HUGEPAGE, which
// asks for transparent huge pages where the kernel's policy is "madvise"
// (Debian's default) and is a no-op where it is "always" or "never". Nothing
// is rounded up to 2 MiB: the tail past the last whole 2 MiB stays on
// 4 KiB pages, so the memory touched is the bytes asked for, to the page.
//
//   void* p = HugePageAlloc(bytes);      // nullptr when out of memory
//   ...
//   HugePageFree(p, bytes);               // the same byte count
#ifndef MOESTREAM_KERNELS_CPU_HUGE_PAGES_H_
#define MOESTREAM_KERNELS_CPU_HUGE_PAGES_H_

#include <cstddef>

namespace moestream::kernels::cpu {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// Memory of `bytes` (> 0), aligned to kHugePageBytes, or nullptr. Like
// aligned_alloc's, its contents are unspecified (ASan builds take it from
// the sanitizer's allocator, which keeps its overflow checks).
void* HugePageAlloc(size_t bytes);

// Releases a HugePageAlloc block of the same `bytes`.
void HugePageFree(void* p, size_t bytes);

}  // namespace moestream::kernels::cpu

#endif  // MOESTREAM_KERNELS_CPU_HUGE_PAGES_H_
