// The packed expert store: round trip, format checks, corruption, identity,
// and `moestream pack`.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "gtest/gtest.h"
#include "io/checksum.h"
#include "io/expert_store.h"
#include "io/fake_reader.h"
#include "tests/io/tier_test_util.h"
#include "tests/test_util.h"

namespace moestream::io {
namespace {

using tiertest::ReadAllAndVerify;
using tiertest::WriteTierModel;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = dir_.Path("m.gguf");
    store_path_ = dir_.Path("m.experts");
    WriteTierModel(model_, {.stacked = stacked_});
    StorePackOptions po;
    po.show_progress = false;
    po.reader.kind = "pread";
    po.reader.block_bytes = 8192;
    po.window = 3;
    absl::Status s = PackExpertStore(model_, store_path_, po);
    ASSERT_TRUE(s.ok()) << s;
  }
  testing::ScratchDir dir_;
  bool stacked_ = true;
  std::string model_, store_path_;
};

TEST_F(StoreTest, RoundTripThroughEveryReader) {
  auto store = ExpertStore::Open(store_path_);
  ASSERT_TRUE(store.ok()) << store.status();
  auto f = GgufFile::Open(model_);
  ASSERT_TRUE(f.ok());
  auto src = ExpertLayout::FromGguf(*f);
  ASSERT_TRUE(src.ok());
  const ExpertLayout& l = *store->layout();
  ASSERT_EQ(l.size(), src->size());
  for (size_t i = 0; i < l.size(); ++i) {
    const ExpertInfo& a = l.experts()[i];
    const ExpertInfo& b = src->experts()[i];
    EXPECT_EQ(a.layer, b.layer);
    EXPECT_EQ(a.expert, b.expert);
    EXPECT_EQ(a.blob_bytes, b.blob_bytes);
    EXPECT_EQ(a.n_segments, 1);
    EXPECT_EQ(a.segments[0].file_offset % 4096, 0u);
    EXPECT_TRUE(a.checksum.has_value());
    for (int m = 0; m < 3; ++m) {
      EXPECT_EQ(a.matrices[m].type, b.matrices[m].type);
      EXPECT_EQ(a.matrices[m].ne0, b.matrices[m].ne0);
      EXPECT_EQ(a.matrices[m].ne1, b.matrices[m].ne1);
      EXPECT_EQ(a.matrices[m].blob_offset, b.matrices[m].blob_offset);
    }
  }
  EXPECT_EQ(store->source_name(), "m.gguf");
  EXPECT_TRUE(store->CheckSource(*f).ok());
  for (const char* kind : {"pread", "auto"}) {
    ReaderOptions o;
    o.kind = kind;
    o.block_bytes = 8192;
    auto r = OpenExpertReader(store->layout(), o);
    ASSERT_TRUE(r.ok()) << r.status();
    ReadAllAndVerify(**r, true);
  }
  auto fake = FakeReader::Create(store->layout(), testing::ReadFileOrDie(store_path_), {});
  ReadAllAndVerify(*fake, true);
  // Blobs are zero-padded and their checksum is XXH64 of the whole blob.
  std::string bytes = testing::ReadFileOrDie(store_path_);
  const ExpertInfo& e = l.experts()[3];
  EXPECT_EQ(Xxh64(bytes.data() + e.segments[0].file_offset, e.blob_bytes), *e.checksum);
  uint64_t end = e.matrices[2].blob_offset + e.matrices[2].bytes;
  for (uint64_t i = end; i < e.blob_bytes; ++i) {
    ASSERT_EQ(bytes[e.segments[0].file_offset + i], 0) << i;
  }
  EXPECT_NE(::access((store_path_ + ".tmp." + std::to_string(getpid())).c_str(), F_OK), 0);
}

TEST_F(StoreTest, ChecksumMismatchIsDataLossNamingExpert) {
  auto store = ExpertStore::Open(store_path_);
  ASSERT_TRUE(store.ok());
  const ExpertInfo* e = store->layout()->Find(2, 1);
  auto fake = FakeReader::Create(store->layout(), testing::ReadFileOrDie(store_path_), {});
  fake->CorruptByte(e->segments[0].file_offset + e->matrices[1].blob_offset + 5);
  tiertest::TestBuffer buf(e->blob_bytes);
  absl::Status s = ReadExpertSync(*fake, 2, 1, buf.data);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("checksum mismatch in expert 2/1"), std::string::npos) << s;
  EXPECT_NE(s.message().find("m.experts"), std::string::npos) << s;
  EXPECT_TRUE(ReadExpertSync(*fake, 2, 0, buf.data).ok());
  // Verification off: the corrupt blob is delivered.
  ReaderOptions o;
  o.verify_checksums = false;
  auto lax = FakeReader::Create(store->layout(), testing::ReadFileOrDie(store_path_), o);
  lax->CorruptByte(e->segments[0].file_offset + 9);
  EXPECT_TRUE(ReadExpertSync(*lax, 2, 1, buf.data).ok());
}

