// Row converters for ggml's block formats (layouts in kernels/cpu/quant_blocks.h).
//
// Dequantization follows the format's defining formula exactly. Quantization
// chooses scales by a small search: the legacy 32-element formats use ggml's
// closed-form scale (absmax / range); Q4_K and Q5_K search a range of
// (scale, min) candidates per 32-element group, each refined by weighted least
// squares (weights emphasise large magnitudes), then quantise the group scales
// to 6 bits against the super-block scale; Q6_K searches per-16-element scales
// the same way and stores them as int8 against a half super-block scale. The
// tests bound the round-trip error per type.
#include "kernels/quant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "kernels/cpu/quant_blocks.h"

namespace moestream::kernels {
namespace {

int NearestInt(float f) { return static_cast<int>(std::lrintf(f)); }

float H(uint16_t h) { return HalfToFloat(h); }

// ---------------------------------------------------------------- legacy quants

// roundf(v) (halves away from zero) for |v| < 2^31, without a libm call or a
// branch so that block loops vectorize: v minus its truncation is exact.
inline int RoundHalfAway(float v) {
  const int t = static_cast<int>(v);
  const float frac = v - static_cast<float>(t);
  return t + (frac >= 0.5f) - (frac <= -0.5f);
}

// max |x[j]| over a block, in 8 interleaved lanes (max is exact in any order,
// and a NaN never wins, as in a sequential std::max).
float BlockAbsMax(const float* x) {
  float m[8] = {};
  for (int j = 0; j < kQK; j += 8) {
    for (int l = 0; l < 8; ++l) m[l] = std::max(m[l], std::fabs(x[j + l]));
  }
  float amax = 0;
  for (float v : m) amax = std::max(amax, v);
  return amax;
}

// ggml's reference Q8_0 quantizer: d = absmax/127, q = roundf(x/d).
void QuantizeQ8_0(const float* x, int64_t nb, BlockQ8_0* y) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = BlockAbsMax(x) / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = FloatToHalf(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(RoundHalfAway(x[j] * id));
  }
}

// The element of largest magnitude, with its sign.
float SignedAbsMax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void QuantizeQ4_0(const float* x, int64_t nb, BlockQ4_0* y) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = SignedAbsMax(x, kQK) / -8.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = FloatToHalf(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(x[j + kQK / 2] * id + 8.5f));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// gguf's MXFP4 quantizer: the shared exponent puts the block's largest
// magnitude in [4, 8) times 2^(e-128) (the table's top value is 12), and each
// value takes the nearest table entry (the lowest code on ties).
void QuantizeMxfp4(const float* x, int64_t nb, BlockMXFP4* y) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    int e = 0;
    if (amax > 0) {
      int ex;
      std::frexp(amax, &ex);  // amax = m * 2^ex, m in [0.5, 1): floor(log2) = ex - 1
      e = std::clamp(ex - 1 - 2 + 127, 0, 255);
    }
    y[i].e = static_cast<uint8_t>(e);
    const float d = Mxfp4Scale(y[i].e);
    uint8_t code[kQK];
    for (int j = 0; j < kQK; ++j) {
      int best = 0;
      float best_err = std::fabs(d * kMxfp4Values[0] - x[j]);
      for (int c = 1; c < 16; ++c) {
        const float err = std::fabs(d * kMxfp4Values[c] - x[j]);
        if (err < best_err) best = c, best_err = err;
      }
      code[j] = static_cast<uint8_t>(best);
    }
    for (int j = 0; j < kQK / 2; ++j) {
      y[i].qs[j] = static_cast<uint8_t>(code[j] | (code[j + kQK / 2] << 4));
    }
  }
}

void DequantizeMxfp4(const BlockMXFP4* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = Mxfp4Scale(b[i].e);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * kMxfp4Values[b[i].qs[j] & 0xF];
      y[j + kQK / 2] = d * kMxfp4Values[b[i].qs[j] >> 4];
    }
  }
}

template <typename Block>
void QuantizeMinMax(const float* x, int64_t nb, Block* y, int levels) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < kQK; ++j) {
      mn = std::min(mn, x[j]);
      mx = std::max(mx, x[j]);
    }
    const float d = (mx - mn) / static_cast<float>(levels);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = FloatToHalf(d);
    y[i].m = FloatToHalf(mn);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(levels, static_cast<int>((x[j] - mn) * id + 0.5f));
      const int q1 = std::min(levels, static_cast<int>((x[j + kQK / 2] - mn) * id + 0.5f));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + kQK / 2);
    }
    if constexpr (requires { y[i].qh; }) std::memcpy(y[i].qh, &qh, 4);
  }
}

