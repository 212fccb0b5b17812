// The memory bandwidth baseline the benchmarks divide by: memcpy over
// buffers larger than any cache, split across `threads` threads of a pool,
// measured in the same process as what it is compared with.
//
//   const double copy_gbps = MeasureMemcpyGbps(2, 2);   // bytes copied per s / 1e9
//   ratio = weight_gbps / (2 * copy_gbps);              // a copy reads and writes
#ifndef MOESTREAM_KERNELS_CPU_MEMCPY_PROBE_H_
#define MOESTREAM_KERNELS_CPU_MEMCPY_PROBE_H_

namespace moestream::kernels::cpu {

// Bytes copied per second (÷1e9) by the fastest of `reps` copies of 128 MiB
// with `threads` threads (0 = one per core): passes slowed by other work on
// the machine do not lower the baseline. The buffers are allocated (on 2 MiB pages, as
// the CPU backend's large buffers are) and touched once per process and kept.
double MeasureMemcpyGbps(int threads, int reps);

// Bytes read per second (÷1e9) by the fastest of `reps` passes summing the words of a
// 128 MiB buffer with `threads` threads (0 = one per core): what a kernel
// that only streams its operand could reach. On machines whose writes are
// cheap, memcpy's traffic (2 × copied) exceeds it.
double MeasureReadGbps(int threads, int reps);

}  // namespace moestream::kernels::cpu

#endif  // MOESTREAM_KERNELS_CPU_MEMCPY_PROBE_H_