TEST_F(StoreTest, CorruptHeaderIndexOrTruncatedFileRefused) {
  std::string good = testing::ReadFileOrDie(store_path_);
  auto expect_open_fails = [&](std::string bytes, const std::string& needle) {
    std::string p = dir_.Path("bad.experts");
    testing::WriteFileOrDie(p, bytes);
    auto s = ExpertStore::Open(p);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << needle;
    EXPECT_NE(s.status().message().find(needle), std::string::npos) << s.status();
  };
  std::string b = good;
  b[0] = 'X';
  expect_open_fails(b, "bad magic");
  b = good;
  b[20] ^= 1;
  expect_open_fails(b, "header checksum");
  b = good;
  b[b.size() - 3] ^= 1;
  expect_open_fails(b, "index checksum");
  expect_open_fails(good.substr(0, good.size() - 100), "truncated");
  expect_open_fails(good.substr(0, 100), "too short");
}

// A corrupt index naming a huge layer is refused before the layer table is
// sized by it (a fuzzer found the index asking for gigabytes).
TEST(ExpertLayoutIndex, HugeLayerRefusedWithoutAllocating) {
  ExpertInfo e;
  e.layer = 2000000000;
  e.n_segments = 1;
  e.blob_bytes = kBlobAlignment;
  e.segments[0] = {0, 16, 0};
  auto s = ExpertLayout::FromEntries("x.experts", 1 << 20, {e});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("layer 2000000000 outside 0..65535"), std::string::npos)
      << s.status();
  e.layer = kMaxLayoutLayer;
  EXPECT_TRUE(ExpertLayout::FromEntries("x.experts", 1 << 20, {e}).ok());
}

// A segment whose end overflows 64 bits is outside the file, not inside it
// (a fuzzer found offset + size wrapping around to a small number).
TEST(ExpertLayoutIndex, SegmentEndThatOverflowsIsRefused) {
  ExpertInfo e;
  e.n_segments = 1;
  e.blob_bytes = kBlobAlignment;
  e.segments[0] = {~uint64_t{0} - 7, 16, 0};
  auto s = ExpertLayout::FromEntries("x.experts", 1 << 20, {e});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("lies outside the file"), std::string::npos) << s.status();
  EXPECT_FALSE(RangeInside(8, ~uint64_t{0} - 3, 1 << 20));
  EXPECT_TRUE(RangeInside(1 << 20, 0, 1 << 20));
  EXPECT_FALSE(RangeInside((1 << 20) + 1, 0, 1 << 20));
}

TEST_F(StoreTest, DifferentModelIsRefused) {
  std::string other = dir_.Path("other.gguf");
  WriteTierModel(other, {.n_experts = 4});
  auto f = GgufFile::Open(other);
  ASSERT_TRUE(f.ok());
  auto store = ExpertStore::Open(store_path_);
  ASSERT_TRUE(store.ok());
  absl::Status s = store->CheckSource(*f);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("m.gguf"), std::string::npos) << s;
}

// A model of the same shape with other weights has the same GGUF header and
// size; the sampled expert digest tells it apart.
TEST_F(StoreTest, SameShapeOtherWeightsIsRefused) {
  std::string other = dir_.Path("other.gguf");
  WriteTierModel(other, {.stacked = stacked_, .seed = 2});
  auto f = GgufFile::Open(other);
  auto mine = GgufFile::Open(model_);
  ASSERT_TRUE(f.ok() && mine.ok());
  ASSERT_EQ(f->file_size(), mine->file_size());
  ASSERT_EQ(*GgufIdentity(*f), *GgufIdentity(*mine));
  auto store = ExpertStore::Open(store_path_);
  ASSERT_TRUE(store.ok());
  absl::Status s = store->CheckSource(*f);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("expert weights differ"), std::string::npos) << s;
  EXPECT_TRUE(store->CheckSource(*mine).ok());
}

