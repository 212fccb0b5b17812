// Scalar reference dot products for every computable weight type, the
// activation converters, and the ISA table lookup. The optimised ISA kernels
// are tested against these (tests/kernels/matmul_test.cc); these in turn are
// tested against a double-precision product of dequantized weights.
//
// Integer accumulation matches the vector kernels: per block (or group) the
// int8×intN products are summed exactly in int32, then scaled in float.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/quant.h"

namespace moestream::kernels::cpu {
namespace {

// Activation rows are rounded as llama.cpp's x86 matmuls round them, not as
// its reference weight quantizer does: id = 127/amax (not 1/d) and ties to
// even (not away from zero). A model quantized by llama.cpp follows its
// greedy path only with the same activation rounding.
void QuantizeActQ8_0(const float* x, int64_t n, void* out) {
  auto* y = static_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    y[i].d = FloatToHalf(amax / 127.0f);
    const float id = amax != 0 ? 127.0f / amax : 0.0f;
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
  }
}
void QuantizeActQ8K(const float* x, int64_t n, void* out) {
  MOESTREAM_CHECK(QuantizeRow(GgmlType::kQ8_K, x, n, out).ok());
}
void CopyActF32(const float* x, int64_t n, void* out) { std::memcpy(out, x, n * sizeof(float)); }

float DotF32(int64_t n, const void* w, const void* x) {
  const float* a = static_cast<const float*>(w);
  const float* b = static_cast<const float*>(x);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <float (*Cvt)(uint16_t)>
float DotHalfLike(int64_t n, const void* w, const void* x) {
  const uint16_t* a = static_cast<const uint16_t*>(w);
  const float* b = static_cast<const float*>(x);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += Cvt(a[i]) * b[i];
  return s;
}

float DotQ8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ8_0*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  float s = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += a[i].qs[j] * b[i].qs[j];
    s += HalfToFloat(a[i].d) * HalfToFloat(b[i].d) * static_cast<float>(sum);
  }
  return s;
}

float DotQ4_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ4_0*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  float s = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    int sum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sum += ((a[i].qs[j] & 0xF) - 8) * b[i].qs[j];
      sum += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + kQK / 2];
    }
    s += HalfToFloat(a[i].d) * HalfToFloat(b[i].d) * static_cast<float>(sum);
  }
  return s;
}

// llama.cpp's order: per block the exact integer sum of table value times
// activation code, then E8M0 scale times activation scale times that sum.
float DotMxfp4(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockMXFP4*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  float s = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    int sum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sum += kMxfp4Values[a[i].qs[j] & 0xF] * b[i].qs[j];
      sum += kMxfp4Values[a[i].qs[j] >> 4] * b[i].qs[j + kQK / 2];
    }
    s += Mxfp4Scale(a[i].e) * HalfToFloat(b[i].d) * static_cast<float>(sum);
  }
  return s;
}

float DotQ5_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ5_0*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  float s = 0;
  for (int64_t i = 0; i < n / kQK; ++i) {
    uint32_t qh;
    std::memcpy(&qh, a[i].qh, 4);
    int sum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (a[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      const int hi = (a[i].qs[j] >> 4) | (((qh >> (j + kQK / 2)) & 1) << 4);
      sum += (lo - 16) * b[i].qs[j] + (hi - 16) * b[i].qs[j + kQK / 2];
    }
    s += HalfToFloat(a[i].d) * HalfToFloat(b[i].d) * static_cast<float>(sum);
  }
  return s;
}

// Q4_K and Q5_K: x = d*sc*q - dmin*m per group of 32; the min term uses the
// activation's 16-element sums.
template <bool kFive>
float DotQ45K(int64_t n, const void* w, const void* x) {
  const auto* b = static_cast<const BlockQ8K*>(x);
  float s = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const uint8_t* scales;
    const uint8_t* qs;
    const uint8_t* qh = nullptr;
    float d, dmin;
    if constexpr (kFive) {
      const auto& a = static_cast<const BlockQ5K*>(w)[i];
      scales = a.scales, qs = a.qs, qh = a.qh;
      d = HalfToFloat(a.d), dmin = HalfToFloat(a.dmin);
    } else {
      const auto& a = static_cast<const BlockQ4K*>(w)[i];
      scales = a.scales, qs = a.qs;
      d = HalfToFloat(a.d), dmin = HalfToFloat(a.dmin);
    }
    int sumi = 0, summ = 0;
    for (int g = 0; g < 8; ++g) {
      uint8_t sc, m;
      KScaleMin(g, scales, &sc, &m);
      const uint8_t* q = qs + 32 * (g / 2);
      const int shift = 4 * (g % 2);
      int dot = 0;
      for (int l = 0; l < 32; ++l) {
        int v = (q[l] >> shift) & 0xF;
        if constexpr (kFive) v += ((qh[l] >> g) & 1) << 4;
        dot += v * b[i].qs[32 * g + l];
      }
      sumi += sc * dot;
      summ += m * (b[i].bsums[2 * g] + b[i].bsums[2 * g + 1]);
    }
    s += b[i].d * (d * static_cast<float>(sumi) - dmin * static_cast<float>(summ));
  }
  return s;
}

