#include "kernels/cpu/ops_scalar.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "base/check.h"
#include "kernels/quant.h"

namespace moestream::kernels::cpu {
namespace {

// Half→float through a table: the KV cache of F16 attention reads millions of
// halves per token.
const float* HalfTable() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t i = 0; i < 65536; ++i) t[i] = HalfToFloat(static_cast<uint16_t>(i));
    return t;
  }();
  return table.data();
}

// llama.cpp's YaRN correction dimension: the rotary dimension whose
// wavelength fits n_rot_turns turns into the original context.
float YarnCorrDim(int64_t n_dims, int64_t n_ctx_orig, float n_rot_turns, float base) {
  return n_dims * std::log(n_ctx_orig / (n_rot_turns * 2 * static_cast<float>(M_PI))) /
         (2 * std::log(base));
}

}  // namespace

void RmsNormRows(const float* x, const float* w, float* y, int64_t row_begin, int64_t row_end,
                 int64_t n, float eps) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
    if (w) {
      for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * inv * w[i];
    } else {
      for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * inv;
    }
  }
}

void SoftmaxRows(float* x, int64_t row_begin, int64_t row_end, int64_t n) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* xr = x + r * n;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, xr[i]);
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      xr[i] = std::exp(xr[i] - mx);
      sum += xr[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) xr[i] *= inv;
  }
}

void RopeTokens(float* x, int64_t tok_begin, int64_t tok_end, int64_t n_head, int64_t head_dim,
                const int32_t* pos, const RopeParams& p) {
  const int64_t n_dims = p.n_rot > 0 ? std::min(p.n_rot, head_dim) : head_dim;
  float freq_scale = p.freq_scale, ext_factor = p.ext_factor;
  const float* freq_factors = p.freq_factors;
  switch (p.scaling) {
    case RopeScaling::kNone: freq_scale = 1.0f, ext_factor = 0.0f; break;
    case RopeScaling::kLinear: ext_factor = 0.0f; break;
    case RopeScaling::kYarn: break;
    case RopeScaling::kLlama3: ext_factor = 0.0f; break;  // carried by freq_factors
  }
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(n_dims));
  float corr0 = 0, corr1 = 0;
  if (ext_factor != 0.0f && p.n_ctx_orig > 0) {
    corr0 = std::max(0.0f, std::floor(YarnCorrDim(n_dims, p.n_ctx_orig, p.beta_fast, p.freq_base)));
    corr1 = std::min(static_cast<float>(n_dims - 1),
                     std::ceil(YarnCorrDim(n_dims, p.n_ctx_orig, p.beta_slow, p.freq_base)));
  }
  std::vector<float> cs(n_dims);  // cos, sin interleaved per pair
  for (int64_t t = tok_begin; t < tok_end; ++t) {
    float theta_base = static_cast<float>(pos[t]);
    for (int64_t i0 = 0; i0 < n_dims; i0 += 2) {
      const float ff = freq_factors ? freq_factors[i0 / 2] : 1.0f;
      const float theta_extrap = theta_base / ff;
      const float theta_interp = freq_scale * theta_extrap;
      float theta = theta_interp, mscale = p.attn_factor;
      if (ext_factor != 0.0f) {
        const float y = (i0 / 2 - corr0) / std::max(0.001f, corr1 - corr0);
        const float ramp = (1 - std::min(1.0f, std::max(0.0f, y))) * ext_factor;
        theta = theta_interp * (1 - ramp) + theta_extrap * ramp;
        mscale *= 1.0f + 0.1f * std::log(1.0f / freq_scale);
      }
      cs[i0] = std::cos(theta) * mscale;
      cs[i0 + 1] = std::sin(theta) * mscale;
      theta_base *= theta_scale;
    }
    for (int64_t h = 0; h < n_head; ++h) {
      float* v = x + (t * n_head + h) * head_dim;
      for (int64_t i0 = 0; i0 < n_dims; i0 += 2) {
        const int64_t a = p.mode == RopeMode::kNeox ? i0 / 2 : i0;
        const int64_t b = p.mode == RopeMode::kNeox ? i0 / 2 + n_dims / 2 : i0 + 1;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i0] - x1 * cs[i0 + 1];
        v[b] = x0 * cs[i0 + 1] + x1 * cs[i0];
      }
    }
  }
}

