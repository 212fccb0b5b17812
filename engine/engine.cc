#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace moestream::engine {

absl::Status EngineOptions::Validate() const {
  if (n_ctx < 0 || n_ctx > model::kMaxContext) {
    return absl::InvalidArgumentError(absl::StrCat("--ctx ", n_ctx, " is out of range 0..",
                                                   model::kMaxContext, " (0 = the model's)"));
  }
  if (n_batch < 1 || n_batch > model::kMaxContext) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size ", n_batch, " is out of range 1..", model::kMaxContext));
  }
  if (kv_type != GgmlType::kF32 && kv_type != GgmlType::kF16) {
    return absl::InvalidArgumentError("--kv-type must be f32 or f16");
  }
  if (batch_sequences < 1 || batch_sequences > n_batch) {
    return absl::InvalidArgumentError(absl::StrCat("sequences decoded together ", batch_sequences,
                                                   " is out of range 1..", n_batch, " (the batch)"));
  }
  return absl::OkStatus();
}

int64_t EngineOptions::ResolvedCtx(const model::ModelConfig& c) const {
  return n_ctx > 0 ? n_ctx : std::min<int64_t>(c.n_ctx_train > 0 ? c.n_ctx_train : 4096, 4096);
}

int64_t EngineOptions::ResolvedBatch(const model::ModelConfig& c) const {
  return std::min(n_batch, ResolvedCtx(c));
}

std::vector<model::PlannedBuffer> Engine::PlanBuffers(const model::ModelConfig& c,
                                                      const EngineOptions& o) {
  std::vector<model::PlannedBuffer> v = KvCache::PlanBuffers(c, o.ResolvedCtx(c), o.kv_type);
  const std::vector<model::PlannedBuffer> a = ActivationBuffers(c, o);
  v.insert(v.end(), a.begin(), a.end());
  return v;
}

