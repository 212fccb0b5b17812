// CUDA kernels for CudaBackend's ops. Layout assumptions and the reference
// they are tested against are in kernels/cuda/cuda_ops.h. Numerical choices:
// F32 accumulation everywhere; softmax and attention subtract the row max;
// RoPE angles are computed in F32 from the same formulas as the CPU backend
// (YaRN ramp and magnitude scale as llama.cpp reads them from GGUF).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "kernels/cuda/cuda_ops.h"

namespace moestream::kernels::cuda {
namespace {

constexpr int kThreads = 256;

int Blocks(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

__device__ float HalfBits(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ float Bf16Bits(uint16_t b) { return __uint_as_float(static_cast<uint32_t>(b) << 16); }
__device__ uint16_t Load16(const uint8_t* p) { return uint16_t(p[0]) | (uint16_t(p[1]) << 8); }

// Q4_K scale/min of sub-block j (0..7) from the 12 packed 6-bit bytes.
__device__ void Q4kScaleMin(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Element i of a row in ggml's block layout for `type`.
__device__ float DequantAt(GgmlType type, const uint8_t* row, int64_t i) {
  switch (type) {
    case GgmlType::kF32:
      return reinterpret_cast<const float*>(row)[i];
    case GgmlType::kF16:
      return HalfBits(reinterpret_cast<const uint16_t*>(row)[i]);
    case GgmlType::kBF16:
      return Bf16Bits(reinterpret_cast<const uint16_t*>(row)[i]);
    case GgmlType::kQ8_0: {
      const uint8_t* b = row + (i / 32) * 34;
      return HalfBits(Load16(b)) * static_cast<float>(static_cast<int8_t>(b[2 + i % 32]));
    }
    case GgmlType::kQ4_0: {
      const uint8_t* b = row + (i / 32) * 18;
      int j = static_cast<int>(i % 32);
      int q = j < 16 ? (b[2 + j] & 0xF) : (b[2 + j - 16] >> 4);
      return HalfBits(Load16(b)) * static_cast<float>(q - 8);
    }
    case GgmlType::kQ4_K: {
      const uint8_t* b = row + (i / 256) * 144;
      int j = static_cast<int>(i % 256);
      int chunk = j / 64, within = j % 64;
      int is = chunk * 2 + (within >= 32 ? 1 : 0);
      int sc, m;
      Q4kScaleMin(b + 4, is, &sc, &m);
      uint8_t q = b[16 + chunk * 32 + within % 32];
      int nib = within < 32 ? (q & 0xF) : (q >> 4);
      return HalfBits(Load16(b)) * sc * nib - HalfBits(Load16(b + 2)) * m;
    }
    case GgmlType::kQ6_K: {
      const uint8_t* b = row + (i / 256) * 210;
      int j = static_cast<int>(i % 256);
      int n = j / 128, l = j % 128, quad = l / 32, l32 = l % 32, is = l32 / 16;
      const uint8_t* ql = b + n * 64;
      const uint8_t* qh = b + 128 + n * 32;
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + n * 8;
      int lo = (quad & 1) ? ql[l32 + 32] : ql[l32];
      lo = (quad >= 2) ? (lo >> 4) : (lo & 0xF);
      int hi = (qh[l32] >> (2 * quad)) & 3;
      int q = (lo | (hi << 4)) - 32;
      return HalfBits(Load16(b + 208)) * sc[is + 2 * quad] * q;
    }
    default:
      return 0.0f;
  }
}

__device__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reduction; every thread gets the result. blockDim.x % 32 == 0.
template <bool kMax>
__device__ float BlockReduce(float v) {
  __shared__ float partial[32];
  __shared__ float result;
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = kMax ? WarpMax(v) : WarpSum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int nw = blockDim.x / 32;
    float x = lane < nw ? partial[lane] : (kMax ? -INFINITY : 0.0f);
    x = kMax ? WarpMax(x) : WarpSum(x);
    if (lane == 0) result = x;
  }
  __syncthreads();
  return result;
}

__global__ void QuantMatMulKernel(GgmlType type, const uint8_t* w, int64_t row_bytes,
                                  int64_t n_in, int64_t n_out, const float* x, float* y) {
  int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  int64_t t = blockIdx.y;
  if (r >= n_out) return;
  const uint8_t* row = w + r * row_bytes;
  const float* xt = x + t * n_in;
  float acc = 0;
  for (int64_t i = threadIdx.x % 32; i < n_in; i += 32) acc += DequantAt(type, row, i) * xt[i];
  acc = WarpSum(acc);
  if (threadIdx.x % 32 == 0) y[t * n_out + r] = acc;
}

__global__ void ToHalfKernel(const float* x, void* out, int64_t n, bool bf16) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (bf16) {
    static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16(x[i]);
  } else {
    static_cast<__half*>(out)[i] = __float2half(x[i]);
  }
}

__global__ void RmsNormKernel(const float* x, const float* w, float* y, int64_t n, float eps) {
  const float* xr = x + blockIdx.x * n;
  float* yr = y + blockIdx.x * n;
  float ss = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
  ss = BlockReduce<false>(ss);
  float inv = rsqrtf(ss / n + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * inv * (w ? w[i] : 1.0f);
}

struct RopeDev {
  int mode;  // 0 normal, 1 neox
  int64_t n_rot;
  float theta_scale;
  float freq_scale;
  float ext_factor;
  float attn_factor;
  float corr0, corr1;
  const float* freq_factors;
};

__device__ void RopeYarn(float theta_extrap, const RopeDev& p, int64_t i0, float* c, float* s) {
  float theta_interp = p.freq_scale * theta_extrap;
  float theta = theta_interp;
  float mscale = p.attn_factor;
  if (p.ext_factor != 0.0f) {
    float y = (i0 / 2 - p.corr0) / fmaxf(0.001f, p.corr1 - p.corr0);
    float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * p.ext_factor;
    theta = theta_interp * (1 - ramp) + theta_extrap * ramp;
    mscale *= 1.0f + 0.1f * logf(1.0f / p.freq_scale);
  }
  *c = cosf(theta) * mscale;
  *s = sinf(theta) * mscale;
}

// One thread per rotated pair.
__global__ void RopeKernel(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim,
                           const int32_t* pos, RopeDev p) {
  int64_t pairs = p.n_rot / 2;
  int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n_tok * n_head * pairs) return;
  int64_t pair = idx % pairs;
  int64_t th = idx / pairs;  // token * n_head + head
  int64_t t = th / n_head;
  float* v = x + th * head_dim;
  int64_t i0 = 2 * pair;
  float ff = p.freq_factors ? p.freq_factors[pair] : 1.0f;
  float theta = pos[t] * powf(p.theta_scale, static_cast<float>(pair)) / ff;
  float c, s;
  RopeYarn(theta, p, i0, &c, &s);
  int64_t a = p.mode == 0 ? i0 : pair;
  int64_t b = p.mode == 0 ? i0 + 1 : pair + pairs;
  float x0 = v[a], x1 = v[b];
  v[a] = x0 * c - x1 * s;
  v[b] = x0 * s + x1 * c;
}

__global__ void SoftmaxKernel(float* x, int64_t n) {
  float* r = x + blockIdx.x * n;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, r[i]);
  m = BlockReduce<true>(m);
  float s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    r[i] = expf(r[i] - m);
    s += r[i];
  }
  s = BlockReduce<false>(s);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) r[i] /= s;
}

