// Architecture `deepseek2` (DeepSeek-V2, V2-Lite, V3, R1, Kimi-K2), as
// llama.cpp's deepseek2 graph computes it:
// - multi-head latent attention. q = attn_q_b(RMSNorm(attn_q_a h)) (or a
//   plain attn_q), per head [q_nope | q_pe]; attn_kv_a_mqa h = [c | k_pe],
//   c RMS-normalised. The KV cache holds per position the key row
//   [RoPE(k_pe) | c] and the latent c as the value, not full K and V. The
//   attention runs absorbed: q_nope is multiplied by attn_k_b per head into
//   the latent space, so one cached row serves every head (MQA); attn_v_b
//   decompresses each head's output, then attn_output;
// - RoPE (NORMAL) on the rope part only, YaRN with the attention factor in
//   the softmax scale: (1 + yarn_log_multiplier · ln factor)² / sqrt(nope +
//   rope), and cos/sin left unscaled;
// - leading_dense_block_count dense layers, then MoE layers with
//   expert_shared_count shared experts (resident, unweighted) and routed
//   experts: softmax or sigmoid gating, the exp_probs_b selection bias,
//   group-limited top-k, expert_weights_norm and expert_weights_scale.
// Only GGUFs with the split attn_k_b / attn_v_b tensors (and the
// attention.key_length_mla key) of current converters are read.
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "model/architecture.h"

namespace moestream::model {
namespace {

// The scratch buffers of the attention (ArchSpec::scratch order).
enum Scratch { kQa, kQ, kQcat, kHeadIn, kHeadOut, kLatent, kKpe, kKcat, kOlat, kVout, kCount };

int64_t Nope(const ModelConfig& c) { return c.head_dim_k_mla - c.rope.n_rot; }

absl::Status ReadDeepseek2Config(const HparamReader& r, ModelConfig* c) {
  CommonHparamDefaults d;
  d.rms_eps = 1e-6;
  d.rope_freq_base = 10000;
  d.rope_mode = kernels::RopeMode::kNormal;
  MOESTREAM_RETURN_IF_ERROR(ReadCommonHparams(r, d, c));
  const std::string& path = r.file().path();
  MOESTREAM_ASSIGN_OR_RETURN(c->q_lora_rank, r.IntOr("attention.q_lora_rank", 0));
  MOESTREAM_ASSIGN_OR_RETURN(c->kv_lora_rank, r.Int("attention.kv_lora_rank"));
  if (!r.Has("attention.key_length_mla")) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", r.Key("attention.key_length_mla"),
        " is missing: an older deepseek2 GGUF (attn_kv_b); convert it again with a current "
        "llama.cpp"));
  }
  MOESTREAM_ASSIGN_OR_RETURN(c->head_dim_k_mla, r.Int("attention.key_length_mla"));
  MOESTREAM_ASSIGN_OR_RETURN(c->head_dim_v_mla, r.Int("attention.value_length_mla"));
  if (c->n_head_kv != 1 || c->head_dim_k != c->kv_lora_rank + c->rope.n_rot ||
      c->head_dim_v != c->kv_lora_rank || c->head_dim_k_mla <= c->rope.n_rot ||
      c->head_dim_v_mla <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": deepseek2 attention keys disagree: head_count_kv ", c->n_head_kv,
        " (expected 1), key_length ", c->head_dim_k, " (expected kv_lora_rank + rope dims = ",
        c->kv_lora_rank + c->rope.n_rot, "), value_length ", c->head_dim_v, " (expected ",
        c->kv_lora_rank, "), key_length_mla ", c->head_dim_k_mla, ", value_length_mla ",
        c->head_dim_v_mla));
  }
  MOESTREAM_ASSIGN_OR_RETURN(c->n_dense_lead, r.IntOr("leading_dense_block_count", 0));
  MOESTREAM_ASSIGN_OR_RETURN(int64_t shared, r.IntOr("expert_shared_count", 0));
  c->n_ff_shexp = shared * c->n_ff_exp;
  MOESTREAM_ASSIGN_OR_RETURN(c->n_expert_groups, r.IntOr("expert_group_count", 1));
  MOESTREAM_ASSIGN_OR_RETURN(c->n_group_used, r.IntOr("expert_group_used_count", 1));
  if (c->n_expert_groups <= 0) c->n_expert_groups = 1;
  if (c->n_group_used <= 0) c->n_group_used = c->n_expert_groups;
  // Absent means off for this architecture.
  MOESTREAM_ASSIGN_OR_RETURN(c->norm_topk, r.BoolOr("expert_weights_norm", false));

  // YaRN: llama.cpp reads neither beta key for deepseek2 (defaults 32, 1),
  // folds the magnitude into the softmax scale and cancels it on cos/sin.
  kernels::RopeParams& rope = c->rope;
  rope.beta_fast = 32.0f;
  rope.beta_slow = 1.0f;
  float mscale = 1.0f;
  if (rope.scaling == kernels::RopeScaling::kYarn && rope.freq_scale > 0 && rope.freq_scale < 1) {
    MOESTREAM_ASSIGN_OR_RETURN(double log_mul, r.FloatOr("rope.scaling.yarn_log_multiplier", 0.0));
    const float ln = std::log(1.0f / rope.freq_scale);
    mscale = 1.0f + static_cast<float>(log_mul) * ln;
    rope.attn_factor = 1.0f / (1.0f + 0.1f * ln);
  }
  c->attn_scale = mscale * mscale / std::sqrt(static_cast<float>(c->head_dim_k_mla));
  return absl::OkStatus();
}