float DotQ6K(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ6K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  float s = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    int sumi = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = a[i].ql + 64 * half;
      const uint8_t* qh = a[i].qh + 32 * half;
      const int8_t* sc = a[i].scales + 8 * half;
      const int8_t* q8 = b[i].qs + 128 * half;
      int grp[8] = {};
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        grp[is + 0] += (((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32) * q8[l];
        grp[is + 2] += (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32) * q8[l + 32];
        grp[is + 4] += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * q8[l + 64];
        grp[is + 6] += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * q8[l + 96];
      }
      for (int g = 0; g < 8; ++g) sumi += sc[g] * grp[g];
    }
    s += HalfToFloat(a[i].d) * b[i].d * static_cast<float>(sumi);
  }
  return s;
}

// Any dequantizable type against F32 activations, one block at a time.
template <GgmlType T>
float DequantDot(int64_t n, const void* w, const void* x) {
  const GgmlTypeTraits* tr = GgmlTypeTraitsOf(T);
  const int be = static_cast<int>(tr->block_elems);
  const float* xf = static_cast<const float*>(x);
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  float buf[kQKK];
  float s = 0;
  for (int64_t i = 0; i < n / be; ++i) {
    MOESTREAM_CHECK(DequantizeRow(T, wb + i * tr->block_bytes, be, buf).ok());
    for (int j = 0; j < be; ++j) s += buf[j] * xf[i * be + j];
  }
  return s;
}

}  // namespace

void FillScalarKernels(MatmulKernels& k) {
  k.For(GgmlType::kF32) = {GgmlType::kF32, CopyActF32, DotF32, nullptr};
  k.For(GgmlType::kF16) = {GgmlType::kF32, CopyActF32, DotHalfLike<HalfToFloat>, nullptr};
  k.For(GgmlType::kBF16) = {GgmlType::kF32, CopyActF32, DotHalfLike<Bf16ToFloat>, nullptr};
  k.For(GgmlType::kQ8_0) = {GgmlType::kQ8_0, QuantizeActQ8_0, DotQ8_0, nullptr};
  k.For(GgmlType::kQ4_0) = {GgmlType::kQ8_0, QuantizeActQ8_0, DotQ4_0, nullptr};
  k.For(GgmlType::kQ4_K) = {GgmlType::kQ8_K, QuantizeActQ8K, DotQ45K<false>, nullptr};
  k.For(GgmlType::kQ5_K) = {GgmlType::kQ8_K, QuantizeActQ8K, DotQ45K<true>, nullptr};
  k.For(GgmlType::kQ6_K) = {GgmlType::kQ8_K, QuantizeActQ8K, DotQ6K, nullptr};
  k.For(GgmlType::kQ4_1) = {GgmlType::kF32, CopyActF32, DequantDot<GgmlType::kQ4_1>, nullptr};
  k.For(GgmlType::kQ5_0) = {GgmlType::kQ8_0, QuantizeActQ8_0, DotQ5_0, nullptr};
  k.For(GgmlType::kMXFP4) = {GgmlType::kQ8_0, QuantizeActQ8_0, DotMxfp4, nullptr};
  k.For(GgmlType::kQ5_1) = {GgmlType::kF32, CopyActF32, DequantDot<GgmlType::kQ5_1>, nullptr};
  k.For(GgmlType::kQ2_K) = {GgmlType::kF32, CopyActF32, DequantDot<GgmlType::kQ2_K>, nullptr};
  k.For(GgmlType::kQ3_K) = {GgmlType::kF32, CopyActF32, DequantDot<GgmlType::kQ3_K>, nullptr};
  k.For(GgmlType::kQ8_K) = {GgmlType::kF32, CopyActF32, DequantDot<GgmlType::kQ8_K>, nullptr};
}

