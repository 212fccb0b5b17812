// ExpertLayout, the pread and fake readers, injected faults, checksums.
#include <unistd.h>

#include <string>
#include <tuple>

#include "gtest/gtest.h"
#include "io/checksum.h"
#include "io/fake_reader.h"
#include "io/pread_reader.h"
#include "tests/io/tier_test_util.h"
#include "tests/test_util.h"

namespace moestream::io {
namespace {

using tiertest::LoadLayout;
using tiertest::ReadAllAndVerify;
using tiertest::TierModelSpec;
using tiertest::WriteTierModel;

TEST(Xxh64Test, KnownVectors) {
  EXPECT_EQ(Xxh64("", 0), 0xEF46DB3751D8E999ull);
  EXPECT_EQ(Xxh64("abc", 3), 0x44BC2CF5AD770999ull);
  std::string long_text(1000, 'x');
  for (size_t i = 0; i < long_text.size(); ++i) long_text[i] = char('a' + i % 26);
  for (size_t split : {0, 1, 31, 32, 33, 500, 999}) {
    Xxh64State s;
    s.Update(long_text.data(), split);
    s.Update(long_text.data() + split, long_text.size() - split);
    EXPECT_EQ(s.Digest(), Xxh64(long_text.data(), long_text.size())) << split;
  }
}

// Digests that stores already on disk carry: pinned from the implementation
// that wrote them, over every tail length XXH64 treats differently (1, 4, 8
// byte steps, <32 and >=32 byte inputs) and with a seed. "a" and "abc" are
// xxHash's published values. A change here means existing stores no longer
// verify.
TEST(Xxh64Test, DigestsOfStoresWrittenBefore) {
  std::string text(1000, ' ');
  for (size_t i = 0; i < text.size(); ++i) text[i] = char('a' + i % 26);
  struct Case {
    size_t n;
    uint64_t seed0, seed_9e3779b1;
  };
  const Case cases[] = {
      {1, 0xD24EC4F1A98C6E5Bull, 0x393DA8B78992279Bull},
      {3, 0x44BC2CF5AD770999ull, 0x1318DF30094A85FDull},
      {4, 0xDE0327B0D25D92CCull, 0x66150D50767198EEull},
      {8, 0x3AD351775B4634B7ull, 0xDCF6C3EAE6EA060Full},
      {14, 0xD66D2A9C05576B14ull, 0x9EFD0686C23DA203ull},
      {31, 0xF7D421C242541AC9ull, 0xB617F40499FD71BCull},
      {32, 0x4DA6CBE536CF55C7ull, 0xB38B6D1886362FDFull},
      {33, 0x9AC581034B031F72ull, 0x5B582F00197180CFull},
      {63, 0xA12B47D9D143A6BCull, 0xA0BCC5593240AEFBull},
      {64, 0x14696B774542D718ull, 0x91ACB7B2E7625295ull},
      {100, 0x79C9FA152BB53C71ull, 0x3AAE7F414930A90Full},
      {1000, 0x94B86DB9A16D86A9ull, 0xEC1364E9A740A27Eull},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Xxh64(text.data(), c.n), c.seed0) << c.n;
    EXPECT_EQ(Xxh64(text.data(), c.n, 0x9E3779B1), c.seed_9e3779b1) << c.n;
    Xxh64State s(0x9E3779B1);
    s.Update(text.data(), c.n / 3);
    s.Update(text.data() + c.n / 3, c.n - c.n / 3);
    EXPECT_EQ(s.Digest(), c.seed_9e3779b1) << c.n;
  }
}

TEST(ExpertLayoutTest, StackedGguf) {
  testing::ScratchDir dir;
  std::string path = dir.Path("m.gguf");
  WriteTierModel(path, {});
  auto layout = LoadLayout(path);
  ASSERT_NE(layout, nullptr);
  EXPECT_EQ(layout->n_layers(), 3);
  EXPECT_EQ(layout->moe_layers(), (std::vector<int>{1, 2}));
  EXPECT_EQ(layout->n_experts(0), 0);
  EXPECT_EQ(layout->n_experts(1), 5);
  EXPECT_EQ(layout->size(), 10u);
  const ExpertInfo* e = layout->Find(2, 4);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->matrix(ExpertMatrix::kGate).type, GgmlType::kF32);
  EXPECT_EQ(e->matrix(ExpertMatrix::kGate).ne0, 128);
  EXPECT_EQ(e->matrix(ExpertMatrix::kGate).ne1, 51);
  EXPECT_EQ(e->matrix(ExpertMatrix::kGate).bytes, 128u * 51 * 4);
  EXPECT_EQ(e->matrix(ExpertMatrix::kDown).bytes, 77u * (128 / 32) * 34);
  EXPECT_EQ(e->n_segments, 3);
  for (const ExpertMatrixInfo& m : e->matrices) EXPECT_EQ(m.blob_offset % kBlobMatrixAlignment, 0u);
  EXPECT_EQ(e->blob_bytes % kBlobAlignment, 0u);
  EXPECT_GE(e->blob_bytes, e->matrices[2].blob_offset + e->matrices[2].bytes);
  EXPECT_EQ(layout->Find(0, 0), nullptr);
  EXPECT_EQ(layout->Find(1, 5), nullptr);
  auto bad = layout->Get(1, 9);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(bad.status().message().find("m.gguf"), std::string::npos) << bad.status();
}

