// Small MoE-shaped GGUFs for the tier, reader and store tests, with every
// tensor byte a known function of (tensor id, byte position), so a test can
// say what any expert's bytes must be without trusting the reader, the
// layout or the GGUF parser.
//
//   WriteTierModel(dir.Path("m.gguf"), {.stacked = true});
//   auto layout = LoadLayout(path);
//   ExpectBlobMatches(info, blob);   // every matrix byte vs the pattern
#ifndef MOESTREAM_TESTS_IO_TIER_TEST_UTIL_H_
#define MOESTREAM_TESTS_IO_TIER_TEST_UTIL_H_

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "io/expert_layout.h"
#include "io/expert_tier.h"
#include "io/gguf.h"

namespace moestream::io::tiertest {

struct TierModelSpec {
  bool stacked = true;    // blk.L.ffn_*_exps vs blk.L.ffn_*.E (older Mixtral)
  int n_experts = 5;
  uint32_t alignment = 32;  // GGUF data alignment: expert ranges are not 4 KiB-aligned
  // Non-zero: other expert bytes, same header and size (ExpectBlobMatches
  // knows only seed 0).
  uint32_t seed = 0;
};

// Shapes per MoE layer (layer 0 is dense): {type, ne0, ne1} for gate, up, down.
struct MatSpec {
  GgmlType type;
  int64_t ne0, ne1;
};
inline const MatSpec kLayerMats[3][3] = {
    {},  // dense
    {{GgmlType::kF16, 96, 37}, {GgmlType::kF32, 96, 37}, {GgmlType::kQ8_0, 64, 96}},
    {{GgmlType::kF32, 128, 51}, {GgmlType::kF16, 128, 51}, {GgmlType::kQ8_0, 128, 77}},
};

// Tensor ids: stacked (layer, m) -> layer*16 + m; per-expert adds expert*3+...
inline uint32_t TensorId(int layer, int m, int expert) { return uint32_t(layer * 1000 + m * 100 + expert); }

inline uint8_t PatternByte(uint32_t tensor_id, uint64_t pos) {
  uint64_t x = pos * 0x9E3779B97F4A7C15ull + tensor_id * 0xD1B54A32D192ED03ull;
  x ^= x >> 29;
  return uint8_t(x ^ (x >> 17));
}

inline absl::Status FillPattern(uint32_t id, std::span<uint8_t> out) {
  for (size_t i = 0; i < out.size(); ++i) out[i] = PatternByte(id, i);
  return absl::OkStatus();
}

inline void WriteTierModel(const std::string& path, const TierModelSpec& spec) {
  GgufWriter w(spec.alignment);
  w.SetString("general.architecture", "qwen3moe");
  w.SetUint32("qwen3moe.block_count", 3);
  ASSERT_TRUE(w.AddTensor("blk.0.ffn_up.weight", GgmlType::kF32, {16, 8},
                          [](std::span<uint8_t> o) { return FillPattern(7, o); })
                  .ok());
  const char* names[3] = {"gate", "up", "down"};
  for (int l = 1; l <= 2; ++l) {
    for (int m = 0; m < 3; ++m) {
      const MatSpec& s = kLayerMats[l][m];
      if (spec.stacked) {
        uint32_t id = TensorId(l, m, 0) + spec.seed * 100000;
        ASSERT_TRUE(w.AddTensor(absl::StrCat("blk.", l, ".ffn_", names[m], "_exps.weight"), s.type,
                                {s.ne0, s.ne1, spec.n_experts},
                                [id](std::span<uint8_t> o) { return FillPattern(id, o); })
                        .ok());
      } else {
        for (int e = 0; e < spec.n_experts; ++e) {
          uint32_t id = TensorId(l, m, e) + spec.seed * 100000;
          ASSERT_TRUE(w.AddTensor(absl::StrCat("blk.", l, ".ffn_", names[m], ".", e, ".weight"),
                                  s.type, {s.ne0, s.ne1},
                                  [id](std::span<uint8_t> o) { return FillPattern(id, o); })
                          .ok());
        }
      }
    }
  }
  absl::Status st = w.Write(path);
  ASSERT_TRUE(st.ok()) << st;
}

inline std::shared_ptr<const ExpertLayout> LoadLayout(const std::string& path) {
  auto f = GgufFile::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  if (!f.ok()) return nullptr;
  auto layout = ExpertLayout::FromGguf(*f);
  EXPECT_TRUE(layout.ok()) << layout.status();
  if (!layout.ok()) return nullptr;
  return std::make_shared<const ExpertLayout>(std::move(layout).value());
}

// Checks every byte of the three matrices of `info` in `blob` against the
// generator's pattern (valid for both the stacked and per-expert models).
inline void ExpectBlobMatches(const ExpertInfo& info, const uint8_t* blob, bool stacked) {
  for (int m = 0; m < 3; ++m) {
    const ExpertMatrixInfo& mi = info.matrices[size_t(m)];
    uint32_t id = TensorId(info.layer, m, stacked ? 0 : info.expert);
    uint64_t base = stacked ? uint64_t(info.expert) * mi.bytes : 0;
    uint64_t bad = 0, first_bad = 0;
    for (uint64_t i = 0; i < mi.bytes; ++i) {
      if (blob[mi.blob_offset + i] != PatternByte(id, base + i)) {
        if (bad++ == 0) first_bad = i;
      }
    }
    EXPECT_EQ(bad, 0u) << "expert " << info.layer << "/" << info.expert << " matrix " << m
                       << ": first mismatch at byte " << first_bad;
  }
}

// 4 KiB-aligned buffer, optionally shifted by `shift` bytes (to force staging).
struct TestBuffer {
  TestBuffer(size_t bytes, size_t shift = 0) {
    void* p = nullptr;
    EXPECT_EQ(posix_memalign(&p, 4096, bytes + shift + 4096), 0);
    base = static_cast<uint8_t*>(p);
    data = base + shift;
  }
  ~TestBuffer() { std::free(base); }
  TestBuffer(const TestBuffer&) = delete;
  TestBuffer& operator=(const TestBuffer&) = delete;
  uint8_t* base;
  uint8_t* data;
};

// Reads every expert through `reader` at once (all submitted before any is
// reaped), with destination shifts alternating between aligned and odd, and
// checks every byte.
inline void ReadAllAndVerify(ExpertReader& reader, bool stacked) {
  const ExpertLayout& layout = reader.layout();
  std::vector<std::unique_ptr<TestBuffer>> bufs;
  size_t i = 0;
  for (const ExpertInfo& e : layout.experts()) {
    bufs.push_back(std::make_unique<TestBuffer>(e.blob_bytes, (i % 3 == 1) ? 64 : 0));
    absl::Status st = reader.Submit({e.layer, e.expert, bufs.back()->data, i});
    ASSERT_TRUE(st.ok()) << st;
    ++i;
  }
  std::vector<ExpertReadCompletion> done;
  while (reader.in_flight() > 0) reader.Reap(&done, /*wait=*/true);
  ASSERT_EQ(done.size(), layout.size());
  std::vector<bool> seen(layout.size(), false);
  for (const ExpertReadCompletion& c : done) {
    ASSERT_TRUE(c.status.ok()) << c.status;
    ASSERT_LT(c.tag, layout.size());
    EXPECT_FALSE(seen[c.tag]);
    seen[c.tag] = true;
    const ExpertInfo& e = layout.experts()[c.tag];
    EXPECT_EQ(c.layer, e.layer);
    EXPECT_EQ(c.expert, e.expert);
    ExpectBlobMatches(e, bufs[c.tag]->data, stacked);
  }
}

}  // namespace moestream::io::tiertest

#endif  // MOESTREAM_TESTS_IO_TIER_TEST_UTIL_H_
