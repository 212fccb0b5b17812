// GgufWriter -> GgufFile round trips: every metadata value type (nested
// arrays and arrays of strings included), tensors of every ggml type with
// their byte sizes and aligned offsets, expert byte ranges of stacked and
// per-expert files, and the writer's temporary-file discipline.
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "gtest/gtest.h"
#include "io/expert_layout.h"
#include "io/gguf.h"
#include "tests/test_util.h"

namespace moestream::io {
namespace {

using moestream::testing::ReadFileOrDie;
using moestream::testing::ScratchDir;

GgufWriter::FillFn Pattern(uint8_t seed) {
  return [seed](std::span<uint8_t> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(seed + i * 7);
    return absl::OkStatus();
  };
}

GgufValue I32(int32_t v) { return GgufValue::Int(GgufType::kInt32, v); }

std::vector<GgufKv> EveryValueType() {
  std::vector<GgufKv> kvs = {
      {"t.u8", GgufValue::Uint(GgufType::kUint8, 255)},
      {"t.i8", GgufValue::Int(GgufType::kInt8, -128)},
      {"t.u16", GgufValue::Uint(GgufType::kUint16, 65535)},
      {"t.i16", GgufValue::Int(GgufType::kInt16, -32768)},
      {"t.u32", GgufValue::Uint(GgufType::kUint32, 4294967295u)},
      {"t.i32", GgufValue::Int(GgufType::kInt32, std::numeric_limits<int32_t>::min())},
      {"t.f32", GgufValue::Float(GgufType::kFloat32, 1e-5f)},
      {"t.bool", GgufValue::Bool(true)},
      {"t.bool_false", GgufValue::Bool(false)},
      {"t.string", GgufValue::String(std::string("h\xc3\xa9llo\0world", 12))},
      {"t.empty_string", GgufValue::String("")},
      {"t.u64", GgufValue::Uint(GgufType::kUint64, std::numeric_limits<uint64_t>::max())},
      {"t.i64", GgufValue::Int(GgufType::kInt64, std::numeric_limits<int64_t>::min())},
      {"t.f64", GgufValue::Float(GgufType::kFloat64, 3.141592653589793)},
      {"t.strings", GgufValue::Array(GgufType::kString, {GgufValue::String("<unk>"),
                                                          GgufValue::String(""),
                                                          GgufValue::String("\xe2\x96\x81the")})},
      {"t.nested", GgufValue::Array(GgufType::kArray,
                                    {GgufValue::Array(GgufType::kInt32, {I32(1), I32(-2)}),
                                     GgufValue::Array(GgufType::kInt32, {}),
                                     GgufValue::Array(GgufType::kInt32, {I32(3)})})},
      {"t.nested_strings",
       GgufValue::Array(GgufType::kArray,
                        {GgufValue::Array(GgufType::kString, {GgufValue::String("a b")})})},
      {"t.empty_array", GgufValue::Array(GgufType::kFloat64, {})},
  };
  // One array per scalar type.
  kvs.push_back({"a.u8", GgufValue::Array(GgufType::kUint8, {GgufValue::Uint(GgufType::kUint8, 7)})});
  kvs.push_back({"a.i16", GgufValue::Array(GgufType::kInt16, {GgufValue::Int(GgufType::kInt16, -7)})});
  kvs.push_back({"a.bool", GgufValue::Array(GgufType::kBool, {GgufValue::Bool(true), GgufValue::Bool(false)})});
  kvs.push_back({"a.f64", GgufValue::Array(GgufType::kFloat64, {GgufValue::Float(GgufType::kFloat64, -0.5)})});
  kvs.push_back({"a.u64", GgufValue::Array(GgufType::kUint64, {GgufValue::Uint(GgufType::kUint64, 1ull << 60)})});
  return kvs;
}

TEST(GgufRoundTrip, EveryValueType) {
  ScratchDir dir;
  std::string path = dir.Path("kv.gguf");
  GgufWriter w;
  for (const GgufKv& kv : EveryValueType()) w.Set(kv.key, kv.value);
  w.SetStringArray("s.tokens", {"a", "bc", ""});
  w.SetFloat32Array("s.scores", {0.5f, -1.25f});
  w.SetInt32Array("s.types", {1, 2, 3});
  w.SetUint32("s.replaced", 1);
  w.SetUint32("s.replaced", 2);
  ASSERT_TRUE(w.Write(path).ok());

  absl::StatusOr<GgufFile> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_TRUE(f->tensors().empty());
  for (const GgufKv& kv : EveryValueType()) {
    const GgufValue* v = f->Find(kv.key);
    ASSERT_NE(v, nullptr) << kv.key;
    EXPECT_EQ(*v, kv.value) << kv.key << ": " << v->DebugString() << " vs " << kv.value.DebugString();
  }
  EXPECT_EQ(f->metadata().size(), EveryValueType().size() + 4);
  EXPECT_EQ(f->metadata()[0].key, "t.u8");  // file order kept

  EXPECT_EQ(*f->GetUint("t.u32"), 4294967295u);
  EXPECT_EQ(*f->GetInt("t.i8"), -128);
  EXPECT_EQ(*f->GetFloat("t.f32"), double(1e-5f));
  EXPECT_EQ(*f->GetBool("t.bool"), true);
  EXPECT_EQ(*f->GetString("t.string"), std::string("h\xc3\xa9llo\0world", 12));
  EXPECT_EQ(*f->GetStringArray("s.tokens"), (std::vector<std::string>{"a", "bc", ""}));
  EXPECT_EQ(*f->GetFloatArray("s.scores"), (std::vector<float>{0.5f, -1.25f}));
  EXPECT_EQ(*f->GetIntArray("s.types"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(*f->GetUint("s.replaced"), 2u);
  EXPECT_EQ(*f->GetUintOr("absent", 9), 9u);
  EXPECT_EQ(*f->GetStringOr("absent", "x"), "x");

  EXPECT_EQ(f->GetUint("absent").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(f->GetUint("t.i8").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->GetString("t.u8").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->GetUintOr("t.string", 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->GetInt("t.u64").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->GetStringArray("t.nested").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GgufRoundTrip, TensorsOfEveryGgmlType) {
  for (uint32_t alignment : {32u, 64u, 4096u}) {
    ScratchDir dir;
    std::string path = dir.Path("t.gguf");
    GgufWriter w(alignment);
    w.SetString("general.architecture", "test");
    struct Expect {
      std::string name;
      GgmlType type;
      uint64_t bytes;
    };
    std::vector<Expect> expect;
    for (uint32_t id = 0; id < 64; ++id) {
      const GgmlTypeTraits* tr = GgmlTypeTraitsOf(id);
      if (tr == nullptr) continue;
      std::string name = absl::StrCat("t.", Av(tr->name));
      int64_t ne0 = 2 * tr->block_elems;
      ASSERT_TRUE(w.AddTensor(name, tr->type, {ne0, 3, 1, 2}, Pattern(uint8_t(id))).ok());
      expect.push_back({name, tr->type, uint64_t(2) * tr->block_bytes * 3 * 2});
    }
    ASSERT_GE(expect.size(), 30u);
    uint64_t last_done = 0, last_total = 0;
    ASSERT_TRUE(w.Write(path, [&](uint64_t d, uint64_t t) {
                   EXPECT_GE(d, last_done);
                   last_done = d;
                   last_total = t;
                 }).ok());
    std::string bytes = ReadFileOrDie(path);
    EXPECT_EQ(last_done, bytes.size());
    EXPECT_EQ(last_total, bytes.size());

    absl::StatusOr<GgufFile> f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(f->data_offset() % alignment, 0u);
    EXPECT_GE(f->data_offset(), f->header_bytes());
    EXPECT_LT(f->data_offset() - f->header_bytes(), alignment);
    ASSERT_EQ(f->tensors().size(), expect.size());
    uint64_t expected_offset = 0;
    for (size_t i = 0; i < expect.size(); ++i) {
      const GgufTensorInfo& t = f->tensors()[i];
      EXPECT_EQ(t.name, expect[i].name);
      EXPECT_EQ(t.type, expect[i].type);
      EXPECT_EQ(t.n_dims, 4u);
      EXPECT_EQ(t.size_bytes, expect[i].bytes) << t.name;
      // llama.cpp requires each offset to be the padded running sum.
      EXPECT_EQ(t.offset, expected_offset) << t.name;
      expected_offset += (t.size_bytes + alignment - 1) / alignment * alignment;
      EXPECT_EQ(t.file_offset, f->data_offset() + t.offset);
      std::vector<uint8_t> want(t.size_bytes);
      ASSERT_TRUE(Pattern(uint8_t(static_cast<uint32_t>(t.type)))(want).ok());
      ASSERT_LE(t.file_offset + t.size_bytes, bytes.size());
      EXPECT_EQ(0, std::memcmp(bytes.data() + t.file_offset, want.data(), want.size())) << t.name;
      EXPECT_EQ(f->FindTensor(t.name), &t);
    }
    EXPECT_EQ(expected_offset, w.data_bytes());
    EXPECT_EQ(bytes.size(), f->data_offset() + w.data_bytes());
    EXPECT_EQ(f->FindTensor("absent"), nullptr);
  }
}

TEST(GgufRoundTrip, ShapeStringAndTypeName) {
  GgufTensorInfo t;
  t.n_dims = 3;
  t.ne[0] = 4096;
  t.ne[1] = 14336;
  t.ne[2] = 8;
  EXPECT_EQ(t.ShapeString(), "[4096, 14336, 8]");
  EXPECT_EQ(GgufTypeName(GgufType::kFloat64), "float64");
  EXPECT_EQ(ExpertMatrixName(ExpertMatrix::kDown), "down");
}

TEST(GgufWriter, RejectsBadTensors) {
  GgufWriter w;
  auto fill = Pattern(0);
  EXPECT_TRUE(w.AddTensor("a", GgmlType::kF32, {4}, fill).ok());
  EXPECT_EQ(w.AddTensor("a", GgmlType::kF32, {4}, fill).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("", GgmlType::kF32, {4}, fill).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("b", GgmlType::kF32, {}, fill).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("b", GgmlType::kF32, {1, 1, 1, 1, 1}, fill).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("b", GgmlType::kF32, {0}, fill).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("b", GgmlType::kQ4_K, {128}, fill).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("b", static_cast<GgmlType>(4), {32}, fill).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("b", GgmlType::kF32, {1ll << 40, 1ll << 40}, fill).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GgufWriter, FailedFillLeavesNothingBehind) {
  ScratchDir dir;
  std::string path = dir.Path("m.gguf");
  GgufWriter w;
  ASSERT_TRUE(w.AddTensor("good", GgmlType::kF32, {8}, Pattern(1)).ok());
  ASSERT_TRUE(w.AddTensor("bad", GgmlType::kF32, {8}, [](std::span<uint8_t>) {
                 return absl::InternalError("generator failed");
               }).ok());
  absl::Status s = w.Write(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find("'bad'"), std::string::npos) << s;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "temporary or partial file left behind";
}

TEST(GgufWriter, ReplacesExistingFileAtomically) {
  ScratchDir dir;
  std::string path = dir.Path("m.gguf");
  moestream::testing::WriteFileOrDie(path, "old contents");
  GgufWriter w;
  w.SetString("general.name", "new");
  ASSERT_TRUE(w.Write(path).ok());
  EXPECT_EQ(*GgufFile::Open(path)->GetString("general.name"), "new");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(GgufWriter, RefusesNonRegularTargetWritingNothing) {
  ScratchDir dir;
  std::string path = dir.Path("fifo.gguf");
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
  GgufWriter w;
  ASSERT_TRUE(w.AddTensor("t", GgmlType::kF32, {8}, Pattern(1)).ok());
  absl::Status s = w.Write(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(GgufWriter, AlignmentKeyMustAgree) {
  ScratchDir dir;
  GgufWriter w;
  w.SetUint32("general.alignment", 64);
  EXPECT_EQ(w.Write(dir.Path("m.gguf")).code(), absl::StatusCode::kInvalidArgument);
  GgufWriter mixed;
  mixed.Set("bad", GgufValue::Array(GgufType::kInt32, {GgufValue::String("x")}));
  EXPECT_EQ(mixed.Write(dir.Path("m.gguf")).code(), absl::StatusCode::kInvalidArgument);
}

// Each expert's slice is filled with its own byte value, so the range read
// back identifies the expert independently of the reader's arithmetic.
absl::Status FillExperts(std::span<uint8_t> out, int n_experts, uint8_t base) {
  size_t per = out.size() / n_experts;
  for (int e = 0; e < n_experts; ++e) {
    std::memset(out.data() + e * per, base + e, per);
  }
  return absl::OkStatus();
}

TEST(GgufExpertRange, StackedExperts) {
  ScratchDir dir;
  std::string path = dir.Path("stacked.gguf");
  GgufWriter w;
  const int kExperts = 8;
  const ExpertMatrix mats[] = {ExpertMatrix::kGate, ExpertMatrix::kUp, ExpertMatrix::kDown};
  for (int layer = 0; layer < 2; ++layer) {
    ASSERT_TRUE(w.AddTensor(absl::StrCat("blk.", layer, ".attn_norm.weight"), GgmlType::kF32, {64},
                            Pattern(3)).ok());
    for (ExpertMatrix m : mats) {
      uint8_t base = uint8_t(100 * layer + 10 * int(m));
      std::vector<int64_t> ne = m == ExpertMatrix::kDown ? std::vector<int64_t>{32, 64, kExperts}
                                                         : std::vector<int64_t>{64, 32, kExperts};
      ASSERT_TRUE(w.AddTensor(absl::StrCat("blk.", layer, ".ffn_", Av(ExpertMatrixName(m)), "_exps.weight"),
                              GgmlType::kQ8_0, ne,
                              [=](std::span<uint8_t> out) { return FillExperts(out, kExperts, base); })
                      .ok());
    }
  }
  ASSERT_TRUE(w.Write(path).ok());
  std::string bytes = ReadFileOrDie(path);
  absl::StatusOr<GgufFile> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const uint64_t per_expert = 32 * (64 / 32) * 34;  // rows * blocks/row * q8_0 block bytes
  for (int layer = 0; layer < 2; ++layer) {
    for (ExpertMatrix m : mats) {
      for (int e = 0; e < kExperts; ++e) {
        absl::StatusOr<ByteRange> r = f->ExpertRange(layer, m, e);
        ASSERT_TRUE(r.ok()) << r.status();
        EXPECT_EQ(r->size, per_expert);
        ASSERT_LE(r->end(), bytes.size());
        std::string want(per_expert, char(100 * layer + 10 * int(m) + e));
        EXPECT_EQ(bytes.substr(r->offset, r->size), want) << layer << " " << e;
      }
    }
  }
  EXPECT_EQ(f->ExpertRange(0, ExpertMatrix::kUp, kExperts).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(f->ExpertRange(0, ExpertMatrix::kUp, -1).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(f->ExpertRange(2, ExpertMatrix::kUp, 0).status().code(), absl::StatusCode::kNotFound);
}

// One bad shape, one answer: the expert layout and the range lookup share
// io::FindExpertTensors, so both say kInvalidArgument naming file and tensor.
TEST(GgufExpertRange, BadExpertShapeIsInvalidArgumentEverywhere) {
  ScratchDir dir;
  struct Case {
    const char* file;
    const char* tensor;
    std::vector<int64_t> ne;
  };
  const Case cases[] = {
      {"flat.gguf", "blk.0.ffn_up_exps.weight", {64, 32}},   // stacked, 2-D
      {"cube.gguf", "blk.0.ffn_up.0.weight", {64, 32, 2}},  // per-expert, 3-D
  };
  for (const Case& c : cases) {
    const std::string path = dir.Path(c.file);
    GgufWriter w;
    ASSERT_TRUE(w.AddTensor(c.tensor, GgmlType::kF32, c.ne, Pattern(1)).ok());
    ASSERT_TRUE(w.Write(path).ok());
    absl::StatusOr<GgufFile> f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    const absl::Status statuses[] = {f->ExpertRange(0, ExpertMatrix::kUp, 0).status(),
                                     ExpertLayout::FromGguf(*f).status()};
    for (const absl::Status& s : statuses) {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
      EXPECT_NE(s.message().find(path), std::string::npos) << s;
      EXPECT_NE(s.message().find(c.tensor), std::string::npos) << s;
    }
  }
}

TEST(GgufExpertRange, PerExpertTensors) {
  ScratchDir dir;
  std::string path = dir.Path("mixtral-old.gguf");
  GgufWriter w;
  const int kExperts = 4;
  for (int e = 0; e < kExperts; ++e) {
    for (ExpertMatrix m : {ExpertMatrix::kGate, ExpertMatrix::kDown, ExpertMatrix::kUp}) {
      uint8_t value = uint8_t(16 * int(m) + e);
      ASSERT_TRUE(w.AddTensor(absl::StrCat("blk.3.ffn_", Av(ExpertMatrixName(m)), ".", e, ".weight"),
                              GgmlType::kF16, {64, 16}, [=](std::span<uint8_t> out) {
                                std::memset(out.data(), value, out.size());
                                return absl::OkStatus();
                              })
                      .ok());
    }
  }
  ASSERT_TRUE(w.Write(path).ok());
  std::string bytes = ReadFileOrDie(path);
  absl::StatusOr<GgufFile> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  for (int e = 0; e < kExperts; ++e) {
    for (ExpertMatrix m : {ExpertMatrix::kGate, ExpertMatrix::kUp, ExpertMatrix::kDown}) {
      absl::StatusOr<ByteRange> r = f->ExpertRange(3, m, e);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->size, 64u * 16 * 2);
      EXPECT_EQ(bytes.substr(r->offset, r->size), std::string(r->size, char(16 * int(m) + e)));
    }
  }
  EXPECT_EQ(f->ExpertRange(3, ExpertMatrix::kGate, kExperts).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(f->ExpertRange(0, ExpertMatrix::kGate, 0).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace moestream::io
