// GGUF v3 header reader: GgufFile::Open / Parse, the typed getters and the
// expert byte ranges.
//
// The header is read front to back through a small buffered cursor (pread in
// 1 MiB windows for files, a span for in-memory images); tensor data is never
// read. Every count is checked against the bytes that remain before anything
// is allocated for it, so a hostile count fails fast instead of exhausting
// memory, and every error names the file, the byte offset where the offending
// field starts, and the field.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/errno_status.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "io/expert_layout.h"
#include "io/gguf.h"

namespace moestream::io {

namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr int kMaxArrayNesting = 16;
constexpr size_t kReadWindowBytes = 1 << 20;
// Smallest possible encodings, used to bound counts by the remaining bytes:
// a kv is key length (8) + a 1-byte key + type (4) + a 1-byte value; a
// tensor info is name length (8) + 1-byte name + n_dims (4) + one dim (8) +
// type (4) + offset (8).
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

// Encoded size of one scalar of type `t`; 0 for strings and arrays.
uint64_t ScalarBytes(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool: return 1;
    case GgufType::kUint16:
    case GgufType::kInt16: return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32: return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64: return 8;
    default: return 0;
  }
}

// Smallest encoding of one array element of type `t`.
uint64_t MinElementBytes(GgufType t) {
  if (t == GgufType::kString) return 8;
  if (t == GgufType::kArray) return 4 + 8;
  return ScalarBytes(t);
}