// Rows include partial vectors (odd block counts, n = 100 for floats); tiles
// cover every row and token count up to 6 (full tiles and each remainder).
std::vector<GgmlType> CheckKernelsAgainst(const MatmulKernels& wide, const MatmulKernels& base) {
  std::vector<GgmlType> bad;
  uint32_t seed = 12345;
  auto rnd = [&seed] {
    seed = seed * 1664525u + 1013904223u;
    return static_cast<float>(static_cast<int32_t>(seed >> 8) - (1 << 23)) / (1 << 23);
  };
  auto close = [](float got, float ref, int64_t n) {
    return std::fabs(got - ref) <= 1e-4f * (std::fabs(ref) + static_cast<float>(n) * 0.01f);
  };
  constexpr int64_t kMaxTile = 6;
  for (int id = 0; id < kMaxTypeId; ++id) {
    const TypeKernels& w = wide.types[id];
    const TypeKernels& b = base.types[id];
    if (w.dot == nullptr || (w.dot == b.dot && w.dot_tile == nullptr)) continue;
    const GgmlType t = static_cast<GgmlType>(id);
    const int64_t block = GgmlTypeTraitsOf(t)->block_elems;
    bool ok = true;
    for (int64_t n : {block * 1, block * 3, block == 1 ? int64_t{100} : block * 7, int64_t{1536}}) {
      if (!ok) break;
      const size_t wb = RowBytes(t, n), ab = ActRowBytes(b, n);
      std::vector<uint8_t> wq(wb * kMaxTile), xq(ab * kMaxTile + 64);
      std::vector<float> xw(n), xa(n);
      for (int64_t r = 0; r < kMaxTile; ++r) {
        for (auto& v : xw) v = rnd();
        for (auto& v : xa) v = rnd();
        MOESTREAM_CHECK(QuantizeRow(t, xw.data(), n, wq.data() + r * wb).ok());
        b.quantize_act(xa.data(), n, xq.data() + r * ab);
      }
      std::vector<float> ref(kMaxTile * kMaxTile);
      for (int64_t tok = 0; tok < kMaxTile; ++tok) {
        for (int64_t r = 0; r < kMaxTile; ++r) {
          ref[tok * kMaxTile + r] = b.dot(n, wq.data() + r * wb, xq.data() + tok * ab);
        }
      }
      ok = close(w.dot(n, wq.data(), xq.data()), ref[0], n);
      for (int64_t rows = 1; ok && w.dot_tile != nullptr && rows <= kMaxTile; ++rows) {
        for (int64_t n_tok = 1; ok && n_tok <= kMaxTile; ++n_tok) {
          std::vector<float> y(kMaxTile * kMaxTile, NAN);
          w.dot_tile(n, wq.data(), wb, rows, xq.data(), ab, n_tok, y.data(), kMaxTile);
          for (int64_t tok = 0; ok && tok < n_tok; ++tok) {
            for (int64_t r = 0; ok && r < rows; ++r) {
              ok = close(y[tok * kMaxTile + r], ref[tok * kMaxTile + r], n);
            }
          }
        }
      }
    }
    if (!ok) bad.push_back(t);
  }
  return bad;
}

namespace {

struct Tables {
  MatmulKernels k[kIsaCount];
  std::vector<GgmlType> avx512_rejected;
};

const Tables& GetTables() {
  static const Tables* tables = [] {
    auto* t = new Tables;
    FillScalarKernels(t->k[0]);
    t->k[0].isa = Isa::kScalar;
    for (int i = 1; i < kIsaCount; ++i) t->k[i] = t->k[0];
    // The ISA files are compiled for their ISA: nothing in them may run,
    // not even the table fill, on a CPU without it.
    const CpuFeatures& f = DetectCpuFeatures();
    if (f.HasAvx2Set()) {
      FillAvx2Kernels(t->k[1]);
      t->k[2] = t->k[1];
      t->k[3] = t->k[1];
    }
    // Each AVX-512 table is checked against the AVX2 one; a disagreeing
    // type falls back to the AVX2 kernel.
    auto check = [t](MatmulKernels& wide) {
      for (GgmlType bad : CheckKernelsAgainst(wide, t->k[1])) {
        wide.types[static_cast<int>(bad)] = t->k[1].types[static_cast<int>(bad)];
        t->avx512_rejected.push_back(bad);
      }
    };
    if (f.HasAvx512Set()) {
      FillAvx512Kernels(t->k[2]);
      t->k[3] = t->k[2];
      check(t->k[2]);
    }
    if (f.HasAvx512VnniSet()) {
      FillAvx512VnniKernels(t->k[3]);
      check(t->k[3]);
    }
    for (int i = 0; i < kIsaCount; ++i) t->k[i].isa = static_cast<Isa>(i);
    return t;
  }();
  return *tables;
}

}  // namespace

const MatmulKernels& KernelsFor(Isa isa) { return GetTables().k[static_cast<int>(isa)]; }

std::vector<GgmlType> Avx512RejectedKernels() { return GetTables().avx512_rejected; }

size_t ActRowBytes(const TypeKernels& k, int64_t n) {
  return static_cast<size_t>(RowBytes(k.act_type, static_cast<uint64_t>(n)));
}

}  // namespace moestream::kernels::cpu
