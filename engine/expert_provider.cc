#include "engine/expert_provider.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace moestream::engine {

ExpertProvider::~ExpertProvider() = default;
void ExpertProvider::OnFfnInput(int, const float*, int64_t) {}

std::vector<model::PlannedBuffer> ExpertFfnRunner::PlanBuffers(const model::ModelConfig& c,
                                                               int64_t max_tokens,
                                                               std::string_view name_prefix) {
  const uint64_t rows = uint64_t(max_tokens * c.n_expert_used);
  const uint64_t f = sizeof(float);
  const model::MemoryUse s = model::MemoryUse::kScratch;
  auto name = [&](const char* n) { return std::string(name_prefix) + n; };
  return {{name("experts.x"), rows * c.n_embd * f, 1, s},
          {name("experts.gate"), rows * c.n_ff_exp * f, 1, s},
          {name("experts.up"), rows * c.n_ff_exp * f, 1, s},
          {name("experts.y"), rows * c.n_embd * f, 1, s},
          {name("experts.rows"), rows * sizeof(int32_t), 1, s}};
}

absl::StatusOr<std::unique_ptr<ExpertFfnRunner>> ExpertFfnRunner::Create(
    kernels::Backend& backend, const model::ModelConfig& c, int64_t max_tokens,
    std::string_view name_prefix) {
  std::unique_ptr<ExpertFfnRunner> r(new ExpertFfnRunner(backend));
  r->n_embd_ = c.n_embd;
  r->n_ff_ = c.n_ff_exp;
  r->n_expert_ = c.n_expert;
  r->act_ = c.expert_act;
  r->alpha_ = c.swiglu_alpha;
  r->limit_ = c.swiglu_limit;
  r->max_rows_ = max_tokens * c.n_expert_used;
  const size_t rows = static_cast<size_t>(r->max_rows_);
  void* p[5] = {};
  int i = 0;
  for (const model::PlannedBuffer& b : PlanBuffers(c, max_tokens, name_prefix)) {
    MOESTREAM_ASSIGN_OR_RETURN(p[i], backend.DeviceAlloc(b.bytes, b.name));
    r->owned_[i] = p[i];
    ++i;
  }
  r->xs_ = static_cast<float*>(p[0]);
  r->gate_ = static_cast<float*>(p[1]);
  r->up_ = static_cast<float*>(p[2]);
  r->ys_ = static_cast<float*>(p[3]);
  r->rows_dev_ = static_cast<int32_t*>(p[4]);
  r->row_token_.resize(rows);
  r->row_weight_.resize(rows);
  r->choice_row_.resize(rows);
  r->scatter_.resize(rows);
  r->counts_.resize(c.n_expert + 1);
  r->groups_.reserve(c.n_expert);
  r->jobs_.reserve(2 * c.n_expert);
  return r;
}

ExpertFfnRunner::~ExpertFfnRunner() {
  for (void* p : owned_) {
    if (p != nullptr) backend_.DeviceFree(p);
  }
}

absl::Status ExpertFfnRunner::Group(const int32_t* ids, const float* weights, int64_t n_tok,
                                    int k, const model::ExpertBiases& biases) {
  biases_ = biases;
  const int64_t n = n_tok * k;
  if (n > max_rows_) {
    return absl::InvalidArgumentError(absl::StrCat("expert batch of ", n_tok, " tokens x ", k,
                                                   " exceeds the workspace of ", max_rows_,
                                                   " rows"));
  }
  n_tok_ = n_tok;
  k_ = k;
  // Counting sort by expert; stable, so rows of one expert keep token order.
  std::fill(counts_.begin(), counts_.end(), 0);
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= n_expert_) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert id ", ids[i], " out of range 0..", n_expert_ - 1));
    }
    ++counts_[ids[i] + 1];
  }
  groups_.clear();
  for (int64_t e = 0; e < n_expert_; ++e) {
    if (counts_[e + 1] > 0) groups_.push_back({static_cast<int32_t>(e), counts_[e], counts_[e + 1]});
    counts_[e + 1] += counts_[e];
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = counts_[ids[i]]++;
    row_token_[row] = static_cast<int32_t>(i / k);
    row_weight_[row] = weights[i];
    choice_row_[i] = row;
  }
  if (n_tok > 1) {
    return backend_.CopyToDevice(rows_dev_, row_token_.data(), n * sizeof(int32_t));
  }
  return absl::OkStatus();
}

