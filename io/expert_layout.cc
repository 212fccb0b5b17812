#include "io/expert_layout.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace moestream::io {
namespace {

constexpr ExpertMatrix kMatrices[3] = {ExpertMatrix::kGate, ExpertMatrix::kUp, ExpertMatrix::kDown};

// Highest L among tensors named "blk.L.*", plus one.
int CountBlocks(const GgufFile& f) {
  int n = 0;
  for (const GgufTensorInfo& t : f.tensors()) {
    if (!absl::StartsWith(t.name, "blk.")) continue;
    size_t dot = t.name.find('.', 4);
    if (dot == std::string::npos) continue;
    int layer = 0;
    if (absl::SimpleAtoi(absl::string_view(t.name).substr(4, dot - 4), &layer) && layer >= 0) {
      n = std::max(n, layer + 1);
    }
  }
  return n;
}

}  // namespace

ByteRange ExpertTensors::Range(int e) const {
  if (stacked != nullptr) {
    const uint64_t per = stacked->size_bytes / uint64_t(n_experts);
    return ByteRange{stacked->file_offset + uint64_t(e) * per, per};
  }
  return per_expert[size_t(e)]->range();
}

absl::StatusOr<ExpertTensors> FindExpertTensors(const GgufFile& f, int layer, ExpertMatrix m) {
  const std::string_view mat = ExpertMatrixName(m);
  ExpertTensors out;
  if (const GgufTensorInfo* t =
          f.FindTensor(absl::StrCat("blk.", layer, ".ffn_", Av(mat), "_exps.weight"))) {
    if (t->n_dims != 3 || t->ne[2] <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          f.path(), ": tensor '", t->name, "': expected 3 dims [in, out, experts], got ",
          t->ShapeString()));
    }
    out.stacked = t;
    out.type = t->type;
    out.ne0 = t->ne[0];
    out.ne1 = t->ne[1];
    out.n_experts = int(t->ne[2]);
    return out;
  }
  for (int e = 0;; ++e) {
    const GgufTensorInfo* t =
        f.FindTensor(absl::StrCat("blk.", layer, ".ffn_", Av(mat), ".", e, ".weight"));
    if (t == nullptr) break;
    if (t->n_dims != 2) {
      return absl::InvalidArgumentError(absl::StrCat(f.path(), ": tensor '", t->name,
                                                     "': expected 2 dims, got ", t->ShapeString()));
    }
    if (e == 0) {
      out.type = t->type;
      out.ne0 = t->ne[0];
      out.ne1 = t->ne[1];
    } else if (t->type != out.type || t->ne[0] != out.ne0 || t->ne[1] != out.ne1) {
      return absl::InvalidArgumentError(absl::StrCat(
          f.path(), ": tensor '", t->name, "': type/shape differs from expert 0 of layer ", layer));
    }
    out.per_expert.push_back(t);
  }
  out.n_experts = int(out.per_expert.size());
  return out;
}

uint64_t ExpertLayout::AssignBlobOffsets(std::array<ExpertMatrixInfo, 3>& m) {
  uint64_t off = 0;
  for (ExpertMatrixInfo& mi : m) {
    off = AlignUp(off, kBlobMatrixAlignment);
    mi.blob_offset = off;
    off += mi.bytes;
  }
  return AlignUp(std::max<uint64_t>(off, 1), kBlobAlignment);
}

absl::StatusOr<ExpertLayout> ExpertLayout::FromGguf(const GgufFile& f) {
  int n_blocks = CountBlocks(f);
  std::vector<ExpertInfo> entries;
  for (int layer = 0; layer < n_blocks; ++layer) {
    ExpertTensors lm[3];
    for (int i = 0; i < 3; ++i) {
      MOESTREAM_ASSIGN_OR_RETURN(lm[i], FindExpertTensors(f, layer, kMatrices[i]));
    }
    if (lm[0].n_experts == 0 && lm[1].n_experts == 0 && lm[2].n_experts == 0) continue;
    if (lm[0].n_experts != lm[1].n_experts || lm[0].n_experts != lm[2].n_experts) {
      return absl::InvalidArgumentError(absl::StrCat(
          f.path(), ": layer ", layer, ": expert counts differ: gate ", lm[0].n_experts, ", up ",
          lm[1].n_experts, ", down ", lm[2].n_experts));
    }
    for (int e = 0; e < lm[0].n_experts; ++e) {
      ExpertInfo info;
      info.layer = layer;
      info.expert = e;
      for (int i = 0; i < 3; ++i) {
        ExpertMatrixInfo& mi = info.matrices[i];
        mi.type = lm[i].type;
        mi.ne0 = lm[i].ne0;
        mi.ne1 = lm[i].ne1;
        mi.bytes = RowBytes(mi.type, uint64_t(mi.ne0)) * uint64_t(mi.ne1);
      }
      info.blob_bytes = AssignBlobOffsets(info.matrices);
      info.n_segments = 3;
      for (int i = 0; i < 3; ++i) {
        const ByteRange r = lm[i].Range(e);
        if (r.size != info.matrices[i].bytes) {
          return absl::InvalidArgumentError(absl::StrCat(
              f.path(), ": layer ", layer, " expert ", e, " ", Av(ExpertMatrixName(kMatrices[i])),
              ": range of ", r.size, " bytes, expected ", info.matrices[i].bytes, " for its shape"));
        }
        info.segments[i] = {r.offset, r.size, info.matrices[i].blob_offset};
      }
      entries.push_back(info);
    }
  }
  if (entries.empty()) {
    return absl::NotFoundError(
        absl::StrCat(f.path(), ": no routed experts (no blk.L.ffn_{gate,up,down}_exps tensors)"));
  }
  ExpertLayout layout;
  layout.path_ = f.path();
  layout.file_size_ = f.file_size();
  layout.has_data_ = f.has_data();
  layout.experts_ = std::move(entries);
  MOESTREAM_RETURN_IF_ERROR(layout.Index());
  return layout;
}

