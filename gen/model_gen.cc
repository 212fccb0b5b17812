#include "gen/model_gen.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "io/checksum.h"
#include "kernels/quant.h"
#include "model/model_config.h"

namespace moestream::gen {
namespace {

// ---------------------------------------------------------------- PRNG

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// xoshiro256+ (Blackman & Vigna): fast, and its low-quality lowest bits are
// irrelevant here because every output is split into four 16-bit lanes whose
// sum approximates a normal draw.
class Xoshiro256Plus {
 public:
  explicit Xoshiro256Plus(uint64_t seed) {
    uint64_t sm = seed;
    for (uint64_t& w : s_) w = SplitMix64(sm);
  }
  uint64_t Next() {
    const uint64_t result = s_[0] + s_[3];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Approximately N(0, 1): the centred sum of four uniform 16-bit lanes
  // (Irwin-Hall, bounded at +-3.46), one 64-bit draw per value; far cheaper
  // than Box-Muller and plenty for synthetic weights.
  float Normal() {
    const uint64_t x = Next();
    const uint32_t sum = static_cast<uint32_t>(x & 0xFFFF) + ((x >> 16) & 0xFFFF) +
                         ((x >> 32) & 0xFFFF) + (x >> 48);
    constexpr float kScale = 1.7320508f / 65536.0f;  // 1 / std of the sum
    return (static_cast<float>(sum) - 131070.0f) * kScale;
  }

 private:
  uint64_t s_[4];
};

// The stream for one row of one logical matrix: independent of the storage
// type, the thread that draws it and (for experts) the tensor layout.
Xoshiro256Plus RowStream(uint64_t stream_key, uint64_t row) {
  uint64_t s = stream_key ^ (row * 0xD1B54A32D192ED03ull);
  return Xoshiro256Plus(SplitMix64(s));
}

// The tensor name's XXH64 (the project's one hash) keeps the streams of
// different tensors apart under one seed.
uint64_t StreamKey(uint64_t seed, std::string_view name) {
  uint64_t s = seed ^ io::Xxh64(name.data(), name.size());
  return SplitMix64(s);
}

// ---------------------------------------------------------------- tensor plan

// Writes `ne0` floats of row `row` (global within the logical matrix).
using RowGenFn = std::function<void(uint64_t row, float* out)>;

struct TensorPlan {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  uint64_t first_row = 0;  // offset of row 0 in the logical matrix's rows
  RowGenFn gen;
};

// Generates rows [0, rows) in parallel and stores them as `type` in `out`.
absl::Status FillRows(const TensorPlan& t, int threads, std::span<uint8_t> out) {
  const int64_t ne0 = t.ne[0];
  int64_t rows = 1;
  for (size_t i = 1; i < t.ne.size(); ++i) rows *= t.ne[i];
  const uint64_t row_bytes = RowBytes(t.type, ne0);
  if (out.size() != row_bytes * rows) {
    return absl::InternalError(absl::StrCat("tensor '", t.name, "': writer asked for ",
                                            out.size(), " bytes, expected ",
                                            row_bytes * rows));
  }
  // At least ~256K elements per worker, so small tensors stay on one thread.
  const int64_t max_workers = std::max<int64_t>(1, rows * ne0 / (256 << 10));
  const int workers = static_cast<int>(std::min<int64_t>({threads, max_workers, rows}));
  std::vector<absl::Status> status(workers);
  auto work = [&](int w) {
    const int64_t begin = rows * w / workers;
    const int64_t end = rows * (w + 1) / workers;
    std::vector<float> buf(ne0);
    for (int64_t r = begin; r < end; ++r) {
      uint8_t* dst = out.data() + r * row_bytes;
      t.gen(t.first_row + r, buf.data());
      if (t.type == GgmlType::kF32) {  // the writer's buffer need not be float-aligned
        std::memcpy(dst, buf.data(), row_bytes);
        continue;
      }
      absl::Status s = kernels::QuantizeRow(t.type, buf.data(), ne0, dst);
      if (!s.ok()) {
        status[w] = absl::Status(s.code(), absl::StrCat("tensor '", t.name, "' row ", r,
                                                        ": ", s.message()));
        return;
      }
    }
  };
  if (workers == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    pool.reserve(workers - 1);
    for (int w = 1; w < workers; ++w) pool.emplace_back(work, w);
    work(0);
    for (auto& th : pool) th.join();
  }
  for (const auto& s : status) MOESTREAM_RETURN_IF_ERROR(s);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- presets

struct Preset {
  const char* name;
  GenArch arch;
  int64_t layers, hidden, heads, kv_heads, head_dim, experts, top_k, expert_ffn, ffn, vocab,
      context;
  double rope_theta;  // 0 = architecture default
  // llama4 / deepseek2 extras (GenOptions fields of the same names).
  int64_t moe_every = 1, dense_lead = 0, shared_experts = 0, q_lora_rank = 0,
          kv_lora_rank = 512, rope_dim = 64, v_head_dim = 128;
  bool sigmoid_gating = false;
  int64_t expert_groups = 1, group_used = 1;
  double weights_scale = 1.0;
};

// Real shapes from the models' published configs (Mixtral-8x7B-v0.1,
// Qwen3-30B-A3B, Qwen3-235B-A22B); tiny/small keep every matrix row a
// multiple of 256 so every --type applies.
constexpr Preset kPresets[] = {
    {"tiny", GenArch::kQwen3Moe, 2, 256, 4, 2, 64, 8, 2, 256, 512, 512, 512, 0},
    {"small", GenArch::kQwen3Moe, 4, 512, 8, 4, 64, 16, 4, 256, 1024, 2048, 2048, 0},
    {"mixtral-8x7b", GenArch::kMixtral, 32, 4096, 32, 8, 128, 8, 2, 14336, 14336, 32000, 32768,
     1e6},
    {"qwen3-30b-a3b", GenArch::kQwen3Moe, 48, 2048, 32, 4, 128, 128, 8, 768, 6144, 151936, 40960,
     1e6},
    {"qwen3-235b-a22b", GenArch::kQwen3Moe, 94, 4096, 64, 4, 128, 128, 8, 1536, 12288, 151936,
     40960, 1e6},
    {"mixtral-8x22b", GenArch::kMixtral, 56, 6144, 48, 8, 128, 8, 2, 16384, 16384, 32768, 65536,
     1e6},
    // Llama-4-Scout-17B-16E and Llama-4-Maverick-17B-128E: every layer MoE
    // (Scout) or every second (Maverick), one shared expert.
    {"llama4-scout", GenArch::kLlama4, 48, 5120, 40, 8, 128, 16, 1, 8192, 16384, 202048, 262144,
     5e5, 1, 0, 1},
    {"llama4-maverick", GenArch::kLlama4, 48, 5120, 40, 8, 128, 128, 1, 8192, 16384, 202048,
     262144, 5e5, 2, 0, 1},
    // DeepSeek-V2-Lite and DeepSeek-V3 (R1 has V3's shape): head_dim is
    // qk_nope_head_dim; kv_heads is unused (MLA caches one latent row).
    {"deepseek-v2-lite", GenArch::kDeepseek2, 27, 2048, 16, 16, 128, 64, 6, 1408, 10944, 102400,
     163840, 1e4, 1, 1, 2, 0, 512, 64, 128},
    {"deepseek-v3", GenArch::kDeepseek2, 61, 7168, 128, 128, 128, 256, 8, 2048, 18432, 129280,
     163840, 1e4, 1, 3, 1, 1536, 512, 64, 128, true, 8, 4, 2.5},
    // gpt-oss-20b and gpt-oss-120b: 64 query heads of 64 over a 2880-wide
    // residual, 8 KV heads, sliding window 128 on every other layer.
    {"gpt-oss-20b", GenArch::kGptOss, 24, 2880, 64, 8, 64, 32, 4, 2880, 2880, 201088, 131072,
     150000},
    {"gpt-oss-120b", GenArch::kGptOss, 36, 2880, 64, 8, 64, 128, 4, 2880, 2880, 201088, 131072,
     150000},
};

const Preset* FindPreset(std::string_view name) {
  for (const Preset& p : kPresets) {
    if (name == p.name) return &p;
  }
  return nullptr;
}

bool SupportedType(GgmlType t) {
  const std::span<const GgmlType> types = GenTypes();
  return std::find(types.begin(), types.end(), t) != types.end();
}

bool IsQuantized(GgmlType t) {
  return t != GgmlType::kF32 && t != GgmlType::kF16 && t != GgmlType::kBF16;
}

int64_t RoundTo256(double x) {
  return std::max<int64_t>(256, static_cast<int64_t>(std::llround(x / 256.0)) * 256);
}

}  // namespace

std::span<const GgmlType> GenTypes() {
  static constexpr GgmlType kTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16,
                                        GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K,
                                        GgmlType::kQ5_K, GgmlType::kQ6_K};
  return kTypes;
}

// ---------------------------------------------------------------- names

std::string_view GenArchName(GenArch a) {
  switch (a) {
    case GenArch::kQwen3Moe:
      return "qwen3moe";
    case GenArch::kMixtral:
      return "mixtral";
    case GenArch::kLlama:
      return "llama";
    case GenArch::kLlama4:
      return "llama4";
    case GenArch::kDeepseek2:
      return "deepseek2";
    case GenArch::kGptOss:
      return "gpt-oss";
  }
  return "unknown";
}

absl::StatusOr<GenArch> ParseGenArch(std::string_view name) {
  for (GenArch a : {GenArch::kQwen3Moe, GenArch::kMixtral, GenArch::kLlama, GenArch::kLlama4,
                    GenArch::kDeepseek2, GenArch::kGptOss}) {
    if (name == GenArchName(a)) return a;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--arch: unknown architecture '", Av(name),
                   "' (expected qwen3moe, mixtral, llama, llama4, deepseek2 or gpt-oss)"));
}

std::string_view ExpertLayoutName(ExpertLayout l) {
  return l == ExpertLayout::kStacked ? "stacked" : "split";
}

absl::StatusOr<ExpertLayout> ParseExpertLayout(std::string_view name) {
  if (name == "stacked") return ExpertLayout::kStacked;
  if (name == "split") return ExpertLayout::kSplit;
  return absl::InvalidArgumentError(absl::StrCat("--expert-layout: unknown layout '", Av(name),
                                                 "' (expected stacked or split)"));
}

uint32_t FileTypeOf(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return 0;  // LLAMA_FTYPE_ALL_F32
    case GgmlType::kF16:
      return 1;  // LLAMA_FTYPE_MOSTLY_F16
    case GgmlType::kQ4_0:
      return 2;  // LLAMA_FTYPE_MOSTLY_Q4_0
    case GgmlType::kQ8_0:
      return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case GgmlType::kQ4_K:
      return 14;  // LLAMA_FTYPE_MOSTLY_Q4_K_S
    case GgmlType::kQ5_K:
      return 16;  // LLAMA_FTYPE_MOSTLY_Q5_K_S
    case GgmlType::kQ6_K:
      return 18;  // LLAMA_FTYPE_MOSTLY_Q6_K
    case GgmlType::kBF16:
      return 32;  // LLAMA_FTYPE_MOSTLY_BF16
    default:
      return 0;
  }
}