void TopK(const float* x, int64_t n, int k, bool renormalize, int32_t* ids, float* values) {
  k = static_cast<int>(std::min<int64_t>(k, n));
  std::vector<int32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
  });
  float sum = 0;
  for (int i = 0; i < k; ++i) {
    ids[i] = idx[i];
    values[i] = x[idx[i]];
    sum += values[i];
  }
  if (renormalize && sum != 0) {
    for (int i = 0; i < k; ++i) values[i] /= sum;
  }
}

void SigmoidRange(float* x, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) x[i] = 1.0f / (1.0f + std::exp(-x[i]));
}

void SiluMulRange(const float* gate, const float* up, float* out, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void SwigluClampedRange(const float* gate, const float* up, float* out, float alpha, float limit,
                        int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = std::min(gate[i], limit);
    const float u = std::clamp(up[i], -limit, limit);
    out[i] = g / (1.0f + std::exp(-alpha * g)) * (u + 1.0f);
  }
}

void AddBiasRows(float* x, const float* bias, int64_t n, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    float* row = x + r * n;
    for (int64_t i = 0; i < n; ++i) row[i] += bias[i];
  }
}

void AddRange(const float* a, const float* b, float* out, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
}

void ScaleRange(float* x, float s, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) x[i] *= s;
}

void AddScaledRange(float* y, const float* x, float s, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) y[i] += s * x[i];
}

void ScatterAddRange(float* out, const float* src, int64_t n, const ScatterChoice* choices, int k,
                     int64_t begin, int64_t end) {
  for (int64_t t = begin / n; t * n < end; ++t) {
    const int64_t b = std::max(begin, t * n) - t * n, e = std::min(end, (t + 1) * n) - t * n;
    float* y = out + t * n;
    for (int j = 0; j < k; ++j) {
      const ScatterChoice& c = choices[t * k + j];
      AddScaledRange(y, src + int64_t(c.row) * n, c.weight, b, e);
    }
  }
}

void StoreKvRange(const float* src, void* dst, GgmlType kv_type, int64_t begin, int64_t end) {
  if (kv_type == GgmlType::kF16) {
    uint16_t* d = static_cast<uint16_t*>(dst);
    for (int64_t i = begin; i < end; ++i) d[i] = FloatToHalf(src[i]);
  } else {
    float* d = static_cast<float*>(dst);
    std::copy(src + begin, src + end, d + begin);
  }
}

namespace {

float DotF32Kv(const float* q, const void* k, int64_t d) {
  const float* kf = static_cast<const float*>(k);
  float s = 0;
  for (int64_t i = 0; i < d; ++i) s += q[i] * kf[i];
  return s;
}
float DotF16Kv(const float* q, const void* k, int64_t d) {
  const uint16_t* kh = static_cast<const uint16_t*>(k);
  const float* tab = HalfTable();
  float s = 0;
  for (int64_t i = 0; i < d; ++i) s += q[i] * tab[kh[i]];
  return s;
}
void AxpyF32Kv(float* out, float p, const void* v, int64_t d) {
  const float* vf = static_cast<const float*>(v);
  for (int64_t i = 0; i < d; ++i) out[i] += p * vf[i];
}
void AxpyF16Kv(float* out, float p, const void* v, int64_t d) {
  const uint16_t* vh = static_cast<const uint16_t*>(v);
  const float* tab = HalfTable();
  for (int64_t i = 0; i < d; ++i) out[i] += p * tab[vh[i]];
}

}  // namespace

KvRowKernels ScalarKvKernels(GgmlType kv_type) {
  if (kv_type == GgmlType::kF16) return {DotF16Kv, AxpyF16Kv};
  return {DotF32Kv, AxpyF32Kv};
}

namespace {

// First key position query token t sees (chunked and sliding-window
// attention hide the earlier ones); it sees keys up to pos0 + t.
int64_t FirstKey(const AttentionArgs& a, int64_t t) {
  int64_t j0 = a.chunk > 0 ? (a.pos0 + t) / a.chunk * a.chunk : 0;
  if (a.window > 0) j0 = std::max(j0, a.pos0 + t - a.window + 1);
  return j0;
}

}  // namespace

