// The CUDA backend's weight formats, checked on the CPU: kernels/cuda/cuda_quant.h
// is the code the device kernels run (host and device compile the same
// functions), so every unpacker is compared here with kernels/quant.cc's
// DequantizeRow, and the int8 chunk dot product with a float dot product.
// Runs without a GPU and without nvcc.
#include "kernels/cuda/cuda_quant.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/quant.h"
#include "tests/kernels/kernel_test_util.h"

namespace moestream::kernels {
namespace {

using cuda::Chunk32;

// Every type id GGUF defines (the loader's universe).
std::vector<GgmlType> AllTypes() {
  std::vector<GgmlType> out;
  for (uint32_t id = 0; id < 64; ++id) {
    if (const GgmlTypeTraits* t = GgmlTypeTraitsOf(id)) out.push_back(t->type);
  }
  return out;
}

// What the loader accepts is what the CPU kernels compute (kernels::CanCompute);
// each such type must have a CUDA kernel, or the CUDA backend must say it
// cannot compute it (then the loader refuses the model on it).
TEST(CudaTypeCoverageTest, EveryTypeTheLoaderAcceptsHasACudaKernel) {
  int accepted = 0;
  for (GgmlType t : AllTypes()) {
    if (!CanCompute(t)) continue;
    ++accepted;
    EXPECT_TRUE(cuda::CudaCanCompute(t))
        << GgmlTypeName(t) << " is accepted by the loader but has no CUDA kernel";
  }
  EXPECT_GE(accepted, 14);
}

TEST(CudaTypeCoverageTest, CudaTypesAreKnownAndDisjoint) {
  for (GgmlType t : cuda::kCudaQuantTypes) {
    const GgmlTypeTraits* tr = GgmlTypeTraitsOf(t);
    ASSERT_NE(tr, nullptr);
    EXPECT_EQ(tr->block_elems % 32, 0u) << tr->name;
    EXPECT_FALSE(cuda::CudaIsFloatType(t)) << tr->name;
  }
  EXPECT_TRUE(cuda::CudaCanCompute(GgmlType::kMXFP4));
  EXPECT_FALSE(cuda::CudaCanCompute(GgmlType::kIQ2_XXS));
  EXPECT_FALSE(cuda::CudaCanCompute(GgmlType::kQ8_1));
  EXPECT_FALSE(cuda::CudaCanCompute(GgmlType::kI32));
}

// The CPU backend accepts exactly what its kernels compute, and computes it:
// one product per accepted type against a float product of DequantizeRow.
TEST(CudaTypeCoverageTest, CpuBackendComputesEveryTypeItAccepts) {
  BackendOptions o;
  o.kind = "cpu";
  o.threads = 1;
  auto be = CreateBackend(o);
  ASSERT_TRUE(be.ok()) << be.status();
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255);
  const int64_t n_in = 256, n_out = 4;
  std::vector<float> x(n_in);
  for (int64_t i = 0; i < n_in; ++i) x[i] = std::sin(0.37f * float(i));
  for (GgmlType t : AllTypes()) {
    EXPECT_EQ((*be)->CanCompute(t), CanCompute(t)) << GgmlTypeName(t);
    if (!(*be)->CanCompute(t)) continue;
    const size_t rb = RowBytes(t, n_in);
    std::vector<uint8_t> w(rb * n_out);
    std::vector<float> row(n_in);
    for (int64_t r = 0; r < n_out; ++r) {
      for (int64_t i = 0; i < n_in; ++i) row[i] = std::cos(0.11f * float(i * (r + 1)));
      if (CanQuantize(t)) {
        ASSERT_TRUE(QuantizeRow(t, row.data(), n_in, &w[r * rb]).ok());
      } else {
        for (size_t i = 0; i < rb; ++i) w[r * rb + i] = static_cast<uint8_t>(byte(rng) & 0x3B);
      }
    }
    std::vector<float> y(n_out);
    (*be)->MatMul({t, n_in, n_out, w.data()}, x.data(), 1, y.data());
    for (int64_t r = 0; r < n_out; ++r) {
      ASSERT_TRUE(DequantizeRow(t, &w[r * rb], n_in, row.data()).ok());
      double ref = 0, mag = 0;
      for (int64_t i = 0; i < n_in; ++i) {
        ref += double(row[i]) * x[i];
        mag += std::fabs(double(row[i]) * x[i]);
      }
      EXPECT_NEAR(y[r], ref, 2e-2 * mag + 1e-3) << GgmlTypeName(t) << " row " << r;
    }
  }
}

template <GgmlType T>
void Unpack(const uint8_t* row, int64_t c, Chunk32* out) {
  cuda::UnpackChunk<T>(row, c, out);
}

using UnpackFn = void (*)(const uint8_t*, int64_t, Chunk32*);
UnpackFn UnpackerOf(GgmlType t) {
  switch (t) {
#define MOESTREAM_CASE(T) \
  case GgmlType::k##T:    \
    return &Unpack<GgmlType::k##T>;
    MOESTREAM_CUDA_QUANT_TYPES(MOESTREAM_CASE)
#undef MOESTREAM_CASE
    default:
      return nullptr;
  }
}

std::vector<float> Reference(GgmlType t, const std::vector<uint8_t>& b, int64_t n) {
  return testing::DequantizeForTest(t, b.data(), n);
}

TEST(CudaQuantTest, UnpackedChunksMatchTheCpuDequantizer) {
  std::mt19937 rng(7);
  const int64_t n = 512;
  for (GgmlType t : cuda::kCudaQuantTypes) {
    UnpackFn unpack = UnpackerOf(t);
    ASSERT_NE(unpack, nullptr);
    for (int rep = 0; rep < 8; ++rep) {
      std::vector<uint8_t> b = testing::RandomQuantBlocks(t, n, rng);
      std::vector<float> ref = Reference(t, b, n);
      for (int64_t c = 0; c < n / 32; ++c) {
        Chunk32 ch;
        unpack(b.data(), c, &ch);
        for (int j = 0; j < 32; ++j) {
          const float got = ch.scale[j / 16] * float(ch.Q(j)) + ch.min[j / 16];
          const float r = ref[c * 32 + j];
          const float tol = 1e-6f * (std::fabs(r) + 32 * std::fabs(ch.scale[j / 16]) +
                                     std::fabs(ch.min[j / 16]));
          ASSERT_NEAR(got, r, tol) << GgmlTypeName(t) << " chunk " << c << " element " << j;
        }
      }
    }
  }
}

// Quantized weights from real data (the quantizers' output, not random bits).
TEST(CudaQuantTest, UnpackMatchesDequantizeOnQuantizedData) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0, 1);
  const int64_t n = 1024;
  std::vector<float> x(n);
  for (float& v : x) v = nd(rng);
  for (GgmlType t : cuda::kCudaQuantTypes) {
    if (!CanQuantize(t)) continue;
    std::vector<uint8_t> b(RowBytes(t, n));
    ASSERT_TRUE(QuantizeRow(t, x.data(), n, b.data()).ok());
    std::vector<float> ref = Reference(t, b, n);
    for (int64_t c = 0; c < n / 32; ++c) {
      Chunk32 ch;
      UnpackerOf(t)(b.data(), c, &ch);
      for (int j = 0; j < 32; ++j) {
        const float got = ch.scale[j / 16] * float(ch.Q(j)) + ch.min[j / 16];
        ASSERT_NEAR(got, ref[c * 32 + j], 1e-5f * (1 + std::fabs(ref[c * 32 + j])))
            << GgmlTypeName(t) << " " << c * 32 + j;
      }
    }
  }
}