// Forward-only cursor over a file or an in-memory image.
class Cursor {
 public:
  // In-memory image; `limit` = bytes that exist (the span's size).
  Cursor(const std::string& name, std::span<const uint8_t> mem)
      : name_(name), mem_(mem.data()), limit_(mem.size()) {}
  // File descriptor; `limit` = the file's size.
  Cursor(const std::string& name, int fd, uint64_t limit) : name_(name), fd_(fd), limit_(limit) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return limit_ - pos_; }

  absl::Status Error(uint64_t at, std::string_view field, std::string_view what) const {
    return absl::DataLossError(
        absl::StrCat(name_, ": offset ", at, ": ", Av(field), ": ", Av(what)));
  }

  absl::Status Read(void* dst, uint64_t n, std::string_view field) {
    if (n > remaining()) {
      return Error(pos_, field,
                   absl::StrCat("truncated: expected ", n, " bytes, file ends at ", limit_));
    }
    auto* out = static_cast<uint8_t*>(dst);
    if (mem_ != nullptr) {
      std::memcpy(out, mem_ + pos_, n);
      pos_ += n;
      return absl::OkStatus();
    }
    while (n > 0) {
      if (pos_ < win_start_ || pos_ >= win_start_ + win_len_) {
        MOESTREAM_RETURN_IF_ERROR(Fill(field));
      }
      uint64_t off = pos_ - win_start_;
      uint64_t take = std::min<uint64_t>(n, win_len_ - off);
      std::memcpy(out, window_.data() + off, take);
      out += take;
      pos_ += take;
      n -= take;
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::StatusOr<T> Pod(std::string_view field) {
    T v;
    MOESTREAM_RETURN_IF_ERROR(Read(&v, sizeof(T), field));
    return v;
  }

  // A GGUF string: u64 length, bytes. The length is checked against the
  // remaining bytes before anything is allocated.
  absl::StatusOr<std::string> String(std::string_view field) {
    uint64_t at = pos_;
    MOESTREAM_ASSIGN_OR_RETURN(uint64_t len, Pod<uint64_t>(field));
    if (len > remaining()) {
      return Error(at, field,
                   absl::StrCat("string length ", len, " exceeds the ", remaining(),
                                " bytes left in the file"));
    }
    std::string s(len, '\0');
    MOESTREAM_RETURN_IF_ERROR(Read(s.data(), len, field));
    return s;
  }

 private:
  absl::Status Fill(std::string_view field) {
    if (window_.empty()) window_.resize(std::min<uint64_t>(kReadWindowBytes, limit_));
    uint64_t want = std::min<uint64_t>(kReadWindowBytes, limit_ - pos_);
    uint64_t got = 0;
    while (got < want) {
      ssize_t r = ::pread(fd_, window_.data() + got, want - got, static_cast<off_t>(pos_ + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        return absl::DataLossError(absl::StrCat(name_, ": offset ", pos_ + got, ": ", Av(field),
                                                ": read failed: ", std::strerror(errno)));
      }
      if (r == 0) {
        return Error(pos_ + got, field, "file shrank while reading");
      }
      got += static_cast<uint64_t>(r);
    }
    win_start_ = pos_;
    win_len_ = got;
    return absl::OkStatus();
  }

  const std::string& name_;
  const uint8_t* mem_ = nullptr;
  int fd_ = -1;
  uint64_t limit_ = 0;
  uint64_t pos_ = 0;
  std::vector<uint8_t> window_;
  uint64_t win_start_ = 0;
  uint64_t win_len_ = 0;
};

bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace

// Parses the header from a Cursor into a GgufFile.
class GgufParser {
 public:
  GgufParser(Cursor& c, GgufFile& f) : c_(c), f_(f) {}

  absl::Status Run() {
    MOESTREAM_ASSIGN_OR_RETURN(uint32_t magic, c_.Pod<uint32_t>("magic"));
    if (magic != kGgufMagic) {
      return c_.Error(0, "magic",
                      absl::StrFormat("expected \"GGUF\" (0x%08x), got 0x%08x", kGgufMagic, magic));
    }
    MOESTREAM_ASSIGN_OR_RETURN(uint32_t version, c_.Pod<uint32_t>("version"));
    if (version != kGgufVersion) {
      std::string what = absl::StrCat("expected 3, got ", version);
      if (version == 1 || version == 2) {
        absl::StrAppend(&what, " (GGUF v", version,
                        " is not supported; convert the file to v3 with a current llama.cpp)");
      }
      return c_.Error(4, "version", what);
    }
    f_.version_ = version;

    uint64_t at = c_.pos();
    MOESTREAM_ASSIGN_OR_RETURN(uint64_t n_tensors, c_.Pod<uint64_t>("tensor_count"));
    MOESTREAM_ASSIGN_OR_RETURN(uint64_t n_kv, c_.Pod<uint64_t>("metadata_kv_count"));
    if (n_tensors > c_.remaining() / kMinTensorInfoBytes) {
      return c_.Error(at, "tensor_count",
                      absl::StrCat(n_tensors, " tensor infos cannot fit in the ", c_.remaining(),
                                   " bytes left"));
    }
    if (n_kv > c_.remaining() / kMinKvBytes) {
      return c_.Error(at + 8, "metadata_kv_count",
                      absl::StrCat(n_kv, " key-value pairs cannot fit in the ", c_.remaining(),
                                   " bytes left"));
    }

    f_.kvs_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) MOESTREAM_RETURN_IF_ERROR(ReadKv(i));
    MOESTREAM_RETURN_IF_ERROR(ReadAlignment());

    if (n_tensors > c_.remaining() / kMinTensorInfoBytes) {
      return c_.Error(at, "tensor_count",
                      absl::StrCat(n_tensors, " tensor infos cannot fit in the ", c_.remaining(),
                                   " bytes left after the metadata"));
    }
    f_.tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) MOESTREAM_RETURN_IF_ERROR(ReadTensorInfo(i));

    f_.header_bytes_ = c_.pos();
    uint64_t a = f_.alignment_;
    f_.data_offset_ = (f_.header_bytes_ + a - 1) / a * a;
    return ValidateLayout();
  }

 private:
  absl::Status ReadKv(uint64_t i) {
    uint64_t at = c_.pos();
    std::string field = absl::StrCat("kv[", i, "] key");
    MOESTREAM_ASSIGN_OR_RETURN(std::string key, c_.String(field));
    if (key.empty()) return c_.Error(at, field, "expected a non-empty key");
    field = absl::StrCat("kv[", i, "] '", key, "'");
    if (f_.kv_index_.contains(key)) return c_.Error(at, field, "duplicate key");
    if (key == "general.alignment") alignment_at_ = c_.pos();
    MOESTREAM_ASSIGN_OR_RETURN(GgufType type, ReadType(field + " type"));
    MOESTREAM_ASSIGN_OR_RETURN(GgufValue v, ReadValue(type, field, 0));
    f_.kv_index_.emplace(key, f_.kvs_.size());
    f_.kvs_.push_back(GgufKv{std::move(key), std::move(v)});
    return absl::OkStatus();
  }

  absl::StatusOr<GgufType> ReadType(const std::string& field) {
    uint64_t at = c_.pos();
    MOESTREAM_ASSIGN_OR_RETURN(uint32_t t, c_.Pod<uint32_t>(field));
    if (t > static_cast<uint32_t>(GgufType::kFloat64)) {
      return c_.Error(at, field,
                      absl::StrCat("unknown value type ", t, " (expected 0..12)"));
    }
    return static_cast<GgufType>(t);
  }

  absl::StatusOr<GgufValue> ReadValue(GgufType type, const std::string& field, int depth) {
    switch (type) {
      case GgufType::kUint8: return Unsigned<uint8_t>(type, field);
      case GgufType::kUint16: return Unsigned<uint16_t>(type, field);
      case GgufType::kUint32: return Unsigned<uint32_t>(type, field);
      case GgufType::kUint64: return Unsigned<uint64_t>(type, field);
      case GgufType::kInt8: return Signed<int8_t>(type, field);
      case GgufType::kInt16: return Signed<int16_t>(type, field);
      case GgufType::kInt32: return Signed<int32_t>(type, field);
      case GgufType::kInt64: return Signed<int64_t>(type, field);
      case GgufType::kFloat32: {
        MOESTREAM_ASSIGN_OR_RETURN(float v, c_.Pod<float>(field));
        return GgufValue::Float(type, v);
      }
      case GgufType::kFloat64: {
        MOESTREAM_ASSIGN_OR_RETURN(double v, c_.Pod<double>(field));
        return GgufValue::Float(type, v);
      }
      case GgufType::kBool: {
        uint64_t at = c_.pos();
        MOESTREAM_ASSIGN_OR_RETURN(uint8_t v, c_.Pod<uint8_t>(field));
        if (v > 1) return c_.Error(at, field, absl::StrCat("expected bool 0 or 1, got ", v));
        return GgufValue::Bool(v != 0);
      }
      case GgufType::kString: {
        MOESTREAM_ASSIGN_OR_RETURN(std::string s, c_.String(field));
        return GgufValue::String(std::move(s));
      }
      case GgufType::kArray: return ReadArray(field, depth);
    }
    return c_.Error(c_.pos(), field, "unknown value type");
  }

  template <typename T>
  absl::StatusOr<GgufValue> Unsigned(GgufType type, const std::string& field) {
    MOESTREAM_ASSIGN_OR_RETURN(T v, c_.Pod<T>(field));
    return GgufValue::Uint(type, v);
  }
  template <typename T>
  absl::StatusOr<GgufValue> Signed(GgufType type, const std::string& field) {
    MOESTREAM_ASSIGN_OR_RETURN(T v, c_.Pod<T>(field));
    return GgufValue::Int(type, v);
  }

  absl::StatusOr<GgufValue> ReadArray(const std::string& field, int depth) {
    uint64_t at = c_.pos();
    if (depth >= kMaxArrayNesting) {
      return c_.Error(at, field,
                      absl::StrCat("arrays nested deeper than ", kMaxArrayNesting, " levels"));
    }
    MOESTREAM_ASSIGN_OR_RETURN(GgufType et, ReadType(field + " array type"));
    uint64_t count_at = c_.pos();
    MOESTREAM_ASSIGN_OR_RETURN(uint64_t n, c_.Pod<uint64_t>(field + " array length"));
    if (n > c_.remaining() / MinElementBytes(et)) {
      return c_.Error(count_at, field + " array length",
                      absl::StrCat(n, " elements of type ", Av(GgufTypeName(et)),
                                   " cannot fit in the ", c_.remaining(), " bytes left"));
    }
    std::vector<GgufValue> items;
    items.reserve(n);
    // Element errors name the key and their own offset; building a per-element
    // field name would dominate the parse time of 150k-token vocabularies.
    for (uint64_t i = 0; i < n; ++i) {
      MOESTREAM_ASSIGN_OR_RETURN(GgufValue v, ReadValue(et, field, depth + 1));
      items.push_back(std::move(v));
    }
    return GgufValue::Array(et, std::move(items));
  }

  absl::Status ReadAlignment() {
    const GgufValue* v = f_.Find("general.alignment");
    if (v == nullptr) return absl::OkStatus();
    std::string field = "kv 'general.alignment'";
    absl::StatusOr<uint64_t> a = v->AsUint();
    if (!v->is_integer() || !a.ok()) {
      return c_.Error(alignment_at_, field,
                      absl::StrCat("expected an unsigned integer, got ", v->DebugString()));
    }
    if (*a == 0 || (*a & (*a - 1)) != 0 || *a > (uint64_t{1} << 30)) {
      return c_.Error(alignment_at_, field,
                      absl::StrCat("expected a power of two, got ", *a));
    }
    f_.alignment_ = static_cast<uint32_t>(*a);
    return absl::OkStatus();
  }

  absl::Status ReadTensorInfo(uint64_t i) {
    uint64_t at = c_.pos();
    std::string field = absl::StrCat("tensor[", i, "] name");
    MOESTREAM_ASSIGN_OR_RETURN(std::string name, c_.String(field));
    if (name.empty()) return c_.Error(at, field, "expected a non-empty name");
    field = absl::StrCat("tensor '", name, "'");
    if (f_.tensor_index_.contains(name)) return c_.Error(at, field, "duplicate tensor name");

    GgufTensorInfo t;
    uint64_t dims_at = c_.pos();
    MOESTREAM_ASSIGN_OR_RETURN(t.n_dims, c_.Pod<uint32_t>(field + ": n_dims"));
    if (t.n_dims < 1 || t.n_dims > 4) {
      return c_.Error(dims_at, field + ": n_dims", absl::StrCat("expected 1..4, got ", t.n_dims));
    }
    uint64_t elems = 1;
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      uint64_t ne_at = c_.pos();
      std::string ne_field = absl::StrCat(field, ": ne[", d, "]");
      MOESTREAM_ASSIGN_OR_RETURN(uint64_t ne, c_.Pod<uint64_t>(ne_field));
      if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return c_.Error(ne_at, ne_field,
                        absl::StrCat("expected a dimension in 1..2^63-1, got ", ne));
      }
      if (MulOverflows(elems, ne, &elems) ||
          elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return c_.Error(ne_at, ne_field, "element count overflows int64");
      }
      t.ne[d] = static_cast<int64_t>(ne);
    }
    uint64_t type_at = c_.pos();
    MOESTREAM_ASSIGN_OR_RETURN(uint32_t type_id, c_.Pod<uint32_t>(field + ": type"));
    const GgmlTypeTraits* tr = GgmlTypeTraitsOf(type_id);
    if (tr == nullptr) {
      return c_.Error(type_at, field + ": type", absl::StrCat("unknown ggml type id ", type_id));
    }
    t.type = tr->type;
    if (uint64_t(t.ne[0]) % tr->block_elems != 0) {
      return c_.Error(type_at, field + ": type",
                      absl::StrCat("ne[0] = ", t.ne[0], " is not a multiple of the ",
                                   Av(tr->name), " block size ", tr->block_elems));
    }
    uint64_t bytes = uint64_t(t.ne[0]) / tr->block_elems;
    for (uint32_t d = 0; d < 4; ++d) {
      if (MulOverflows(bytes, d == 0 ? tr->block_bytes : uint64_t(t.ne[d]), &bytes)) {
        return c_.Error(type_at, field + ": type", "byte size overflows 64 bits");
      }
    }
    t.size_bytes = bytes;
    uint64_t off_at = c_.pos();
    MOESTREAM_ASSIGN_OR_RETURN(t.offset, c_.Pod<uint64_t>(field + ": offset"));
    offset_pos_.push_back(off_at);
    t.name = std::move(name);
    f_.tensor_index_.emplace(t.name, f_.tensors_.size());
    f_.tensors_.push_back(std::move(t));
    return absl::OkStatus();
  }

  // Offsets: aligned, in order, non-overlapping, inside the file.
  absl::Status ValidateLayout() {
    uint64_t prev_end = 0;
    const GgufTensorInfo* prev = nullptr;
    const GgufValue* marker = f_.Find(kHeaderOnlyKey);
    const bool header_only = marker != nullptr && marker->AsBool().value_or(false);
    for (size_t i = 0; i < f_.tensors_.size(); ++i) {
      GgufTensorInfo& t = f_.tensors_[i];
      uint64_t at = offset_pos_[i];
      std::string field = absl::StrCat("tensor '", t.name, "': offset");
      if (t.offset % f_.alignment_ != 0) {
        return c_.Error(at, field,
                        absl::StrCat(t.offset, " is not a multiple of the alignment ",
                                     f_.alignment_));
      }
      if (t.offset < prev_end) {
        return c_.Error(at, field,
                        absl::StrCat(t.offset, " overlaps tensor '", prev->name,
                                     "' ending at ", prev_end, " (offsets must be in order)"));
      }
      uint64_t end;
      const bool overflow = __builtin_add_overflow(t.offset, t.size_bytes, &end) ||
                            __builtin_add_overflow(end, f_.data_offset_, &t.file_offset);
      if (!overflow && t.file_offset > f_.file_size_ && header_only) {
        f_.has_data_ = false;  // a header-only file: the table says where data would be
      } else if (overflow || t.file_offset > f_.file_size_) {
        return c_.Error(at, field,
                        absl::StrCat("data [", t.offset, ", +", t.size_bytes,
                                     ") ends past the end of the file (data section starts at ",
                                     f_.data_offset_, ", file size ", f_.file_size_, ")"));
      }
      t.file_offset = f_.data_offset_ + t.offset;
      prev_end = end;
      prev = &t;
    }
    return absl::OkStatus();
  }

  Cursor& c_;
  GgufFile& f_;
  std::vector<uint64_t> offset_pos_;
  uint64_t alignment_at_ = 0;
};

