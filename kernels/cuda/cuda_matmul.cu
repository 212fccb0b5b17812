// Quantized and plain matrix products, weight dequantization and GetRows on
// CUDA. Layouts and the overall scheme: kernels/cuda/cuda_ops.h. Weight
// formats: kernels/cuda/cuda_quant.h (shared with the CPU tests).
//
// Numerical choices: activations are rounded to int8 per 32-element chunk
// against the chunk's absolute maximum (d = amax / 127, round half away from
// zero), the CPU backend's Q8_0 rounding; products of int8 pairs are exact in
// int32 (dp4a), then scaled in F32; the per-16 min terms use the activation
// chunk's exact quant sums. Float weights accumulate in F32. Every kernel is
// instantiated once per type of MOESTREAM_CUDA_QUANT_TYPES /
// MOESTREAM_CUDA_FLOAT_TYPES; a type outside those lists is refused with
// cudaErrorNotSupported.
#include <cuda_fp16.h>

#include <climits>
#include <type_traits>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_quant.h"

namespace moestream::kernels::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kTokenTile = 8;  // tokens sharing one unpacked weight chunk

__device__ __forceinline__ float WarpSumF(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

size_t Align256(size_t n) { return (n + 255) / 256 * 256; }

// Calls launch(std::integral_constant<GgmlType, T>()) for the T of the
// quantized (DispatchQuant) or plain (DispatchFloat) type list equal to t and
// returns the launch error; cudaErrorNotSupported for a type not in the list.
#define MOESTREAM_CASE(T)                                        \
  case GgmlType::k##T:                                           \
    launch(std::integral_constant<GgmlType, GgmlType::k##T>());  \
    return cudaGetLastError();
template <typename F>
cudaError_t DispatchQuant(GgmlType t, F&& launch) {
  switch (t) {
    MOESTREAM_CUDA_QUANT_TYPES(MOESTREAM_CASE)
    default:
      return cudaErrorNotSupported;
  }
}
template <typename F>
cudaError_t DispatchFloat(GgmlType t, F&& launch) {
  switch (t) {
    MOESTREAM_CUDA_FLOAT_TYPES(MOESTREAM_CASE)
    default:
      return cudaErrorNotSupported;
  }
}
#undef MOESTREAM_CASE

// ActMode::kQ8_0: one warp per 32-element chunk, lane j rounds x[j].
__global__ void QuantizeActQ8_0Kernel(const float* x, int64_t n_chunks_total, int8_t* q,
                                      float4* scales) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (c >= n_chunks_total) return;
  const int lane = threadIdx.x % 32;
  const float v = x[c * 32 + lane];
  float amax = fabsf(v);
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float d = RoundToHalf(amax / 127.0f);
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  const int r = RoundEven(v * id);
  q[c * 32 + lane] = static_cast<int8_t>(r);
  // Sums over each half of 16 lanes (offsets below 16 stay within a half).
  int sum = r;
  for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const int sum1 = __shfl_sync(0xffffffffu, sum, 16);
  if (lane == 0) {
    scales[c] = make_float4(d, d * static_cast<float>(sum), d * static_cast<float>(sum1), 0.0f);
  }
}

// ActMode::kQ8_K: one warp per 256-element block, lane l rounds elements
// 8l .. 8l+7. The signed maximum is the first element of largest magnitude.
__global__ void QuantizeActQ8KKernel(const float* x, int64_t n_blocks_total, int8_t* q,
                                     float4* scales) {
  const int64_t blk = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (blk >= n_blocks_total) return;
  const int lane = threadIdx.x % 32;
  const float* xb = x + blk * 256 + lane * 8;
  float v[8];
  float amax = 0.0f, max = 0.0f;
  int at = INT_MAX;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    v[i] = xb[i];
    if (fabsf(v[i]) > amax) {
      amax = fabsf(v[i]);
      max = v[i];
      at = lane * 8 + i;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float oa = __shfl_xor_sync(0xffffffffu, amax, o);
    const float om = __shfl_xor_sync(0xffffffffu, max, o);
    const int oat = __shfl_xor_sync(0xffffffffu, at, o);
    if (oa > amax || (oa == amax && oat < at)) {
      amax = oa;
      max = om;
      at = oat;
    }
  }
  const float iscale = max != 0.0f ? -127.0f / max : 0.0f;
  const float d = max != 0.0f ? 1.0f / iscale : 0.0f;
  int sum = 0;
  int8_t* qb = q + blk * 256 + lane * 8;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    int r = RoundEven(iscale * v[i]);
    r = r < 127 ? r : 127;
    qb[i] = static_cast<int8_t>(r);
    sum += r;
  }
  // Lanes 4c .. 4c+3 hold chunk c: two lanes per 16-element half.
  const int s16 = sum + __shfl_xor_sync(0xffffffffu, sum, 1);
  const int s16_hi = __shfl_down_sync(0xffffffffu, s16, 2);
  if (lane % 4 == 0) {
    scales[blk * 8 + lane / 4] =
        make_float4(d, d * static_cast<float>(s16), d * static_cast<float>(s16_hi), 0.0f);
  }
}