TEST(CudaQuantTest, FloatUnpackMatchesConversions) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0, 3);
  std::vector<float> x(64);
  for (float& v : x) v = nd(rng);
  x[5] = 6e-6f;  // a binary16 subnormal
  x[6] = -0.0f;
  std::vector<uint16_t> h(64), bf(64);
  for (int i = 0; i < 64; ++i) {
    h[i] = FloatToHalf(x[i]);
    bf[i] = FloatToBf16(x[i]);
  }
  float out[32];
  for (int c = 0; c < 2; ++c) {
    cuda::UnpackFloat32<GgmlType::kF32>(reinterpret_cast<const uint8_t*>(x.data()), c, out);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], x[c * 32 + j]);
    cuda::UnpackFloat32<GgmlType::kF16>(reinterpret_cast<const uint8_t*>(h.data()), c, out);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], HalfToFloat(h[c * 32 + j])) << j;
    cuda::UnpackFloat32<GgmlType::kBF16>(reinterpret_cast<const uint8_t*>(bf.data()), c, out);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], Bf16ToFloat(bf[c * 32 + j]));
  }
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float a = cuda::HalfToF32(static_cast<uint16_t>(bits));
    const float b = HalfToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(b)) {
      EXPECT_TRUE(std::isnan(a)) << bits;
    } else {
      ASSERT_EQ(std::memcmp(&a, &b, 4), 0) << bits;
    }
  }
}