absl::StatusOr<GgufFile> GgufFile::Parse(std::span<const uint8_t> bytes, std::string name,
                                         uint64_t file_size) {
  GgufFile f;
  f.path_ = std::move(name);
  f.file_size_ = file_size != 0 ? file_size : bytes.size();
  // Bytes past the stated file size do not exist.
  if (bytes.size() > f.file_size_) bytes = bytes.first(f.file_size_);
  Cursor c(f.path_, bytes);
  GgufParser p(c, f);
  MOESTREAM_RETURN_IF_ERROR(p.Run());
  return f;
}

absl::Status GgufFile::CheckHasData() const {
  if (has_data_) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      path_, ": a header-only GGUF (metadata and tensor table, no tensor data; written by "
             "moestream gen --header-only): plan and inspect read it, running it needs the weights"));
}

absl::StatusOr<GgufFile> GgufFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno, path, "cannot open");
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  GgufFile f;
  f.path_ = path;
  f.file_size_ = static_cast<uint64_t>(st.st_size);
  Cursor c(f.path_, fd, f.file_size_);
  GgufParser p(c, f);
  absl::Status s = p.Run();
  ::close(fd);
  if (!s.ok()) return s;
  return f;
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = kv_index_.find(Av(key));
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

namespace {

absl::Status KeyError(const std::string& path, std::string_view key, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(path, ": key '", Av(key), "': ", s.message()));
}

}  // namespace