// ---------------------------------------------------------------- options

double GenOptions::RopeTheta() const {
  if (rope_theta > 0) return rope_theta;
  switch (arch) {
    case GenArch::kLlama:
    case GenArch::kDeepseek2:
      return 1e4;
    case GenArch::kLlama4:
      return 5e5;
    case GenArch::kGptOss:
      return 150000;
    default:
      return 1e6;
  }
}

double GenOptions::RmsEps() const {
  if (rms_eps > 0) return rms_eps;
  return arch == GenArch::kQwen3Moe || arch == GenArch::kDeepseek2 ? 1e-6 : 1e-5;
}

std::string GenOptions::Name() const {
  if (!name.empty()) return name;
  return absl::StrCat("synthetic-", Av(GenArchName(arch)), "-",
                      Av(mix != QuantMix::kNone ? QuantMixName(mix) : GgmlTypeName(type)));
}

absl::Status GenOptions::Validate() const {
  auto positive = [](const char* flag, int64_t v) -> absl::Status {
    if (v >= 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(flag, " must be >= 1 (got ", v, ")"));
  };
  MOESTREAM_RETURN_IF_ERROR(positive("--layers", layers));
  MOESTREAM_RETURN_IF_ERROR(positive("--hidden", hidden));
  MOESTREAM_RETURN_IF_ERROR(positive("--heads", heads));
  MOESTREAM_RETURN_IF_ERROR(positive("--kv-heads", kv_heads));
  MOESTREAM_RETURN_IF_ERROR(positive("--head-dim", head_dim));
  MOESTREAM_RETURN_IF_ERROR(positive("--vocab", vocab));
  MOESTREAM_RETURN_IF_ERROR(positive("--context", context));
  const bool moe = arch != GenArch::kLlama;
  if (moe) {
    MOESTREAM_RETURN_IF_ERROR(positive("--experts", experts));
    MOESTREAM_RETURN_IF_ERROR(positive("--top-k", top_k));
    MOESTREAM_RETURN_IF_ERROR(positive("--expert-ffn", expert_ffn));
    if (top_k > experts) {
      return absl::InvalidArgumentError(
          absl::StrCat("--top-k ", top_k, " exceeds --experts ", experts));
    }
  }
  if (arch != GenArch::kMixtral) MOESTREAM_RETURN_IF_ERROR(positive("--ffn", ffn));
  if (heads % kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--heads ", heads,
                                                   " is not a multiple of --kv-heads ", kv_heads));
  }
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--head-dim ", head_dim, " must be even (rope rotates pairs)"));
  }
  // The bounds a reader puts on a model (model::ModelConfig::Validate): a
  // model gen writes must load, and a typo such as --vocab 1000000000 must
  // not try to build a billion-token vocabulary.
  for (auto [flag, v, hi] : {std::tuple{"--layers", layers, model::kMaxLayers},
                             {"--hidden", hidden, model::kMaxWidth},
                             {"--heads", heads, model::kMaxHeads},
                             {"--kv-heads", kv_heads, model::kMaxHeads},
                             {"--head-dim", head_dim, model::kMaxHeadDim},
                             {"--vocab", vocab, model::kMaxVocab},
                             {"--context", context, model::kMaxContext},
                             {"--experts", experts, model::kMaxExperts},
                             {"--expert-ffn", expert_ffn, model::kMaxFfn},
                             {"--ffn", ffn, model::kMaxFfn}}) {
    if (v > hi) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " ", v, " is out of range 1..", hi));
    }
  }
  if (arch == GenArch::kLlama4 || arch == GenArch::kDeepseek2) {
    for (auto [flag, v, lo, hi] :
         {std::tuple{"--moe-every", moe_every, int64_t{1}, layers},
          {"--dense-lead", dense_lead, int64_t{0}, layers - 1},
          {"--shared-experts", shared_experts, int64_t{0}, int64_t{64}},
          {"--q-lora-rank", q_lora_rank, int64_t{0}, model::kMaxWidth},
          {"--kv-lora-rank", kv_lora_rank, int64_t{1}, model::kMaxHeadDim},
          {"rope dims", rope_dim, int64_t{2}, model::kMaxHeadDim},
          {"v head dim", v_head_dim, int64_t{1}, model::kMaxHeadDim},
          {"expert groups", expert_groups, int64_t{1}, experts},
          {"groups used", group_used, int64_t{1}, expert_groups}}) {
      if (v < lo || v > hi) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, " ", v, " is out of range ", lo, "..", hi));
      }
    }
    if (experts % expert_groups != 0 || rope_dim % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "experts ", experts, " must be a multiple of the expert groups ", expert_groups,
          " and rope dims ", rope_dim, " even"));
    }
  }
  if (!SupportedType(type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--type ", Av(GgmlTypeName(type)), " is not supported (expected ",
                     GgmlTypeNames(GenTypes()), ")"));
  }
  if (expert_layout == ExpertLayout::kSplit && arch != GenArch::kMixtral) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--expert-layout split applies to --arch mixtral only, not ", Av(GenArchName(arch))));
  }
  if (!(rope_theta >= 0) || !std::isfinite(rope_theta)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rope-theta must be positive (got ", rope_theta, ")"));
  }
  if (!(rms_eps >= 0) || !std::isfinite(rms_eps)) {
    return absl::InvalidArgumentError(absl::StrCat("rms_eps must be positive (got ", rms_eps, ")"));
  }
  if (!(router_skew >= 0) || !std::isfinite(router_skew)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--router-skew must be >= 0 (got ", router_skew, ")"));
  }
  if (threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--threads must be >= 0 (got ", threads, ")"));
  }
  // Every matrix row (ne0) must hold whole blocks of the type.
  const uint32_t block = GgmlTypeTraitsOf(type)->block_elems;
  auto whole = [&](const char* what, int64_t v) -> absl::Status {
    if (v % block == 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        what, " = ", v, " is not a multiple of ", block, ", the block size of --type ",
        Av(GgmlTypeName(type))));
  };
  if (arch == GenArch::kGptOss) {
    // MXFP4 experts need whole 32-element blocks in every row; other
    // matrices fall back to Q8_0 where a K-quant block does not fit
    // (gpt-oss's 2880).
    if (hidden % 32 != 0 || heads * head_dim % 32 != 0 || expert_ffn % 32 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gpt-oss: --hidden ", hidden, ", --heads x --head-dim ", heads * head_dim,
          " and --expert-ffn ", expert_ffn, " must be multiples of 32 (MXFP4 blocks)"));
    }
    if (sliding_window < 1 || sliding_window > model::kMaxContext) {
      return absl::InvalidArgumentError(absl::StrCat("--sliding-window ", sliding_window,
                                                     " is out of range 1..", model::kMaxContext));
    }
    return absl::OkStatus();
  }
  MOESTREAM_RETURN_IF_ERROR(whole("--hidden", hidden));
  MOESTREAM_RETURN_IF_ERROR(whole("--heads x --head-dim", heads * head_dim));
  // The FFN widths are the rows of ffn_down: where they hold no whole block
  // of a K-quant, those tensors fall back to Q8_0 (as llama.cpp's quantizer
  // does; DeepSeek-V2-Lite's 1408), which needs multiples of 32.
  auto whole32 = [&](const char* what, int64_t v) -> absl::Status {
    if (v % block == 0 || (v % 32 == 0 && type != GgmlType::kF32)) return absl::OkStatus();
    return whole(what, v);
  };
  if (moe) MOESTREAM_RETURN_IF_ERROR(whole32("--expert-ffn", expert_ffn));
  if (arch == GenArch::kLlama) MOESTREAM_RETURN_IF_ERROR(whole32("--ffn", ffn));
  return absl::OkStatus();
}