TEST(CudaQuantTest, E8m0HalfIsTwoToTheEMinus128) {
  for (int e = 0; e < 255; ++e) {
    EXPECT_EQ(cuda::E8m0Half(static_cast<uint8_t>(e)), std::ldexp(1.0f, e - 128)) << e;
  }
}

// How each type's activations are rounded matches the CPU backend's choice
// (so both follow the same greedy path on a llama.cpp-quantized model).
TEST(CudaQuantTest, ActivationRoundingFollowsTheCpuBackendPerType) {
  const cpu::MatmulKernels& k = cpu::KernelsFor(cpu::Isa::kScalar);
  for (GgmlType t : cuda::kCudaQuantTypes) {
    if (!CanCompute(t)) continue;  // no CPU kernel to agree with (yet)
    const GgmlType act = k.For(t).act_type;
    const cuda::ActMode want = act == GgmlType::kQ8_0   ? cuda::ActMode::kQ8_0
                               : act == GgmlType::kQ8_K ? cuda::ActMode::kQ8_K
                                                        : cuda::ActMode::kF32;
    EXPECT_EQ(static_cast<int>(cuda::ActModeOf(t)), static_cast<int>(want)) << GgmlTypeName(t);
  }
}

std::vector<float> ActRow(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(n);
  for (float& v : x) v = nd(rng);
  x[3] = 0.5f * x[7];  // exact halves on the rounding grid happen in real data too
  return x;
}

// The device's rounding, as the header spells it, is bit for bit the CPU
// backend's: same quants, same scale.
TEST(CudaQuantTest, Q8_0ActivationRoundingIsTheCpuBackends) {
  const cpu::MatmulKernels& k = cpu::KernelsFor(cpu::Isa::kScalar);
  const int64_t n = 1024;
  std::vector<float> x = ActRow(n, 5);
  std::vector<uint8_t> cpu_q(RowBytes(GgmlType::kQ8_0, n));
  k.For(GgmlType::kQ4_0).quantize_act(x.data(), n, cpu_q.data());
  for (int64_t c = 0; c < n / 32; ++c) {
    int8_t q[32];
    cuda::ActScale s;
    cuda::QuantizeActQ8_0Chunk(&x[c * 32], q, &s);
    const uint8_t* b = &cpu_q[c * 34];
    uint16_t d;
    std::memcpy(&d, b, 2);
    EXPECT_EQ(s.d, HalfToFloat(d)) << c;
    EXPECT_EQ(std::memcmp(q, b + 2, 32), 0) << c;
  }
  float zero[32] = {};
  int8_t q[32];
  cuda::ActScale s;
  cuda::QuantizeActQ8_0Chunk(zero, q, &s);
  EXPECT_EQ(s.d, 0.0f);
  EXPECT_EQ(s.dsum0, 0.0f);
}

TEST(CudaQuantTest, Q8KActivationRoundingIsTheCpuBackends) {
  const int64_t n = 1024;
  std::vector<float> x = ActRow(n, 6);
  std::fill(x.begin() + 512, x.begin() + 768, 0.0f);  // an all-zero block
  std::vector<uint8_t> cpu_q(RowBytes(GgmlType::kQ8_K, n));
  ASSERT_TRUE(QuantizeRow(GgmlType::kQ8_K, x.data(), n, cpu_q.data()).ok());
  for (int64_t blk = 0; blk < n / 256; ++blk) {
    int8_t q[256];
    cuda::ActScale s[8];
    cuda::QuantizeActQ8KBlock(&x[blk * 256], q, s);
    const uint8_t* b = &cpu_q[blk * 292];
    float d;
    std::memcpy(&d, b, 4);
    EXPECT_EQ(std::memcmp(q, b + 4, 256), 0) << blk;
    for (int c = 0; c < 8; ++c) {
      EXPECT_EQ(s[c].d, d) << blk;
      int16_t bs[2];
      std::memcpy(bs, b + 260 + 4 * c, 4);  // bsums of the chunk's two 16s
      EXPECT_EQ(s[c].dsum0, d * float(bs[0]));
      EXPECT_EQ(s[c].dsum1, d * float(bs[1]));
    }
  }
}

