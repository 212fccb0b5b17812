// GGUF v3 reader and writer.
//
// The reader parses only the header (metadata, tensor infos) and validates it
// against the file size; tensor data is never touched, so a 400 GB model's
// header parses in milliseconds. Every failure is an absl::Status naming the
// file, the byte offset and the field ("m.gguf: offset 1234: tensor
// 'blk.0.attn_q.weight': n_dims 7 > 4"), code kDataLoss for a corrupt or
// truncated file, kNotFound / kPermissionDenied for an unreadable one.
//
//   MOESTREAM_ASSIGN_OR_RETURN(GgufFile f, GgufFile::Open("m.gguf"));
//   MOESTREAM_ASSIGN_OR_RETURN(std::string arch, f.GetString("general.architecture"));
//   const GgufTensorInfo* t = f.FindTensor("blk.0.ffn_up_exps.weight");
//   MOESTREAM_ASSIGN_OR_RETURN(ByteRange r, f.ExpertRange(0, ExpertMatrix::kUp, 5));
//
// The writer lays tensors out in the order they were added, each offset
// padded to the alignment, and writes through a temporary file renamed into
// place only when complete.
//
//   GgufWriter w;
//   w.SetString("general.architecture", "qwen3moe");
//   w.AddTensor("token_embd.weight", GgmlType::kF32, {hidden, vocab}, fill_fn);
//   MOESTREAM_RETURN_IF_ERROR(w.Write("m.gguf", progress_fn));
#ifndef MOESTREAM_IO_GGUF_H_
#define MOESTREAM_IO_GGUF_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/ggml_type.h"

namespace moestream::io {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint32_t kGgufDefaultAlignment = 32;

// The 13 metadata value types of GGUF v3, numbered as the format does.
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

std::string_view GgufTypeName(GgufType t);

// One metadata value. Scalars keep their declared type; integer and float
// accessors convert between widths where the value is representable.
// Arrays hold their element type and elements (which may themselves be
// arrays: GGUF allows nesting).
class GgufValue {
 public:
  GgufValue() = default;
  static GgufValue Uint(GgufType t, uint64_t v);
  static GgufValue Int(GgufType t, int64_t v);
  static GgufValue Float(GgufType t, double v);
  static GgufValue Bool(bool v);
  static GgufValue String(std::string v);
  static GgufValue Array(GgufType element_type, std::vector<GgufValue> items);

  GgufType type() const { return type_; }
  bool is_integer() const;
  bool is_float() const;
  bool is_string() const { return type_ == GgufType::kString; }
  bool is_array() const { return type_ == GgufType::kArray; }

  // Conversions; fail (kInvalidArgument, naming the types) on a type mismatch
  // or a value that does not fit.
  absl::StatusOr<uint64_t> AsUint() const;
  absl::StatusOr<int64_t> AsInt() const;
  absl::StatusOr<double> AsFloat() const;
  absl::StatusOr<bool> AsBool() const;
  absl::StatusOr<std::string_view> AsString() const;

  // Raw access (valid for the matching type only).
  uint64_t raw_uint() const { return u_; }
  int64_t raw_int() const { return i_; }
  double raw_float() const { return f_; }
  const std::string& raw_string() const { return s_; }
  GgufType array_type() const { return array_type_; }
  const std::vector<GgufValue>& items() const { return items_; }

  // Human-readable rendering; arrays longer than `max_items` are elided.
  std::string DebugString(size_t max_items = 8) const;

  friend bool operator==(const GgufValue& a, const GgufValue& b);

 private:
  GgufType type_ = GgufType::kUint8;
  uint64_t u_ = 0;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  GgufType array_type_ = GgufType::kUint8;
  std::vector<GgufValue> items_;
};

struct GgufKv {
  std::string key;
  GgufValue value;
};

struct ByteRange {
  uint64_t offset = 0;  // absolute offset in the file
  uint64_t size = 0;    // bytes
  uint64_t end() const { return offset + size; }
};

struct GgufTensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  // GGML order: ne[0] is the contiguous (fastest) dimension; unused dims = 1.
  int64_t ne[4] = {1, 1, 1, 1};
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;        // relative to the data section, as stored
  uint64_t size_bytes = 0;    // computed from type and shape
  uint64_t file_offset = 0;   // absolute: data_offset + offset

  uint64_t elements() const { return uint64_t(ne[0]) * ne[1] * ne[2] * ne[3]; }
  ByteRange range() const { return {file_offset, size_bytes}; }
  std::string ShapeString() const;  // "[4096, 14336, 8]"
};

// A GGUF written without its tensor data (`moestream gen --header-only`):
// the metadata and the tensor table of a real model, for planning and tests.
// Readers open it (GgufFile::has_data() false) and refuse to read weights.
inline constexpr std::string_view kHeaderOnlyKey = "moestream.header_only";

// Which matrix of a routed expert.
enum class ExpertMatrix { kGate = 0, kUp = 1, kDown = 2 };
std::string_view ExpertMatrixName(ExpertMatrix m);  // "gate", "up", "down"