struct FusedJob {
  const uint8_t* w;
  const float* xf;  // ActMode::kF32
  const int8_t* xq;
  const float4* xs;
  float* y;
  int64_t row_bytes;
  int32_t n_chunks;
  int32_t n_out;
  int32_t n_tok;
  int32_t block0;  // first block of this job in the launch
};
struct FusedJobs {
  FusedJob job[kMaxFusedJobs];
  int n;
};

// Blocks of kWarpsPerBlock warps; a warp owns one weight row and a tile of NT
// tokens. Lanes stride over the row's 32-weight chunks (adjacent lanes read
// adjacent chunks: coalesced) and unpack each once for the whole token tile.
// Int8 activations (our own aligned buffer): the chunk is two 16-byte vector
// loads plus one for its scale record, multiplied with dp4a; float
// activations: read in place.
template <GgmlType T, int NT>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    FusedQuantMatMulKernel(const __grid_constant__ FusedJobs jobs) {
  constexpr bool kInt8 = ActModeOf(T) != ActMode::kF32;
  const int b = static_cast<int>(blockIdx.x);
  int ji = 0;
  while (ji + 1 < jobs.n && b >= jobs.job[ji + 1].block0) ++ji;
  const FusedJob& job = jobs.job[ji];
  const int row_blocks = (job.n_out + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const int local = b - job.block0;
  const int tile = local / row_blocks;
  const int r = (local % row_blocks) * kWarpsPerBlock + static_cast<int>(threadIdx.x) / 32;
  if (r >= job.n_out) return;  // whole warps only: no block-wide barrier follows
  const int lane = threadIdx.x % 32;
  const int t0 = tile * NT;
  const uint8_t* row = job.w + static_cast<int64_t>(r) * job.row_bytes;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  for (int c = lane; c < job.n_chunks; c += 32) {
    Chunk32 ch;
    UnpackChunk<T>(row, c, &ch);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t0 + t < job.n_tok) {
        const int64_t xc = static_cast<int64_t>(t0 + t) * job.n_chunks + c;
        if constexpr (kInt8) {
          const int4* xp = reinterpret_cast<const int4*>(job.xq + xc * 32);
          const int4 a = xp[0], bq = xp[1];
          const int32_t words[8] = {a.x, a.y, a.z, a.w, bq.x, bq.y, bq.z, bq.w};
          const float4 s4 = job.xs[xc];
          acc[t] += ChunkDot(ch, words, ActScale{s4.x, s4.y, s4.z, s4.w});
        } else {
          // Scalar loads: the caller's activations need not be 16-byte aligned.
          acc[t] += ChunkDotF(ch, job.xf + xc * 32);
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float v = WarpSumF(acc[t]);
    if (lane == 0 && t0 + t < job.n_tok) job.y[static_cast<int64_t>(t0 + t) * job.n_out + r] = v;
  }
}

template <int NT>
cudaError_t LaunchFused(GgmlType type, const FusedJobs& jobs, int blocks, cudaStream_t s) {
  return DispatchQuant(type, [&](auto t) {
    FusedQuantMatMulKernel<decltype(t)::value, NT><<<blocks, kWarpsPerBlock * 32, 0, s>>>(jobs);
  });
}

// Plain weights: one warp per (row, token), lanes over 32-weight chunks.
template <GgmlType T>
__global__ void FloatMatVecKernel(const uint8_t* w, int64_t row_bytes, int64_t n_chunks,
                                  int64_t n_out, const float* x, float* y) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int64_t t = blockIdx.y;
  if (r >= n_out) return;
  const int lane = threadIdx.x % 32;
  const uint8_t* row = w + r * row_bytes;
  const float* xt = x + t * n_chunks * 32;
  float acc = 0.0f;
  for (int64_t c = lane; c < n_chunks; c += 32) {
    float wf[32];
    UnpackFloat32<T>(row, c, wf);
#pragma unroll
    for (int j = 0; j < 32; ++j) acc += wf[j] * xt[c * 32 + j];
  }
  acc = WarpSumF(acc);
  if (lane == 0) y[t * n_out + r] = acc;
}

// One thread per 32-weight chunk of the slab.
template <GgmlType T>
__global__ void DequantToHalfKernel(const uint8_t* w, int64_t row_bytes, int64_t n_chunks,
                                    int64_t total_chunks, __half* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total_chunks) return;
  const int64_t r = i / n_chunks, c = i % n_chunks;
  Chunk32 ch;
  UnpackChunk<T>(w + r * row_bytes, c, &ch);
  __half2* o = reinterpret_cast<__half2*>(out + r * n_chunks * 32 + c * 32);
#pragma unroll
  for (int j = 0; j < 32; j += 2) {
    const float a = ch.scale[j / 16] * static_cast<float>(ch.Q(j)) + ch.min[j / 16];
    const float b = ch.scale[(j + 1) / 16] * static_cast<float>(ch.Q(j + 1)) + ch.min[(j + 1) / 16];
    o[j / 2] = __floats2half2_rn(a, b);
  }
}

