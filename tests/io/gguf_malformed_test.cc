// The reader against a corpus of malformed files, built programmatically from
// one small valid file whose bytes this test lays out itself (independently
// of GgufWriter, which must reproduce them exactly). Each corruption must be
// rejected with kDataLoss and a one-line message naming the file and the
// field; truncation at every byte must fail cleanly, in memory and on disk.
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "io/gguf.h"
#include "tests/test_util.h"

namespace moestream::io {
namespace {

using moestream::testing::ScratchDir;
using moestream::testing::WriteFileOrDie;

constexpr char kName[] = "bad.gguf";

// Little-endian GGUF byte builder that remembers where named fields start.
class Builder {
 public:
  template <typename T>
  void Put(T v, const std::string& mark = "") {
    Mark(mark);
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void Str(const std::string& s, const std::string& mark = "") {
    Put<uint64_t>(s.size(), mark);
    bytes_ += s;
  }
  void Pad(size_t a) { bytes_.resize((bytes_.size() + a - 1) / a * a, '\0'); }
  void Mark(const std::string& mark) {
    if (!mark.empty()) at_[mark] = bytes_.size();
  }
  size_t At(const std::string& mark) const { return at_.at(mark); }
  std::string& bytes() { return bytes_; }

 private:
  std::string bytes_;
  std::map<std::string, size_t> at_;
};

struct Valid {
  std::string bytes;
  Builder b;
  size_t header_end = 0;
  size_t data_end = 0;  // end of the last tensor's bytes
};

// 5 kvs (string, alignment, string array, nested int32 array, bool) and three
// tensors: a f32 [8,4] at 0, b q8_0 [64] at 128, c f32 [4] at 224.
Valid MakeValid() {
  Builder b;
  b.Put<uint32_t>(kGgufMagic, "magic");
  b.Put<uint32_t>(3, "version");
  b.Put<uint64_t>(3, "tensor_count");
  b.Put<uint64_t>(5, "kv_count");
  b.Str("general.architecture", "kv0_key");
  b.Put<uint32_t>(8, "kv0_type");
  b.Str("test", "kv0_value");
  b.Str("general.alignment", "align_key");
  b.Put<uint32_t>(4);
  b.Put<uint32_t>(32, "align_value");
  b.Str("test.tokens", "tokens_key");
  b.Put<uint32_t>(9);
  b.Put<uint32_t>(8, "tokens_elem_type");
  b.Put<uint64_t>(3, "tokens_len");
  b.Str("a");
  b.Str("bc");
  b.Str("d");
  b.Str("test.nested");
  b.Put<uint32_t>(9);
  b.Put<uint32_t>(9, "nested_elem_type");
  b.Put<uint64_t>(2);
  b.Put<uint32_t>(5, "inner_elem_type");
  b.Put<uint64_t>(2, "inner_len");
  b.Put<int32_t>(1);
  b.Put<int32_t>(2);
  b.Put<uint32_t>(5);
  b.Put<uint64_t>(1);
  b.Put<int32_t>(3);
  b.Str("test.flag", "flag_key");
  b.Put<uint32_t>(7);
  b.Put<uint8_t>(1, "flag_value");

  b.Str("a", "t0_name");
  b.Put<uint32_t>(2, "t0_ndims");
  b.Put<uint64_t>(8, "t0_ne0");
  b.Put<uint64_t>(4, "t0_ne1");
  b.Put<uint32_t>(0, "t0_type");
  b.Put<uint64_t>(0, "t0_offset");
  b.Str("b", "t1_name");
  b.Put<uint32_t>(1);
  b.Put<uint64_t>(64, "t1_ne0");
  b.Put<uint32_t>(8, "t1_type");
  b.Put<uint64_t>(128, "t1_offset");
  b.Str("c", "t2_name");
  b.Put<uint32_t>(1);
  b.Put<uint64_t>(4);
  b.Put<uint32_t>(0, "t2_type");
  b.Put<uint64_t>(224, "t2_offset");
  Valid v;
  v.header_end = b.bytes().size();
  b.Pad(32);
  v.data_end = b.bytes().size() + 240;
  b.bytes().resize(b.bytes().size() + 256, '\0');
  v.bytes = b.bytes();
  v.b = b;
  return v;
}

absl::Status ParseBytes(const std::string& bytes) {
  return GgufFile::Parse(
             std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
             kName)
      .status();
}

template <typename T>
std::string Patch(const Valid& v, const std::string& mark, T value) {
  std::string out = v.bytes;
  std::memcpy(out.data() + v.b.At(mark), &value, sizeof(T));
  return out;
}

// Rejected as corrupt, naming the file, the field (`field`), on one line.
void ExpectCorrupt(const std::string& bytes, const std::string& field) {
  absl::Status s = ParseBytes(bytes);
  ASSERT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  std::string msg(s.message());
  EXPECT_EQ(msg.rfind(absl::StrCat(kName, ": offset "), 0), 0u) << msg;
  EXPECT_NE(msg.find(field), std::string::npos) << "field '" << field << "' not in: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(GgufMalformed, BaseFileIsValidAndMatchesWriter) {
  Valid v = MakeValid();
  absl::StatusOr<GgufFile> f = GgufFile::Parse(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.bytes.data()), v.bytes.size()),
      kName);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->header_bytes(), v.header_end);
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->tensors()[1].size_bytes, 68u);
  EXPECT_EQ(f->tensors()[2].file_offset, f->data_offset() + 224);
  const GgufValue* nested = f->Find("test.nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->items().size(), 2u);
  EXPECT_EQ(nested->items()[0].items()[1].raw_int(), 2);
  EXPECT_EQ(nested->items()[1].items()[0].raw_int(), 3);

  // The writer must produce these exact bytes.
  GgufWriter w;
  w.SetString("general.architecture", "test");
  w.SetUint32("general.alignment", 32);
  w.SetStringArray("test.tokens", {"a", "bc", "d"});
  auto i32 = [](int32_t x) { return GgufValue::Int(GgufType::kInt32, x); };
  w.Set("test.nested", GgufValue::Array(GgufType::kArray,
                                        {GgufValue::Array(GgufType::kInt32, {i32(1), i32(2)}),
                                         GgufValue::Array(GgufType::kInt32, {i32(3)})}));
  w.SetBool("test.flag", true);
  auto zeros = [](std::span<uint8_t> out) {
    std::memset(out.data(), 0, out.size());
    return absl::OkStatus();
  };
  ASSERT_TRUE(w.AddTensor("a", GgmlType::kF32, {8, 4}, zeros).ok());
  ASSERT_TRUE(w.AddTensor("b", GgmlType::kQ8_0, {64}, zeros).ok());
  ASSERT_TRUE(w.AddTensor("c", GgmlType::kF32, {4}, zeros).ok());
  ScratchDir dir;
  ASSERT_TRUE(w.Write(dir.Path("w.gguf")).ok());
  EXPECT_EQ(moestream::testing::ReadFileOrDie(dir.Path("w.gguf")), v.bytes);
}

