#include "trace/trace.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/atomic_file.h"
#include "base/status_macros.h"
#include "trace/csv.h"
#include "trace/field_check.h"

namespace moestream::trace {
namespace {

constexpr char kMagic[8] = {'M', 'S', 'T', 'R', 'A', 'C', 'E', '\0'};

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    buf_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  template <typename T>
  void PutArray(const std::vector<T>& v) {
    buf_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  void PutStr(const std::string& s) {
    Put(uint32_t(s.size()));
    buf_ += s;
  }
  std::string& buf() { return buf_; }

 private:
  std::string buf_;
};

class Reader {
 public:
  Reader(const std::string& data, const std::string& path) : d_(data), path_(path) {}
  template <typename T>
  absl::Status Get(T* v, const char* what) {
    if (pos_ + sizeof(T) > d_.size()) return Truncated(what);
    std::memcpy(v, d_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status GetArray(std::vector<T>* v, uint64_t n, const char* what) {
    if (n > (d_.size() - pos_) / sizeof(T)) return Truncated(what);
    v->resize(n);
    if (n > 0) std::memcpy(v->data(), d_.data() + pos_, n * sizeof(T));  // data() may be null
    pos_ += n * sizeof(T);
    return absl::OkStatus();
  }
  absl::Status GetStr(std::string* s, const char* what) {
    uint32_t n = 0;
    MOESTREAM_RETURN_IF_ERROR(Get(&n, what));
    if (n > d_.size() - pos_) return Truncated(what);
    s->assign(d_.data() + pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }
  size_t pos() const { return pos_; }

 private:
  absl::Status Truncated(const char* what) const {
    return absl::DataLossError(
        absl::StrCat("trace '", path_, "' is truncated: no room for ", what, " at byte ", pos_));
  }
  const std::string& d_;
  const std::string& path_;
  size_t pos_ = 0;
};

}  // namespace

uint64_t Fnv1a64(std::string_view bytes, uint64_t basis) {
  uint64_t h = basis;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

const char* PhaseName(Phase p) { return p == Phase::kPrefill ? "prefill" : "decode"; }

void Trace::AddCell(TraceCell c, std::span<const int32_t> ids, std::span<const float> w,
                    std::span<const ExpertKey> guessed) {
  c.n_experts = uint8_t(ids.size());
  c.n_guesses = uint16_t(guessed.size());
  c.offset = experts.size();
  c.guess_offset = guesses.size();
  for (size_t i = 0; i < ids.size(); ++i) {
    experts.push_back(uint16_t(ids[i]));
    weights.push_back(i < w.size() ? w[i] : 0.0f);
  }
  for (auto g : guessed) guesses.push_back(g.packed());
  cells.push_back(c);
}

absl::Status Trace::Validate() const {
  constexpr std::string_view kShape = "trace shape";
  int64_t v;
  if (!IntIn(shape.n_layers, 1, kMaxTraceLayers, &v)) {
    return BadField(kShape, "n_layers", absl::StrCat(shape.n_layers), IntRange(1, kMaxTraceLayers));
  }
  if (!IntIn(shape.n_experts, 1, kMaxTraceExperts, &v)) {
    return BadField(kShape, "n_experts", absl::StrCat(shape.n_experts),
                    IntRange(1, kMaxTraceExperts));
  }
  const int max_k = std::min(kMaxTraceTopK, shape.n_experts);
  if (!IntIn(shape.top_k, 0, max_k, &v)) {
    return BadField(kShape, "top_k", absl::StrCat(shape.top_k), IntRange(0, max_k));
  }
  if (!shape.layer_ids.empty() && int(shape.layer_ids.size()) != shape.n_layers) {
    return absl::DataLossError(absl::StrCat("trace has ", shape.layer_ids.size(),
                                            " layer ids for ", shape.n_layers, " layers"));
  }
  for (int id : shape.layer_ids) {
    if (!IntIn(id, 0, kMaxTraceLayers - 1, &v)) {
      return BadField(kShape, "layer_ids", absl::StrCat(id), IntRange(0, kMaxTraceLayers - 1));
    }
  }
  for (uint64_t b : shape.expert_bytes) {
    if (b > kMaxTraceExpertBytes) {
      return BadField(kShape, "expert_bytes", absl::StrCat(b),
                      IntRange(0, int64_t(kMaxTraceExpertBytes)));
    }
  }
  if (weights.size() != experts.size()) {
    return absl::DataLossError(absl::StrCat("trace has ", weights.size(), " gate weights for ",
                                            experts.size(), " experts"));
  }
  for (size_t i = 0; i < cells.size(); ++i) {
    const TraceCell& c = cells[i];
    if (c.layer >= shape.n_layers || c.n_experts > shape.top_k ||
        c.offset + c.n_experts > experts.size() ||
        c.guess_offset + c.n_guesses > guesses.size()) {
      return absl::DataLossError(absl::StrCat("trace cell ", i, " (layer ", c.layer, ", ",
                                              int(c.n_experts), " experts) does not fit shape ",
                                              shape.n_layers, "x", shape.n_experts, " top-",
                                              shape.top_k));
    }
    for (uint16_t e : Experts(c)) {
      if (e >= shape.n_experts) {
        return BadField(absl::StrCat("trace cell ", i), "expert", absl::StrCat(e),
                        IntRange(0, shape.n_experts - 1));
      }
    }
    for (float w : Weights(c)) {
      if (!WeightOk(w)) {
        return BadField(absl::StrCat("trace cell ", i), "weight", absl::StrCat(w), kWeightRange);
      }
    }
    for (uint32_t g : Guesses(c)) {
      if (int(g >> 16) >= shape.n_layers || int(g & 0xffff) >= shape.n_experts) {
        return BadField(absl::StrCat("trace cell ", i), "guess",
                        absl::StrCat("layer ", g >> 16, " expert ", g & 0xffff),
                        absl::StrCat("a layer in [0, ", shape.n_layers - 1, "] and an expert in [0, ",
                                     shape.n_experts - 1, "]"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status WriteTrace(const Trace& t, const std::string& path) {
  MOESTREAM_RETURN_IF_ERROR(t.Validate());
  Writer w;
  w.buf().append(kMagic, sizeof kMagic);
  w.Put(kTraceVersion);
  w.Put(uint32_t(t.shape.n_layers));
  w.Put(uint32_t(t.shape.n_experts));
  w.Put(uint32_t(t.shape.top_k));
  w.PutStr(t.shape.model);
  w.PutStr(t.shape.source);
  w.Put(uint32_t(t.shape.layer_ids.size()));
  for (int id : t.shape.layer_ids) w.Put(int32_t(id));
  w.Put(uint32_t(t.shape.expert_bytes.size()));
  w.PutArray(t.shape.expert_bytes);
  // Entries in cell order (cells may have been reordered after AddCell).
  std::vector<uint16_t> ex;
  std::vector<float> wt;
  std::vector<uint32_t> gs;
  ex.reserve(t.experts.size());
  wt.reserve(t.experts.size());
  for (const TraceCell& c : t.cells) {
    auto e = t.Experts(c);
    auto g = t.Weights(c);
    auto q = t.Guesses(c);
    ex.insert(ex.end(), e.begin(), e.end());
    wt.insert(wt.end(), g.begin(), g.end());
    gs.insert(gs.end(), q.begin(), q.end());
  }
  w.Put(uint64_t(t.cells.size()));
  w.Put(uint64_t(ex.size()));
  w.Put(uint64_t(gs.size()));
  for (const TraceCell& c : t.cells) {
    w.Put(c.seq);
    w.Put(c.step);
    w.Put(c.pos);
    w.Put(c.layer);
    w.Put(uint8_t(c.phase));
    w.Put(c.n_experts);
    w.Put(c.n_guesses);
    w.Put(uint16_t(0));
  }
  w.PutArray(ex);
  w.PutArray(wt);
  w.PutArray(gs);
  w.Put(Fnv1a64(w.buf()));
  return WriteFileAtomically(path, w.buf());
}

absl::StatusOr<Trace> ReadTrace(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open trace '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string data = ss.str();
  if (data.size() < 8 || std::memcmp(data.data(), kMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat("'", path, "' is not a moestream trace (bad magic)"));
  }
  if (data.size() < 16) return absl::DataLossError(absl::StrCat("trace '", path, "' is truncated"));
  uint64_t stored;
  std::memcpy(&stored, data.data() + data.size() - 8, 8);
  Reader r(data, path);
  uint64_t skip = 0;
  MOESTREAM_RETURN_IF_ERROR(r.Get(&skip, "magic"));
  uint32_t version = 0, nl = 0, ne = 0, k = 0;
  MOESTREAM_RETURN_IF_ERROR(r.Get(&version, "version"));
  if (version != kTraceVersion && version != kTraceVersionLegacy) {
    return absl::UnimplementedError(absl::StrCat("trace '", path, "' has version ", version,
                                                 "; this moestream reads versions ",
                                                 kTraceVersionLegacy, " and ", kTraceVersion));
  }
  const uint64_t basis = version == kTraceVersionLegacy ? kFnv1a64LegacyBasis : kFnv1a64Basis;
  if (Fnv1a64(std::string_view(data).substr(0, data.size() - 8), basis) != stored) {
    return absl::DataLossError(absl::StrCat("trace '", path, "': checksum mismatch (corrupt)"));
  }
  Trace t;
  MOESTREAM_RETURN_IF_ERROR(r.Get(&nl, "n_layers"));
  MOESTREAM_RETURN_IF_ERROR(r.Get(&ne, "n_experts"));
  MOESTREAM_RETURN_IF_ERROR(r.Get(&k, "top_k"));
  // The shape first, before anything is sized by it.
  const std::string header = absl::StrCat("trace '", path, "' header");
  int64_t v;
  if (!IntIn(nl, 1, kMaxTraceLayers, &v)) {
    return BadField(header, "n_layers", absl::StrCat(nl), IntRange(1, kMaxTraceLayers));
  }
  if (!IntIn(ne, 1, kMaxTraceExperts, &v)) {
    return BadField(header, "n_experts", absl::StrCat(ne), IntRange(1, kMaxTraceExperts));
  }
  if (!IntIn(k, 0, std::min<int64_t>(kMaxTraceTopK, ne), &v)) {
    return BadField(header, "top_k", absl::StrCat(k),
                    IntRange(0, std::min<int64_t>(kMaxTraceTopK, ne)));
  }
  t.shape.n_layers = int(nl);
  t.shape.n_experts = int(ne);
  t.shape.top_k = int(k);
  MOESTREAM_RETURN_IF_ERROR(r.GetStr(&t.shape.model, "model name"));
  MOESTREAM_RETURN_IF_ERROR(r.GetStr(&t.shape.source, "source"));
  uint32_t n = 0;
  MOESTREAM_RETURN_IF_ERROR(r.Get(&n, "layer id count"));
  std::vector<int32_t> ids;
  MOESTREAM_RETURN_IF_ERROR(r.GetArray(&ids, n, "layer ids"));
  t.shape.layer_ids.assign(ids.begin(), ids.end());
  MOESTREAM_RETURN_IF_ERROR(r.Get(&n, "expert bytes count"));
  MOESTREAM_RETURN_IF_ERROR(r.GetArray(&t.shape.expert_bytes, n, "expert bytes"));
  uint64_t n_cells = 0, n_entries = 0, n_guesses = 0;
  MOESTREAM_RETURN_IF_ERROR(r.Get(&n_cells, "cell count"));
  MOESTREAM_RETURN_IF_ERROR(r.Get(&n_entries, "entry count"));
  MOESTREAM_RETURN_IF_ERROR(r.Get(&n_guesses, "guess count"));
  if (n_cells > data.size() / 20) return absl::DataLossError(absl::StrCat("trace '", path, "': cell count ", n_cells, " exceeds the file"));
  t.cells.resize(n_cells);
  uint64_t off = 0, goff = 0;
  for (TraceCell& c : t.cells) {
    uint8_t phase = 0;
    uint16_t reserved = 0;
    MOESTREAM_RETURN_IF_ERROR(r.Get(&c.seq, "cell"));
    MOESTREAM_RETURN_IF_ERROR(r.Get(&c.step, "cell"));
    MOESTREAM_RETURN_IF_ERROR(r.Get(&c.pos, "cell"));
    MOESTREAM_RETURN_IF_ERROR(r.Get(&c.layer, "cell"));
    MOESTREAM_RETURN_IF_ERROR(r.Get(&phase, "cell"));
    MOESTREAM_RETURN_IF_ERROR(r.Get(&c.n_experts, "cell"));
    MOESTREAM_RETURN_IF_ERROR(r.Get(&c.n_guesses, "cell"));
    MOESTREAM_RETURN_IF_ERROR(r.Get(&reserved, "cell"));
    if (phase > 1) return absl::DataLossError(absl::StrCat("trace '", path, "': bad phase ", int(phase)));
    c.phase = Phase(phase);
    c.offset = off;
    c.guess_offset = goff;
    off += c.n_experts;
    goff += c.n_guesses;
  }
  if (off != n_entries || goff != n_guesses) {
    return absl::DataLossError(absl::StrCat("trace '", path, "': cells reference ", off,
                                            " experts but the file holds ", n_entries));
  }
  MOESTREAM_RETURN_IF_ERROR(r.GetArray(&t.experts, n_entries, "expert ids"));
  MOESTREAM_RETURN_IF_ERROR(r.GetArray(&t.weights, n_entries, "gate weights"));
  MOESTREAM_RETURN_IF_ERROR(r.GetArray(&t.guesses, n_guesses, "guesses"));
  if (r.pos() + 8 != data.size()) {
    return absl::DataLossError(absl::StrCat("trace '", path, "': ", data.size() - r.pos() - 8,
                                            " unexpected bytes before the checksum"));
  }
  if (absl::Status st = t.Validate(); !st.ok()) {
    return absl::DataLossError(absl::StrCat("trace '", path, "': ", st.message()));
  }
  return t;
}

absl::Status WriteTraceCsv(const Trace& t, const std::string& path) {
  std::string out = "seq,step,pos,phase,layer,layer_id,rank,expert,weight\n";
  for (const TraceCell& c : t.cells) {
    auto e = t.Experts(c);
    auto w = t.Weights(c);
    int id = c.layer < t.shape.layer_ids.size() ? t.shape.layer_ids[c.layer] : c.layer;
    for (size_t i = 0; i < e.size(); ++i) {
      out += CsvRow({absl::StrCat(c.seq), absl::StrCat(c.step), absl::StrCat(c.pos),
                     PhaseName(c.phase), absl::StrCat(c.layer), absl::StrCat(id),
                     absl::StrCat(i), absl::StrCat(e[i]), absl::StrFormat("%.6g", w[i])});
    }
  }
  return WriteOutput(path, out);
}

TraceRecorder::TraceRecorder(std::string path, TraceShape shape) : path_(std::move(path)) {
  trace_.shape = std::move(shape);
  if (trace_.shape.source.empty()) trace_.shape.source = "moestream";
  if (trace_.shape.layer_ids.empty()) {
    for (int l = 0; l < trace_.shape.n_layers; ++l) trace_.shape.layer_ids.push_back(l);
  }
}

void TraceRecorder::BeginSequence() {
  if (!trace_.cells.empty()) ++seq_;
  step_ = 0;
}

void TraceRecorder::Record(int layer, uint32_t token_pos, Phase phase,
                           std::span<const int32_t> ids, std::span<const float> weights,
                           std::span<const ExpertKey> guesses) {
  TraceCell c;
  c.seq = seq_;
  c.step = step_;
  c.pos = token_pos;
  c.layer = uint16_t(layer);
  c.phase = phase;
  if (int(ids.size()) > trace_.shape.top_k) trace_.shape.top_k = int(ids.size());
  trace_.AddCell(c, ids, weights, guesses);
}

absl::Status TraceRecorder::Finish() { return WriteTrace(trace_, path_); }

}  // namespace moestream::trace