// One block per requested row, threads over its 32-element chunks.
template <GgmlType T>
__global__ void GetRowsKernel(const uint8_t* table, int64_t row_bytes, int64_t n_chunks,
                              const int32_t* ids, float* out) {
  const uint8_t* row = table + static_cast<int64_t>(ids[blockIdx.x]) * row_bytes;
  float* o = out + static_cast<int64_t>(blockIdx.x) * n_chunks * 32;
  for (int64_t c = threadIdx.x; c < n_chunks; c += blockDim.x) {
    if constexpr (CudaIsFloatType(T)) {
      float wf[32];
      UnpackFloat32<T>(row, c, wf);
#pragma unroll
      for (int j = 0; j < 32; ++j) o[c * 32 + j] = wf[j];
    } else {
      Chunk32 ch;
      UnpackChunk<T>(row, c, &ch);
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        o[c * 32 + j] = ch.scale[j / 16] * static_cast<float>(ch.Q(j)) + ch.min[j / 16];
      }
    }
  }
}

// Plain rows whose width is not a multiple of 32 (GetRows on an activation
// table): one element per thread.
__global__ void GetRowsF32Kernel(const float* table, int64_t n_in, const int32_t* ids,
                                 float* out) {
  const float* row = table + static_cast<int64_t>(ids[blockIdx.x]) * n_in;
  for (int64_t i = threadIdx.x; i < n_in; i += blockDim.x) out[blockIdx.x * n_in + i] = row[i];
}

}  // namespace

bool QuantMatMulSupported(GgmlType t) { return CudaCanCompute(t); }

size_t ActQ8Bytes(int64_t n_tok, int64_t n_in) {
  const size_t n = static_cast<size_t>(n_tok * n_in);
  return Align256(n) + Align256(n / 32 * sizeof(float4));
}

bool ActIsInt8(GgmlType t) { return ActModeOf(t) != ActMode::kF32; }

