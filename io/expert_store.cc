#include "io/expert_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "base/errno_status.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "io/checksum.h"
#include "io/chunked_reader.h"

namespace moestream::io {
namespace {

static_assert(std::endian::native == std::endian::little, "the store format is little-endian");

constexpr uint64_t kHeaderChecksumAt = 4088;
constexpr uint64_t kSourceNameMax = 256;
constexpr uint64_t kExpertDigestAt = 336;
constexpr uint64_t kExpertRangesAt = 344;
constexpr uint64_t kSampleBytes = 4096;

template <typename T>
void Put(std::vector<uint8_t>& buf, uint64_t at, T v) {
  std::memcpy(buf.data() + at, &v, sizeof(T));
}
template <typename T>
T Get(const uint8_t* p, uint64_t at) {
  T v;
  std::memcpy(&v, p + at, sizeof(T));
  return v;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// pread of exactly `n` bytes or an error naming path and offset.
absl::Status PreadAll(int fd, const std::string& path, void* buf, uint64_t n, uint64_t off) {
  uint8_t* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, off_t(off));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int err = errno;  // before StrCat allocates
      return ErrnoStatus(err, path, absl::StrCat("read at offset ", off));
    }
    if (r == 0) {
      return absl::DataLossError(absl::StrCat(path, ": truncated: end of file at offset ", off,
                                              ", expected ", n, " more bytes"));
    }
    p += r;
    n -= uint64_t(r);
    off += uint64_t(r);
  }
  return absl::OkStatus();
}

// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// 4 KiB-aligned heap buffer.
struct AlignedBuf {
  explicit AlignedBuf(uint64_t bytes) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, std::max<uint64_t>(bytes, 4096)) == 0) data = static_cast<uint8_t*>(p);
  }
  ~AlignedBuf() { std::free(data); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  uint8_t* data = nullptr;
};

void EncodeEntry(std::vector<uint8_t>& buf, uint64_t at, const ExpertInfo& e) {
  Put<int32_t>(buf, at + 0, e.layer);
  Put<int32_t>(buf, at + 4, e.expert);
  Put<uint64_t>(buf, at + 8, e.segments[0].file_offset);
  Put<uint64_t>(buf, at + 16, e.blob_bytes);
  Put<uint64_t>(buf, at + 24, e.checksum.value_or(0));
  for (int m = 0; m < 3; ++m) {
    uint64_t o = at + 32 + uint64_t(m) * 48;
    const ExpertMatrixInfo& mi = e.matrices[size_t(m)];
    Put<uint32_t>(buf, o + 0, uint32_t(mi.type));
    Put<uint32_t>(buf, o + 4, 0);
    Put<int64_t>(buf, o + 8, mi.ne0);
    Put<int64_t>(buf, o + 16, mi.ne1);
    Put<uint64_t>(buf, o + 24, mi.blob_offset);
    Put<uint64_t>(buf, o + 32, mi.bytes);
    Put<uint64_t>(buf, o + 40, 0);
  }
}