// One flipped byte in the middle of a sampled expert matrix is caught too.
TEST_F(StoreTest, OneChangedSampledByteIsRefused) {
  auto f = GgufFile::Open(model_);
  ASSERT_TRUE(f.ok());
  auto src = ExpertLayout::FromGguf(*f);
  ASSERT_TRUE(src.ok());
  const ExpertInfo* e = src->Find(1, 0);
  ASSERT_NE(e, nullptr);
  std::string bytes = testing::ReadFileOrDie(model_);
  bytes[e->segments[1].file_offset + e->segments[1].bytes / 2] ^= 0x40;
  const std::string changed = dir_.Path("changed.gguf");
  testing::WriteFileOrDie(changed, bytes);
  auto g = GgufFile::Open(changed);
  ASSERT_TRUE(g.ok());
  auto store = ExpertStore::Open(store_path_);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(store->CheckSource(*g).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(StoreTest, VersionOneStoreAsksForARepack) {
  std::string b = testing::ReadFileOrDie(store_path_);
  const uint32_t v1 = 1;
  std::memcpy(b.data() + 8, &v1, 4);
  const uint64_t sum = Xxh64(reinterpret_cast<const uint8_t*>(b.data()), 4088);
  std::memcpy(b.data() + 4088, &sum, 8);
  const std::string old = dir_.Path("old.experts");
  testing::WriteFileOrDie(old, b);
  auto store = ExpertStore::Open(old);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("re-run moestream pack"), std::string::npos)
      << store.status();
}

// A header-only GGUF (metadata and tensor table, no data) opens, lays out
// its experts for planning, and refuses every read of weights by name; the
// same file cut short without the marker is still a truncated file.
TEST(HeaderOnlyGguf, PlansButNeverReads) {
  testing::ScratchDir dir;
  const std::string full = dir.Path("full.gguf"), head = dir.Path("head.gguf");
  WriteTierModel(full, {});
  auto f = GgufFile::Open(full);
  ASSERT_TRUE(f.ok());
  GgufWriter w;
  for (const GgufKv& kv : f->metadata()) w.Set(kv.key, kv.value);
  w.SetHeaderOnly();
  for (const GgufTensorInfo& t : f->tensors()) {
    ASSERT_TRUE(w.AddTensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), nullptr).ok());
  }
  ASSERT_TRUE(w.Write(head).ok());
  auto h = GgufFile::Open(head);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_FALSE(h->has_data());
  EXPECT_EQ(h->file_size(), h->data_offset());
  EXPECT_EQ(h->tensors().size(), f->tensors().size());
  EXPECT_EQ(h->CheckHasData().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(h->CheckHasData().message().find("header-only"), std::string::npos);
  auto layout = ExpertLayout::FromGguf(*h);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->size(), ExpertLayout::FromGguf(*f)->size());
  auto shared = std::make_shared<const ExpertLayout>(*std::move(layout));
  auto reader = OpenExpertReader(shared, ReaderOptions{});
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kFailedPrecondition) << reader.status();
  StorePackOptions po;
  po.show_progress = false;
  EXPECT_EQ(PackExpertStore(head, dir.Path("h.store"), po).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(std::filesystem::exists(dir.Path("h.store")));
  // Without the marker a file that ends at its data section is truncated.
  std::string bytes = testing::ReadFileOrDie(full);
  testing::WriteFileOrDie(dir.Path("cut.gguf"), bytes.substr(0, f->data_offset()));
  auto cut = GgufFile::Open(dir.Path("cut.gguf"));
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kDataLoss) << cut.status();
}

TEST_F(StoreTest, PackOntoSymlinkIsRefusedLeavingItIntact) {
  const std::string link = dir_.Path("link.experts");
  ASSERT_EQ(::symlink("m.experts", link.c_str()), 0);
  const std::string before = testing::ReadFileOrDie(store_path_);
  StorePackOptions po;
  po.show_progress = false;
  po.reader.kind = "pread";
  absl::Status s = PackExpertStore(model_, link, po);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find(link), std::string::npos) << s;
  EXPECT_EQ(testing::ReadFileOrDie(store_path_), before);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.path()),
                          std::filesystem::directory_iterator()),
            3);  // model, store, link
}

TEST_F(StoreTest, PackCommand) {
  std::string out = dir_.Path("cli.experts");
  auto r = testing::RunCommand(testing::MoestreamBin() + " pack " + model_ + " -o " + out +
                               " --verify --block-size 64K");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("10 experts in 2 layers"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("checksums verified"), std::string::npos) << r.out;
  EXPECT_EQ(testing::ReadFileOrDie(out), testing::ReadFileOrDie(store_path_));
  auto bad = testing::RunCommand(testing::MoestreamBin() + " pack " + model_);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--output"), std::string::npos) << bad.err;
  auto missing = testing::RunCommand(testing::MoestreamBin() + " pack " + dir_.Path("nope.gguf") +
                                     " -o " + dir_.Path("x.experts"));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("nope.gguf"), std::string::npos) << missing.err;
  EXPECT_NE(::access(dir_.Path("x.experts").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace moestream::io
