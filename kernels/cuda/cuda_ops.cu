// CUDA kernels for CudaBackend's ops other than the matrix products
// (kernels/cuda/cuda_matmul.cu). Layout assumptions and the reference they
// are tested against are in kernels/cuda/cuda_ops.h. Numerical choices: F32
// accumulation everywhere; softmax subtracts the row max; attention keeps a
// running max and rescales its sums per KV tile (online softmax, the same
// result as the two-pass form up to rounding), and split over a long context
// rescales each share's partial sums once more in the combine
// (cuda_attention_split.h); AddScaled and ScatterAdd round the product and
// the sum separately (__fmul_rn, __fadd_rn: no FMA), the CPU backend's bits;
// top-k breaks ties to the lower index as the CPU backend does; RoPE angles
// are computed in F32 from the same formulas as the CPU backend (YaRN ramp
// and magnitude scale as llama.cpp reads them from GGUF).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/cuda/cuda_attention_split.h"
#include "kernels/cuda/cuda_ops.h"

namespace moestream::kernels::cuda {
namespace {

constexpr int kThreads = 256;

int Blocks(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }


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
  // The angle as the CPU backend (and ggml) forms it: pos times theta_scale
  // multiplied in `pair` times in float, so long positions agree bit for bit
  // (pos * powf(theta_scale, pair) differs by ~1e-4 rad near position 8000).
  float theta_base = static_cast<float>(pos[t]);
  for (int64_t i = 0; i < pair; ++i) theta_base *= p.theta_scale;
  float theta = theta_base / ff;
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

// Reference: one thread per call (the first version, kept for the GPU tests
// to compare the per-row warp kernel with).
__global__ void TopKReferenceKernel(const float* x, int64_t n, int k, bool renorm, int32_t* ids,
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

// One warp per row. Lane l holds the candidates l, l + 32, ... (at most 32 of
// them: n <= 1024) and a bit per candidate taken; each of the k rounds is a
// warp-wide arg-max (ties to the lower index), and lane j keeps round j's
// winner for the optional renormalisation.
__global__ void TopKRowsKernel(const float* x, int64_t rows, int64_t n, int k, bool renorm,
                               int32_t* ids, float* values) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const float* xr = x + row * n;
  uint32_t taken = 0;
  float mine_v = 0.0f;
  int mine_i = -1;
  for (int j = 0; j < k; ++j) {
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int m = 0; lane + 32 * m < n; ++m) {
      if (taken & (1u << m)) continue;
      const int i = lane + 32 * m;
      const float v = xr[i];
      if (bi == INT_MAX || v > bv) {
        bv = v;
        bi = i;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (oi != INT_MAX && (bi == INT_MAX || ov > bv || (ov == bv && oi < bi))) {
        bv = ov;
        bi = oi;
      }
    }
    if (bi != INT_MAX && bi % 32 == lane) taken |= 1u << (bi / 32);
    if (lane == j) {
      mine_v = bv;
      mine_i = bi;
    }
  }
  float sum = lane < k ? mine_v : 0.0f;
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane < k) {
    ids[row * k + lane] = mine_i;
    values[row * k + lane] = renorm && sum != 0.0f ? mine_v / sum : mine_v;
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
  if (i < n) y[i] = __fadd_rn(y[i], __fmul_rn(s, x[i]));  // no FMA: the CPU's bits
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

// Reference: one block per (query token, head) with every score in global
// scratch, then softmax, then the weighted sum of V (the first version, kept
// for the GPU tests).
__global__ void AttentionReferenceKernel(AttentionArgs a, bool f16, float* scores, int64_t ctx_stride) {
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

constexpr int kAttnThreads = 128;
constexpr int kAttnAccPerThread = 8;  // value heads up to 1024 wide

// Flash-style attention: one block per (query token, head) and, split
// (kPartial), per share of its KV range (blockIdx.y of gridDim.y splits,
// cuda_attention_split.h); the KV positions are read once in tiles of
// kAttnTile. Per tile: each warp computes scores of a quarter of the
// positions (lanes over head_dim: coalesced K reads), the block's running max
// and sum are rescaled (online softmax), and each thread accumulates its
// value dimensions. Shared: q and one tile of probabilities. One pass
// (!kPartial) normalises and writes `out`; a split writes its partial record
// (m, l, unnormalised acc) to `partials` for AttentionCombineKernel.
template <bool kPartial>
__global__ void __launch_bounds__(kAttnThreads) FlashAttentionKernel(AttentionArgs a, bool f16,
                                                                     float* partials) {
  extern __shared__ float smem[];
  float* qs = smem;
  float* ps = smem + a.head_dim;
  const int64_t t = blockIdx.x / a.n_head, h = blockIdx.x % a.n_head;
  const int64_t kh = h / (a.n_head / a.n_kv_head);
  int64_t n_kv = a.pos0 + t + 1;
  int64_t j0 = a.chunk > 0 ? (a.pos0 + t) / a.chunk * a.chunk : 0;  // chunked local attention
  if (a.window > 0) j0 = max(j0, a.pos0 + t - a.window + 1);          // sliding window
  if (kPartial) SplitRange(j0, n_kv, int(blockIdx.y), int(gridDim.y), &j0, &n_kv);
  const int64_t dv = a.head_dim_v > 0 ? a.head_dim_v : a.head_dim;
  const int64_t row = a.n_kv_head * a.head_dim;
  const int64_t vrow = a.n_kv_head * dv;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const float* q = a.q + (t * a.n_head + h) * a.head_dim;
  for (int64_t d = tid; d < a.head_dim; d += kAttnThreads) qs[d] = q[d];
  __syncthreads();
  float m = -INFINITY, l = 0.0f;
  float acc[kAttnAccPerThread];
#pragma unroll
  for (int i = 0; i < kAttnAccPerThread; ++i) acc[i] = 0.0f;
  for (int64_t p0 = j0; p0 < n_kv; p0 += kAttnTile) {
    const int cnt = static_cast<int>(n_kv - p0 < kAttnTile ? n_kv - p0 : kAttnTile);
    for (int i = warp; i < cnt; i += kAttnThreads / 32) {
      const int64_t base = (p0 + i) * row + kh * a.head_dim;
      float dot = 0.0f;
      for (int64_t d = lane; d < a.head_dim; d += 32) dot += qs[d] * KvAt(a.k_cache, f16, base + d);
      dot = WarpSum(dot);
      if (lane == 0) ps[i] = dot * a.scale;
    }
    __syncthreads();
    float tm = -INFINITY;
    for (int i = tid; i < cnt; i += kAttnThreads) tm = fmaxf(tm, ps[i]);
    tm = BlockReduce<true>(tm);
    const float m_new = fmaxf(m, tm);
    const float corr = expf(m - m_new);
    float ts = 0.0f;
    for (int i = tid; i < cnt; i += kAttnThreads) {
      const float e = expf(ps[i] - m_new);
      ps[i] = e;
      ts += e;
    }
    ts = BlockReduce<false>(ts);  // its barriers also publish ps
    l = l * corr + ts;
    m = m_new;
#pragma unroll
    for (int ii = 0; ii < kAttnAccPerThread; ++ii) {
      const int64_t d = tid + static_cast<int64_t>(ii) * kAttnThreads;
      if (d < dv) {
        float s = acc[ii] * corr;
        const int64_t vbase = p0 * vrow + kh * dv + d;
        for (int i = 0; i < cnt; ++i) s += ps[i] * KvAt(a.v_cache, f16, vbase + i * vrow);
        acc[ii] = s;
      }
    }
    __syncthreads();  // the next tile overwrites ps
  }
  if (kPartial) {
    // The sink joins in the combine; an empty share leaves m = -inf, l = 0.
    const int64_t stride = PartialStride(dv);
    float* rec = partials + (static_cast<int64_t>(blockIdx.x) * gridDim.y + blockIdx.y) * stride;
    if (tid == 0) {
      rec[0] = m;
      rec[1] = l;
    }
#pragma unroll
    for (int ii = 0; ii < kAttnAccPerThread; ++ii) {
      const int64_t d = tid + static_cast<int64_t>(ii) * kAttnThreads;
      if (d < dv) rec[2 + d] = acc[ii];
    }
    return;
  }
  // An attention sink: one more logit in the denominator, without a value.
  float corr = 1.0f;
  if (a.sinks != nullptr) {
    const float sink = a.sinks[h];
    const float m_new = fmaxf(m, sink);
    corr = expf(m - m_new);
    l = l * corr + expf(sink - m_new);
  }
  float* o = a.out + (t * a.n_head + h) * dv;
#pragma unroll
  for (int ii = 0; ii < kAttnAccPerThread; ++ii) {
    const int64_t d = tid + static_cast<int64_t>(ii) * kAttnThreads;
    if (d < dv) o[d] = acc[ii] * corr / l;
  }
}

// Joins the `splits` partial records of each (token, head): one block each,
// threads over the value dimensions (cuda_attention_split.h's combine).
__global__ void AttentionCombineKernel(AttentionArgs a, int splits, const float* partials) {
  const int64_t h = blockIdx.x % a.n_head;
  const int64_t dv = a.head_dim_v > 0 ? a.head_dim_v : a.head_dim;
  const int64_t stride = PartialStride(dv);
  const float* rec = partials + static_cast<int64_t>(blockIdx.x) * splits * stride;
  const float sink = a.sinks != nullptr ? a.sinks[h] : -INFINITY;
  const float mx = CombineMax(rec, splits, stride, sink);
  const float den = CombineDenominator(rec, splits, stride, mx, sink);
  float* o = a.out + static_cast<int64_t>(blockIdx.x) * dv;
  for (int64_t d = threadIdx.x; d < dv; d += blockDim.x) {
    o[d] = CombineOutput(rec, splits, stride, mx, den, d);
  }
}

// One thread per element of out[n_tok, n]: a token's k choices added in
// order j, each product and sum rounded on its own (no FMA), as AddScaled.
// The choices come from the kernel parameter (kInline) or device memory.
struct ScatterInline {
  ScatterChoice c[kScatterInlineChoices];
};
template <bool kInline>
__global__ void ScatterAddKernel(float* out, const float* src, int64_t n, int64_t n_tok, int k,
                                 const ScatterChoice* table,
                                 const __grid_constant__ ScatterInline inl) {
  const ScatterChoice* choices = kInline ? inl.c : table;
  for (int64_t t = blockIdx.y; t < n_tok; t += gridDim.y) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      float acc = out[t * n + i];
      for (int j = 0; j < k; ++j) {
        const ScatterChoice c = choices[t * k + j];
        acc = __fadd_rn(acc, __fmul_rn(c.weight, src[static_cast<int64_t>(c.row) * n + i]));
      }
      out[t * n + i] = acc;
    }
  }
}

}  // namespace

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

cudaError_t LaunchTopKReference(const float* x, int64_t n, int k, bool renormalize,
                                int32_t* ids, float* values, cudaStream_t s) {
  TopKReferenceKernel<<<1, 1, 0, s>>>(x, n, k, renormalize, ids, values);
  return cudaGetLastError();
}

cudaError_t LaunchTopKRows(const float* x, int64_t rows, int64_t n, int k, bool renormalize,
                           int32_t* ids, float* values, cudaStream_t s) {
  if (rows == 0 || k == 0) return cudaSuccess;
  if (n > 1024 || k > 32 || k > n) {
    for (int64_t r = 0; r < rows; ++r) {
      cudaError_t e = LaunchTopKReference(x + r * n, n, k, renormalize, ids + r * k,
                                          values + r * k, s);
      if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
  }
  constexpr int kRowsPerBlock = 4;
  TopKRowsKernel<<<static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock),
                   kRowsPerBlock * 32, 0, s>>>(x, rows, n, k, renormalize, ids, values);
  return cudaGetLastError();
}

cudaError_t LaunchAttention(const AttentionArgs& a, cudaStream_t s) {
  const int64_t dv = a.head_dim_v > 0 ? a.head_dim_v : a.head_dim;
  if (dv > int64_t(kAttnThreads) * kAttnAccPerThread || a.n_kv_head <= 0 ||
      a.n_head % a.n_kv_head != 0) {
    return cudaErrorInvalidValue;
  }
  if (a.n_tok * a.n_head == 0) return cudaSuccess;
  const size_t smem = static_cast<size_t>(a.head_dim + kAttnTile) * sizeof(float);
  FlashAttentionKernel<false><<<static_cast<unsigned>(a.n_tok * a.n_head), kAttnThreads, smem, s>>>(
      a, a.kv_type == GgmlType::kF16, nullptr);
  return cudaGetLastError();
}

cudaError_t LaunchAttentionSplit(const AttentionArgs& a, int splits, float* partials,
                                 cudaStream_t s) {
  const int64_t dv = a.head_dim_v > 0 ? a.head_dim_v : a.head_dim;
  if (dv > int64_t(kAttnThreads) * kAttnAccPerThread || a.n_kv_head <= 0 ||
      a.n_head % a.n_kv_head != 0 || splits < 1 || splits > kAttnMaxSplits) {
    return cudaErrorInvalidValue;
  }
  if (a.n_tok * a.n_head == 0) return cudaSuccess;
  const size_t smem = static_cast<size_t>(a.head_dim + kAttnTile) * sizeof(float);
  const dim3 grid(static_cast<unsigned>(a.n_tok * a.n_head), static_cast<unsigned>(splits));
  FlashAttentionKernel<true><<<grid, kAttnThreads, smem, s>>>(a, a.kv_type == GgmlType::kF16,
                                                              partials);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  AttentionCombineKernel<<<static_cast<unsigned>(a.n_tok * a.n_head), kAttnThreads, 0, s>>>(
      a, splits, partials);
  return cudaGetLastError();
}

size_t AttentionSplitBytes(const AttentionArgs& a, int splits) {
  const int64_t dv = a.head_dim_v > 0 ? a.head_dim_v : a.head_dim;
  return static_cast<size_t>(a.n_tok * a.n_head * splits * PartialStride(dv)) * sizeof(float);
}

cudaError_t LaunchScatterAdd(float* out, const float* src, int64_t n,
                             const ScatterChoice* choices, int64_t n_choices, int k,
                             const ScatterChoice* table_dev, cudaStream_t s) {
  if (k <= 0 || n <= 0 || n_choices <= 0) return cudaSuccess;
  if (n_choices % k != 0) return cudaErrorInvalidValue;
  const int64_t n_tok = n_choices / k;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(Blocks(n), 65535)),
                  static_cast<unsigned>(std::min<int64_t>(n_tok, 65535)));
  ScatterInline inl{};
  if (n_choices <= kScatterInlineChoices) {
    for (int64_t i = 0; i < n_choices; ++i) inl.c[i] = choices[i];
    ScatterAddKernel<true><<<grid, kThreads, 0, s>>>(out, src, n, n_tok, k, nullptr, inl);
    return cudaGetLastError();
  }
  if (table_dev == nullptr) return cudaErrorInvalidValue;
  ScatterAddKernel<false><<<grid, kThreads, 0, s>>>(out, src, n, n_tok, k, table_dev, inl);
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

cudaError_t LaunchStoreKv(const float* src, void* dst, bool f16, int64_t n, cudaStream_t s) {
  StoreKvKernel<<<Blocks(n), kThreads, 0, s>>>(src, dst, f16, n);
  return cudaGetLastError();
}

cudaError_t LaunchAttentionReference(const AttentionArgs& a, float* scores, cudaStream_t s) {
  int64_t ctx_stride = a.pos0 + a.n_tok;
  AttentionReferenceKernel<<<static_cast<unsigned>(a.n_tok * a.n_head), 128, 0, s>>>(
      a, a.kv_type == GgmlType::kF16, scores, ctx_stride);
  return cudaGetLastError();
}

}  // namespace moestream::kernels::cuda