std::vector<model::PlannedBuffer> Engine::ActivationBuffers(const model::ModelConfig& c,
                                                            const EngineOptions& o) {
  std::vector<model::PlannedBuffer> v;
  const uint64_t nb = uint64_t(o.ResolvedBatch(c));
  const uint64_t f = sizeof(float);
  const uint64_t k = uint64_t(c.n_expert_used);
  auto add = [&](const char* name, uint64_t bytes) {
    v.push_back({name, std::max<uint64_t>(bytes, 64), 1, model::MemoryUse::kScratch});
  };
  add("engine.tokens", nb * sizeof(int32_t));
  add("engine.pos", nb * sizeof(int32_t));
  add("engine.x", nb * c.n_embd * f);
  add("engine.h", nb * c.n_embd * f);
  const model::ArchSpec* arch = model::FindArchitecture(c.arch);
  const bool standard = arch == nullptr || arch->standard_attention;
  if (standard) {
    add("engine.q", nb * c.q_dim() * f);
    add("engine.k", nb * c.kv_dim() * f);
    add("engine.v", nb * c.kv_dim_v() * f);
  }
  // Attention output, and the FFNs' output before it joins the residual.
  add("engine.attn", nb * std::max(standard ? c.q_dim() : 0, c.n_embd) * f);
  if (arch != nullptr && arch->scratch != nullptr) {
    const std::vector<int64_t> widths = arch->scratch(c);
    for (size_t i = 0; i < widths.size(); ++i) {
      v.push_back({absl::StrCat("engine.arch.", i), std::max<uint64_t>(nb * widths[i] * f, 64), 1,
                   model::MemoryUse::kScratch});
    }
  }
  if (c.is_moe()) {
    add("engine.router", nb * c.n_expert * f);
    // Selected ids, then their weights, adjacent: one read-back per layer.
    add("engine.topk", nb * k * (sizeof(int32_t) + f));
  }
  // Dense layers and shared experts share the FFN workspace.
  const int64_t ffn = std::max<int64_t>(c.has_dense_layers() ? c.n_ff : 0, c.n_ff_shexp);
  if (ffn > 0) {
    add("engine.ffn_gate", nb * ffn * f);
    add("engine.ffn_up", nb * ffn * f);
  }
  add("engine.logits",
      std::max<uint64_t>(o.all_logits ? nb : 1, uint64_t(o.batch_sequences)) * c.n_vocab * f);
  // The backend's op scratch (Backend::AdoptOpScratch): activations of the
  // widest product batch rounded to int8 (1 + 1/2 bytes an element) or F16
  // (2), plus alignment per distinct input.
  int64_t width = std::max({c.n_embd, c.n_ff, c.n_ff_exp, c.n_ff_shexp, c.q_dim(), c.kv_dim(),
                            c.kv_dim_v()});
  if (arch != nullptr && arch->scratch != nullptr) {
    for (int64_t w : arch->scratch(c)) width = std::max(width, w);
  }
  const uint64_t rows = nb * std::max<uint64_t>(k, 1);
  if (o.op_scratch) {
    add("engine.op_scratch", 2 * rows * uint64_t(width) + 512 * (uint64_t(c.n_expert) + 4));
  }
  return v;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(kernels::Backend& backend,
                                                       const model::ModelConfig& c,
                                                       const model::ModelWeights& w,
                                                       ExpertProvider* experts,
                                                       const EngineOptions& options) {
  EngineOptions o = options;
  o.op_scratch |= backend.WantsOpScratch();
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  if (c.is_moe() && experts == nullptr) {
    return absl::InvalidArgumentError("engine: a MoE model needs an expert provider");
  }
  std::unique_ptr<Engine> e(new Engine(backend, c, w, experts));
  e->arch_ = model::FindArchitecture(c.arch);
  if (e->arch_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("engine: unsupported architecture '", c.arch, "'"));
  }
  const int64_t n_ctx = o.ResolvedCtx(c);
  MOESTREAM_ASSIGN_OR_RETURN(e->kv_, KvCache::Create(backend, c, n_ctx, o.kv_type));
  e->workspace_bytes_ += e->kv_->bytes();
  e->rope_ = c.rope;
  e->rope_.freq_factors = w.rope_freqs;
  e->n_batch_ = o.ResolvedBatch(c);
  e->n_vocab_ = c.n_vocab;
  e->all_logits_ = o.all_logits;
  e->batch_sequences_ = o.batch_sequences;
  if (o.batch_sequences > e->n_batch_) {
    return absl::InvalidArgumentError(absl::StrCat("engine: ", o.batch_sequences,
                                                   " sequences decoded together exceed the batch of ",
                                                   e->n_batch_, " tokens"));
  }
  // The activations, exactly as planned.
  absl::flat_hash_map<std::string, void*> at;
  for (const model::PlannedBuffer& b : ActivationBuffers(c, o)) {
    MOESTREAM_ASSIGN_OR_RETURN(void* p, backend.DeviceAlloc(b.bytes, b.name));
    e->allocations_.push_back(p);
    e->workspace_bytes_ += b.bytes;
    at[b.name] = p;
  }
  auto get = [&](const char* name) { return at.contains(name) ? at[name] : nullptr; };
  e->tokens_dev_ = static_cast<int32_t*>(get("engine.tokens"));
  e->pos_dev_ = static_cast<int32_t*>(get("engine.pos"));
  e->x_ = static_cast<float*>(get("engine.x"));
  e->h_ = static_cast<float*>(get("engine.h"));
  e->q_ = static_cast<float*>(get("engine.q"));
  e->k_ = static_cast<float*>(get("engine.k"));
  e->v_ = static_cast<float*>(get("engine.v"));
  e->attn_ = static_cast<float*>(get("engine.attn"));
  e->router_ = static_cast<float*>(get("engine.router"));
  e->topk_dev_ = get("engine.topk");
  e->ffn_gate_ = static_cast<float*>(get("engine.ffn_gate"));
  e->ffn_up_ = static_cast<float*>(get("engine.ffn_up"));
  e->logits_dev_ = static_cast<float*>(get("engine.logits"));
  for (const model::PlannedBuffer& b : ActivationBuffers(c, o)) {
    if (b.name == "engine.op_scratch") {
      e->op_scratch_ = at[b.name];
      backend.AdoptOpScratch(e->op_scratch_, b.bytes);
    }
  }
  for (size_t i = 0; at.contains(absl::StrCat("engine.arch.", i)); ++i) {
    e->arch_scratch_.push_back(static_cast<float*>(at[absl::StrCat("engine.arch.", i)]));
  }
  const size_t nb = static_cast<size_t>(e->n_batch_);
  if (c.is_moe()) {
    e->topk_ids_.resize(nb * size_t(c.n_expert_used));
    e->topk_w_.resize(nb * size_t(c.n_expert_used));
    e->topk_host_.resize(nb * size_t(c.n_expert_used) * 2);
    // Selection with a bias or groups runs on the host: the biases are read
    // back once here, not per token.
    e->bias_host_.resize(size_t(c.n_layer));
    bool host_selection = c.n_expert_groups > 1;
    for (int il = 0; il < c.n_layer; ++il) {
      const float* bias = w.layers[size_t(il)].exp_probs_b;
      if (bias == nullptr) continue;
      host_selection = true;
      e->bias_host_[size_t(il)].resize(size_t(c.n_expert));
      MOESTREAM_RETURN_IF_ERROR(
          backend.CopyToHost(e->bias_host_[size_t(il)].data(), bias, c.n_expert * sizeof(float)));
    }
    if (host_selection) e->router_host_.resize(nb * size_t(c.n_expert));
  }
  e->pos_host_.resize(nb);
  e->logits_.resize(size_t(o.all_logits ? nb : 1) * size_t(c.n_vocab));
  return e;
}