#define MOESTREAM_GGUF_GETTER(Ret, Name, As)                                        \
  absl::StatusOr<Ret> GgufFile::Name(std::string_view key) const {                  \
    const GgufValue* v = Find(key);                                                 \
    if (v == nullptr) {                                                             \
      return absl::NotFoundError(absl::StrCat(path_, ": key '", Av(key), "' not found")); \
    }                                                                               \
    auto r = v->As();                                                               \
    if (!r.ok()) return KeyError(path_, key, r.status());                           \
    return Ret(*r);                                                                 \
  }

MOESTREAM_GGUF_GETTER(uint64_t, GetUint, AsUint)
MOESTREAM_GGUF_GETTER(int64_t, GetInt, AsInt)
MOESTREAM_GGUF_GETTER(double, GetFloat, AsFloat)
MOESTREAM_GGUF_GETTER(bool, GetBool, AsBool)
MOESTREAM_GGUF_GETTER(std::string, GetString, AsString)
#undef MOESTREAM_GGUF_GETTER

namespace {

// Checks that `v` is an array and converts each element with `conv`.
template <typename T, typename Conv>
absl::StatusOr<std::vector<T>> ConvertArray(const std::string& path, std::string_view key,
                                            const GgufValue* v, Conv conv) {
  if (v == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": key '", Av(key), "' not found"));
  }
  if (!v->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": key '", Av(key), "': expected an array, got ",
                                                   Av(GgufTypeName(v->type()))));
  }
  std::vector<T> out;
  out.reserve(v->items().size());
  for (size_t i = 0; i < v->items().size(); ++i) {
    auto r = conv(v->items()[i]);
    if (!r.ok()) {
      return absl::Status(r.status().code(), absl::StrCat(path, ": key '", Av(key), "' element ", i,
                                                          ": ", r.status().message()));
    }
    out.push_back(T(*r));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  return ConvertArray<std::string>(path_, key, Find(key),
                                   [](const GgufValue& e) { return e.AsString(); });
}