// Single thread: n is the expert count (tens to hundreds), k small.
__global__ void TopKKernel(const float* x, int64_t n, int k, bool renorm, int32_t* ids,
                           float* values) {
  float sum = 0;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int64_t i = 0; i < n; ++i) {
      bool taken = false;
      for (int q = 0; q < j; ++q) taken |= (ids[q] == i);
      if (taken) continue;
      if (best < 0 || x[i] > x[best]) best = static_cast<int>(i);
    }
    ids[j] = best;
    values[j] = x[best];
    sum += x[best];
  }
  if (renorm && sum != 0.0f) {
    for (int j = 0; j < k; ++j) values[j] /= sum;
  }
}

__global__ void SigmoidKernel(float* x, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = 1.0f / (1.0f + expf(-x[i]));
}
__global__ void SiluMulKernel(const float* g, const float* u, float* o, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
__global__ void AddKernel(const float* a, const float* b, float* o, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) o[i] = a[i] + b[i];
}
__global__ void ScaleKernel(float* x, float s, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= s;
}
__global__ void SwigluClampedKernel(const float* g, const float* u, float* o, int64_t n,
                                    float alpha, float limit) {
  int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) {
    float gv = fminf(g[i], limit);
    float uv = fminf(fmaxf(u[i], -limit), limit);
    o[i] = gv / (1.0f + expf(-alpha * gv)) * (uv + 1.0f);
  }
}

__global__ void AddBiasKernel(float* x, const float* b, int64_t rows, int64_t n) {
  int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < rows * n) x[i] += b[i % n];
}