Engine::~Engine() {
  if (op_scratch_ != nullptr) be_.ReleaseOpScratch(op_scratch_);
  for (void* p : allocations_) be_.DeviceFree(p);
}

absl::Status Engine::Process(std::span<const int32_t> tokens, LogitsMode mode) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return absl::InvalidArgumentError("engine: no tokens to process");
  if (n_past_ + n > kv_->n_ctx()) {
    return absl::OutOfRangeError(absl::StrCat("context full: ", n_past_, " + ", n,
                                              " tokens exceed the context of ", kv_->n_ctx(),
                                              " (raise --ctx)"));
  }
  MOESTREAM_RETURN_IF_ERROR(CheckTokens(tokens));
  const bool all = mode == LogitsMode::kAll;
  if (all && !all_logits_) {
    return absl::FailedPreconditionError(
        "engine: every token's logits were asked for, but the engine was created without "
        "EngineOptions::all_logits");
  }
  logits_rows_ = all ? n : 1;
  if (logits_.size() < static_cast<size_t>(logits_rows_ * n_vocab_)) {
    // Host memory only: the device buffer holds one chunk's rows.
    logits_.resize(logits_rows_ * n_vocab_);
  }
  for (int64_t done = 0; done < n;) {
    const int64_t m = std::min(n_batch_, n - done);
    const bool last_chunk = done + m == n;
    float* out = all ? logits_.data() + done * n_vocab_ : logits_.data();
    if (all || last_chunk) {
      MOESTREAM_RETURN_IF_ERROR(Chunk(tokens.data() + done, m, all, out));
    } else {
      MOESTREAM_RETURN_IF_ERROR(Chunk(tokens.data() + done, m, false, nullptr));
    }
    done += m;
  }
  return absl::OkStatus();
}