void QuantizeQ5_0(const float* x, int64_t nb, BlockQ5_0* y) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = SignedAbsMax(x, kQK) / -16.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = FloatToHalf(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>(x[j] * id + 16.5f));
      const int q1 = std::min(31, static_cast<int>(x[j + kQK / 2] * id + 16.5f));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + kQK / 2);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

void DequantizeQ8_0(const BlockQ8_0* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = H(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * b[i].qs[j];
  }
}

void DequantizeQ4_0(const BlockQ4_0* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = H(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * ((b[i].qs[j] & 0xF) - 8);
      y[j + kQK / 2] = d * ((b[i].qs[j] >> 4) - 8);
    }
  }
}

void DequantizeQ4_1(const BlockQ4_1* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = H(b[i].d), m = H(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * (b[i].qs[j] & 0xF) + m;
      y[j + kQK / 2] = d * (b[i].qs[j] >> 4) + m;
    }
  }
}

// Q5_0 (bias 16, no min) and Q5_1 (min m) share the bit layout.
template <typename Block>
void DequantizeQ5(const Block* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = H(b[i].d);
    float m = -16.0f * d;
    if constexpr (requires { b[i].m; }) m = H(b[i].m);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = (b[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      const int q1 = (b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = d * q0 + m;
      y[j + kQK / 2] = d * q1 + m;
    }
  }
}

// ---------------------------------------------------------------- k-quants

// Fits x[i] ≈ scale * L[i] - min_off with L in [0, nmax], min_off >= 0,
// minimising the weighted squared error over a range of candidate scales.
// Returns the scale; *min_off receives the (non-negative) offset.
float FitScaleMin(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_off) {
  float mn = x[0], mx = x[0], sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  mn = std::min(mn, 0.0f);
  if (mx == mn) {
    std::fill(L, L + n, 0);
    *min_off = -mn;
    return 0.0f;
  }
  auto error_of = [&](float scale, float minv, const uint8_t* l) {
    float e = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = scale * l[i] + minv - x[i];
      e += w[i] * diff * diff;
    }
    return e;
  };
  float iscale = nmax / (mx - mn);
  float best_scale = 1.0f / iscale, best_min = mn;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(NearestInt(iscale * (x[i] - mn)), 0, nmax));
  }
  float best_err = error_of(best_scale, best_min, L);
  uint8_t Laux[kQKK];
  for (int step = 0; step <= 20; ++step) {
    iscale = (-1.0f + 0.1f * step + nmax) / (mx - mn);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(NearestInt(iscale * (x[i] - mn)), 0, nmax);
      Laux[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float minv = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (minv > 0) {
      minv = 0;
      scale = sum_l2 > 0 ? sum_xl / sum_l2 : 0;
    }
    const float err = error_of(scale, minv, Laux);
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
      best_min = minv;
      std::memcpy(L, Laux, n);
    }
  }
  *min_off = -best_min;
  return best_scale;
}