absl::StatusOr<ExpertLayout> ExpertLayout::FromEntries(std::string path, uint64_t file_size,
                                                       std::vector<ExpertInfo> entries) {
  ExpertLayout layout;
  layout.path_ = std::move(path);
  layout.file_size_ = file_size;
  layout.experts_ = std::move(entries);
  MOESTREAM_RETURN_IF_ERROR(layout.Index());
  return layout;
}

absl::Status ExpertLayout::Index() {
  int n_layers = 0;
  for (size_t i = 0; i < experts_.size(); ++i) {
    const ExpertInfo& e = experts_[i];
    bool first_of_layer = i == 0 || experts_[i - 1].layer != e.layer;
    if (e.layer < 0 || e.layer > kMaxLayoutLayer) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": expert index entry ", i, ": layer ",
                                                     e.layer, " outside 0..", kMaxLayoutLayer));
    }
    bool ordered = e.layer >= 0 && e.expert >= 0 &&
                   (first_of_layer ? (e.expert == 0 && (i == 0 || experts_[i - 1].layer < e.layer))
                                   : e.expert == experts_[i - 1].expert + 1);
    if (!ordered) {
      return absl::InvalidArgumentError(absl::StrCat(
          path_, ": expert index entry ", i, " (layer ", e.layer, " expert ", e.expert,
          "): expected entries sorted by layer, experts 0..n-1"));
    }
    if (e.n_segments < 1 || e.n_segments > 3 || e.blob_bytes % kBlobAlignment != 0) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": layer ", e.layer, " expert ",
                                                     e.expert, ": malformed layout entry"));
    }
    for (const ExpertSegment& s : e.segment_span()) {
      // A header-only file's segments lie past its end by design.
      if (!RangeInside(s.blob_offset, s.bytes, e.blob_bytes) ||
          (has_data_ && !RangeInside(s.file_offset, s.bytes, file_size_))) {
        return absl::InvalidArgumentError(absl::StrCat(
            path_, ": layer ", e.layer, " expert ", e.expert, ": segment at file offset ",
            s.file_offset, " (", s.bytes, " bytes) lies outside the file (", file_size_,
            " bytes) or the blob (", e.blob_bytes, " bytes)"));
      }
    }
    n_layers = std::max(n_layers, e.layer + 1);
  }
  layer_first_.assign(size_t(n_layers) + 1, 0);
  // layer_first_[L] = index of the first entry with layer >= L.
  size_t idx = 0;
  for (int l = 0; l <= n_layers; ++l) {
    while (idx < experts_.size() && experts_[idx].layer < l) ++idx;
    layer_first_[size_t(l)] = idx;
  }
  max_blob_bytes_ = 0;
  total_blob_bytes_ = 0;
  for (const ExpertInfo& e : experts_) {
    max_blob_bytes_ = std::max(max_blob_bytes_, e.blob_bytes);
    total_blob_bytes_ += e.blob_bytes;
  }
  return absl::OkStatus();
}

int ExpertLayout::n_experts(int layer) const {
  if (layer < 0 || layer >= n_layers()) return 0;
  return int(layer_first_[size_t(layer) + 1] - layer_first_[size_t(layer)]);
}

std::vector<int> ExpertLayout::moe_layers() const {
  std::vector<int> out;
  for (int l = 0; l < n_layers(); ++l) {
    if (n_experts(l) > 0) out.push_back(l);
  }
  return out;
}

long ExpertLayout::IndexOf(int layer, int expert) const {
  if (expert < 0 || expert >= n_experts(layer)) return -1;
  return long(layer_first_[size_t(layer)]) + expert;
}

const ExpertInfo* ExpertLayout::Find(int layer, int expert) const {
  long i = IndexOf(layer, expert);
  return i < 0 ? nullptr : &experts_[size_t(i)];
}

absl::StatusOr<const ExpertInfo*> ExpertLayout::Get(int layer, int expert) const {
  if (const ExpertInfo* e = Find(layer, expert)) return e;
  return absl::OutOfRangeError(absl::StrCat(path_, ": no routed expert ", expert, " in layer ",
                                            layer, " (it has ", n_experts(layer), " experts, ",
                                            n_layers(), " layers)"));
}

}  // namespace moestream::io