absl::StatusOr<ExpertInfo> DecodeEntry(const std::string& path, const uint8_t* p, size_t i) {
  ExpertInfo e;
  e.layer = Get<int32_t>(p, 0);
  e.expert = Get<int32_t>(p, 4);
  e.n_segments = 1;
  e.blob_bytes = Get<uint64_t>(p, 16);
  e.segments[0] = {Get<uint64_t>(p, 8), e.blob_bytes, 0};
  e.checksum = Get<uint64_t>(p, 24);
  auto bad = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat(path, ": index entry ", i, " (expert ", e.layer, "/",
                                            e.expert, "): ", why));
  };
  if (e.segments[0].file_offset % kBlobAlignment != 0 || e.blob_bytes % kBlobAlignment != 0) {
    return bad("blob offset or size not 4 KiB-aligned");
  }
  for (int m = 0; m < 3; ++m) {
    const uint8_t* q = p + 32 + m * 48;
    ExpertMatrixInfo& mi = e.matrices[size_t(m)];
    uint32_t type = Get<uint32_t>(q, 0);
    if (GgmlTypeTraitsOf(type) == nullptr) return bad(absl::StrCat("unknown ggml type ", type));
    mi.type = GgmlType(type);
    mi.ne0 = Get<int64_t>(q, 8);
    mi.ne1 = Get<int64_t>(q, 16);
    mi.blob_offset = Get<uint64_t>(q, 24);
    mi.bytes = Get<uint64_t>(q, 32);
    uint64_t shape_bytes = 0;
    if (mi.ne0 <= 0 || mi.ne1 <= 0 || !RowIsWhole(mi.type, uint64_t(mi.ne0)) ||
        __builtin_mul_overflow(RowBytes(mi.type, uint64_t(mi.ne0)), uint64_t(mi.ne1), &shape_bytes) ||
        shape_bytes != mi.bytes ||
        !RangeInside(mi.blob_offset, mi.bytes, e.blob_bytes)) {
      return bad(absl::StrCat(Av(ExpertMatrixName(ExpertMatrix(m))),
                              " matrix shape, size or offset inconsistent"));
    }
  }
  return e;
}

}  // namespace

