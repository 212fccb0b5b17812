// UringReader: every byte through io_uring (O_DIRECT, registered buffers and
// file), stacked and per-expert GGUFs, odd destinations, many reads at once;
// the packed store through io_uring; a file truncated after open.
#include <unistd.h>

#include "gtest/gtest.h"
#include "io/expert_store.h"
#include "io/uring_reader.h"
#include "tests/io/tier_test_util.h"
#include "tests/test_util.h"

namespace moestream::io {
namespace {

using tiertest::LoadLayout;
using tiertest::ReadAllAndVerify;
using tiertest::WriteTierModel;

absl::StatusOr<std::unique_ptr<ExpertReader>> OpenUring(std::shared_ptr<const ExpertLayout> l,
                                                        ReaderOptions o) {
  o.kind = "uring";
  return UringReader::Open(std::move(l), o);
}

#define SKIP_IF_UNAVAILABLE(r)                                            \
  if (!(r).ok() && absl::IsUnavailable((r).status())) {                   \
    GTEST_SKIP() << "io_uring unavailable here: " << (r).status();        \
  }                                                                       \
  ASSERT_TRUE((r).ok()) << (r).status()

struct UringCase {
  bool stacked;
  bool zero_copy;
  uint64_t block_bytes;
  int queue_depth;
};

class UringReadAllTest : public ::testing::TestWithParam<UringCase> {};

TEST_P(UringReadAllTest, EveryByteMatches) {
  const UringCase& c = GetParam();
  testing::ScratchDir dir;
  std::string path = dir.Path("m.gguf");
  WriteTierModel(path, {.stacked = c.stacked});
  auto layout = LoadLayout(path);
  ASSERT_NE(layout, nullptr);
  ReaderOptions o;
  o.zero_copy = c.zero_copy;
  o.block_bytes = c.block_bytes;
  o.queue_depth = c.queue_depth;
  auto r = OpenUring(layout, o);
  SKIP_IF_UNAVAILABLE(r);
  EXPECT_EQ((*r)->kind(), "uring");
  ReadAllAndVerify(**r, c.stacked);
  ReadAllAndVerify(**r, c.stacked);
  EXPECT_EQ((*r)->stats().experts_failed, 0u);
}

INSTANTIATE_TEST_SUITE_P(Uring, UringReadAllTest,
                         ::testing::Values(UringCase{true, true, 8192, 4},
                                           UringCase{false, false, 4096, 1},
                                           UringCase{true, false, 16384, 64},
                                           UringCase{false, true, 1 << 20, 8}));

TEST(UringStoreTest, StoreBlobsZeroCopyAndChecksummed) {
  testing::ScratchDir dir;
  std::string path = dir.Path("m.gguf"), store_path = dir.Path("m.experts");
  WriteTierModel(path, {});
  StorePackOptions po;
  po.show_progress = false;
  po.reader.kind = "pread";
  ASSERT_TRUE(PackExpertStore(path, store_path, po).ok());
  auto store = ExpertStore::Open(store_path);
  ASSERT_TRUE(store.ok()) << store.status();
  ReaderOptions o;
  o.block_bytes = 8192;
  auto r = OpenUring(store->layout(), o);
  SKIP_IF_UNAVAILABLE(r);
  ReadAllAndVerify(**r, /*stacked=*/true);
  EXPECT_GT((*r)->stats().ops, (*r)->stats().staged_ops);  // aligned slots read directly
}

TEST(UringFaultTest, TruncatedAfterOpen) {
  testing::ScratchDir dir;
  std::string path = dir.Path("m.gguf");
  WriteTierModel(path, {});
  auto layout = LoadLayout(path);
  ASSERT_NE(layout, nullptr);
  auto r = OpenUring(layout, {});
  SKIP_IF_UNAVAILABLE(r);
  const ExpertInfo* e = layout->Find(2, 4);
  ASSERT_EQ(::truncate(path.c_str(), off_t(e->segments[2].file_offset + 17)), 0);
  tiertest::TestBuffer buf(e->blob_bytes);
  absl::Status s = ReadExpertSync(**r, 2, 4, buf.data);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s;
  EXPECT_NE(s.message().find("m.gguf"), std::string::npos) << s;
  // Earlier experts still read fine.
  tiertest::TestBuffer ok(layout->Find(1, 0)->blob_bytes);
  EXPECT_TRUE(ReadExpertSync(**r, 1, 0, ok.data).ok());
  tiertest::ExpectBlobMatches(*layout->Find(1, 0), ok.data, true);
}

}  // namespace
}  // namespace moestream::io
