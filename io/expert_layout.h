// Where every routed expert's bytes are, and how they are laid out once read.
//
// An expert (layer, expert) has three matrices, gate, up and down. In a GGUF
// they are three slices of the stacked tensors `blk.L.ffn_{gate,up,down}_exps`
// (or three per-expert tensors in older Mixtral files): three separate byte
// ranges of the file. In a packed store (io/expert_store.h) they are one
// contiguous 4 KiB-aligned blob. Either way, a reader delivers the expert into
// memory as one *blob* with the same in-memory layout:
//
//   blob:  [gate][pad][up][pad][down][pad to 4 KiB]
//           ^0        ^matrices[kUp].blob_offset  (each matrix 256-byte aligned)
//
// so the cache sizes a slot with max_blob_bytes() and finds a matrix at
// blob + matrices[m].blob_offset, whatever the source.
//
//   MOESTREAM_ASSIGN_OR_RETURN(GgufFile f, GgufFile::Open("m.gguf"));
//   MOESTREAM_ASSIGN_OR_RETURN(ExpertLayout layout, ExpertLayout::FromGguf(f));
//   const ExpertInfo* e = layout.Find(3, 17);
//   // e->segments[i]: file_offset/bytes -> blob_offset; e->matrices[kUp]: type, shape
#ifndef MOESTREAM_IO_EXPERT_LAYOUT_H_
#define MOESTREAM_IO_EXPERT_LAYOUT_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/ggml_type.h"
#include "io/gguf.h"

namespace moestream::io {

// Alignment of each matrix inside a blob (bytes): enough for any SIMD load and
// for the device's copy engine.
inline constexpr uint64_t kBlobMatrixAlignment = 256;
// Blob sizes are rounded up to this (bytes): the O_DIRECT sector / page size,
// so a 4 KiB-aligned slot can receive a store blob without staging.
inline constexpr uint64_t kBlobAlignment = 4096;

// Largest layer index an expert entry may name: the layer table is sized by
// it, so a corrupt index cannot ask for gigabytes.
inline constexpr int kMaxLayoutLayer = 65535;

// Whether [offset, offset + bytes) lies inside [0, limit), without the sum
// overflowing (offsets come from files and may be anything).
inline constexpr bool RangeInside(uint64_t offset, uint64_t bytes, uint64_t limit) {
  return offset <= limit && bytes <= limit - offset;
}

inline constexpr uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
inline constexpr uint64_t AlignDown(uint64_t v, uint64_t a) { return v / a * a; }

// One matrix of an expert, as it sits in the blob.
struct ExpertMatrixInfo {
  GgmlType type = GgmlType::kF32;
  int64_t ne0 = 0;           // elements per row (contiguous dimension)
  int64_t ne1 = 0;           // rows
  uint64_t bytes = 0;        // ne1 * RowBytes(type, ne0)
  uint64_t blob_offset = 0;  // offset of its first byte in the blob
};

// A contiguous run of the source file that lands at `blob_offset` in the blob.
struct ExpertSegment {
  uint64_t file_offset = 0;
  uint64_t bytes = 0;
  uint64_t blob_offset = 0;
};

struct ExpertInfo {
  int layer = 0;
  int expert = 0;
  std::array<ExpertMatrixInfo, 3> matrices;  // indexed by ExpertMatrix
  uint64_t blob_bytes = 0;                   // multiple of kBlobAlignment
  // 3 segments from a GGUF (gate, up, down), 1 from a packed store.
  std::array<ExpertSegment, 3> segments;
  int n_segments = 0;
  // XXH64 of the blob's blob_bytes bytes (store only; verified on read).
  std::optional<uint64_t> checksum;