__global__ void AddScaledKernel(float* y, const float* x, float s, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] += s * x[i];
}
__global__ void GetRowsKernel(GgmlType type, const uint8_t* table, int64_t row_bytes,
                              int64_t n_in, const int32_t* ids, float* out) {
  const uint8_t* row = table + static_cast<int64_t>(ids[blockIdx.x]) * row_bytes;
  for (int64_t i = threadIdx.x; i < n_in; i += blockDim.x) {
    out[blockIdx.x * n_in + i] = DequantAt(type, row, i);
  }
}
__global__ void StoreKvKernel(const float* src, void* dst, bool f16, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (f16) {
    static_cast<__half*>(dst)[i] = __float2half(src[i]);
  } else {
    static_cast<float*>(dst)[i] = src[i];
  }
}

__device__ float KvAt(const void* cache, bool f16, int64_t i) {
  return f16 ? __half2float(static_cast<const __half*>(cache)[i])
             : static_cast<const float*>(cache)[i];
}

// One block per (query token, head): scores, softmax, weighted sum of V.
__global__ void AttentionKernel(AttentionArgs a, bool f16, float* scores, int64_t ctx_stride) {
  int64_t t = blockIdx.x / a.n_head, h = blockIdx.x % a.n_head;
  int64_t kh = h / (a.n_head / a.n_kv_head);
  int64_t n_kv = a.pos0 + t + 1;
  int64_t j0 = a.chunk > 0 ? (a.pos0 + t) / a.chunk * a.chunk : 0;  // chunked local attention
  if (a.window > 0) j0 = max(j0, a.pos0 + t - a.window + 1);          // sliding window
  int64_t dv = a.head_dim_v > 0 ? a.head_dim_v : a.head_dim;
  int64_t row = a.n_kv_head * a.head_dim;
  int64_t vrow = a.n_kv_head * dv;
  const float* q = a.q + (t * a.n_head + h) * a.head_dim;
  float* s = scores + blockIdx.x * ctx_stride;
  float m = -INFINITY;
  for (int64_t p = j0 + threadIdx.x; p < n_kv; p += blockDim.x) {
    float dot = 0;
    int64_t base = p * row + kh * a.head_dim;
    for (int64_t d = 0; d < a.head_dim; ++d) dot += q[d] * KvAt(a.k_cache, f16, base + d);
    s[p] = dot * a.scale;
    m = fmaxf(m, s[p]);
  }
  m = BlockReduce<true>(m);
  // An attention sink: one more logit in the denominator, without a value.
  const float sink = a.sinks != nullptr ? a.sinks[h] : -INFINITY;
  m = fmaxf(m, sink);
  float sum = 0;
  for (int64_t p = j0 + threadIdx.x; p < n_kv; p += blockDim.x) {
    s[p] = expf(s[p] - m);
    sum += s[p];
  }
  sum = BlockReduce<false>(sum);
  if (a.sinks != nullptr) sum += expf(sink - m);
  float* o = a.out + (t * a.n_head + h) * dv;
  for (int64_t d = threadIdx.x; d < dv; d += blockDim.x) {
    float acc = 0;
    for (int64_t p = j0; p < n_kv; ++p) acc += s[p] * KvAt(a.v_cache, f16, p * vrow + kh * dv + d);
    o[d] = acc / sum;
  }
}

}  // namespace

bool QuantMatMulSupported(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_K:
    case GgmlType::kQ6_K:
      return true;
    default:
      return false;
  }
}

cudaError_t LaunchQuantMatMul(const WeightView& w, const float* x, int64_t n_tok, float* y,
                              cudaStream_t stream) {
  constexpr int kWarps = 8;
  dim3 grid(static_cast<unsigned>((w.n_out + kWarps - 1) / kWarps), static_cast<unsigned>(n_tok));
  QuantMatMulKernel<<<grid, kWarps * 32, 0, stream>>>(
      w.type, static_cast<const uint8_t*>(w.data), static_cast<int64_t>(RowBytes(w.type, w.n_in)),
      w.n_in, w.n_out, x, y);
  return cudaGetLastError();
}

cudaError_t LaunchToHalf(const float* x, void* out, int64_t n, bool bf16, cudaStream_t s) {
  ToHalfKernel<<<Blocks(n), kThreads, 0, s>>>(x, out, n, bf16);
  return cudaGetLastError();
}

cudaError_t LaunchRmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t n,
                          float eps, cudaStream_t s) {
  RmsNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, w, y, n, eps);
  return cudaGetLastError();
}