void AttentionHeads(const AttentionArgs& a, int64_t t, int64_t h0, int64_t n_heads,
                    float* scratch, const KvRowKernels& kv) {
  const int64_t group = a.n_head / a.n_kv_head;
  const int64_t kh = h0 / group;
  const int64_t n_kv = a.pos0 + t + 1;  // causal: positions 0..pos0+t
  const int64_t j0 = FirstKey(a, t);
  const int64_t d = a.head_dim;
  const int64_t dv = a.head_dim_v > 0 ? a.head_dim_v : d;
  const size_t elem = a.kv_type == GgmlType::kF16 ? 2 : 4;
  const size_t k_stride = static_cast<size_t>(a.n_kv_head * d) * elem;
  const size_t v_stride = static_cast<size_t>(a.n_kv_head * dv) * elem;
  const auto* kbase = static_cast<const uint8_t*>(a.k_cache) + static_cast<size_t>(kh * d) * elem;
  const auto* vbase = static_cast<const uint8_t*>(a.v_cache) + static_cast<size_t>(kh * dv) * elem;
  const int64_t n_ctx = a.pos0 + a.n_tok;
  // Scores: each key row once for all the heads (head i's row of scratch).
  MOESTREAM_CHECK(n_heads >= 1 && n_heads <= kMaxAttentionHeads) << "attention: " << n_heads
                                                                 << " heads in one task";
  if (kv.row_scores != nullptr) {
    const float* q_rows[kMaxAttentionHeads];
    for (int64_t i = 0; i < n_heads; ++i) q_rows[i] = a.q + (t * a.n_head + h0 + i) * d;
    kv.row_scores(q_rows, n_heads, kbase + j0 * k_stride, k_stride, n_kv - j0, d, a.scale,
                  scratch + j0, n_ctx);
  } else {
    for (int64_t j = j0; j < n_kv; ++j) {
      const uint8_t* k = kbase + j * k_stride;
      for (int64_t i = 0; i < n_heads; ++i) {
        scratch[i * n_ctx + j] = kv.dot(a.q + (t * a.n_head + h0 + i) * d, k, d) * a.scale;
      }
    }
  }
  // Per head: the softmax (a sink is one more logit in it, with no value row).
  float inv[kMaxAttentionHeads];
  for (int64_t i = 0; i < n_heads; ++i) {
    float* s = scratch + i * n_ctx;
    float mx = -INFINITY;
    for (int64_t j = j0; j < n_kv; ++j) mx = std::max(mx, s[j]);
    const float sink = a.sinks != nullptr ? a.sinks[h0 + i] : -INFINITY;
    mx = std::max(mx, sink);
    float sum = a.sinks != nullptr ? std::exp(sink - mx) : 0.0f;
    for (int64_t j = j0; j < n_kv; ++j) {
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    inv[i] = 1.0f / sum;
    float* out = a.out + (t * a.n_head + h0 + i) * dv;
    std::fill(out, out + dv, 0.0f);
  }
  // Values: each row once for all the heads.
  if (kv.block_values != nullptr) {
    kv.block_values(scratch + j0, n_ctx, n_heads, vbase + j0 * v_stride, v_stride, n_kv - j0, dv,
                    a.out + (t * a.n_head + h0) * dv);
  } else {
    for (int64_t j = j0; j < n_kv; ++j) {
      const uint8_t* v = vbase + j * v_stride;
      for (int64_t i = 0; i < n_heads; ++i) {
        kv.axpy(a.out + (t * a.n_head + h0 + i) * dv, scratch[i * n_ctx + j], v, dv);
      }
    }
  }
  for (int64_t i = 0; i < n_heads; ++i) {
    float* out = a.out + (t * a.n_head + h0 + i) * dv;
    for (int64_t c = 0; c < dv; ++c) out[c] *= inv[i];
  }
}

void AttentionTile(const AttentionArgs& a, int64_t t0, int64_t n_q, int64_t h0, int64_t n_heads,
                   float* scratch, const KvRowKernels& kv) {
  constexpr int64_t kB = kAttentionKeyBlock;
  const int64_t group = a.n_head / a.n_kv_head;
  const int64_t kh = h0 / group;
  const int64_t d = a.head_dim;
  const int64_t dv = a.head_dim_v > 0 ? a.head_dim_v : d;
  const int64_t rows = n_q * n_heads;  // row r: query r / n_heads, head r % n_heads
  const size_t elem = a.kv_type == GgmlType::kF16 ? 2 : 4;
  const size_t k_stride = static_cast<size_t>(a.n_kv_head * d) * elem;
  const size_t v_stride = static_cast<size_t>(a.n_kv_head * dv) * elem;
  const auto* kbase = static_cast<const uint8_t*>(a.k_cache) + static_cast<size_t>(kh * d) * elem;
  const auto* vbase = static_cast<const uint8_t*>(a.v_cache) + static_cast<size_t>(kh * dv) * elem;
  float* s = scratch;            // [rows][kB] scores, then weights, of one key block
  float* o = s + rows * kB;      // [rows][dv] unnormalised outputs
  float* m = o + rows * dv;      // [rows] running maximum
  float* l = m + rows;           // [rows] running sum
  float* kt = l + rows;          // [d][kB] transposed keys (block kernels)
  MOESTREAM_CHECK(rows <= kAttentionTileRows) << "attention tile of " << rows << " rows";
  const float* q_rows[kAttentionTileRows];
  for (int64_t r = 0; r < rows; ++r) {
    q_rows[r] = a.q + ((t0 + r / n_heads) * a.n_head + h0 + r % n_heads) * d;
  }
  std::fill(o, o + rows * dv, 0.0f);
  std::fill(m, m + rows, -INFINITY);
  std::fill(l, l + rows, 0.0f);
  int64_t lo = INT64_MAX;
  for (int64_t qi = 0; qi < n_q; ++qi) lo = std::min(lo, FirstKey(a, t0 + qi));
  const int64_t hi = a.pos0 + t0 + n_q;  // one past the last key any query sees
  for (int64_t jb = lo / kB * kB; jb < hi; jb += kB) {
    const int64_t je = std::min(jb + kB, hi);
    // Scores: each key row once for the whole tile; hidden keys get -inf.
    if (kv.block_scores != nullptr) {
      kv.block_scores(q_rows, rows, kbase + jb * k_stride, k_stride, je - jb, d, a.scale, s, kt);
    }
    for (int64_t qi = 0; qi < n_q; ++qi) {
      // The keys of this block query qi sees: [vb, ve) of the block's [0, je - jb).
      const int64_t t = t0 + qi;
      const int64_t vb = std::clamp<int64_t>(FirstKey(a, t) - jb, 0, je - jb);
      const int64_t ve = std::clamp<int64_t>(a.pos0 + t + 1 - jb, vb, je - jb);
      for (int64_t i = 0; i < n_heads; ++i) {
        float* sr = s + (qi * n_heads + i) * kB;
        std::fill(sr, sr + vb, -INFINITY);
        std::fill(sr + ve, sr + (je - jb), -INFINITY);
        if (kv.block_scores == nullptr) {
          for (int64_t j = vb; j < ve; ++j) {
            sr[j] = kv.dot(q_rows[qi * n_heads + i], kbase + (jb + j) * k_stride, d) * a.scale;
          }
        }
      }
    }
    // Per row: the running softmax over this block.
    for (int64_t r = 0; r < rows; ++r) {
      float* sr = s + r * kB;
      float bm = -INFINITY;
      for (int64_t j = 0; j < je - jb; ++j) bm = std::max(bm, sr[j]);
      if (bm == -INFINITY) {  // every key of the block hidden from this row
        std::fill(sr, sr + (je - jb), 0.0f);
        continue;
      }
      const float mn = std::max(m[r], bm);
      if (mn != m[r]) {
        const float alpha = m[r] == -INFINITY ? 0.0f : std::exp(m[r] - mn);
        l[r] *= alpha;
        for (float* x = o + r * dv; x < o + (r + 1) * dv; ++x) *x *= alpha;
        m[r] = mn;
      }
      for (int64_t j = 0; j < je - jb; ++j) {
        sr[j] = std::exp(sr[j] - mn);  // exp(-inf) = 0 for hidden keys
        l[r] += sr[j];
      }
    }
    // Values: each row once for the whole tile.
    if (kv.block_values != nullptr) {
      kv.block_values(s, kB, rows, vbase + jb * v_stride, v_stride, je - jb, dv, o);
      continue;
    }
    for (int64_t j = jb; j < je; ++j) {
      const uint8_t* v = vbase + j * v_stride;
      for (int64_t r = 0; r < rows; ++r) {
        const float p = s[r * kB + (j - jb)];
        if (p != 0.0f) kv.axpy(o + r * dv, p, v, dv);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = t0 + r / n_heads, h = h0 + r % n_heads;
    float scale = 1.0f / l[r];
    if (a.sinks != nullptr) {
      // The sink is one more logit in the softmax, with no value row.
      const float mn = std::max(m[r], a.sinks[h]);
      const float alpha = std::exp(m[r] - mn);
      scale = alpha / (l[r] * alpha + std::exp(a.sinks[h] - mn));
    }
    float* out = a.out + (t * a.n_head + h) * dv;
    for (int64_t c = 0; c < dv; ++c) out[c] = o[r * dv + c] * scale;
  }
}

}  // namespace moestream::kernels::cpu