// A whole row product as the device computes it (unpack, round the
// activations by the type's mode, int8 or float chunk dots) against the CPU
// backend's scalar kernel for the same type: equal up to the order of float
// additions.
TEST(CudaQuantTest, RowDotMatchesTheCpuBackendsKernel) {
  const cpu::MatmulKernels& k = cpu::KernelsFor(cpu::Isa::kScalar);
  std::mt19937 rng(21);
  const int64_t n = 1024;
  for (GgmlType t : cuda::kCudaQuantTypes) {
    for (int rep = 0; rep < 4; ++rep) {
      std::vector<uint8_t> b = testing::RandomQuantBlocks(t, n, rng);
      std::vector<float> x = ActRow(n, 100 + rep);
      std::vector<float> w = Reference(t, b, n);
      std::vector<int8_t> xq(n);
      std::vector<cuda::ActScale> xs(n / 32);
      const cuda::ActMode mode = cuda::ActModeOf(t);
      if (mode == cuda::ActMode::kQ8_0) {
        for (int64_t c = 0; c < n / 32; ++c) {
          cuda::QuantizeActQ8_0Chunk(&x[c * 32], &xq[c * 32], &xs[c]);
        }
      } else if (mode == cuda::ActMode::kQ8_K) {
        for (int64_t blk = 0; blk < n / 256; ++blk) {
          cuda::QuantizeActQ8KBlock(&x[blk * 256], &xq[blk * 256], &xs[blk * 8]);
        }
      }
      double got = 0, mag = 0;
      for (int64_t c = 0; c < n / 32; ++c) {
        Chunk32 ch;
        UnpackerOf(t)(b.data(), c, &ch);
        if (mode == cuda::ActMode::kF32) {
          got += cuda::ChunkDotF(ch, &x[c * 32]);
        } else {
          int32_t words[8];
          std::memcpy(words, &xq[c * 32], 32);
          got += cuda::ChunkDot(ch, words, xs[c]);
        }
        for (int j = 0; j < 32; ++j) mag += std::fabs(double(w[c * 32 + j]) * x[c * 32 + j]);
      }
      if (CanCompute(t)) {
        std::vector<uint8_t> act(cpu::ActRowBytes(k.For(t), n));
        k.For(t).quantize_act(x.data(), n, act.data());
        const float cpu = k.For(t).dot(n, b.data(), act.data());
        EXPECT_NEAR(got, cpu, 1e-5 * mag + 1e-6) << GgmlTypeName(t) << " rep " << rep;
      }
      // Against the exact product: the activation rounding bound (half a
      // quantization step per element; a Q8_K step is the 256-block's).
      double ref = 0, bound = 0;
      for (int64_t i = 0; i < n; ++i) {
        ref += double(w[i]) * x[i];
        const double step = mode == cuda::ActMode::kF32 ? 0.0 : xs[i / 32].d;
        bound += std::fabs(double(w[i])) * std::fabs(step) * 0.5;
      }
      EXPECT_NEAR(got, ref, bound * 1.01 + 1e-5 * mag + 1e-6) << GgmlTypeName(t) << " rep " << rep;
    }
  }
}

TEST(CudaQuantTest, ChunkDotFIsTheFloatProduct) {
  std::mt19937 rng(2);
  std::vector<uint8_t> b = testing::RandomQuantBlocks(GgmlType::kQ4_1, 32, rng);
  std::vector<float> w = Reference(GgmlType::kQ4_1, b, 32);
  std::vector<float> x = ActRow(32, 9);
  Chunk32 ch;
  cuda::UnpackChunk<GgmlType::kQ4_1>(b.data(), 0, &ch);
  double ref = 0, mag = 0;
  for (int j = 0; j < 32; ++j) {
    ref += double(w[j]) * x[j];
    mag += std::fabs(double(w[j]) * x[j]);
  }
  EXPECT_NEAR(cuda::ChunkDotF(ch, x.data()), ref, 1e-6 * mag + 1e-9);
}

}  // namespace
}  // namespace moestream::kernels