TEST(GgufMalformed, TruncatedAtEveryByteInMemory) {
  Valid v = MakeValid();
  // Past the end of the last tensor (data offset + 240) only padding is
  // missing, which readers do not need.
  for (size_t n = 0; n < v.data_end; ++n) {
    absl::Status s = ParseBytes(v.bytes.substr(0, n));
    ASSERT_EQ(s.code(), absl::StatusCode::kDataLoss) << "truncated at " << n << ": " << s;
    ASSERT_NE(s.message().find(kName), std::string::npos) << s;
  }
}

TEST(GgufMalformed, TruncatedAtEveryByteOnDisk) {
  Valid v = MakeValid();
  ScratchDir dir;
  std::string path = dir.Path(kName);
  WriteFileOrDie(path, v.bytes);
  for (size_t n = v.data_end; n-- > 0;) {
    ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(n)), 0);
    absl::Status s = GgufFile::Open(path).status();
    ASSERT_EQ(s.code(), absl::StatusCode::kDataLoss) << "truncated at " << n << ": " << s;
    ASSERT_NE(s.message().find(path), std::string::npos) << s;
  }
}

TEST(GgufMalformed, TruncationNamesTheField) {
  Valid v = MakeValid();
  ExpectCorrupt(v.bytes.substr(0, 2), "magic");
  ExpectCorrupt(v.bytes.substr(0, 6), "version");
  // Cut inside the metadata: the tensor infos can no longer fit.
  ExpectCorrupt(v.bytes.substr(0, v.b.At("kv0_value") + 9), "tensor_count");
  ExpectCorrupt(v.bytes.substr(0, v.data_end - 1), "tensor 'c': offset");  // data cut short
  EXPECT_TRUE(ParseBytes(v.bytes.substr(0, v.data_end)).ok());
}