absl::Status BindDeepseek2Layer(LayerBinder& b, const ModelConfig& c, int il, LayerWeights* l) {
  const int64_t D = c.n_embd, H = c.n_head, R = c.rope.n_rot, L = c.kv_lora_rank;
  const std::string p = absl::StrCat("blk.", il, ".");
  MOESTREAM_ASSIGN_OR_RETURN(l->attn_norm, b.Vector(p + "attn_norm.weight", D));
  if (c.q_lora_rank > 0) {
    MOESTREAM_ASSIGN_OR_RETURN(l->wq_a, b.Matrix(p + "attn_q_a.weight", D, c.q_lora_rank));
    MOESTREAM_ASSIGN_OR_RETURN(l->q_a_norm, b.Vector(p + "attn_q_a_norm.weight", c.q_lora_rank));
    MOESTREAM_ASSIGN_OR_RETURN(
        l->wq_b, b.Matrix(p + "attn_q_b.weight", c.q_lora_rank, H * c.head_dim_k_mla));
  } else {
    MOESTREAM_ASSIGN_OR_RETURN(l->wq_b, b.Matrix(p + "attn_q.weight", D, H * c.head_dim_k_mla));
  }
  MOESTREAM_ASSIGN_OR_RETURN(kernels::WeightView kv_a, b.Matrix(p + "attn_kv_a_mqa.weight", D, L + R));
  l->wkv_a_latent = RowsOf(kv_a, 0, L);
  l->wkv_a_rope = RowsOf(kv_a, L, R);
  MOESTREAM_ASSIGN_OR_RETURN(l->kv_a_norm, b.Vector(p + "attn_kv_a_norm.weight", L));
  MOESTREAM_ASSIGN_OR_RETURN(l->wk_b, b.Stacked(p + "attn_k_b.weight", Nope(c), L, H));
  l->wk_b_stride = RowBytes(l->wk_b.type, Nope(c)) * uint64_t(L);
  MOESTREAM_ASSIGN_OR_RETURN(l->wv_b, b.Stacked(p + "attn_v_b.weight", L, c.head_dim_v_mla, H));
  l->wv_b_stride = RowBytes(l->wv_b.type, L) * uint64_t(c.head_dim_v_mla);
  MOESTREAM_ASSIGN_OR_RETURN(l->wo, b.Matrix(p + "attn_output.weight", H * c.head_dim_v_mla, D));
  return BindFfn(b, c, il, l);
}

std::vector<int64_t> Deepseek2Scratch(const ModelConfig& c) {
  const int64_t H = c.n_head, L = c.kv_lora_rank, R = c.rope.n_rot;
  std::vector<int64_t> w(kCount);
  w[kQa] = std::max<int64_t>(c.q_lora_rank, 1);
  w[kQ] = H * c.head_dim_k_mla;
  w[kQcat] = H * (R + L);
  w[kHeadIn] = H * std::max(Nope(c), L);
  w[kHeadOut] = H * std::max(L, c.head_dim_v_mla);
  w[kLatent] = L;
  w[kKpe] = R;
  w[kKcat] = R + L;
  w[kOlat] = H * L;
  w[kVout] = H * c.head_dim_v_mla;
  return w;
}

// For each head hd: head_out[hd] (n rows of n_out) = W_hd · the hd-th
// `width`-wide column block of `in` (n rows of `in_row`, blocks `step`
// apart). One batched matmul over the heads.
void PerHeadMatMul(kernels::Backend& be, const kernels::WeightView& w, uint64_t stride, int64_t heads,
                   int64_t n, const float* in, int64_t in_row, int64_t step, float* head_in,
                   float* head_out) {
  const int64_t width = w.n_in;
  std::vector<kernels::MatMulJob> jobs(static_cast<size_t>(heads));
  for (int64_t hd = 0; hd < heads; ++hd) {
    be.Copy2D(head_in + hd * n * width, width, in + hd * step, in_row, n, width);
    jobs[size_t(hd)] = {MatrixOf(w, stride, hd), head_in + hd * n * width, n,
                        head_out + hd * n * w.n_out};
  }
  be.MatMulBatch(jobs);
}