absl::StatusOr<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  return ConvertArray<float>(path_, key, Find(key), [](const GgufValue& e) { return e.AsFloat(); });
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  return ConvertArray<int64_t>(path_, key, Find(key), [](const GgufValue& e) { return e.AsInt(); });
}

absl::StatusOr<uint64_t> GgufFile::GetUintOr(std::string_view key, uint64_t def) const {
  return Find(key) == nullptr ? absl::StatusOr<uint64_t>(def) : GetUint(key);
}
absl::StatusOr<double> GgufFile::GetFloatOr(std::string_view key, double def) const {
  return Find(key) == nullptr ? absl::StatusOr<double>(def) : GetFloat(key);
}
absl::StatusOr<bool> GgufFile::GetBoolOr(std::string_view key, bool def) const {
  return Find(key) == nullptr ? absl::StatusOr<bool>(def) : GetBool(key);
}
absl::StatusOr<std::string> GgufFile::GetStringOr(std::string_view key, std::string def) const {
  return Find(key) == nullptr ? absl::StatusOr<std::string>(std::move(def)) : GetString(key);
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(Av(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<ByteRange> GgufFile::ExpertRange(int layer, ExpertMatrix m, int expert) const {
  if (layer < 0 || expert < 0) {
    return absl::OutOfRangeError(absl::StrCat(path_, ": layer ", layer, " expert ", expert,
                                              ": expected non-negative indices"));
  }
  MOESTREAM_ASSIGN_OR_RETURN(ExpertTensors t, FindExpertTensors(*this, layer, m));
  const std::string_view mat = ExpertMatrixName(m);
  if (t.n_experts == 0) {
    return absl::NotFoundError(absl::StrCat(path_, ": no expert tensor 'blk.", layer, ".ffn_",
                                            Av(mat), "_exps.weight' or 'blk.", layer, ".ffn_",
                                            Av(mat), ".", expert, ".weight'"));
  }
  if (expert >= t.n_experts) {
    return absl::OutOfRangeError(absl::StrCat(path_, ": layer ", layer, " ", Av(mat), ": expert ",
                                              expert, " out of range [0, ", t.n_experts, ")"));
  }
  return t.Range(expert);
}

}  // namespace moestream::io