// ---------------------------------------------------------------- presets

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

GenArch PresetDefaultArch(std::string_view preset) {
  const Preset* p = FindPreset(preset);
  return p ? p->arch : GenArch::kQwen3Moe;
}

absl::StatusOr<GenOptions> PresetOptions(std::string_view preset, GenArch arch) {
  const Preset* p = FindPreset(preset);
  if (p == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--preset: unknown preset '", Av(preset),
                                                   "' (expected ",
                                                   absl::StrJoin(PresetNames(), ", "), ")"));
  }
  GenOptions o;
  o.arch = arch;
  o.layers = p->layers;
  o.hidden = p->hidden;
  o.heads = p->heads;
  o.kv_heads = p->kv_heads;
  o.head_dim = p->head_dim;
  o.experts = p->experts;
  o.top_k = p->top_k;
  o.expert_ffn = p->expert_ffn;
  o.ffn = p->ffn;
  o.vocab = p->vocab;
  o.context = p->context;
  o.rope_theta = p->rope_theta;
  o.moe_every = p->moe_every;
  o.dense_lead = p->dense_lead;
  o.shared_experts = p->shared_experts;
  o.q_lora_rank = p->q_lora_rank;
  o.kv_lora_rank = p->kv_lora_rank;
  o.rope_dim = p->rope_dim;
  o.v_head_dim = p->v_head_dim;
  o.sigmoid_gating = p->sigmoid_gating;
  o.expert_groups = p->expert_groups;
  o.group_used = p->group_used;
  o.weights_scale = p->weights_scale;
  return o;
}