absl::Status StorePackOptions::Validate() const {
  MOESTREAM_RETURN_IF_ERROR(reader.Validate());
  if (window < 1 || window > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("pack window ", window, ": expected 1..1024"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> GgufIdentity(const GgufFile& model) {
  Fd fd{::open(model.path().c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) return ErrnoStatus(errno, model.path(), "cannot open");
  Xxh64State h;
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t off = 0; off < model.data_offset();) {
    uint64_t n = std::min<uint64_t>(buf.size(), model.data_offset() - off);
    MOESTREAM_RETURN_IF_ERROR(PreadAll(fd.fd, model.path(), buf.data(), n, off));
    h.Update(buf.data(), n);
    off += n;
  }
  return h.Digest();
}

absl::StatusOr<uint64_t> ExpertSampleDigest(const ExpertLayout& layout, uint32_t* ranges) {
  if (!layout.has_data()) {
    return absl::FailedPreconditionError(
        absl::StrCat(layout.path(), ": a header-only GGUF has no expert bytes to check"));
  }
  Fd fd{::open(layout.path().c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) return ErrnoStatus(errno, layout.path(), "cannot open");
  Xxh64State h;
  std::vector<uint8_t> buf(kSampleBytes);
  uint32_t count = 0;
  for (int layer : layout.moe_layers()) {
    const int n = layout.n_experts(layer);
    int picks[3] = {0, n / 2, n - 1};
    for (int k = 0; k < 3; ++k) {
      if (k > 0 && picks[k] == picks[k - 1]) continue;
      MOESTREAM_ASSIGN_OR_RETURN(const ExpertInfo* e, layout.Get(layer, picks[k]));
      for (const ExpertSegment& seg : e->segment_span()) {
        const uint64_t len = std::min(kSampleBytes, seg.bytes);
        uint64_t starts[3] = {0, (seg.bytes - len) / 2, seg.bytes - len};
        for (int r = 0; r < 3; ++r) {
          if (r > 0 && starts[r] == starts[r - 1]) continue;
          MOESTREAM_RETURN_IF_ERROR(
              PreadAll(fd.fd, layout.path(), buf.data(), len, seg.file_offset + starts[r]));
          const uint64_t where[3] = {uint64_t(layer), uint64_t(picks[k]), starts[r]};
          h.Update(where, sizeof(where));
          h.Update(buf.data(), len);
          ++count;
        }
      }
    }
  }
  if (ranges != nullptr) *ranges = count;
  return h.Digest();
}

absl::Status PackExpertStore(const std::string& gguf_path, const std::string& store_path,
                             const StorePackOptions& options, const ProgressFn& progress) {
  MOESTREAM_RETURN_IF_ERROR(options.Validate());
  MOESTREAM_ASSIGN_OR_RETURN(GgufFile model, GgufFile::Open(gguf_path));
  MOESTREAM_RETURN_IF_ERROR(model.CheckHasData());
  MOESTREAM_ASSIGN_OR_RETURN(ExpertLayout src_layout, ExpertLayout::FromGguf(model));
  MOESTREAM_ASSIGN_OR_RETURN(uint64_t identity, GgufIdentity(model));
  uint32_t sample_ranges = 0;
  MOESTREAM_ASSIGN_OR_RETURN(uint64_t expert_digest, ExpertSampleDigest(src_layout, &sample_ranges));
  auto src = std::make_shared<const ExpertLayout>(std::move(src_layout));

  // Store entries: blobs back to back from the end of the header.
  std::vector<ExpertInfo> entries(src->experts().begin(), src->experts().end());
  uint64_t at = kStoreHeaderBytes;
  for (ExpertInfo& e : entries) {
    e.n_segments = 1;
    e.segments = {};
    e.segments[0] = {at, e.blob_bytes, 0};
    at += e.blob_bytes;
  }
  const uint64_t index_offset = at;
  const uint64_t index_bytes = entries.size() * kStoreEntryBytes;
  const uint64_t file_bytes = index_offset + index_bytes;

  MOESTREAM_ASSIGN_OR_RETURN(auto reader, OpenExpertReader(src, options.reader));
  // Blobs complete out of order, so they are written at their offsets; the
  // temporary disappears with `out` on every early return below.
  MOESTREAM_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::Create(store_path));
  MOESTREAM_RETURN_IF_ERROR(out.Reserve(file_bytes));
  auto bytes_of = [](const void* p, uint64_t n) {
    return std::string_view(static_cast<const char*>(p), n);
  };

  // Blobs: a window of experts in flight; each lands zero-padded, is
  // checksummed and written at its offset.
  std::vector<std::unique_ptr<AlignedBuf>> bufs;
  std::vector<int> free_bufs;
  for (int i = 0; i < options.window; ++i) {
    bufs.push_back(std::make_unique<AlignedBuf>(src->max_blob_bytes()));
    if (bufs.back()->data == nullptr) {
      return absl::ResourceExhaustedError("pack: cannot allocate read-ahead buffers");
    }
    free_bufs.push_back(i);
  }
  std::vector<int> buf_of(entries.size(), -1);
  bool tty = options.show_progress && !progress && isatty(2);
  uint64_t done_bytes = 0;
  int last_pct = -1;
  size_t next = 0, written = 0;
  std::vector<ExpertReadCompletion> done;
  while (written < entries.size()) {
    while (next < entries.size() && !free_bufs.empty()) {
      int b = free_bufs.back();
      free_bufs.pop_back();
      std::memset(bufs[size_t(b)]->data, 0, entries[next].blob_bytes);
      buf_of[next] = b;
      absl::Status s = reader->Submit({entries[next].layer, entries[next].expert,
                                       bufs[size_t(b)]->data, next});
      if (!s.ok()) return s;
      ++next;
    }
    done.clear();
    reader->Reap(&done, /*wait=*/true);
    absl::Status first;
    for (const ExpertReadCompletion& c : done) {
      ExpertInfo& e = entries[c.tag];
      uint8_t* blob = bufs[size_t(buf_of[c.tag])]->data;
      free_bufs.push_back(buf_of[c.tag]);
      if (!c.status.ok()) {
        if (first.ok()) first = c.status;
        continue;
      }
      e.checksum = Xxh64(blob, e.blob_bytes);
      absl::Status w = out.WriteAt(e.segments[0].file_offset, bytes_of(blob, e.blob_bytes));
      if (!w.ok() && first.ok()) first = w;
      ++written;
      done_bytes += e.blob_bytes;
    }
    if (!first.ok()) {
      std::vector<ExpertReadCompletion> drain;
      while (reader->in_flight() > 0) reader->Reap(&drain, true);
      return first;
    }
    if (progress) progress(done_bytes, index_offset - kStoreHeaderBytes);
    int pct = int(done_bytes * 100 / std::max<uint64_t>(1, index_offset - kStoreHeaderBytes));
    if (options.show_progress && !progress && pct != last_pct && (tty || pct % 10 == 0)) {
      last_pct = pct;
      std::fprintf(stderr, "%smoestream pack: %zu / %zu experts, %.1f MiB (%d%%)%s",
                   tty ? "\r" : "", written, entries.size(), double(done_bytes) / (1 << 20), pct,
                   tty && pct < 100 ? "" : "\n");
    }
  }

  // Index, then header.
  std::vector<uint8_t> index(index_bytes);
  for (size_t i = 0; i < entries.size(); ++i) EncodeEntry(index, i * kStoreEntryBytes, entries[i]);
  MOESTREAM_RETURN_IF_ERROR(out.WriteAt(index_offset, bytes_of(index.data(), index.size())));
  std::vector<uint8_t> header(kStoreHeaderBytes, 0);
  std::memcpy(header.data(), kStoreMagic, 8);
  Put<uint32_t>(header, 8, kStoreVersion);
  Put<uint32_t>(header, 12, uint32_t(kStoreHeaderBytes));
  Put<uint64_t>(header, 16, file_bytes);
  Put<uint64_t>(header, 24, index_offset);
  Put<uint64_t>(header, 32, index_bytes);
  Put<uint64_t>(header, 40, Xxh64(index.data(), index.size()));
  Put<uint32_t>(header, 48, uint32_t(src->n_layers()));
  Put<uint32_t>(header, 52, uint32_t(entries.size()));
  Put<uint64_t>(header, 56, model.file_size());
  Put<uint64_t>(header, 64, identity);
  std::string name = BaseName(gguf_path).substr(0, kSourceNameMax);
  Put<uint32_t>(header, 72, uint32_t(name.size()));
  std::memcpy(header.data() + 76, name.data(), name.size());
  Put<uint64_t>(header, kExpertDigestAt, expert_digest);
  Put<uint32_t>(header, kExpertRangesAt, sample_ranges);
  Put<uint64_t>(header, kHeaderChecksumAt, Xxh64(header.data(), kHeaderChecksumAt));
  MOESTREAM_RETURN_IF_ERROR(out.WriteAt(0, bytes_of(header.data(), header.size())));
  return out.Commit();
}

absl::StatusOr<ExpertStore> ExpertStore::Open(const std::string& path) {
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such store file"));
    return ErrnoStatus(errno, path, "cannot open");
  }
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) return ErrnoStatus(errno, path, "stat");
  uint64_t size = uint64_t(st.st_size);
  if (size < kStoreHeaderBytes) {
    return absl::DataLossError(absl::StrCat(path, ": ", size, " bytes, too short for a store header (",
                                            kStoreHeaderBytes, ")"));
  }
  std::vector<uint8_t> h(kStoreHeaderBytes);
  MOESTREAM_RETURN_IF_ERROR(PreadAll(fd.fd, path, h.data(), h.size(), 0));
  if (std::memcmp(h.data(), kStoreMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a moestream expert store (bad magic)"));
  }
  uint32_t version = Get<uint32_t>(h.data(), 8);
  if (version == 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": store version 1 cannot be checked against its model (no expert digest): "
              "re-run moestream pack"));
  }
  if (version != kStoreVersion) {
    return absl::DataLossError(absl::StrCat(path, ": store version ", version, ", expected ",
                                            kStoreVersion, " (re-run moestream pack)"));
  }
  if (Get<uint64_t>(h.data(), kHeaderChecksumAt) != Xxh64(h.data(), kHeaderChecksumAt)) {
    return absl::DataLossError(absl::StrCat(path, ": header checksum mismatch"));
  }
  uint64_t file_bytes = Get<uint64_t>(h.data(), 16);
  uint64_t index_offset = Get<uint64_t>(h.data(), 24);
  uint64_t index_bytes = Get<uint64_t>(h.data(), 32);
  uint32_t n_entries = Get<uint32_t>(h.data(), 52);
  uint32_t name_len = Get<uint32_t>(h.data(), 72);
  if (size < file_bytes) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: ", size, " bytes, header says ",
                                            file_bytes));
  }
  if (index_bytes != uint64_t(n_entries) * kStoreEntryBytes || !RangeInside(index_offset, index_bytes, file_bytes) ||
      name_len > kSourceNameMax) {
    return absl::DataLossError(absl::StrCat(path, ": inconsistent header (index at ", index_offset,
                                            ", ", index_bytes, " bytes, ", n_entries, " entries)"));
  }
  std::vector<uint8_t> index(index_bytes);
  MOESTREAM_RETURN_IF_ERROR(PreadAll(fd.fd, path, index.data(), index.size(), index_offset));
  if (Xxh64(index.data(), index.size()) != Get<uint64_t>(h.data(), 40)) {
    return absl::DataLossError(absl::StrCat(path, ": index checksum mismatch"));
  }
  std::vector<ExpertInfo> entries;
  entries.reserve(n_entries);
  for (size_t i = 0; i < n_entries; ++i) {
    MOESTREAM_ASSIGN_OR_RETURN(ExpertInfo e, DecodeEntry(path, index.data() + i * kStoreEntryBytes, i));
    if (e.segments[0].file_offset < kStoreHeaderBytes ||
        !RangeInside(e.segments[0].file_offset, e.blob_bytes, index_offset)) {
      return absl::DataLossError(absl::StrCat(path, ": index entry ", i, ": blob outside the blob area"));
    }
    entries.push_back(e);
  }
  auto layout = ExpertLayout::FromEntries(path, size, std::move(entries));
  if (!layout.ok()) return absl::DataLossError(layout.status().message());
  ExpertStore store;
  store.path_ = path;
  store.layout_ = std::make_shared<const ExpertLayout>(std::move(layout).value());
  store.source_bytes_ = Get<uint64_t>(h.data(), 56);
  store.source_identity_ = Get<uint64_t>(h.data(), 64);
  store.source_expert_digest_ = Get<uint64_t>(h.data(), kExpertDigestAt);
  store.source_expert_ranges_ = Get<uint32_t>(h.data(), kExpertRangesAt);
  store.source_name_.assign(reinterpret_cast<const char*>(h.data()) + 76, name_len);
  return store;
}

