// Schedules matrix products on the CPU backend's thread pool: each job's
// activation rows are converted once to the kernel's activation type (once
// for all jobs that read the same rows in the same form), then
// the output rows of all jobs are cut into contiguous chunks that the pool
// hands out in order (so one thread streams through neighbouring weight rows,
// which the hardware prefetcher follows). Within a chunk, rows are processed
// in tiles that stay in L2 while every token of the job passes over them, so a
// prefill reads each weight row from memory once. Types with a register-tiled
// kernel (TypeKernels::dot_tile) get the whole tile × tokens block in one call.
//
//   MatmulDriver d;
//   d.Run(jobs, KernelsFor(Isa::kAvx2), pool);
#ifndef MOESTREAM_KERNELS_CPU_MATMUL_DRIVER_H_
#define MOESTREAM_KERNELS_CPU_MATMUL_DRIVER_H_

#include <cstdint>
#include <span>
#include <utility>
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
  std::vector<std::pair<int32_t, int64_t>> tok_tasks_;  // (job, token) to convert
  std::vector<Chunk> chunks_;
};

}  // namespace moestream::kernels::cpu

#endif  // MOESTREAM_KERNELS_CPU_MATMUL_DRIVER_H_
