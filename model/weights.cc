#include "model/weights.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "io/expert_layout.h"
#include "model/architecture.h"
#include "kernels/quant.h"

namespace moestream::model {
namespace {

std::string ShapeOf(std::initializer_list<int64_t> ne) {
  return absl::StrCat("[", absl::StrJoin(ne, ", "), "]");
}

// Chunk size of staged uploads on backends whose device memory is not host
// memory.
constexpr size_t kStagingBytes = 64u << 20;

}  // namespace

// Reads tensors of one GGUF into device memory owned by a ModelWeights.
class WeightBinder : public LayerBinder {
 public:
  // `plan` non-null: nothing is read or allocated; every buffer Load would
  // allocate is appended to it instead (ModelWeights::PlanBuffers).
  WeightBinder(const io::GgufFile& f, ModelWeights& w, const WeightsOptions& o,
               std::vector<PlannedBuffer>* plan = nullptr)
      : f_(f), w_(w), be_(w.backend_), o_(o), plan_(plan) {}
  ~WeightBinder() {
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Open() {
    if (plan_ != nullptr) return absl::OkStatus();
    MOESTREAM_RETURN_IF_ERROR(f_.CheckHasData());
    fd_ = ::open(f_.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      return absl::NotFoundError(absl::StrCat(f_.path(), ": cannot open: ", std::strerror(errno)));
    }
    host_is_device_ = be_->name() == "cpu";
    return absl::OkStatus();
  }

  void set_total(uint64_t t) { total_ = t; }

  absl::StatusOr<const io::GgufTensorInfo*> Find(const std::string& name,
                                                 std::initializer_list<int64_t> ne) const {
    const io::GgufTensorInfo* t = f_.FindTensor(name);
    if (t == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(f_.path(), ": missing tensor '", name, "' (expected shape ", ShapeOf(ne), ")"));
    }
    MOESTREAM_RETURN_IF_ERROR(CheckShape(*t, ne));
    return t;
  }