absl::Status Engine::CheckTokens(std::span<const int32_t> tokens) const {
  for (int32_t t : tokens) {
    if (t < 0 || t >= n_vocab_) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", t, " is outside the vocabulary 0..", n_vocab_ - 1));
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::Chunk(const int32_t* tokens, int64_t n, bool all_logits, float* logits_out) {
  const model::ModelConfig& c = c_;
  const int64_t D = c.n_embd;
  runs_.assign(1, Run{this, 0, n, n_past_});
  MOESTREAM_RETURN_IF_ERROR(Forward(tokens, n));
  n_past_ += n;
  if (logits_out == nullptr) return absl::OkStatus();

  // Output: the last row, or every row.
  const int64_t rows = all_logits ? n : 1;
  const float* xr = x_ + (n - rows) * D;
  be_.RmsNorm(xr, w_.output_norm, h_, rows, D, c.rms_eps);
  be_.MatMul(w_.output, h_, rows, logits_dev_);
  return be_.CopyToHost(logits_out, logits_dev_, rows * n_vocab_ * sizeof(float));
}

absl::Status Engine::Forward(const int32_t* tokens, int64_t n) {
  const model::ModelConfig& c = c_;
  chunk_n_ = n;
  for (const Run& r : runs_) {
    for (int64_t i = 0; i < r.count; ++i) pos_host_[r.first + i] = static_cast<int32_t>(r.pos0 + i);
  }
  MOESTREAM_RETURN_IF_ERROR(be_.CopyToDevice(tokens_dev_, tokens, n * sizeof(int32_t)));
  MOESTREAM_RETURN_IF_ERROR(be_.CopyToDevice(pos_dev_, pos_host_.data(), n * sizeof(int32_t)));
  be_.GetRows(w_.token_embd, tokens_dev_, n, x_);
  for (int il = 0; il < c.n_layer; ++il) {
    MOESTREAM_RETURN_IF_ERROR(arch_->build_layer(*this, c, w_.layers[il], il));
  }
  return absl::OkStatus();
}

absl::Status Engine::StepSequences(std::span<Engine* const> seqs,
                                   std::span<const int32_t> tokens) {
  const int64_t n = static_cast<int64_t>(seqs.size());
  if (n == 0 || seqs.size() != tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("engine: ", seqs.size(), " sequences and ",
                                                   tokens.size(), " tokens to step"));
  }
  if (n > batch_sequences_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "engine: ", n, " sequences exceed the ", batch_sequences_, " it decodes together"));
  }
  if (n > 1 && !CanStepSequences()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "engine: ", c_.arch, " runs an attention of its own; its sequences step one at a time"));
  }
  MOESTREAM_RETURN_IF_ERROR(CheckTokens(tokens));
  runs_.clear();
  for (int64_t i = 0; i < n; ++i) {
    Engine* e = seqs[size_t(i)];
    if (e == nullptr || &e->be_ != &be_ || &e->c_ != &c_ || &e->w_ != &w_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "engine: sequence ", i, " belongs to another model or backend"));
    }
    for (int64_t j = 0; j < i; ++j) {
      if (seqs[size_t(j)] == e) {
        return absl::InvalidArgumentError(absl::StrCat("engine: sequence ", i, " repeats ", j));
      }
    }
    if (e->n_past_ + 1 > e->kv_->n_ctx()) {
      return absl::OutOfRangeError(absl::StrCat("context full: sequence ", i, " holds ",
                                                e->n_past_, " of ", e->kv_->n_ctx(), " positions"));
    }
    runs_.push_back(Run{e, i, 1, e->n_past_});
  }
  MOESTREAM_RETURN_IF_ERROR(Forward(tokens.data(), n));
  const int64_t D = c_.n_embd;
  be_.RmsNorm(x_, w_.output_norm, h_, n, D, c_.rms_eps);
  be_.MatMul(w_.output, h_, n, logits_dev_);
  step_logits_.resize(size_t(n * n_vocab_));
  MOESTREAM_RETURN_IF_ERROR(
      be_.CopyToHost(step_logits_.data(), logits_dev_, n * n_vocab_ * sizeof(float)));
  for (int64_t i = 0; i < n; ++i) {
    Engine& e = *seqs[size_t(i)];
    if (e.logits_.size() < size_t(n_vocab_)) e.logits_.resize(size_t(n_vocab_));
    std::copy_n(step_logits_.begin() + i * n_vocab_, n_vocab_, e.logits_.begin());
    e.logits_rows_ = 1;
    e.n_past_ += 1;
  }
  return absl::OkStatus();
}

model::KvLayer Engine::Kv(int layer) {
  // Architectures with an attention of their own run one sequence per
  // chunk (StepSequences refuses more).
  const Run& r = runs_.front();
  KvCache& kv = *r.owner->kv_;
  return {kv.keys(layer), kv.values(layer), kv.KeyAt(layer, r.pos0), kv.ValueAt(layer, r.pos0),
          kv.type()};
}

absl::Status Engine::SelectOnHost(int layer, int64_t n, int k) {
  const model::ModelConfig& c = c_;
  const int64_t E = c.n_expert;
  MOESTREAM_RETURN_IF_ERROR(be_.CopyToHost(router_host_.data(), router_, n * E * sizeof(float)));
  const std::vector<float>& bias = bias_host_[size_t(layer)];
  const int64_t G = c.n_expert_groups, per_group = E / G;
  std::vector<float> score(E), group_score(G);
  std::vector<int32_t> order(std::max(E, G));
  for (int64_t t = 0; t < n; ++t) {
    const float* p = router_host_.data() + t * E;
    // The bias steers the choice only; the weights are the gated p.
    for (int64_t e = 0; e < E; ++e) score[e] = bias.empty() ? p[e] : p[e] + bias[size_t(e)];
    if (G > 1) {
      for (int64_t g = 0; g < G; ++g) {
        float best = -INFINITY, second = -INFINITY;
        for (int64_t e = g * per_group; e < (g + 1) * per_group; ++e) {
          if (score[e] > best) {
            second = best;
            best = score[e];
          } else if (score[e] > second) {
            second = score[e];
          }
        }
        group_score[g] = per_group > 1 ? best + second : best;
      }
      std::iota(order.begin(), order.begin() + G, 0);
      std::stable_sort(order.begin(), order.begin() + G,
                       [&](int32_t a, int32_t b) { return group_score[a] > group_score[b]; });
      for (int64_t r = c.n_group_used; r < G; ++r) {
        for (int64_t e = order[r] * per_group; e < (order[r] + 1) * per_group; ++e) {
          score[e] = -INFINITY;
        }
      }
    }
    std::iota(order.begin(), order.begin() + E, 0);
    std::stable_sort(order.begin(), order.begin() + E,
                     [&](int32_t a, int32_t b) { return score[a] > score[b]; });
    float sum = 0;
    for (int j = 0; j < k; ++j) {
      topk_ids_[t * k + j] = order[j];
      topk_w_[t * k + j] = p[order[j]];
      sum += p[order[j]];
    }
    if (c.norm_topk) {
      // llama.cpp clamps the sum from below by 2^-14.
      const float inv = 1.0f / std::max(sum, 6.103515625e-5f);
      for (int j = 0; j < k; ++j) topk_w_[t * k + j] *= inv;
    }
  }
  return absl::OkStatus();
}