TEST(GgufMalformed, BadMagic) {
  Valid v = MakeValid();
  ExpectCorrupt(Patch<uint32_t>(v, "magic", 0x46554746), "magic");
  ExpectCorrupt("GGML" + v.bytes.substr(4), "magic");
}

TEST(GgufMalformed, UnsupportedVersions) {
  Valid v = MakeValid();
  for (uint32_t version : {0u, 1u, 2u, 4u, 0xFFFFFFFFu}) {
    ExpectCorrupt(Patch<uint32_t>(v, "version", version), "version");
  }
  absl::Status s = ParseBytes(Patch<uint32_t>(v, "version", 2));
  EXPECT_NE(s.message().find("v2 is not supported"), std::string::npos) << s;
}

TEST(GgufMalformed, HugeCounts) {
  Valid v = MakeValid();
  ExpectCorrupt(Patch<uint64_t>(v, "tensor_count", uint64_t(1) << 62), "tensor_count");
  ExpectCorrupt(Patch<uint64_t>(v, "tensor_count", ~uint64_t(0)), "tensor_count");
  ExpectCorrupt(Patch<uint64_t>(v, "kv_count", uint64_t(1) << 40), "metadata_kv_count");
  ExpectCorrupt(Patch<uint64_t>(v, "kv_count", ~uint64_t(0)), "metadata_kv_count");
  ExpectCorrupt(Patch<uint64_t>(v, "tokens_len", uint64_t(1) << 60), "array length");
  ExpectCorrupt(Patch<uint64_t>(v, "inner_len", ~uint64_t(0)), "array length");
}

TEST(GgufMalformed, HugeStringLengths) {
  Valid v = MakeValid();
  ExpectCorrupt(Patch<uint64_t>(v, "kv0_key", ~uint64_t(0)), "kv[0] key");
  ExpectCorrupt(Patch<uint64_t>(v, "kv0_value", uint64_t(1) << 50), "'general.architecture'");
  ExpectCorrupt(Patch<uint64_t>(v, "t1_name", v.bytes.size()), "tensor[1] name");
  ExpectCorrupt(Patch<uint64_t>(v, "kv0_key", 0), "kv[0] key");  // empty key
}

TEST(GgufMalformed, BadDims) {
  Valid v = MakeValid();
  ExpectCorrupt(Patch<uint32_t>(v, "t0_ndims", 0), "n_dims");
  ExpectCorrupt(Patch<uint32_t>(v, "t0_ndims", 5), "n_dims");
  ExpectCorrupt(Patch<uint32_t>(v, "t0_ndims", 0xFFFFFFFF), "n_dims");
  ExpectCorrupt(Patch<uint64_t>(v, "t0_ne1", 0), "ne[1]");
  ExpectCorrupt(Patch<uint64_t>(v, "t0_ne1", uint64_t(1) << 63), "ne[1]");
  // 8 * 2^61 elements overflow int64.
  ExpectCorrupt(Patch<uint64_t>(v, "t0_ne1", uint64_t(1) << 61), "ne[1]");
  // 2^62 elements fit int64, but as f64 their 2^65 bytes do not fit 64 bits.
  std::string big = Patch<uint64_t>(v, "t1_ne0", uint64_t(1) << 62);
  uint32_t f64 = static_cast<uint32_t>(GgmlType::kF64);
  std::memcpy(big.data() + v.b.At("t1_type"), &f64, 4);
  ExpectCorrupt(big, "byte size overflows");
}