cudaError_t LaunchQuantizeAct(GgmlType type, const float* x, int64_t n_tok, int64_t n_in,
                              void* act_q8, cudaStream_t s) {
  const ActMode mode = ActModeOf(type);
  if (mode == ActMode::kF32) return cudaSuccess;
  const int64_t group = mode == ActMode::kQ8_K ? 256 : 32;
  if (n_in % group != 0) return cudaErrorInvalidValue;
  const int64_t groups = n_tok * n_in / group;
  if (groups == 0) return cudaSuccess;
  auto* q = static_cast<int8_t*>(act_q8);
  auto* scales = reinterpret_cast<float4*>(static_cast<uint8_t*>(act_q8) +
                                           Align256(static_cast<size_t>(n_tok * n_in)));
  const unsigned blocks = static_cast<unsigned>((groups + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (mode == ActMode::kQ8_K) {
    QuantizeActQ8KKernel<<<blocks, kWarpsPerBlock * 32, 0, s>>>(x, groups, q, scales);
  } else {
    QuantizeActQ8_0Kernel<<<blocks, kWarpsPerBlock * 32, 0, s>>>(x, groups, q, scales);
  }
  return cudaGetLastError();
}

cudaError_t LaunchQuantMatMulFused(GgmlType type, const QuantJob* jobs, int n, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  if (n > kMaxFusedJobs || !CudaIsQuantType(type)) return cudaErrorNotSupported;
  FusedJobs fj{};
  int blocks = 0, max_tok = 0;
  for (int i = 0; i < n; ++i) {
    const QuantJob& j = jobs[i];
    if (j.w.type != type || j.w.n_in % 32 != 0) return cudaErrorInvalidValue;
    max_tok = j.n_tok > max_tok ? static_cast<int>(j.n_tok) : max_tok;
  }
  const int nt = max_tok <= 1 ? 1 : kTokenTile;
  int m = 0;
  for (int i = 0; i < n; ++i) {
    const QuantJob& j = jobs[i];
    if (j.n_tok <= 0 || j.w.n_out <= 0) continue;
    FusedJob& f = fj.job[m++];
    f.w = static_cast<const uint8_t*>(j.w.data);
    if (ActIsInt8(type)) {
      if (j.act_q8 == nullptr) return cudaErrorInvalidValue;
      f.xq = static_cast<const int8_t*>(j.act_q8);
      f.xs = reinterpret_cast<const float4*>(static_cast<const uint8_t*>(j.act_q8) +
                                             Align256(static_cast<size_t>(j.n_tok * j.w.n_in)));
    } else {
      if (j.x == nullptr) return cudaErrorInvalidValue;
      f.xf = j.x;
    }
    f.y = j.y;
    f.row_bytes = static_cast<int64_t>(RowBytes(type, static_cast<uint64_t>(j.w.n_in)));
    f.n_chunks = static_cast<int32_t>(j.w.n_in / 32);
    f.n_out = static_cast<int32_t>(j.w.n_out);
    f.n_tok = static_cast<int32_t>(j.n_tok);
    f.block0 = blocks;
    const int row_blocks = (f.n_out + kWarpsPerBlock - 1) / kWarpsPerBlock;
    blocks += row_blocks * ((f.n_tok + nt - 1) / nt);
  }
  fj.n = m;
  if (m == 0) return cudaSuccess;
  return nt == 1 ? LaunchFused<1>(type, fj, blocks, s) : LaunchFused<kTokenTile>(type, fj, blocks, s);
}

cudaError_t LaunchFloatMatVec(const WeightView& w, const float* x, int64_t n_tok, float* y,
                              cudaStream_t s) {
  if (w.n_in % 32 != 0) return cudaErrorInvalidValue;
  if (n_tok == 0 || w.n_out == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>((w.n_out + kWarpsPerBlock - 1) / kWarpsPerBlock),
                  static_cast<unsigned>(n_tok));
  const auto* p = static_cast<const uint8_t*>(w.data);
  const int64_t rb = static_cast<int64_t>(RowBytes(w.type, static_cast<uint64_t>(w.n_in)));
  return DispatchFloat(w.type, [&](auto t) {
    FloatMatVecKernel<decltype(t)::value><<<grid, kWarpsPerBlock * 32, 0, s>>>(p, rb, w.n_in / 32,
                                                                              w.n_out, x, y);
  });
}

cudaError_t LaunchDequantToHalf(const WeightView& w, int64_t r0, int64_t rows, void* out_f16,
                                cudaStream_t s) {
  if (w.n_in % 32 != 0) return cudaErrorInvalidValue;
  const int64_t n_chunks = w.n_in / 32, total = rows * n_chunks;
  if (total == 0) return cudaSuccess;
  const int64_t rb = static_cast<int64_t>(RowBytes(w.type, static_cast<uint64_t>(w.n_in)));
  const auto* p = static_cast<const uint8_t*>(w.data) + r0 * rb;
  const unsigned blocks = static_cast<unsigned>((total + 255) / 256);
  auto* out = static_cast<__half*>(out_f16);
  return DispatchQuant(w.type, [&](auto t) {
    DequantToHalfKernel<decltype(t)::value><<<blocks, 256, 0, s>>>(p, rb, n_chunks, total, out);
  });
}

cudaError_t LaunchGetRows(const WeightView& table, const int32_t* ids, int64_t n, float* out,
                          cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>(n);
  const auto* p = static_cast<const uint8_t*>(table.data);
  if (table.type == GgmlType::kF32 && table.n_in % 32 != 0) {
    GetRowsF32Kernel<<<blocks, 256, 0, s>>>(static_cast<const float*>(table.data), table.n_in,
                                            ids, out);
    return cudaGetLastError();
  }
  if (table.n_in % 32 != 0) return cudaErrorInvalidValue;
  const int64_t rb = static_cast<int64_t>(RowBytes(table.type, static_cast<uint64_t>(table.n_in)));
  const int64_t n_chunks = table.n_in / 32;
  auto launch = [&](auto t) {
    GetRowsKernel<decltype(t)::value><<<blocks, 128, 0, s>>>(p, rb, n_chunks, ids, out);
  };
  return CudaIsQuantType(table.type) ? DispatchQuant(table.type, launch)
                                     : DispatchFloat(table.type, launch);
}

}  // namespace moestream::kernels::cuda