absl::Status ScaleOptions(double scale, bool scale_layers, GenOptions* o) {
  if (!(scale >= 1.0) || !std::isfinite(scale)) {
    return absl::InvalidArgumentError(absl::StrCat("--scale must be >= 1 (got ", scale, ")"));
  }
  const bool attn_fills_hidden = o->heads * o->head_dim == o->hidden;
  const int64_t group = (o->kv_heads > 0 && o->heads % o->kv_heads == 0)
                            ? o->heads / o->kv_heads
                            : 1;
  o->hidden = RoundTo256(o->hidden / scale);
  o->ffn = RoundTo256(o->ffn / scale);
  o->expert_ffn = RoundTo256(o->expert_ffn / scale);
  o->vocab = RoundTo256(o->vocab / scale);
  if (attn_fills_hidden && o->hidden % o->head_dim == 0) {
    o->heads = o->hidden / o->head_dim;
  } else {
    // Keep heads * head_dim (attn_output's row) a multiple of 256.
    const int64_t step = 256 / std::gcd<int64_t>(256, o->head_dim);
    o->heads = std::max<int64_t>(step, std::llround(o->heads / scale / step) * step);
  }
  o->kv_heads = std::max<int64_t>(1, o->heads / group);
  while (o->heads % o->kv_heads != 0) --o->kv_heads;
  if (scale_layers) {
    o->layers = std::max<int64_t>(1, std::llround(o->layers / scale));
    o->dense_lead = std::min(o->dense_lead, o->layers - 1);
    o->moe_every = std::min(o->moe_every, o->layers);
  }
  // deepseek2's latent widths shrink with the model (multiples of 64).
  auto shrink64 = [&](int64_t v) {
    return v == 0 ? 0 : std::max<int64_t>(64, std::llround(v / scale / 64.0) * 64);
  };
  o->q_lora_rank = shrink64(o->q_lora_rank);
  o->kv_lora_rank = shrink64(o->kv_lora_rank);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- model

absl::StatusOr<GenSummary> BuildModel(const GenOptions& o, io::GgufWriter* w) {
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  const bool llama4 = o.arch == GenArch::kLlama4;
  const bool ds = o.arch == GenArch::kDeepseek2;
  const bool oss = o.arch == GenArch::kGptOss;
  const std::string a(GenArchName(o.arch == GenArch::kMixtral ? GenArch::kLlama : o.arch));
  const bool moe = o.arch != GenArch::kLlama;
  const bool qwen = o.arch == GenArch::kQwen3Moe;
  // Layer l routes (the readers' ModelConfig::IsMoeLayer).
  auto is_moe_layer = [&](int l) {
    return moe && l >= o.dense_lead && (o.moe_every <= 1 || (l + 1) % o.moe_every == 0);
  };
  const int64_t h = o.hidden;
  const int64_t q_dim = o.heads * o.head_dim;
  const int64_t kv_dim = o.kv_heads * o.head_dim;
  const int threads =
      o.threads > 0 ? o.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  // ---- metadata, in llama.cpp's converter order
  auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w->SetString("general.architecture", a);
  w->SetString("general.name", o.Name());
  // gpt-oss: 38 = MOSTLY_MXFP4_MOE (its experts are MXFP4 whatever --type).
  w->SetUint32("general.file_type", oss                      ? 38
                                    : o.mix != QuantMix::kNone ? QuantMixFileType(o.mix)
                                                               : FileTypeOf(o.type));
  if (IsQuantized(o.type) || oss) w->SetUint32("general.quantization_version", 2);
  w->SetUint32(a + ".context_length", u32(o.context));
  w->SetUint32(a + ".embedding_length", u32(h));
  w->SetUint32(a + ".block_count", u32(o.layers));
  w->SetUint32(a + ".feed_forward_length",
               u32(o.arch == GenArch::kMixtral || oss ? o.expert_ffn : o.ffn));
  w->SetUint32(a + ".attention.head_count", u32(o.heads));
  if (ds) {
    // MLA as the converter stores it: MQA over the cached latent row.
    w->SetUint32(a + ".attention.head_count_kv", 1);
    w->SetUint32(a + ".attention.key_length", u32(o.kv_lora_rank + o.rope_dim));
    w->SetUint32(a + ".attention.value_length", u32(o.kv_lora_rank));
    w->SetUint32(a + ".attention.key_length_mla", u32(o.head_dim + o.rope_dim));
    w->SetUint32(a + ".attention.value_length_mla", u32(o.v_head_dim));
    w->SetUint32(a + ".attention.q_lora_rank", u32(o.q_lora_rank));
    w->SetUint32(a + ".attention.kv_lora_rank", u32(o.kv_lora_rank));
    w->SetUint32(a + ".rope.dimension_count", u32(o.rope_dim));
  } else {
    w->SetUint32(a + ".attention.head_count_kv", u32(o.kv_heads));
    // llama.cpp derives head_dim = hidden / heads for llama unless told.
    if (qwen || llama4 || oss || q_dim != h) {
      w->SetUint32(a + ".attention.key_length", u32(o.head_dim));
      w->SetUint32(a + ".attention.value_length", u32(o.head_dim));
    }
    // gpt-oss's converter writes no dimension_count (RoPE covers the head).
    if (!oss) w->SetUint32(a + ".rope.dimension_count", u32(o.head_dim));
  }
  w->SetFloat32(a + ".rope.freq_base", static_cast<float>(o.RopeTheta()));
  w->SetFloat32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(o.RmsEps()));
  if (moe) {
    w->SetUint32(a + ".expert_count", u32(o.experts));
    w->SetUint32(a + ".expert_used_count", u32(o.top_k));
  }
  if (oss) {
    w->SetString(a + ".rope.scaling.type", "yarn");
    w->SetFloat32(a + ".rope.scaling.factor", 32.0f);
    w->SetUint32(a + ".rope.scaling.original_context_length", 4096);
    w->SetFloat32(a + ".rope.scaling.yarn_beta_fast", 32.0f);
    w->SetFloat32(a + ".rope.scaling.yarn_beta_slow", 1.0f);
    w->SetUint32(a + ".attention.sliding_window", u32(o.sliding_window));
  }
  if (qwen || llama4 || ds || oss) {
    w->SetUint32(a + ".expert_feed_forward_length", u32(o.expert_ffn));
  }
  if (llama4) w->SetUint32(a + ".interleave_moe_layer_step", u32(o.moe_every));
  if (ds) {
    w->SetUint32(a + ".leading_dense_block_count", u32(o.dense_lead));
    w->SetUint32(a + ".expert_shared_count", u32(o.shared_experts));
    w->SetUint32(a + ".expert_group_count", u32(o.expert_groups));
    w->SetUint32(a + ".expert_group_used_count", u32(o.group_used));
    w->SetUint32(a + ".expert_gating_func", o.sigmoid_gating ? 2 : 1);
    w->SetFloat32(a + ".expert_weights_scale", static_cast<float>(o.weights_scale));
    w->SetBool(a + ".expert_weights_norm", o.sigmoid_gating);
  }
  w->SetUint32(a + ".vocab_size", u32(o.vocab));
  w->SetString("tokenizer.ggml.model", "none");

  // ---- shared random state
  // The common direction u (unit vector of `hidden` elements).
  auto common = std::make_shared<std::vector<float>>(h);
  {
    Xoshiro256Plus rng = RowStream(StreamKey(o.seed, "common_direction"), 0);
    double norm2 = 0;
    for (float& v : *common) {
      v = rng.Normal();
      norm2 += double(v) * v;
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(norm2));
    for (float& v : *common) v *= inv;
  }
  const float c = static_cast<float>(kCommonDirectionWeight);

  GenSummary summary;
  std::vector<TensorPlan> plans;
  auto add = [&](std::string name, GgmlType type, std::vector<int64_t> ne, RowGenFn gen,
                 uint64_t first_row = 0) {
    // A row that holds no whole block of the type falls back, as llama.cpp's
    // quantizer does: Q8_0 (32-element blocks), else F32.
    if (ne[0] % int64_t(GgmlTypeTraitsOf(type)->block_elems) != 0) {
      type = ne[0] % 32 == 0 && type != GgmlType::kF32 ? GgmlType::kQ8_0 : GgmlType::kF32;
    }
    plans.push_back(TensorPlan{std::move(name), type, std::move(ne), first_row, std::move(gen)});
  };
  // Row generators. `key` names the logical matrix's stream.
  auto norm_gen = [&](const std::string& key, int64_t n) -> RowGenFn {
    const uint64_t k = StreamKey(o.seed, key);
    return [k, n](uint64_t row, float* out) {
      Xoshiro256Plus rng = RowStream(k, row);
      for (int64_t i = 0; i < n; ++i) out[i] = 1.0f + 0.05f * rng.Normal();
    };
  };
  auto matrix_gen = [&](const std::string& key, int64_t fan_in) -> RowGenFn {
    const uint64_t k = StreamKey(o.seed, key);
    const float scale = static_cast<float>(1.0 / std::sqrt(double(fan_in)));
    return [k, fan_in, scale](uint64_t row, float* out) {
      Xoshiro256Plus rng = RowStream(k, row);
      for (int64_t i = 0; i < fan_in; ++i) out[i] = scale * rng.Normal();
    };
  };
  auto embed_gen = [&]() -> RowGenFn {
    const uint64_t k = StreamKey(o.seed, "token_embd");
    const float a_n = std::sqrt(1.0f - c * c);
    const float a_u = c * std::sqrt(static_cast<float>(h));
    return [k, a_n, a_u, common, h](uint64_t row, float* out) {
      Xoshiro256Plus rng = RowStream(k, row);
      const float* u = common->data();
      for (int64_t i = 0; i < h; ++i) out[i] = a_n * rng.Normal() + a_u * u[i];
    };
  };
  // Router of one layer: expert e's logit on a hidden state x with RMS 1
  // and projection c*sqrt(h) on u is about bias(rank_e) + tau_e * N(0,1).
  auto router_gen = [&](int layer) -> RowGenFn {
    const uint64_t k = StreamKey(o.seed, absl::StrCat("blk.", layer, ".ffn_gate_inp"));
    // Per-layer popularity ranking: a seeded Fisher-Yates shuffle.
    std::vector<int64_t> rank(o.experts);
    std::iota(rank.begin(), rank.end(), 0);
    Xoshiro256Plus prng = RowStream(StreamKey(o.seed, absl::StrCat("blk.", layer, ".popularity")), 0);
    for (int64_t i = o.experts - 1; i > 0; --i) {
      std::swap(rank[i], rank[prng.Next() % uint64_t(i + 1)]);
    }
    auto bias = std::make_shared<std::vector<float>>(o.experts);
    auto tau = std::make_shared<std::vector<float>>(o.experts);
    double mean = 0;
    for (int64_t e = 0; e < o.experts; ++e) {
      (*bias)[e] = static_cast<float>(-o.router_skew * std::log1p(double(rank[e])));
      // 1.28 = the standard deviation of a unit Gumbel: with about that much
      // token noise, top-1 choices follow softmax(bias), i.e. the Zipf law.
      // The noise sees the part of the hidden state off u, of norm
      // sqrt(1 - c^2) sqrt(h). It also decays slowly with the rank, which is
      // all that skews isotropic inputs.
      (*tau)[e] = static_cast<float>(1.28 / std::sqrt(1.0 - double(c) * c) *
                                     std::pow(1.0 + rank[e], -0.1 * o.router_skew));
      mean += (*bias)[e];
    }
    mean /= double(o.experts);
    const float inv_sqrt_h = static_cast<float>(1.0 / std::sqrt(double(h)));
    for (float& b : *bias) b = static_cast<float>((b - mean) / (c * std::sqrt(double(h))));
    return [k, h, common, bias, tau, inv_sqrt_h](uint64_t row, float* out) {
      Xoshiro256Plus rng = RowStream(k, row);
      const float* u = common->data();
      const float t = (*tau)[row] * inv_sqrt_h;
      const float b = (*bias)[row];
      // The token-dependent part is made orthogonal to u, so that the
      // popularity comes from `bias` alone (router_skew 0: no preference).
      double dot = 0;
      for (int64_t i = 0; i < h; ++i) {
        out[i] = rng.Normal();
        dot += double(out[i]) * u[i];
      }
      const float d = static_cast<float>(dot);
      for (int64_t i = 0; i < h; ++i) out[i] = t * (out[i] - d * u[i]) + b * u[i];
    };
  };

  const GgmlType wt = o.type;
  const GgmlType f32 = GgmlType::kF32;
  add("token_embd.weight", wt, {h, o.vocab}, embed_gen());
  auto bias_gen = [&](const std::string& key, int64_t n, float scale = 0.01f) -> RowGenFn {
    const uint64_t k = StreamKey(o.seed, key);
    return [k, n, scale](uint64_t row, float* out) {
      Xoshiro256Plus rng = RowStream(k, row);
      for (int64_t i = 0; i < n; ++i) out[i] = scale * rng.Normal();
    };
  };
  for (int l = 0; l < o.layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    add(p + "attn_norm.weight", f32, {h}, norm_gen(p + "attn_norm", h));
    if (ds) {
      const int64_t H = o.heads, qk = o.head_dim + o.rope_dim, L = o.kv_lora_rank;
      if (o.q_lora_rank > 0) {
        add(p + "attn_q_a.weight", wt, {h, o.q_lora_rank}, matrix_gen(p + "attn_q_a", h));
        add(p + "attn_q_a_norm.weight", f32, {o.q_lora_rank},
            norm_gen(p + "attn_q_a_norm", o.q_lora_rank));
        add(p + "attn_q_b.weight", wt, {o.q_lora_rank, H * qk},
            matrix_gen(p + "attn_q_b", o.q_lora_rank));
      } else {
        add(p + "attn_q.weight", wt, {h, H * qk}, matrix_gen(p + "attn_q", h));
      }
      add(p + "attn_kv_a_mqa.weight", wt, {h, L + o.rope_dim}, matrix_gen(p + "attn_kv_a_mqa", h));
      add(p + "attn_kv_a_norm.weight", f32, {L}, norm_gen(p + "attn_kv_a_norm", L));
      add(p + "attn_k_b.weight", wt, {o.head_dim, L, H}, matrix_gen(p + "attn_k_b", o.head_dim));
      add(p + "attn_v_b.weight", wt, {L, o.v_head_dim, H}, matrix_gen(p + "attn_v_b", L));
      add(p + "attn_output.weight", wt, {H * o.v_head_dim, h},
          matrix_gen(p + "attn_output", H * o.v_head_dim));
    } else if (oss) {
      // Biases after each projection, then the sinks (one logit per head).
      for (auto [name, rows, fan_in] : {std::tuple{"attn_q", q_dim, h},
                                        {"attn_k", kv_dim, h},
                                        {"attn_v", kv_dim, h},
                                        {"attn_output", h, q_dim}}) {
        add(p + name + ".weight", wt, {fan_in, rows}, matrix_gen(p + name, fan_in));
        add(p + name + ".bias", f32, {rows}, bias_gen(p + name + ".bias", rows, 0.1f));
      }
      add(p + "attn_sinks.weight", f32, {o.heads}, bias_gen(p + "attn_sinks", o.heads, 1.0f));
    } else {
      add(p + "attn_q.weight", wt, {h, q_dim}, matrix_gen(p + "attn_q", h));
      add(p + "attn_k.weight", wt, {h, kv_dim}, matrix_gen(p + "attn_k", h));
      add(p + "attn_v.weight", wt, {h, kv_dim}, matrix_gen(p + "attn_v", h));
      add(p + "attn_output.weight", wt, {q_dim, h}, matrix_gen(p + "attn_output", q_dim));
    }
    if (qwen) {
      add(p + "attn_q_norm.weight", f32, {o.head_dim}, norm_gen(p + "attn_q_norm", o.head_dim));
      add(p + "attn_k_norm.weight", f32, {o.head_dim}, norm_gen(p + "attn_k_norm", o.head_dim));
    }
    // gpt-oss names the FFN's input norm post_attention_norm.
    add(p + (oss ? "post_attention_norm.weight" : "ffn_norm.weight"), f32, {h},
        norm_gen(p + "ffn_norm", h));
    if (!is_moe_layer(l)) {
      add(p + "ffn_gate.weight", wt, {h, o.ffn}, matrix_gen(p + "ffn_gate", h));
      add(p + "ffn_up.weight", wt, {h, o.ffn}, matrix_gen(p + "ffn_up", h));
      add(p + "ffn_down.weight", wt, {o.ffn, h}, matrix_gen(p + "ffn_down", o.ffn));
      continue;
    }
    const int64_t f = o.expert_ffn;
    add(p + "ffn_gate_inp.weight", f32, {h, o.experts}, router_gen(l));
    if (oss) {
      add(p + "ffn_gate_inp.bias", f32, {o.experts}, bias_gen(p + "ffn_gate_inp.bias", o.experts));
    }
    if (ds && o.sigmoid_gating) {
      add(p + "exp_probs_b.bias", f32, {o.experts}, bias_gen(p + "exp_probs_b", o.experts));
    }
    if ((llama4 || ds) && o.shared_experts > 0) {
      const int64_t fs = f * o.shared_experts;
      add(p + "ffn_gate_shexp.weight", wt, {h, fs}, matrix_gen(p + "ffn_gate_shexp", h));
      add(p + "ffn_up_shexp.weight", wt, {h, fs}, matrix_gen(p + "ffn_up_shexp", h));
      add(p + "ffn_down_shexp.weight", wt, {fs, h}, matrix_gen(p + "ffn_down_shexp", fs));
    }
    // Expert e's rows are rows [e*rows, (e+1)*rows) of one logical stream per
    // matrix, so both layouts hold identical experts.
    RowGenFn gate = matrix_gen(p + "ffn_gate_exps", h);
    RowGenFn up = matrix_gen(p + "ffn_up_exps", h);
    RowGenFn down = matrix_gen(p + "ffn_down_exps", f);
    if (oss) {
      // MXFP4 experts, each matrix followed by its [experts][rows] biases.
      const GgmlType mx = GgmlType::kMXFP4;
      add(p + "ffn_gate_exps.weight", mx, {h, f, o.experts}, gate);
      add(p + "ffn_gate_exps.bias", f32, {f, o.experts}, bias_gen(p + "ffn_gate_exps.bias", f, 0.1f));
      add(p + "ffn_up_exps.weight", mx, {h, f, o.experts}, up);
      add(p + "ffn_up_exps.bias", f32, {f, o.experts}, bias_gen(p + "ffn_up_exps.bias", f, 0.1f));
      add(p + "ffn_down_exps.weight", mx, {f, h, o.experts}, down);
      add(p + "ffn_down_exps.bias", f32, {h, o.experts}, bias_gen(p + "ffn_down_exps.bias", h, 0.1f));
    } else if (o.expert_layout == ExpertLayout::kStacked) {
      add(p + "ffn_gate_exps.weight", wt, {h, f, o.experts}, gate);
      add(p + "ffn_up_exps.weight", wt, {h, f, o.experts}, up);
      add(p + "ffn_down_exps.weight", wt, {f, h, o.experts}, down);
    } else {
      for (int64_t e = 0; e < o.experts; ++e) {
        add(absl::StrCat(p, "ffn_gate.", e, ".weight"), wt, {h, f}, gate, uint64_t(e * f));
        add(absl::StrCat(p, "ffn_down.", e, ".weight"), wt, {f, h}, down, uint64_t(e * h));
        add(absl::StrCat(p, "ffn_up.", e, ".weight"), wt, {h, f}, up, uint64_t(e * f));
      }
    }
  }
  add("output_norm.weight", f32, {h}, norm_gen("output_norm", h));
  add("output.weight", wt, {h, o.vocab}, matrix_gen("output", h));

  if (o.mix != QuantMix::kNone) {  // the per-tensor types of the mix (quant_mix.h)
    std::vector<MixTensor> table;
    for (const TensorPlan& t : plans) table.push_back({t.name, t.ne, t.type});
    MOESTREAM_ASSIGN_OR_RETURN(
        std::vector<GgmlType> types,
        MixTypes(o.mix, {o.layers, o.arch == GenArch::kLlama ? 0 : o.experts,
                         o.arch == GenArch::kMixtral ? "llama" : std::string(GenArchName(o.arch)),
                         o.heads, o.kv_heads},
                 table));
    for (size_t i = 0; i < plans.size(); ++i) plans[i].type = types[i];
  }
  for (TensorPlan& t : plans) {
    uint64_t n = 1;
    for (int64_t d : t.ne) n *= uint64_t(d);
    summary.parameters += n;
    ++summary.tensors;
    auto plan = std::make_shared<TensorPlan>(t);
    MOESTREAM_RETURN_IF_ERROR(w->AddTensor(
        t.name, t.type, t.ne,
        [plan, threads](std::span<uint8_t> out) { return FillRows(*plan, threads, out); }));
  }
  summary.data_bytes = w->data_bytes();
  return summary;
}

absl::Status GenerateModel(const GenOptions& o, const std::string& path,
                           const io::ProgressFn& progress, GenSummary* summary) {
  io::GgufWriter w;
  if (o.header_only) w.SetHeaderOnly();
  MOESTREAM_ASSIGN_OR_RETURN(GenSummary s, BuildModel(o, &w));
  MOESTREAM_RETURN_IF_ERROR(w.Write(path, progress));
  if (summary != nullptr) *summary = s;
  return absl::OkStatus();
}

}  // namespace moestream::gen