TEST(GgufMalformed, UnknownTypes) {
  Valid v = MakeValid();
  ExpectCorrupt(Patch<uint32_t>(v, "kv0_type", 13), "'general.architecture' type");
  ExpectCorrupt(Patch<uint32_t>(v, "tokens_elem_type", 99), "array type");
  ExpectCorrupt(Patch<uint32_t>(v, "inner_elem_type", 13), "array type");
  std::string s = Patch<uint32_t>(v, "t1_type", 4);  // id 4 was removed from ggml
  ExpectCorrupt(s, "tensor 'b': type");
  EXPECT_NE(ParseBytes(s).message().find("unknown ggml type id 4"), std::string::npos);
  ExpectCorrupt(Patch<uint32_t>(v, "t1_type", 1000), "unknown ggml type id 1000");
  ExpectCorrupt(Patch<uint8_t>(v, "flag_value", 2), "'test.flag'");
}

TEST(GgufMalformed, RowNotWholeBlocks) {
  Valid v = MakeValid();
  ExpectCorrupt(Patch<uint64_t>(v, "t1_ne0", 48), "block size 32");
}

TEST(GgufMalformed, BadOffsets) {
  Valid v = MakeValid();
  ExpectCorrupt(Patch<uint64_t>(v, "t1_offset", 130), "tensor 'b': offset");      // unaligned
  ExpectCorrupt(Patch<uint64_t>(v, "t1_offset", 96), "overlaps tensor 'a'");       // overlap
  ExpectCorrupt(Patch<uint64_t>(v, "t2_offset", 96), "overlaps tensor 'b'");       // out of order
  ExpectCorrupt(Patch<uint64_t>(v, "t2_offset", 256), "past the end of the file");  // past EOF
  ExpectCorrupt(Patch<uint64_t>(v, "t2_offset", ~uint64_t(31)), "tensor 'c': offset");
}

TEST(GgufMalformed, BadAlignment) {
  Valid v = MakeValid();
  ExpectCorrupt(Patch<uint32_t>(v, "align_value", 0), "general.alignment");
  ExpectCorrupt(Patch<uint32_t>(v, "align_value", 3), "general.alignment");
  ExpectCorrupt(Patch<uint32_t>(v, "align_value", 48), "general.alignment");
  // A valid but different alignment moves the data section and the offset rule.
  ExpectCorrupt(Patch<uint32_t>(v, "align_value", 256), "tensor 'b': offset");
}

TEST(GgufMalformed, Duplicates) {
  Valid v = MakeValid();
  std::string dup = v.bytes;
  // Rename tensor 'c' to 'a'.
  dup[v.b.At("t2_name") + 8] = 'a';
  ExpectCorrupt(dup, "duplicate tensor name");
  std::string dupk = v.bytes;
  std::string name = "test.nested";
  // Rename key "test.tokens" to "test.nested"'s twin: same length (11).
  dupk.replace(v.b.At("tokens_key") + 8, 11, name);
  ExpectCorrupt(dupk, "duplicate key");
}

TEST(GgufMalformed, DeeplyNestedArraysAreRejected) {
  Builder b;
  b.Put<uint32_t>(kGgufMagic);
  b.Put<uint32_t>(3);
  b.Put<uint64_t>(0);
  b.Put<uint64_t>(1);
  b.Str("deep");
  b.Put<uint32_t>(9);
  for (int i = 0; i < 10000; ++i) {
    b.Put<uint32_t>(9);
    b.Put<uint64_t>(1);
  }
  b.Put<uint32_t>(4);
  b.Put<uint64_t>(0);
  ExpectCorrupt(b.bytes(), "nested deeper");
}

}  // namespace
}  // namespace moestream::io