absl::Status ExpertStore::CheckSource(const GgufFile& model) const {
  MOESTREAM_RETURN_IF_ERROR(model.CheckHasData());
  MOESTREAM_ASSIGN_OR_RETURN(uint64_t id, GgufIdentity(model));
  if (id != source_identity_ || model.file_size() != source_bytes_) {
    return absl::FailedPreconditionError(absl::StrCat(
        path_, ": packed from '", source_name_, "' (", source_bytes_, " bytes), not from ",
        model.path(), " (", model.file_size(), " bytes): re-run moestream pack"));
  }
  // Same header and size: a model of the same shape may still hold other
  // weights (another seed, another fine-tune), so compare sampled experts.
  MOESTREAM_ASSIGN_OR_RETURN(ExpertLayout layout, ExpertLayout::FromGguf(model));
  uint32_t ranges = 0;
  MOESTREAM_ASSIGN_OR_RETURN(uint64_t digest, ExpertSampleDigest(layout, &ranges));
  if (digest != source_expert_digest_ || ranges != source_expert_ranges_) {
    return absl::FailedPreconditionError(absl::StrCat(
        path_, ": packed from '", source_name_, "', whose expert weights differ from ",
        model.path(), "'s (same shape and size, sampled expert bytes differ): re-run moestream pack"));
  }
  return absl::OkStatus();
}

}  // namespace moestream::io