void ExpertFfnRunner::Run(const float* x, int64_t n_tok, std::span<const ExpertGroup> groups,
                          std::span<const model::ExpertWeights* const> w) {
  const kernels::WeightView x_table{GgmlType::kF32, n_embd_, n_tok, x};
  jobs_.clear();
  for (size_t i = 0; i < groups.size(); ++i) {
    const ExpertGroup& g = groups[i];
    const float* in = x;  // one token: every row is x itself
    if (n_tok > 1) {
      in = xs_ + g.first_row * n_embd_;
      backend_.GetRows(x_table, rows_dev_ + g.first_row, g.rows, const_cast<float*>(in));
    }
    jobs_.push_back({w[i]->gate, in, g.rows, gate_ + g.first_row * n_ff_});
    jobs_.push_back({w[i]->up, in, g.rows, up_ + g.first_row * n_ff_});
  }
  backend_.MatMulBatch(jobs_);
  jobs_.clear();
  if (biases_.gate != nullptr) {
    for (const ExpertGroup& g : groups) {
      backend_.AddBias(gate_ + g.first_row * n_ff_, biases_.gate + g.expert * n_ff_, g.rows, n_ff_);
      backend_.AddBias(up_ + g.first_row * n_ff_, biases_.up + g.expert * n_ff_, g.rows, n_ff_);
    }
  }
  auto activate = [&](int64_t r0, int64_t rows) {
    float* gate = gate_ + r0 * n_ff_;
    const float* up = up_ + r0 * n_ff_;
    if (act_ == model::ExpertActivation::kSwigluClamped) {
      backend_.SwigluClamped(gate, up, gate, rows * n_ff_, alpha_, limit_);
    } else {
      backend_.SiluMul(gate, up, gate, rows * n_ff_);
    }
  };
  // Groups covering consecutive rows (all of them, unless the caller splits
  // the groups) share one activation.
  bool contiguous = true;
  for (size_t i = 1; i < groups.size(); ++i) {
    contiguous &= groups[i].first_row == groups[i - 1].first_row + groups[i - 1].rows;
  }
  if (contiguous && !groups.empty()) {
    const int64_t r0 = groups.front().first_row;
    activate(r0, groups.back().first_row + groups.back().rows - r0);
  }
  for (size_t i = 0; i < groups.size(); ++i) {
    const ExpertGroup& g = groups[i];
    if (!contiguous) activate(g.first_row, g.rows);
    jobs_.push_back({w[i]->down, gate_ + g.first_row * n_ff_, g.rows, ys_ + g.first_row * n_embd_});
  }
  backend_.MatMulBatch(jobs_);
  if (biases_.down != nullptr) {
    for (const ExpertGroup& g : groups) {
      backend_.AddBias(ys_ + g.first_row * n_embd_, biases_.down + g.expert * n_embd_, g.rows,
                       n_embd_);
    }
  }
}

void ExpertFfnRunner::Scatter(float* out) {
  const size_t n = size_t(n_tok_ * k_);
  for (size_t i = 0; i < n; ++i) {
    const int64_t row = choice_row_[i];
    scatter_[i] = {static_cast<int32_t>(row), row_weight_[size_t(row)]};
  }
  backend_.ScatterAdd(out, ys_, n_embd_, std::span<const kernels::ScatterChoice>(scatter_.data(), n),
                      k_);
}

absl::StatusOr<std::unique_ptr<ResidentExpertProvider>> ResidentExpertProvider::Create(
    kernels::Backend& backend, const model::ModelConfig& c, const model::ModelWeights& w, int64_t max_tokens) {
  if (!w.experts_resident()) {
    return absl::FailedPreconditionError(
        "resident expert provider: the weights were loaded without their routed experts");
  }
  MOESTREAM_ASSIGN_OR_RETURN(std::unique_ptr<ExpertFfnRunner> r,
                             ExpertFfnRunner::Create(backend, c, max_tokens));
  std::unique_ptr<ResidentExpertProvider> p(new ResidentExpertProvider(w, std::move(r)));
  p->group_weights_.reserve(c.n_expert);
  return p;
}

absl::Status ResidentExpertProvider::Compute(int layer, const float* x, int64_t n_tok,
                                             const int32_t* ids, const float* weights, int k,
                                             float* out) {
  MOESTREAM_RETURN_IF_ERROR(
      runner_->Group(ids, weights, n_tok, k, weights_.layers[layer].expert_bias));
  const std::vector<model::ExpertWeights>& experts = weights_.layers[layer].experts;
  group_weights_.clear();
  for (const ExpertGroup& g : runner_->groups()) group_weights_.push_back(&experts[g.expert]);
  runner_->Run(x, n_tok, runner_->groups(), group_weights_);
  runner_->Scatter(out);
  return absl::OkStatus();
}

}  // namespace moestream::engine
