// GGUF v3 writer: the layout llama.cpp's reader accepts (metadata, tensor
// infos, data section padded to the alignment, each tensor's offset the
// running sum of the padded sizes before it), written through an AtomicFile
// (temporary, fsync, rename) so a failed or interrupted write leaves nothing.
//
// Tensor data is produced by the callers' fill functions into one staging
// buffer (64 MiB, or the largest tensor if bigger) that small tensors share,
// and leaves in large write() calls, so multi-GB files write at disk speed.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "io/gguf.h"

namespace moestream::io {

namespace {

constexpr uint64_t kStagingBytes = uint64_t{64} << 20;

uint64_t PadTo(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

template <typename T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void PutString(std::string& out, std::string_view s) {
  Put<uint64_t>(out, s.size());
  out.append(s.data(), s.size());
}

// Serialises `v`'s payload (without its type tag).
void PutValue(std::string& out, const GgufValue& v) {
  switch (v.type()) {
    case GgufType::kUint8: Put<uint8_t>(out, static_cast<uint8_t>(v.raw_uint())); break;
    case GgufType::kUint16: Put<uint16_t>(out, static_cast<uint16_t>(v.raw_uint())); break;
    case GgufType::kUint32: Put<uint32_t>(out, static_cast<uint32_t>(v.raw_uint())); break;
    case GgufType::kUint64: Put<uint64_t>(out, v.raw_uint()); break;
    case GgufType::kInt8: Put<int8_t>(out, static_cast<int8_t>(v.raw_int())); break;
    case GgufType::kInt16: Put<int16_t>(out, static_cast<int16_t>(v.raw_int())); break;
    case GgufType::kInt32: Put<int32_t>(out, static_cast<int32_t>(v.raw_int())); break;
    case GgufType::kInt64: Put<int64_t>(out, v.raw_int()); break;
    case GgufType::kFloat32: Put<float>(out, static_cast<float>(v.raw_float())); break;
    case GgufType::kFloat64: Put<double>(out, v.raw_float()); break;
    case GgufType::kBool: Put<uint8_t>(out, v.raw_uint() ? 1 : 0); break;
    case GgufType::kString: PutString(out, v.raw_string()); break;
    case GgufType::kArray:
      Put<uint32_t>(out, static_cast<uint32_t>(v.array_type()));
      Put<uint64_t>(out, v.items().size());
      for (const GgufValue& e : v.items()) PutValue(out, e);
      break;
  }
}

// True when every element (recursively) has its array's declared type.
bool ArrayTypesConsistent(const GgufValue& v) {
  if (!v.is_array()) return true;
  for (const GgufValue& e : v.items()) {
    if (e.type() != v.array_type() || !ArrayTypesConsistent(e)) return false;
  }
  return true;
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (alignment_ != kGgufDefaultAlignment) SetUint32("general.alignment", alignment_);
}

void GgufWriter::Set(std::string key, GgufValue value) {
  for (GgufKv& kv : kvs_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  kvs_.push_back(GgufKv{std::move(key), std::move(value)});
}

void GgufWriter::SetUint32(std::string key, uint32_t v) {
  Set(std::move(key), GgufValue::Uint(GgufType::kUint32, v));
}
void GgufWriter::SetInt32(std::string key, int32_t v) {
  Set(std::move(key), GgufValue::Int(GgufType::kInt32, v));
}
void GgufWriter::SetUint64(std::string key, uint64_t v) {
  Set(std::move(key), GgufValue::Uint(GgufType::kUint64, v));
}
void GgufWriter::SetFloat32(std::string key, float v) {
  Set(std::move(key), GgufValue::Float(GgufType::kFloat32, v));
}
void GgufWriter::SetBool(std::string key, bool v) { Set(std::move(key), GgufValue::Bool(v)); }
void GgufWriter::SetString(std::string key, std::string v) {
  Set(std::move(key), GgufValue::String(std::move(v)));
}
void GgufWriter::SetStringArray(std::string key, std::vector<std::string> v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (std::string& s : v) items.push_back(GgufValue::String(std::move(s)));
  Set(std::move(key), GgufValue::Array(GgufType::kString, std::move(items)));
}
void GgufWriter::SetFloat32Array(std::string key, const std::vector<float>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (float f : v) items.push_back(GgufValue::Float(GgufType::kFloat32, f));
  Set(std::move(key), GgufValue::Array(GgufType::kFloat32, std::move(items)));
}
void GgufWriter::SetInt32Array(std::string key, const std::vector<int32_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (int32_t i : v) items.push_back(GgufValue::Int(GgufType::kInt32, i));
  Set(std::move(key), GgufValue::Array(GgufType::kInt32, std::move(items)));
}

absl::Status GgufWriter::AddTensor(std::string name, GgmlType type, std::vector<int64_t> ne,
                                   FillFn fill) {
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", Av(what)));
  };
  if (name.empty()) return bad("expected a non-empty name");
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) return bad("duplicate tensor name");
  }
  const GgmlTypeTraits* tr = GgmlTypeTraitsOf(type);
  if (tr == nullptr) {
    return bad(absl::StrCat("unknown ggml type id ", static_cast<uint32_t>(type)));
  }
  if (ne.empty() || ne.size() > 4) {
    return bad(absl::StrCat("expected 1..4 dims, got ", ne.size()));
  }
  uint64_t elems = 1;
  for (int64_t d : ne) {
    if (d <= 0) return bad(absl::StrCat("expected positive dims, got ", d));
    if (__builtin_mul_overflow(elems, uint64_t(d), &elems) ||
        elems > uint64_t(std::numeric_limits<int64_t>::max())) {
      return bad("element count overflows int64");
    }
  }
  if (uint64_t(ne[0]) % tr->block_elems != 0) {
    return bad(absl::StrCat("ne[0] = ", ne[0], " is not a multiple of the ", Av(tr->name),
                            " block size ", tr->block_elems));
  }
  uint64_t size = uint64_t(ne[0]) / tr->block_elems;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (__builtin_mul_overflow(size, d == 0 ? tr->block_bytes : uint64_t(ne[d]), &size)) {
      return bad("byte size overflows 64 bits");
    }
  }
  if (!fill && !sparse_data_ && !header_only_) return bad("expected a fill function");
  tensors_.push_back(
      PendingTensor{std::move(name), type, std::move(ne), size, next_offset_, std::move(fill)});
  next_offset_ += PadTo(size, alignment_);
  return absl::OkStatus();
}