cudaError_t LaunchRope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim,
                       const int32_t* pos, const RopeParams& p, cudaStream_t s) {
  RopeDev d;
  d.mode = p.mode == RopeMode::kNeox ? 1 : 0;
  d.n_rot = p.n_rot;
  d.theta_scale = powf(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  d.freq_scale = p.scaling == RopeScaling::kNone ? 1.0f : p.freq_scale;
  d.ext_factor = p.scaling == RopeScaling::kYarn ? p.ext_factor : 0.0f;
  d.attn_factor = p.attn_factor;
  d.freq_factors = p.freq_factors;
  d.corr0 = 0;
  d.corr1 = 0;
  if (d.ext_factor != 0.0f && p.n_ctx_orig > 0) {
    auto corr = [&](float n_rot_beta) {
      return p.n_rot * logf(p.n_ctx_orig / (n_rot_beta * 2.0f * 3.14159265358979f)) /
             (2.0f * logf(p.freq_base));
    };
    d.corr0 = fmaxf(0.0f, floorf(corr(p.beta_fast)));
    d.corr1 = fminf(static_cast<float>(p.n_rot - 1), ceilf(corr(p.beta_slow)));
  }
  int64_t total = n_tok * n_head * (p.n_rot / 2);
  if (total == 0) return cudaSuccess;
  RopeKernel<<<Blocks(total), kThreads, 0, s>>>(x, n_tok, n_head, head_dim, pos, d);
  return cudaGetLastError();
}

cudaError_t LaunchSoftmax(float* x, int64_t rows, int64_t n, cudaStream_t s) {
  SoftmaxKernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, n);
  return cudaGetLastError();
}

cudaError_t LaunchTopK(const float* x, int64_t n, int k, bool renormalize, int32_t* ids,
                       float* values, cudaStream_t s) {
  TopKKernel<<<1, 1, 0, s>>>(x, n, k, renormalize, ids, values);
  return cudaGetLastError();
}

cudaError_t LaunchSigmoid(float* x, int64_t n, cudaStream_t s) {
  SigmoidKernel<<<Blocks(n), kThreads, 0, s>>>(x, n);
  return cudaGetLastError();
}

cudaError_t LaunchSiluMul(const float* gate, const float* up, float* out, int64_t n,
                          cudaStream_t s) {
  SiluMulKernel<<<Blocks(n), kThreads, 0, s>>>(gate, up, out, n);
  return cudaGetLastError();
}

cudaError_t LaunchAdd(const float* a, const float* b, float* out, int64_t n, cudaStream_t s) {
  AddKernel<<<Blocks(n), kThreads, 0, s>>>(a, b, out, n);
  return cudaGetLastError();
}

cudaError_t LaunchScale(float* x, float scale, int64_t n, cudaStream_t s) {
  ScaleKernel<<<Blocks(n), kThreads, 0, s>>>(x, scale, n);
  return cudaGetLastError();
}

cudaError_t LaunchSwigluClamped(const float* gate, const float* up, float* out, int64_t n,
                                float alpha, float limit, cudaStream_t s) {
  SwigluClampedKernel<<<Blocks(n), kThreads, 0, s>>>(gate, up, out, n, alpha, limit);
  return cudaGetLastError();
}

cudaError_t LaunchAddBias(float* x, const float* bias, int64_t rows, int64_t n, cudaStream_t s) {
  AddBiasKernel<<<Blocks(rows * n), kThreads, 0, s>>>(x, bias, rows, n);
  return cudaGetLastError();
}

cudaError_t LaunchAddScaled(float* y, const float* x, float scale, int64_t n, cudaStream_t s) {
  AddScaledKernel<<<Blocks(n), kThreads, 0, s>>>(y, x, scale, n);
  return cudaGetLastError();
}

cudaError_t LaunchGetRows(const WeightView& table, const int32_t* ids, int64_t n, float* out,
                          cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  GetRowsKernel<<<static_cast<unsigned>(n), kThreads, 0, s>>>(
      table.type, static_cast<const uint8_t*>(table.data),
      static_cast<int64_t>(RowBytes(table.type, table.n_in)), table.n_in, ids, out);
  return cudaGetLastError();
}

cudaError_t LaunchStoreKv(const float* src, void* dst, bool f16, int64_t n, cudaStream_t s) {
  StoreKvKernel<<<Blocks(n), kThreads, 0, s>>>(src, dst, f16, n);
  return cudaGetLastError();
}

cudaError_t LaunchAttention(const AttentionArgs& a, float* scores, cudaStream_t s) {
  int64_t ctx_stride = a.pos0 + a.n_tok;
  AttentionKernel<<<static_cast<unsigned>(a.n_tok * a.n_head), 128, 0, s>>>(
      a, a.kv_type == GgmlType::kF16, scores, ctx_stride);
  return cudaGetLastError();
}

}  // namespace moestream::kernels::cuda