// x += attn_output(attention of h), absorbed form over the latent cache.
absl::Status LatentAttention(BlockOps& ops, const ModelConfig& c, const LayerWeights& l, int il) {
  kernels::Backend& be = ops.backend();
  const int64_t n = ops.n_tok(), H = c.n_head, R = c.rope.n_rot, L = c.kv_lora_rank;
  const int64_t nope = Nope(c), dq = c.head_dim_k_mla, dv = c.head_dim_v_mla, dk = R + L;
  float* h = ops.h();
  float* q = ops.Scratch(kQ);
  if (c.q_lora_rank > 0) {
    float* qa = ops.Scratch(kQa);
    be.MatMul(l.wq_a, h, n, qa);
    be.RmsNorm(qa, l.q_a_norm, qa, n, c.q_lora_rank, c.rms_eps);
    be.MatMul(l.wq_b, qa, n, q);
  } else {
    be.MatMul(l.wq_b, h, n, q);
  }
  float* latent = ops.Scratch(kLatent);
  float* kpe = ops.Scratch(kKpe);
  const kernels::MatMulJob kv[2] = {{l.wkv_a_latent, h, n, latent}, {l.wkv_a_rope, h, n, kpe}};
  be.MatMulBatch(kv);
  be.RmsNorm(latent, l.kv_a_norm, latent, n, L, c.rms_eps);

  // Query per head in the cache's space: [q_pe | k_b · q_nope].
  float* head_in = ops.Scratch(kHeadIn);
  float* head_out = ops.Scratch(kHeadOut);
  float* qcat = ops.Scratch(kQcat);
  PerHeadMatMul(be, l.wk_b, l.wk_b_stride, H, n, q, H * dq, dq, head_in, head_out);
  for (int64_t hd = 0; hd < H; ++hd) {
    be.Copy2D(qcat + hd * dk, H * dk, q + hd * dq + nope, H * dq, n, R);
    be.Copy2D(qcat + hd * dk + R, H * dk, head_out + hd * n * L, L, n, L);
  }
  // RoPE turns the first R dims of each head: q_pe, and the shared k_pe.
  be.Rope(qcat, n, H, dk, ops.positions(), ops.rope());
  be.Rope(kpe, n, 1, R, ops.positions(), ops.rope());
  float* kcat = ops.Scratch(kKcat);
  be.Copy2D(kcat, dk, kpe, R, n, R);
  be.Copy2D(kcat + R, dk, latent, L, n, L);
  const KvLayer cache = ops.Kv(il);
  be.StoreKv(kcat, cache.keys_at, cache.type, n * dk);
  be.StoreKv(latent, cache.values_at, cache.type, n * L);

  float* olat = ops.Scratch(kOlat);
  kernels::AttentionArgs a;
  a.q = qcat;
  a.k_cache = cache.keys;
  a.v_cache = cache.values;
  a.kv_type = cache.type;
  a.n_tok = n;
  a.n_head = H;
  a.n_kv_head = 1;
  a.head_dim = dk;
  a.head_dim_v = L;
  a.pos0 = ops.pos0();
  a.scale = c.attn_scale;
  a.out = olat;
  be.Attention(a);

  // Decompress each head's output (attn_v_b), then attn_output.
  float* vout = ops.Scratch(kVout);
  PerHeadMatMul(be, l.wv_b, l.wv_b_stride, H, n, olat, H * L, L, head_in, head_out);
  for (int64_t hd = 0; hd < H; ++hd) {
    be.Copy2D(vout + hd * dv, H * dv, head_out + hd * n * dv, dv, n, dv);
  }
  float* out = ops.out();
  be.MatMul(l.wo, vout, n, out);
  be.Add(ops.x(), out, ops.x(), n * c.n_embd);
  return absl::OkStatus();
}

absl::Status BuildDeepseek2Layer(BlockOps& ops, const ModelConfig& c, const LayerWeights& l,
                                 int il) {
  ops.NormInput(l.attn_norm);
  MOESTREAM_RETURN_IF_ERROR(LatentAttention(ops, c, l, il));
  ops.NormInput(l.ffn_norm);
  if (!l.is_moe()) return ops.DenseFfn(l);
  if (c.n_ff_shexp > 0) MOESTREAM_RETURN_IF_ERROR(ops.SharedExperts(l));
  return ops.RoutedExperts(il, l);
}

}  // namespace

const ArchSpec kDeepseek2Arch = {"deepseek2",         &ReadDeepseek2Config, &BindDeepseek2Layer,
                                 &BuildDeepseek2Layer, &Deepseek2Scratch,    false};

}  // namespace moestream::model