uint64_t GgufWriter::data_bytes() const { return next_offset_; }

absl::Status GgufWriter::Write(const std::string& path, const ProgressFn& progress) {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": alignment ", alignment_, " is not a power of two"));
  }
  for (const GgufKv& kv : kvs_) {
    if (kv.key.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": empty metadata key"));
    if (!ArrayTypesConsistent(kv.value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": key '", kv.key, "': array elements differ from the declared element type"));
    }
    if (kv.key == "general.alignment") {
      absl::StatusOr<uint64_t> a = kv.value.AsUint();
      if (!a.ok() || *a != alignment_) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": key 'general.alignment' = ", kv.value.DebugString(),
                         " disagrees with the writer's alignment ", alignment_));
      }
    }
  }

  if (header_only_) Set(std::string(kHeaderOnlyKey), GgufValue::Bool(true));
  std::string header;
  Put<uint32_t>(header, kGgufMagic);
  Put<uint32_t>(header, 3);
  Put<uint64_t>(header, tensors_.size());
  Put<uint64_t>(header, kvs_.size());
  for (const GgufKv& kv : kvs_) {
    PutString(header, kv.key);
    Put<uint32_t>(header, static_cast<uint32_t>(kv.value.type()));
    PutValue(header, kv.value);
  }
  uint64_t max_tensor = 0;
  for (const PendingTensor& t : tensors_) {
    PutString(header, t.name);
    Put<uint32_t>(header, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) Put<uint64_t>(header, uint64_t(d));
    Put<uint32_t>(header, static_cast<uint32_t>(t.type));
    Put<uint64_t>(header, t.offset);
    max_tensor = std::max(max_tensor, PadTo(t.size_bytes, alignment_));
  }
  header.resize(PadTo(header.size(), alignment_), '\0');

  const uint64_t total = header.size() + next_offset_;
  MOESTREAM_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(path));
  // Room for the whole file before any tensor is produced (a sparse file
  // takes none).
  if (!sparse_data_) MOESTREAM_RETURN_IF_ERROR(file.Reserve(header_only_ ? header.size() : total));
  MOESTREAM_RETURN_IF_ERROR(file.Write(header));
  uint64_t done = header.size();
  if (progress) progress(done, total);

  if (header_only_) {
    if (progress) progress(total, total);
    return file.Commit();
  }
  if (sparse_data_) {
    // Tensor data as a hole: the file reads as zeros past the header.
    if (::ftruncate(file.fd(), off_t(total)) != 0) {
      return absl::DataLossError(
          absl::StrCat(path, ": cannot extend to ", total, " bytes: ", std::strerror(errno)));
    }
    if (progress) progress(total, total);
    return file.Commit();
  }
  if (!tensors_.empty()) {
    const uint64_t cap = std::max(kStagingBytes, max_tensor);
    std::unique_ptr<uint8_t[]> staging(new (std::nothrow) uint8_t[cap]);
    if (staging == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path, ": cannot allocate a ", cap, "-byte staging buffer for its largest tensor"));
    }
    uint64_t used = 0;
    auto flush = [&]() -> absl::Status {
      MOESTREAM_RETURN_IF_ERROR(
          file.Write(std::string_view(reinterpret_cast<const char*>(staging.get()), used)));
      done += used;
      used = 0;
      if (progress) progress(done, total);
      return absl::OkStatus();
    };
    for (const PendingTensor& t : tensors_) {
      const uint64_t padded = PadTo(t.size_bytes, alignment_);
      if (used + padded > cap) MOESTREAM_RETURN_IF_ERROR(flush());
      absl::Status s = t.fill(std::span<uint8_t>(staging.get() + used, t.size_bytes));
      if (!s.ok()) {
        return absl::Status(s.code(),
                            absl::StrCat(path, ": tensor '", t.name, "': ", s.message()));
      }
      std::memset(staging.get() + used + t.size_bytes, 0, padded - t.size_bytes);
      used += padded;
    }
    MOESTREAM_RETURN_IF_ERROR(flush());
  }
  return file.Commit();
}

}  // namespace moestream::io