void Engine::NormInput(const float* w) { be_.RmsNorm(x_, w, h_, chunk_n_, c_.n_embd, c_.rms_eps); }

absl::Status Engine::Attention(int il, const model::LayerWeights& l,
                               const model::AttentionOptions& o) {
  const model::ModelConfig& c = c_;
  const int64_t n = chunk_n_, D = c.n_embd;
  // One dispatch for the three projections of the same input.
  const kernels::MatMulJob qkv[3] = {{l.wq, h_, n, q_}, {l.wk, h_, n, k_}, {l.wv, h_, n, v_}};
  be_.MatMulBatch(qkv);
  if (l.bq != nullptr) be_.AddBias(q_, l.bq, n, c.q_dim());
  if (l.bk != nullptr) be_.AddBias(k_, l.bk, n, c.kv_dim());
  if (l.bv != nullptr) be_.AddBias(v_, l.bv, n, c.kv_dim_v());
  if (o.qk_norm) {
    be_.RmsNorm(q_, l.q_norm, q_, n * c.n_head, c.head_dim_k, c.rms_eps);
    be_.RmsNorm(k_, l.k_norm, k_, n * c.n_head_kv, c.head_dim_k, c.rms_eps);
  }
  if (o.rope) {
    be_.Rope(q_, n, c.n_head, c.head_dim_k, pos_dev_, rope_);
    be_.Rope(k_, n, c.n_head_kv, c.head_dim_k, pos_dev_, rope_);
  }
  if (o.qk_unit_norm_after_rope) {
    be_.RmsNorm(q_, nullptr, q_, n * c.n_head, c.head_dim_k, c.rms_eps);
    be_.RmsNorm(k_, nullptr, k_, n * c.n_head_kv, c.head_dim_k, c.rms_eps);
  }
  if (o.temp_scale != 0 && o.temp_floor > 0) {
    for (int64_t t = 0; t < n; ++t) {
      const double steps = std::floor(double(pos_host_[size_t(t)] + 1) / double(o.temp_floor));
      const float s = 1.0f + o.temp_scale * float(std::log(steps + 1.0));
      if (s != 1.0f) be_.Scale(q_ + t * c.q_dim(), s, c.q_dim());
    }
  }
  // Each run: its sequence's new keys and values into its KV cache, then
  // its queries against that cache.
  const float scale =
      c.attn_scale > 0 ? c.attn_scale : 1.0f / std::sqrt(static_cast<float>(c.head_dim_k));
  for (const Run& r : runs_) {
    KvCache& kv = *r.owner->kv_;
    be_.StoreKv(k_ + r.first * c.kv_dim(), kv.KeyAt(il, r.pos0), kv.type(), r.count * c.kv_dim());
    be_.StoreKv(v_ + r.first * c.kv_dim_v(), kv.ValueAt(il, r.pos0), kv.type(),
                r.count * c.kv_dim_v());
    kernels::AttentionArgs a;
    a.q = q_ + r.first * c.q_dim();
    a.k_cache = kv.keys(il);
    a.v_cache = kv.values(il);
    a.kv_type = kv.type();
    a.n_tok = r.count;
    a.n_head = c.n_head;
    a.n_kv_head = c.n_head_kv;
    a.head_dim = c.head_dim_k;
    a.pos0 = r.pos0;
    a.scale = scale;
    a.out = attn_ + r.first * c.n_head * c.head_dim_v;
    a.chunk = o.chunk;
    a.window = o.window;
    a.sinks = l.attn_sinks;
    be_.Attention(a);
  }
  be_.MatMul(l.wo, attn_, n, h_);
  if (l.bo != nullptr) be_.AddBias(h_, l.bo, n, D);
  be_.Add(x_, h_, x_, n * D);
  return absl::OkStatus();
}