class GgufFile {
 public:
  // Reads and validates the header of `path`.
  static absl::StatusOr<GgufFile> Open(const std::string& path);
  // Parses an in-memory image (whole file or at least its header; `file_size`
  // is the size the tensors are checked against, the buffer's size if 0).
  // `name` is used in error messages.
  static absl::StatusOr<GgufFile> Parse(std::span<const uint8_t> bytes,
                                        std::string name, uint64_t file_size = 0);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of data section
  uint64_t file_size() const { return file_size_; }
  uint64_t header_bytes() const { return header_bytes_; }  // end of tensor infos
  // False for a header-only file (kHeaderOnlyKey set and no tensor data).
  bool has_data() const { return has_data_; }
  // kFailedPrecondition naming the file when it has no tensor data.
  absl::Status CheckHasData() const;

  const std::vector<GgufKv>& metadata() const { return kvs_; }
  const GgufValue* Find(std::string_view key) const;

  // Typed getters: kNotFound naming the key when absent; kInvalidArgument
  // when the stored type does not convert.
  absl::StatusOr<uint64_t> GetUint(std::string_view key) const;
  absl::StatusOr<int64_t> GetInt(std::string_view key) const;
  absl::StatusOr<double> GetFloat(std::string_view key) const;
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<std::string> GetString(std::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(std::string_view key) const;
  absl::StatusOr<std::vector<float>> GetFloatArray(std::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  // With a default when absent (still an error when present but mistyped).
  absl::StatusOr<uint64_t> GetUintOr(std::string_view key, uint64_t def) const;
  absl::StatusOr<double> GetFloatOr(std::string_view key, double def) const;
  absl::StatusOr<bool> GetBoolOr(std::string_view key, bool def) const;
  absl::StatusOr<std::string> GetStringOr(std::string_view key, std::string def) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;

  // Byte range of expert `expert` of layer `layer`'s `m` matrix: a slice of
  // the stacked tensor `blk.L.ffn_{gate,up,down}_exps.weight` (experts on the
  // slowest dimension) or the whole per-expert tensor
  // `blk.L.ffn_{gate,up,down}.E.weight` (older Mixtral files). kNotFound when
  // the model has neither; kOutOfRange for a bad expert index.
  absl::StatusOr<ByteRange> ExpertRange(int layer, ExpertMatrix m, int expert) const;

 private:
  std::string path_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  uint64_t file_size_ = 0;
  uint64_t header_bytes_ = 0;
  bool has_data_ = true;
  std::vector<GgufKv> kvs_;
  absl::flat_hash_map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;

  friend class GgufParser;
};

// Progress of a long write: bytes done out of total.
using ProgressFn = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;

class GgufWriter {
 public:
  // Fills exactly `out.size()` bytes of one tensor's data.
  using FillFn = std::function<absl::Status(std::span<uint8_t> out)>;

  explicit GgufWriter(uint32_t alignment = kGgufDefaultAlignment);

  void Set(std::string key, GgufValue value);  // replaces an existing key
  void SetUint32(std::string key, uint32_t v);
  void SetInt32(std::string key, int32_t v);
  void SetUint64(std::string key, uint64_t v);
  void SetFloat32(std::string key, float v);
  void SetBool(std::string key, bool v);
  void SetString(std::string key, std::string v);
  void SetStringArray(std::string key, std::vector<std::string> v);
  void SetFloat32Array(std::string key, const std::vector<float>& v);
  void SetInt32Array(std::string key, const std::vector<int32_t>& v);

  // `ne` in GGML order (ne[0] contiguous), 1..4 dims. The fill function runs
  // during Write(), tensors in the order added.
  absl::Status AddTensor(std::string name, GgmlType type, std::vector<int64_t> ne,
                         FillFn fill);

  // Writes `path` through an AtomicFile (base/atomic_file.h: a temporary,
  // fsync, rename); on any error or interruption the temporary is removed
  // and `path` is untouched.
  absl::Status Write(const std::string& path, const ProgressFn& progress = nullptr);

  uint64_t data_bytes() const;  // total padded tensor data

  // Writes no tensor data: the file is extended to its full size so every
  // tensor reads as zeros (a sparse file; fill functions may be null and
  // are not called). For models of realistic shape in tests and
  // benchmarks of what never reads the weights. Call before AddTensor.
  void SetSparseData() { sparse_data_ = true; }
  // Writes the metadata (plus kHeaderOnlyKey) and the tensor table only: the
  // file ends where the data section would start. Fill functions may be null.
  void SetHeaderOnly() { header_only_ = true; }

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    uint64_t size_bytes;
    uint64_t offset;
    FillFn fill;
  };
  uint32_t alignment_;
  bool sparse_data_ = false;
  bool header_only_ = false;
  std::vector<GgufKv> kvs_;
  std::vector<PendingTensor> tensors_;
  uint64_t next_offset_ = 0;
};

}  // namespace moestream::io

#endif  // MOESTREAM_IO_GGUF_H_