TEST(ExpertLayoutTest, PerExpertTensorsMatchStacked) {
  testing::ScratchDir dir;
  WriteTierModel(dir.Path("a.gguf"), {.stacked = true});
  WriteTierModel(dir.Path("b.gguf"), {.stacked = false});
  auto a = LoadLayout(dir.Path("a.gguf"));
  auto b = LoadLayout(dir.Path("b.gguf"));
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ(a->experts()[i].blob_bytes, b->experts()[i].blob_bytes);
    for (int m = 0; m < 3; ++m) {
      EXPECT_EQ(a->experts()[i].matrices[m].bytes, b->experts()[i].matrices[m].bytes);
      EXPECT_EQ(a->experts()[i].matrices[m].type, b->experts()[i].matrices[m].type);
    }
  }
}

TEST(ExpertLayoutTest, NoExpertsIsNotFound) {
  testing::ScratchDir dir;
  GgufWriter w;
  ASSERT_TRUE(w.AddTensor("blk.0.ffn_up.weight", GgmlType::kF32, {4, 4},
                          [](std::span<uint8_t>) { return absl::OkStatus(); })
                  .ok());
  ASSERT_TRUE(w.Write(dir.Path("d.gguf")).ok());
  auto f = GgufFile::Open(dir.Path("d.gguf"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(ExpertLayout::FromGguf(*f).status().code(), absl::StatusCode::kNotFound);
}

// ---- every reader, every byte ----

struct ReadCase {
  std::string kind;  // pread | fake
  bool direct;
  bool zero_copy;
  uint64_t block_bytes;
  int queue_depth;
  bool stacked;
};

class ReadAllTest : public ::testing::TestWithParam<ReadCase> {};

TEST_P(ReadAllTest, EveryByteMatches) {
  const ReadCase& c = GetParam();
  testing::ScratchDir dir;
  std::string path = dir.Path("m.gguf");
  WriteTierModel(path, {.stacked = c.stacked});
  auto layout = LoadLayout(path);
  ASSERT_NE(layout, nullptr);
  ReaderOptions o;
  o.kind = c.kind == "fake" ? "pread" : c.kind;
  o.direct_io = c.direct;
  o.zero_copy = c.zero_copy;
  o.block_bytes = c.block_bytes;
  o.queue_depth = c.queue_depth;
  o.threads = 3;
  std::unique_ptr<ExpertReader> reader;
  if (c.kind == "fake") {
    reader = FakeReader::Create(layout, testing::ReadFileOrDie(path), o, c.direct, /*seed=*/7);
  } else {
    auto r = OpenExpertReader(layout, o);
    ASSERT_TRUE(r.ok()) << r.status();
    reader = std::move(r).value();
  }
  // Twice through the same reader: state is reset between rounds.
  ReadAllAndVerify(*reader, c.stacked);
  ReadAllAndVerify(*reader, c.stacked);
  EXPECT_EQ(reader->stats().experts_failed, 0u);
  EXPECT_EQ(reader->stats().experts_read, 2 * layout->size());
}

INSTANTIATE_TEST_SUITE_P(
    Readers, ReadAllTest,
    ::testing::Values(ReadCase{"pread", true, true, 8192, 4, true},
                      ReadCase{"pread", true, false, 4096, 1, true},
                      ReadCase{"pread", false, true, 12288, 16, false},
                      ReadCase{"pread", true, true, 1 << 20, 32, false},
                      ReadCase{"fake", true, true, 8192, 3, true},
                      ReadCase{"fake", true, false, 4096, 64, false},
                      ReadCase{"fake", false, true, 16384, 2, true}),
    [](const ::testing::TestParamInfo<ReadCase>& i) {
      const ReadCase& c = i.param;
      return absl::StrCat(c.kind, c.direct ? "_direct" : "_buffered",
                          c.zero_copy ? "_zc" : "_staged", "_b", c.block_bytes, "_q",
                          c.queue_depth, c.stacked ? "_stacked" : "_perexpert");
    });

// ---- injected faults ----

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.Path("m.gguf");
    WriteTierModel(path_, {});
    layout_ = LoadLayout(path_);
    ASSERT_NE(layout_, nullptr);
    options_.block_bytes = 8192;
    options_.queue_depth = 4;
    options_.max_retries = 4;
    reader_ = FakeReader::Create(layout_, testing::ReadFileOrDie(path_), options_);
  }
  // Reads every expert; returns the completions by layout index.
  std::vector<absl::Status> ReadAll() {
    std::vector<std::unique_ptr<tiertest::TestBuffer>> bufs;
    for (size_t i = 0; i < layout_->size(); ++i) {
      const ExpertInfo& e = layout_->experts()[i];
      bufs.push_back(std::make_unique<tiertest::TestBuffer>(e.blob_bytes));
      EXPECT_TRUE(reader_->Submit({e.layer, e.expert, bufs.back()->data, i}).ok());
    }
    std::vector<ExpertReadCompletion> done;
    while (reader_->in_flight() > 0) reader_->Reap(&done, true);
    std::vector<absl::Status> out(layout_->size(), absl::UnknownError("not completed"));
    for (auto& c : done) {
      out[c.tag] = c.status;
      if (c.status.ok()) tiertest::ExpectBlobMatches(layout_->experts()[c.tag], bufs[c.tag]->data, true);
    }
    return out;
  }

  testing::ScratchDir dir_;
  std::string path_;
  std::shared_ptr<const ExpertLayout> layout_;
  ReaderOptions options_;
  std::unique_ptr<FakeReader> reader_;
};