void Engine::SwiGlu(const kernels::WeightView& gate, const kernels::WeightView& up,
                    const kernels::WeightView& down, int64_t width) {
  const int64_t n = chunk_n_;
  // The output goes through attn_ (at least n_embd wide per token), so h_
  // stays the sub-block's input for pieces that follow (routed experts).
  const kernels::MatMulJob gate_up[2] = {{gate, h_, n, ffn_gate_}, {up, h_, n, ffn_up_}};
  be_.MatMulBatch(gate_up);
  be_.SiluMul(ffn_gate_, ffn_up_, ffn_gate_, n * width);
  be_.MatMul(down, ffn_gate_, n, attn_);
  be_.Add(x_, attn_, x_, n * c_.n_embd);
}

absl::Status Engine::DenseFfn(const model::LayerWeights& l) {
  SwiGlu(l.ffn_gate, l.ffn_up, l.ffn_down, c_.n_ff);
  return absl::OkStatus();
}

absl::Status Engine::SharedExperts(const model::LayerWeights& l) {
  if (l.shexp_gate.data == nullptr || c_.n_ff_shexp <= 0) {
    return absl::FailedPreconditionError("engine: the layer has no shared expert weights");
  }
  SwiGlu(l.shexp_gate, l.shexp_up, l.shexp_down, c_.n_ff_shexp);
  return absl::OkStatus();
}

absl::Status Engine::RoutedExperts(int il, const model::LayerWeights& l,
                                   const model::RoutingOptions& o) {
  const model::ModelConfig& c = c_;
  const int64_t n = chunk_n_;
  const int k = static_cast<int>(c.n_expert_used);
  experts_->OnFfnInput(il, h_, n);
  be_.MatMul(l.router, h_, n, router_);
  if (l.router_b != nullptr) be_.AddBias(router_, l.router_b, n, c.n_expert);
  if (c.gating == model::ExpertGating::kSoftmax) {
    be_.Softmax(router_, n, c.n_expert);
  } else if (c.gating == model::ExpertGating::kSigmoid) {
    be_.Sigmoid(router_, n * c.n_expert);
  }  // kSoftmaxSelected: the softmax runs over the k selected logits below
  if (c.n_expert_groups > 1 || l.exp_probs_b != nullptr) {
    MOESTREAM_RETURN_IF_ERROR(SelectOnHost(il, n, k));
  } else {
    // All tokens in one call, ids then weights adjacent, one read-back.
    const bool selected = c.gating == model::ExpertGating::kSoftmaxSelected;
    auto* ids_dev = static_cast<int32_t*>(topk_dev_);
    auto* w_dev = reinterpret_cast<float*>(ids_dev + n * k);
    be_.TopKRows(router_, n, c.n_expert, k, c.norm_topk && !selected, ids_dev, w_dev);
    if (selected) be_.Softmax(w_dev, n, k);
    MOESTREAM_RETURN_IF_ERROR(
        be_.CopyToHost(topk_host_.data(), topk_dev_, size_t(n * k) * 2 * sizeof(int32_t)));
    std::memcpy(topk_ids_.data(), topk_host_.data(), size_t(n * k) * sizeof(int32_t));
    std::memcpy(topk_w_.data(), topk_host_.data() + n * k, size_t(n * k) * sizeof(float));
  }
  if (c.expert_weights_scale != 1.0f) {
    for (int64_t i = 0; i < n * k; ++i) topk_w_[i] *= c.expert_weights_scale;
  }
  if (o.weight_input) {
    // y = expert(w · h): scale each token's input by its one weight, then
    // let the provider add the experts' outputs unweighted.
    if (k != 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("engine: weights on the expert input need top-1 routing, not top-", k));
    }
    for (int64_t t = 0; t < n; ++t) {
      be_.Scale(h_ + t * c.n_embd, topk_w_[t], c.n_embd);
      topk_w_[t] = 1.0f;
    }
  }
  return experts_->Compute(il, h_, n, topk_ids_.data(), topk_w_.data(), k, x_);
}

}  // namespace moestream::engine