// Packs 6-bit group scales and mins of a Q4_K/Q5_K block into 12 bytes.
void PackKScales(const uint8_t ls[8], const uint8_t lm[8], uint8_t* q) {
  std::memset(q, 0, kKScaleBytes);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      q[j] = ls[j];
      q[j + 4] = lm[j];
    } else {
      q[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      q[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      q[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
}

// Common part of Q4_K and Q5_K: per-group fits, 6-bit scales, final levels.
void QuantizeKGroups(const float* x, int nmax, uint16_t* d_out, uint16_t* dmin_out,
                     uint8_t* scales, uint8_t L[kQKK]) {
  float sum_x2 = 0;
  for (int i = 0; i < kQKK; ++i) sum_x2 += x[i] * x[i];
  const float av_x = std::sqrt(sum_x2 / kQKK);
  float sc[8], mins[8], w[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xg = x + 32 * j;
    for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xg[l]);
    sc[j] = FitScaleMin(32, nmax, xg, w, L + 32 * j, &mins[j]);
    max_scale = std::max(max_scale, sc[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(std::min(63, NearestInt(inv_scale * sc[j])));
    lm[j] = static_cast<uint8_t>(std::min(63, NearestInt(inv_min * mins[j])));
  }
  PackKScales(ls, lm, scales);
  *d_out = FloatToHalf(max_scale / 63.0f);
  *dmin_out = FloatToHalf(max_min / 63.0f);
  const float d = H(*d_out), dmin = H(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float dg = d * ls[j];
    if (dg == 0) {
      std::fill(L + 32 * j, L + 32 * j + 32, 0);
      continue;
    }
    const float dm = dmin * lm[j];
    for (int l = 0; l < 32; ++l) {
      L[32 * j + l] = static_cast<uint8_t>(
          std::clamp(NearestInt((x[32 * j + l] + dm) / dg), 0, nmax));
    }
  }
}

void QuantizeQ4K(const float* x, int64_t nb, BlockQ4K* y) {
  uint8_t L[kQKK];
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    QuantizeKGroups(x, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    uint8_t* q = y[i].qs;
    for (int j = 0; j < kQKK; j += 64, q += 32) {
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    }
  }
}

void QuantizeQ5K(const float* x, int64_t nb, BlockQ5K* y) {
  uint8_t L[kQKK];
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    QuantizeKGroups(x, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    uint8_t* q = y[i].qs;
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < kQKK; n += 64, q += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j], l2 = L[n + j + 32];
        if (l1 > 15) {
          l1 -= 16;
          y[i].qh[j] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          y[i].qh[j] |= m2;
        }
        q[j] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
      m1 = static_cast<uint8_t>(m1 << 2);
      m2 = static_cast<uint8_t>(m2 << 2);
    }
  }
}

// Fits x ≈ scale * L with L in [-nmax, nmax-1], weights x², over candidate
// scales around the absmax one. Returns the scale (0 for an all-zero group).
float FitSymmetricScale(int n, int nmax, const float* x) {
  const float max = SignedAbsMax(x, n);
  if (max == 0) return 0.0f;
  float best_scale = 0, best_score = -1;
  for (int step = -9; step <= 9; ++step) {
    const float iscale = -(nmax + 0.1f * step) / max;
    float sum_lx = 0, sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sum_lx += w * x[i] * l;
      sum_l2 += w * l * l;
    }
    // Least-squares scale sum_lx/sum_l2 leaves error Σwx² - sum_lx²/sum_l2.
    if (sum_l2 > 0 && sum_lx * sum_lx / sum_l2 > best_score) {
      best_score = sum_lx * sum_lx / sum_l2;
      best_scale = sum_lx / sum_l2;
    }
  }
  return best_scale;
}

void QuantizeQ6K(const float* x, int64_t nb, BlockQ6K* y) {
  uint8_t L[kQKK];
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    float sc[16], max_scale = 0, amax = 0;
    for (int g = 0; g < 16; ++g) {
      sc[g] = FitSymmetricScale(16, 32, x + 16 * g);
      if (std::fabs(sc[g]) > amax) {
        amax = std::fabs(sc[g]);
        max_scale = sc[g];
      }
    }
    BlockQ6K& b = y[i];
    if (amax == 0) {
      std::memset(&b, 0, sizeof(b));
      std::fill(L, L + kQKK, 32);
    } else {
      const float iscale = -128.0f / max_scale;
      b.d = FloatToHalf(1.0f / iscale);
      const float d = H(b.d);
      for (int g = 0; g < 16; ++g) {
        b.scales[g] = static_cast<int8_t>(std::min(127, NearestInt(iscale * sc[g])));
        const float dg = d * b.scales[g];
        for (int l = 0; l < 16; ++l) {
          const int q = dg == 0 ? 0 : std::clamp(NearestInt(x[16 * g + l] / dg), -32, 31);
          L[16 * g + l] = static_cast<uint8_t>(q + 32);
        }
      }
    }
    uint8_t* ql = b.ql;
    uint8_t* qh = b.qh;
    for (int j = 0; j < kQKK; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
        ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) |
                                     ((q4 >> 4) << 6));
      }
    }
  }
}

void QuantizeQ8K(const float* x, int64_t nb, BlockQ8K* y) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    const float max = SignedAbsMax(x, kQKK);
    if (max == 0) {
      std::memset(&y[i], 0, sizeof(y[i]));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQKK; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[j])));
    }
    for (int g = 0; g < kQKK / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * g + l];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}

