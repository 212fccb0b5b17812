// Schedules matrix products on the CPU backend's thread pool: each job's
// activation rows are converted once to the kernel's activation type, then
// the output rows of all jobs are cut into contiguous chunks that the pool
// hands out in order (so one thread streams through neighbouring weight rows,
// which the hardware prefetcher follows). Within a chunk, rows are processed
// in tiles that stay in L2 while every token of the job passes over them, so a
// prefill reads each weight row from memory once.
//
//   MatmulDriver d;
//   d.Run(jobs, KernelsFor(Isa::kAvx2), pool);
#ifndef MOESTREAM_KERNELS_CPU_MATMUL_DRIVER_H_
#define MOESTREAM_KERNELS_CPU_MATMUL_DRIVER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/thread_pool.h"

namespace moestream::kernels::cpu {

class MatmulDriver {
 public:
  // Not thread-safe: one driver per compute stream.
  void Run(std::span<const MatMulJob> jobs, const MatmulKernels& k, ThreadPool& pool);

 private:
  struct Chunk {
    int32_t job;
    int64_t r0, r1;
  };
  std::vector<uint8_t> act_;        // converted activations of all jobs
  std::vector<size_t> act_offset_;  // per job
  std::vector<Chunk> chunks_;
};

}  // namespace moestream::kernels::cpu

#endif  // MOESTREAM_KERNELS_CPU_MATMUL_DRIVER_H_
