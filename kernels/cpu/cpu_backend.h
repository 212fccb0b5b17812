// The CPU backend: first-class compute on the host (the host-compute path of
// hybrid mode, and the backend every test runs on GPU-less machines).
//
// Device memory is an arena of counted, 64-byte aligned host allocations with
// a hard budget; pinned host memory is page-aligned allocations with their own
// budget (optionally mlock'ed). Ops run synchronously on the calling thread
// (the compute stream), split across a thread pool of `threads` threads, with
// matrix kernels chosen at run time from CPUID (kernels/cpu/matmul_kernels.h).
// Copy streams are copy-engine threads on a link throttled to a LinkProfile
// (kernels/cpu/cpu_streams.h).
//
// Threading: memory, stream and event calls are thread-safe; ops are not (they
// are the compute stream: call them from one thread). An Event must outlive
// the stream work that records or waits on it.
//
//   BackendOptions o;  o.kind = "cpu";  o.threads = 4;  o.link = "pcie4x16";
//   MOESTREAM_ASSIGN_OR_RETURN(std::unique_ptr<Backend> be, CreateCpuBackend(o));
#ifndef MOESTREAM_KERNELS_CPU_CPU_BACKEND_H_
#define MOESTREAM_KERNELS_CPU_CPU_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace moestream::kernels {

// Fails with kInvalidArgument for bad options and kUnavailable when o.isa
// names an instruction set this CPU lacks.
absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const BackendOptions& o);

}  // namespace moestream::kernels

#endif  // MOESTREAM_KERNELS_CPU_CPU_BACKEND_H_