TEST_F(FaultTest, EioFailsOnlyThatExpertNamingFileAndOffset) {
  const ExpertInfo* victim = layout_->Find(2, 3);
  uint64_t off = victim->segments[1].file_offset + 100;
  reader_->InjectFault({FakeFault::Kind::kEio, off, -1});
  auto st = ReadAll();
  for (size_t i = 0; i < st.size(); ++i) {
    const ExpertInfo& e = layout_->experts()[i];
    bool covers = false;
    for (const ExpertSegment& s : e.segment_span()) {
      covers |= AlignDown(s.file_offset, 4096) <= off && off < AlignUp(s.file_offset + s.bytes, 4096);
    }
    if (!covers) {
      EXPECT_TRUE(st[i].ok()) << st[i];
      continue;
    }
    EXPECT_EQ(st[i].code(), absl::StatusCode::kDataLoss) << st[i];
    EXPECT_NE(st[i].message().find("m.gguf"), std::string::npos) << st[i];
    EXPECT_NE(st[i].message().find("at offset"), std::string::npos) << st[i];
    EXPECT_NE(st[i].message().find("Input/output error"), std::string::npos) << st[i];
  }
  EXPECT_FALSE(st[size_t(layout_->IndexOf(2, 3))].ok());
}

TEST_F(FaultTest, ShortReadsAreResubmitted) {
  for (const ExpertInfo& e : layout_->experts()) {
    reader_->InjectFault({FakeFault::Kind::kShortRead, e.segments[0].file_offset + 5000, 2});
  }
  for (const absl::Status& s : ReadAll()) EXPECT_TRUE(s.ok()) << s;
  EXPECT_GT(reader_->faults_fired(), 0u);
  EXPECT_GT(reader_->stats().retries, 0u);
}