  absl::Status CheckShape(const io::GgufTensorInfo& t, std::initializer_list<int64_t> ne) const {
    bool ok = true;
    int i = 0;
    for (int64_t v : ne) ok &= t.ne[i++] == v;
    for (; i < 4; ++i) ok &= t.ne[i] == 1;
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(f_.path(), ": tensor '", t.name,
                                                     "' has shape ", t.ShapeString(),
                                                     ", expected ", ShapeOf(ne)));
    }
    return absl::OkStatus();
  }

  // Refuses a tensor whose type the backend's kernels cannot compute with
  // (the CUDA backend covers fewer types than the CPU kernels could), so no
  // backend ever computes with a type it has no kernel for.
  absl::Status CheckComputable(const io::GgufTensorInfo& t) const {
    if (be_ != nullptr ? be_->CanCompute(t.type) : kernels::CanCompute(t.type)) {
      return absl::OkStatus();
    }
    if (be_ != nullptr && kernels::CanCompute(t.type)) {
      return absl::InvalidArgumentError(absl::StrCat(
          f_.path(), ": tensor '", t.name, "' has type ", Av(GgmlTypeName(t.type)),
          ", which the ", Av(be_->name()), " backend cannot compute with (the cpu backend can)"));
    }
    return absl::InvalidArgumentError(absl::StrCat(f_.path(), ": tensor '", t.name,
                                                   "' has type ", Av(GgmlTypeName(t.type)),
                                                   ", which the kernels cannot compute with"));
  }

  // Uploads a tensor (any rank) as-is; returns its device pointer.
  absl::StatusOr<void*> Upload(const io::GgufTensorInfo& t) {
    MOESTREAM_RETURN_IF_ERROR(CheckComputable(t));
    if (plan_ != nullptr) {
      plan_->push_back({t.name, t.size_bytes, 1, MemoryUse::kWeights});
      return nullptr;
    }
    MOESTREAM_ASSIGN_OR_RETURN(void* dst, be_->DeviceAlloc(t.size_bytes, t.name));
    w_.allocations_.push_back(dst);
    w_.device_bytes_ += t.size_bytes;
    if (host_is_device_) {
      MOESTREAM_RETURN_IF_ERROR(ReadRange(t, dst, t.file_offset, t.size_bytes));
    } else {
      staging_.resize(std::min<size_t>(kStagingBytes, t.size_bytes));
      for (uint64_t done = 0; done < t.size_bytes;) {
        const uint64_t n = std::min<uint64_t>(staging_.size(), t.size_bytes - done);
        MOESTREAM_RETURN_IF_ERROR(ReadRange(t, staging_.data(), t.file_offset + done, n));
        MOESTREAM_RETURN_IF_ERROR(be_->CopyToDevice(static_cast<uint8_t*>(dst) + done,
                                                   staging_.data(), n));
        done += n;
      }
    }
    Progress(t.size_bytes);
    return dst;
  }

  bool Has(const std::string& name) const override { return f_.FindTensor(name) != nullptr; }

  absl::StatusOr<kernels::WeightView> Matrix(const std::string& name, int64_t n_in,
                                             int64_t n_out) override {
    MOESTREAM_ASSIGN_OR_RETURN(const io::GgufTensorInfo* t, Find(name, {n_in, n_out}));
    MOESTREAM_ASSIGN_OR_RETURN(void* p, Upload(*t));
    return kernels::WeightView{t->type, n_in, n_out, p};
  }

  absl::StatusOr<kernels::WeightView> Stacked(const std::string& name, int64_t n_in, int64_t n_out,
                                              int64_t n_mats) override {
    MOESTREAM_ASSIGN_OR_RETURN(const io::GgufTensorInfo* t, Find(name, {n_in, n_out, n_mats}));
    MOESTREAM_ASSIGN_OR_RETURN(void* p, Upload(*t));
    return kernels::WeightView{t->type, n_in, n_out, p};
  }

  // A 1-D weight converted to F32 on the device.
  absl::StatusOr<const float*> Vector(const std::string& name, int64_t n) override {
    MOESTREAM_ASSIGN_OR_RETURN(const io::GgufTensorInfo* t, Find(name, {n}));
    return Floats(*t, n);
  }

  absl::StatusOr<const float*> Table(const std::string& name, int64_t n, int64_t n_rows) override {
    MOESTREAM_ASSIGN_OR_RETURN(const io::GgufTensorInfo* t, Find(name, {n, n_rows}));
    return Floats(*t, n * n_rows);
  }

  // Tensor `t` of n elements, converted to F32 and uploaded.
  absl::StatusOr<const float*> Floats(const io::GgufTensorInfo& t, int64_t n) {
    const std::string& name = t.name;
    const size_t bytes = n * sizeof(float);
    if (plan_ != nullptr) {
      plan_->push_back({name, bytes, 1, MemoryUse::kWeights});
      return nullptr;
    }
    std::vector<uint8_t> raw(t.size_bytes);
    MOESTREAM_RETURN_IF_ERROR(ReadRange(t, raw.data(), t.file_offset, t.size_bytes));
    std::vector<float> f32(n);
    if (t.type == GgmlType::kF32) {
      std::memcpy(f32.data(), raw.data(), n * sizeof(float));
    } else {
      absl::Status s = kernels::DequantizeRow(t.type, raw.data(), n, f32.data());
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(f_.path(), ": tensor '", name, "': ", s.message()));
      }
    }
    MOESTREAM_ASSIGN_OR_RETURN(void* dst, be_->DeviceAlloc(bytes, name));
    w_.allocations_.push_back(dst);
    w_.device_bytes_ += bytes;
    MOESTREAM_RETURN_IF_ERROR(be_->CopyToDevice(dst, f32.data(), bytes));
    Progress(t.size_bytes);
    return static_cast<const float*>(dst);
  }

  // Routed experts of one layer: stacked `_exps` tensors or per-expert ones
  // (io::FindExpertTensors tells which), checked against the config.
  absl::Status Experts(int layer, const ModelConfig& c, LayerWeights* lw) override {
    const std::string p = absl::StrCat("blk.", layer, ".");
    const int64_t E = c.n_expert, D = c.n_embd, F = c.n_ff_exp;
    struct Mat {
      io::ExpertMatrix matrix;
      const char* name;
      int64_t n_in, n_out;
      kernels::WeightView ExpertWeights::*field;
    };
    const Mat mats[3] = {{io::ExpertMatrix::kGate, "gate", D, F, &ExpertWeights::gate},
                         {io::ExpertMatrix::kUp, "up", D, F, &ExpertWeights::up},
                         {io::ExpertMatrix::kDown, "down", F, D, &ExpertWeights::down}};
    if (o_.upload_routed_experts) lw->experts.assign(E, ExpertWeights{});
    for (const Mat& m : mats) {
      MOESTREAM_ASSIGN_OR_RETURN(io::ExpertTensors x, io::FindExpertTensors(f_, layer, m.matrix));
      if (x.n_experts == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            f_.path(), ": layer ", layer, " has neither '", p, "ffn_", m.name, "_exps.weight' ",
            ShapeOf({m.n_in, m.n_out, E}), " nor per-expert '", p, "ffn_", m.name, ".0.weight' ",
            ShapeOf({m.n_in, m.n_out})));
      }
      if (x.stacked != nullptr) {
        MOESTREAM_RETURN_IF_ERROR(CheckShape(*x.stacked, {m.n_in, m.n_out, E}));
        MOESTREAM_RETURN_IF_ERROR(CheckComputable(*x.stacked));
        if (!o_.upload_routed_experts) continue;
        MOESTREAM_ASSIGN_OR_RETURN(void* base, Upload(*x.stacked));
        const uint64_t stride = RowBytes(x.type, m.n_in) * m.n_out;
        for (int64_t e = 0; e < E; ++e) {
          lw->experts[e].*m.field =
              kernels::WeightView{x.type, m.n_in, m.n_out, static_cast<uint8_t*>(base) + e * stride};
        }
      } else {
        for (int64_t e = 0; e < E; ++e) {
          if (e >= x.n_experts) {  // names the first missing expert's tensor
            return Find(absl::StrCat(p, "ffn_", m.name, ".", e, ".weight"), {m.n_in, m.n_out})
                .status();
          }
          const io::GgufTensorInfo* t = x.per_expert[e];
          MOESTREAM_RETURN_IF_ERROR(CheckShape(*t, {m.n_in, m.n_out}));
          MOESTREAM_RETURN_IF_ERROR(CheckComputable(*t));
          if (!o_.upload_routed_experts) continue;
          MOESTREAM_ASSIGN_OR_RETURN(void* d, Upload(*t));
          lw->experts[e].*m.field = kernels::WeightView{t->type, m.n_in, m.n_out, d};
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status ReadRange(const io::GgufTensorInfo& t, void* dst, uint64_t off, uint64_t n) {
    auto* out = static_cast<uint8_t*>(dst);
    while (n > 0) {
      const ssize_t r = ::pread(fd_, out, std::min<uint64_t>(n, 1u << 30), static_cast<off_t>(off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        return absl::DataLossError(absl::StrCat(
            f_.path(), ": reading tensor '", t.name, "' at offset ", off, ": ",
            r < 0 ? std::strerror(errno) : "unexpected end of file"));
      }
      out += r;
      off += static_cast<uint64_t>(r);
      n -= static_cast<uint64_t>(r);
    }
    return absl::OkStatus();
  }

  void Progress(uint64_t bytes) {
    done_ += bytes;
    if (o_.progress) o_.progress(done_, total_);
  }

  const io::GgufFile& f_;
  ModelWeights& w_;
  kernels::Backend* be_;
  const WeightsOptions& o_;
  std::vector<PlannedBuffer>* plan_;
  int fd_ = -1;
  bool host_is_device_ = false;
  std::vector<uint8_t> staging_;
  uint64_t done_ = 0;
  uint64_t total_ = 0;
};

ModelWeights::~ModelWeights() {
  for (void* p : allocations_) backend_->DeviceFree(p);
}

absl::StatusOr<std::unique_ptr<ModelWeights>> ModelWeights::Load(const io::GgufFile& f,
                                                                 const ModelConfig& c,
                                                                 kernels::Backend& backend,
                                                                 const WeightsOptions& o) {
  std::unique_ptr<ModelWeights> w(new ModelWeights(&backend));
  w->experts_resident_ = c.is_moe() && o.upload_routed_experts;
  WeightBinder b(f, *w, o);
  MOESTREAM_RETURN_IF_ERROR(Bind(f, c, b, *w));
  return w;
}

absl::StatusOr<std::vector<PlannedBuffer>> ModelWeights::PlanBuffers(const io::GgufFile& f,
                                                                     const ModelConfig& c,
                                                                     bool upload_routed_experts) {
  std::vector<PlannedBuffer> plan;
  ModelWeights w(nullptr);
  WeightsOptions o;
  o.upload_routed_experts = upload_routed_experts;
  WeightBinder b(f, w, o, &plan);
  MOESTREAM_RETURN_IF_ERROR(Bind(f, c, b, w));
  return plan;
}

absl::Status ModelWeights::Bind(const io::GgufFile& f, const ModelConfig& c, WeightBinder& b,
                                ModelWeights& weights) {
  ModelWeights* w = &weights;
  MOESTREAM_RETURN_IF_ERROR(b.Open());
  uint64_t total = 0;
  for (const io::GgufTensorInfo& t : f.tensors()) total += t.size_bytes;
  b.set_total(total);

  const int64_t D = c.n_embd;
  MOESTREAM_ASSIGN_OR_RETURN(w->token_embd, b.Matrix("token_embd.weight", D, c.n_vocab));
  MOESTREAM_ASSIGN_OR_RETURN(w->output_norm, b.Vector("output_norm.weight", D));
  if (f.FindTensor("output.weight") != nullptr) {
    MOESTREAM_ASSIGN_OR_RETURN(w->output, b.Matrix("output.weight", D, c.n_vocab));
  } else {
    w->output = w->token_embd;  // tied embeddings, as llama.cpp falls back
  }
  if (f.FindTensor("rope_freqs.weight") != nullptr) {
    MOESTREAM_ASSIGN_OR_RETURN(w->rope_freqs, b.Vector("rope_freqs.weight", c.rope.n_rot / 2));
  }

  const ArchSpec* spec = FindArchitecture(c.arch);
  if (spec == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": unsupported architecture '", c.arch, "'"));
  }
  w->layers.resize(c.n_layer);
  for (int il = 0; il < c.n_layer; ++il) {
    MOESTREAM_RETURN_IF_ERROR(spec->bind_layer(b, c, il, &w->layers[il]));
  }
  return absl::OkStatus();
}

}  // namespace moestream::model