  const ExpertMatrixInfo& matrix(ExpertMatrix m) const { return matrices[static_cast<int>(m)]; }
  std::span<const ExpertSegment> segment_span() const { return {segments.data(), size_t(n_segments)}; }
};

// The GGUF tensors that hold matrix `m` of layer `layer`'s routed experts, in
// either layout llama.cpp writes: one stacked tensor
// `blk.L.ffn_<m>_exps.weight` [in, out, experts] (experts on the slowest
// dimension), or per-expert tensors `blk.L.ffn_<m>.E.weight` [in, out] for
// E = 0, 1, ... (older Mixtral files). The one place that knows both; the
// expert layout, GgufFile::ExpertRange and the model's weight binder ask it.
struct ExpertTensors {
  const GgufTensorInfo* stacked = nullptr;        // the stacked tensor, if that layout
  std::vector<const GgufTensorInfo*> per_expert;  // else the per-expert tensors, by expert
  GgmlType type = GgmlType::kF32;
  int64_t ne0 = 0;     // one expert's matrix: elements per row
  int64_t ne1 = 0;     // and rows
  int n_experts = 0;   // 0 when the layer has no routed experts for `m`

  // Bytes of expert `e` in the file; requires 0 <= e < n_experts.
  ByteRange Range(int e) const;
};

// kInvalidArgument naming the file and the tensor when a stacked tensor is
// not 3-D with at least one expert, a per-expert tensor is not 2-D, or
// per-expert tensors differ from expert 0 in type or shape. A layer with
// neither layout is not an error: n_experts is 0.
absl::StatusOr<ExpertTensors> FindExpertTensors(const GgufFile& f, int layer, ExpertMatrix m);

class ExpertLayout {
 public:
  ExpertLayout() = default;

  // Every routed expert of `f` (layers with blk.L.ffn_*_exps or per-expert
  // tensors; dense layers have none). kNotFound when the model has no routed
  // experts; kInvalidArgument when gate/up/down disagree in shape or count.
  static absl::StatusOr<ExpertLayout> FromGguf(const GgufFile& f);

  // Builds a layout from explicit entries (the packed store's index). Entries
  // must be sorted by (layer, expert), experts 0..n-1 per layer.
  static absl::StatusOr<ExpertLayout> FromEntries(std::string path, uint64_t file_size,
                                                  std::vector<ExpertInfo> entries);

  // Lays out the blob of one expert from its three matrices (fills
  // blob_offset of each and returns blob_bytes). Shared by GGUF and store.
  static uint64_t AssignBlobOffsets(std::array<ExpertMatrixInfo, 3>& m);

  const std::string& path() const { return path_; }   // the file segments refer to
  uint64_t file_size() const { return file_size_; }  // as seen when the layout was built
  // False for a header-only GGUF: the segments say where data would be.
  bool has_data() const { return has_data_; }
  int n_layers() const { return int(layer_first_.size()) - 1; }  // blocks (incl. dense)
  int n_experts(int layer) const;  // 0 for a dense layer or out of range
  std::vector<int> moe_layers() const;

  // nullptr when (layer, expert) is not a routed expert.
  const ExpertInfo* Find(int layer, int expert) const;
  // Position of (layer, expert) in experts(), or -1.
  long IndexOf(int layer, int expert) const;
  // kOutOfRange naming the layer/expert and the valid range.
  absl::StatusOr<const ExpertInfo*> Get(int layer, int expert) const;

  std::span<const ExpertInfo> experts() const { return experts_; }
  size_t size() const { return experts_.size(); }
  uint64_t max_blob_bytes() const { return max_blob_bytes_; }
  uint64_t total_blob_bytes() const { return total_blob_bytes_; }

 private:
  absl::Status Index();

  std::string path_;
  bool has_data_ = true;
  uint64_t file_size_ = 0;
  std::vector<ExpertInfo> experts_;    // sorted by (layer, expert)
  std::vector<size_t> layer_first_;    // experts_ index of layer L's expert 0; size n_layers+1
  uint64_t max_blob_bytes_ = 0;
  uint64_t total_blob_bytes_ = 0;
};

}  // namespace moestream::io

#endif  // MOESTREAM_IO_EXPERT_LAYOUT_H_