TEST_F(FaultTest, EagainIsRetriedThenGivesUp) {
  const ExpertInfo* e = layout_->Find(1, 2);
  reader_->InjectFault({FakeFault::Kind::kEagain, e->segments[2].file_offset, 3});
  for (const absl::Status& s : ReadAll()) EXPECT_TRUE(s.ok()) << s;
  reader_->InjectFault({FakeFault::Kind::kEagain, e->segments[2].file_offset, -1});
  auto st = ReadAll();
  const absl::Status& s = st[size_t(layout_->IndexOf(1, 2))];
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Resource temporarily unavailable"), std::string::npos) << s;
}

TEST_F(FaultTest, TruncatedAfterOpenIsDataLoss) {
  const ExpertInfo* e = layout_->Find(2, 0);
  reader_->Truncate(e->segments[0].file_offset + 10);
  auto st = ReadAll();
  const absl::Status& s = st[size_t(layout_->IndexOf(2, 0))];
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s;
  EXPECT_TRUE(st[size_t(layout_->IndexOf(1, 0))].ok()) << st[0];
}

TEST(PreadFaultTest, RealFileTruncatedAfterOpen) {
  testing::ScratchDir dir;
  std::string path = dir.Path("m.gguf");
  WriteTierModel(path, {});
  auto layout = LoadLayout(path);
  ASSERT_NE(layout, nullptr);
  ReaderOptions o;
  o.block_bytes = 8192;
  auto r = PreadReader::Open(layout, o);
  ASSERT_TRUE(r.ok()) << r.status();
  const ExpertInfo* e = layout->Find(2, 4);
  ASSERT_EQ(::truncate(path.c_str(), off_t(e->segments[1].file_offset + 3)), 0);
  tiertest::TestBuffer buf(e->blob_bytes);
  absl::Status s = ReadExpertSync(**r, 2, 4, buf.data);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s;
  // Reopening sees the short file at once.
  auto again = PreadReader::Open(layout, o);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kDataLoss) << again.status();
}

TEST(ReaderOptionsTest, ValidateNamesTheField) {
  ReaderOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.block_bytes = 5000;
  EXPECT_NE(o.Validate().message().find("block_bytes"), std::string::npos);
  o = {};
  o.queue_depth = 0;
  EXPECT_NE(o.Validate().message().find("queue_depth"), std::string::npos);
  o = {};
  o.kind = "mmap";
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReaderTest, UnknownExpertAndNullDestination) {
  testing::ScratchDir dir;
  std::string path = dir.Path("m.gguf");
  WriteTierModel(path, {});
  auto layout = LoadLayout(path);
  ASSERT_NE(layout, nullptr);
  auto r = FakeReader::Create(layout, testing::ReadFileOrDie(path), {});
  uint8_t b[16];
  EXPECT_EQ(r->Submit({0, 0, b, 0}).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(r->Submit({1, 0, nullptr, 0}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->in_flight(), 0u);
  std::vector<ExpertReadCompletion> done;
  EXPECT_EQ(r->Reap(&done, /*wait=*/true), 0u);  // nothing queued: no hang
}

}  // namespace
}  // namespace moestream::io