void DequantizeQ8K(const BlockQ8K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    for (int j = 0; j < kQKK; ++j) y[j] = b[i].d * b[i].qs[j];
  }
}

void DequantizeQ2K(const BlockQ2K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = H(b[i].d), dmin = H(b[i].dmin);
    const uint8_t* q = b[i].qs;
    int is = 0;
    for (int n = 0; n < kQKK; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = b[i].scales[is++];
          const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void DequantizeQ3K(const BlockQ3K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = H(b[i].d);
    int8_t scales[16];
    Q3KScales(b[i].scales, scales);
    const uint8_t* q = b[i].qs;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < kQKK; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d * scales[is++];
          for (int l = 0; l < 16; ++l) {
            const int k = l + 16 * half;
            const int v = ((q[k] >> shift) & 3) - ((b[i].hmask[k] & m) ? 0 : 4);
            *y++ = dl * v;
          }
        }
      }
    }
  }
}

// Q4_K and Q5_K share the packed 6-bit scales/mins and the nibble order;
// Q5_K adds each weight's fifth bit from qh (bit pair j/2 of byte l).
template <bool kFive, typename Block>
void DequantizeQ45K(const Block* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = H(b[i].d), dmin = H(b[i].dmin);
    const uint8_t* q = b[i].qs;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 8; j += 2, q += 32) {
      uint8_t sc, m;
      KScaleMin(j, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      KScaleMin(j + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) {
        int high = 0;
        if constexpr (kFive) high = (b[i].qh[l] & u1) ? 16 : 0;
        *y++ = d1 * ((q[l] & 0xF) + high) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        int high = 0;
        if constexpr (kFive) high = (b[i].qh[l] & u2) ? 16 : 0;
        *y++ = d2 * ((q[l] >> 4) + high) - m2;
      }
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void DequantizeQ6K(const BlockQ6K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = H(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int n = 0; n < kQKK; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

absl::Status CheckRow(GgmlType t, int64_t n, const char* op) {
  const GgmlTypeTraits* tr = GgmlTypeTraitsOf(t);
  if (tr == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": unknown ggml type id ", static_cast<uint32_t>(t)));
  }
  if (n < 0 || n % tr->block_elems != 0) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": row of ", n, " elements is not a multiple of ",
                                                   Av(tr->name), "'s block size ", tr->block_elems));
  }
  return absl::OkStatus();
}

}  // namespace

bool CanQuantize(GgmlType t) {
  switch (t) {
    case GgmlType::kF32: case GgmlType::kF16: case GgmlType::kBF16:
    case GgmlType::kQ8_0: case GgmlType::kQ4_0: case GgmlType::kQ4_1:
    case GgmlType::kQ5_0: case GgmlType::kQ5_1: case GgmlType::kQ8_K:
    case GgmlType::kQ4_K: case GgmlType::kQ5_K: case GgmlType::kQ6_K:
    case GgmlType::kMXFP4:
      return true;
    default:
      return false;
  }
}

bool CanCompute(GgmlType t) {
  return CanQuantize(t) || t == GgmlType::kQ2_K || t == GgmlType::kQ3_K;
}

absl::Status QuantizeRow(GgmlType t, const float* x, int64_t n, void* out) {
  if (absl::Status s = CheckRow(t, n, "quantize"); !s.ok()) return s;
  const GgmlTypeTraits* tr = GgmlTypeTraitsOf(t);
  const int64_t nb = n / tr->block_elems;
  switch (t) {
    case GgmlType::kF32:
      std::memcpy(out, x, n * sizeof(float));
      return absl::OkStatus();
    case GgmlType::kF16: {
      auto* y = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) y[i] = FloatToHalf(x[i]);
      return absl::OkStatus();
    }
    case GgmlType::kBF16: {
      auto* y = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) y[i] = FloatToBf16(x[i]);
      return absl::OkStatus();
    }
    case GgmlType::kQ8_0: QuantizeQ8_0(x, nb, static_cast<BlockQ8_0*>(out)); break;
    case GgmlType::kQ4_0: QuantizeQ4_0(x, nb, static_cast<BlockQ4_0*>(out)); break;
    case GgmlType::kQ4_1: QuantizeMinMax(x, nb, static_cast<BlockQ4_1*>(out), 15); break;
    case GgmlType::kQ5_0: QuantizeQ5_0(x, nb, static_cast<BlockQ5_0*>(out)); break;
    case GgmlType::kQ5_1: QuantizeMinMax(x, nb, static_cast<BlockQ5_1*>(out), 31); break;
    case GgmlType::kQ8_K: QuantizeQ8K(x, nb, static_cast<BlockQ8K*>(out)); break;
    case GgmlType::kQ4_K: QuantizeQ4K(x, nb, static_cast<BlockQ4K*>(out)); break;
    case GgmlType::kQ5_K: QuantizeQ5K(x, nb, static_cast<BlockQ5K*>(out)); break;
    case GgmlType::kQ6_K: QuantizeQ6K(x, nb, static_cast<BlockQ6K*>(out)); break;
    case GgmlType::kMXFP4: QuantizeMxfp4(x, nb, static_cast<BlockMXFP4*>(out)); break;
    default:
      return absl::UnimplementedError(
          absl::StrCat("quantize: no quantizer for type ", Av(tr->name)));
  }
  return absl::OkStatus();
}

absl::Status DequantizeRow(GgmlType t, const void* in, int64_t n, float* y) {
  if (absl::Status s = CheckRow(t, n, "dequantize"); !s.ok()) return s;
  const GgmlTypeTraits* tr = GgmlTypeTraitsOf(t);
  const int64_t nb = n / tr->block_elems;
  switch (t) {
    case GgmlType::kF32: std::memcpy(y, in, n * sizeof(float)); break;
    case GgmlType::kF16: {
      const auto* h = static_cast<const uint16_t*>(in);
      for (int64_t i = 0; i < n; ++i) y[i] = HalfToFloat(h[i]);
      break;
    }
    case GgmlType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(in);
      for (int64_t i = 0; i < n; ++i) y[i] = Bf16ToFloat(h[i]);
      break;
    }
    case GgmlType::kQ8_0: DequantizeQ8_0(static_cast<const BlockQ8_0*>(in), nb, y); break;
    case GgmlType::kQ4_0: DequantizeQ4_0(static_cast<const BlockQ4_0*>(in), nb, y); break;
    case GgmlType::kQ4_1: DequantizeQ4_1(static_cast<const BlockQ4_1*>(in), nb, y); break;
    case GgmlType::kQ5_0: DequantizeQ5(static_cast<const BlockQ5_0*>(in), nb, y); break;
    case GgmlType::kQ5_1: DequantizeQ5(static_cast<const BlockQ5_1*>(in), nb, y); break;
    case GgmlType::kQ8_K: DequantizeQ8K(static_cast<const BlockQ8K*>(in), nb, y); break;
    case GgmlType::kQ2_K: DequantizeQ2K(static_cast<const BlockQ2K*>(in), nb, y); break;
    case GgmlType::kQ3_K: DequantizeQ3K(static_cast<const BlockQ3K*>(in), nb, y); break;
    case GgmlType::kQ4_K: DequantizeQ45K<false>(static_cast<const BlockQ4K*>(in), nb, y); break;
    case GgmlType::kQ5_K: DequantizeQ45K<true>(static_cast<const BlockQ5K*>(in), nb, y); break;
    case GgmlType::kQ6_K: DequantizeQ6K(static_cast<const BlockQ6K*>(in), nb, y); break;
    case GgmlType::kMXFP4: DequantizeMxfp4(static_cast<const BlockMXFP4*>(in), nb, y); break;
    default:
      return absl::UnimplementedError(
          absl::StrCat("dequantize: type ", Av(tr->name), " is not supported"));
  }
  return absl::OkStatus();
}

uint16_t FloatToHalf(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {  // Inf or NaN (NaN stays quiet NaN)
    return static_cast<uint16_t>(sign | (ax > 0x7f800000u ? 0x7e00 : 0x7c00));
  }
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);  // rounds past 65504
  if (ax < 0x38800000u) {
    // Below the smallest normal half: adding 0.5 lines the float's mantissa up
    // with half subnormal units (2^-24) and rounds to nearest even for us.
    const float a = std::bit_cast<float>(ax) + 0.5f;
    return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(a) - 0x3f000000u));
  }
  const uint32_t odd = (ax >> 13) & 1;
  ax += 0xc8000fffu + odd;  // rebias exponent (127 -> 15) and round to nearest even
  return static_cast<uint16_t>(sign | (ax >> 13));
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // 2^-24
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t FloatToBf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

float Bf16ToFloat(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

}  // namespace moestream::kernels
