// `moestream gen`: writes a synthetic qwen3moe / mixtral / llama / llama4 /
// deepseek2 / gpt-oss GGUF with
// seeded random weights (see gen/model_gen.h for the weight recipe).
//
//   moestream gen --arch qwen3moe --preset tiny -o m.gguf
//   moestream gen --preset qwen3-30b-a3b --scale 4 --type q8_0 -o q.gguf
//   moestream gen --arch mixtral --preset tiny --expert-layout split -o mx.gguf
//
// Order of precedence: preset (default tiny), then --scale, then explicit
// hyper-parameter flags. Progress goes to stderr (one line redrawn in place on
// a terminal, a line per 10% otherwise, for files of 256 MiB or more); one
// summary line goes to stdout.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cli/command.h"
#include "gen/model_gen.h"
#include "kernels/backend.h"

namespace moestream::cli {
namespace {

using gen::GenOptions;

// Progress to stderr: redrawn in place on a TTY (at most ~10 times a
// second), else one line per 10% step for files of 256 MiB or more.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet)
      : quiet_(quiet), tty_(isatty(STDERR_FILENO) == 1), start_(Clock::now()) {}

  void Update(uint64_t done, uint64_t total) {
    // Off a terminal, small files (tests, scripts) get no progress lines.
    if (quiet_ || total == 0 || (!tty_ && total < (uint64_t{256} << 20))) return;
    const auto now = Clock::now();
    const int decile = static_cast<int>(done * 10 / total);
    if (tty_) {
      if (done != total && now - last_ < std::chrono::milliseconds(100)) return;
    } else if (decile == last_decile_) {
      return;
    }
    last_ = now;
    last_decile_ = decile;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double mb = done / 1e6;
    std::fprintf(stderr, "%sgen: %5.1f%%  %.0f / %.0f MB  %.0f MB/s%s", tty_ ? "\r" : "",
                 100.0 * done / total, mb, total / 1e6, secs > 0 ? mb / secs : 0.0,
                 tty_ ? "" : "\n");
    if (tty_ && done == total) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool quiet_;
  bool tty_;
  Clock::time_point start_;
  Clock::time_point last_{};
  int last_decile_ = 0;  // off a terminal: a line at each 10% step after the start
};

// The preset's shape for the chosen architecture, scaled.
absl::StatusOr<GenOptions> ShapeFromFlags(const CLI::App& p, const std::string& preset,
                                          const std::string& arch, double scale,
                                          bool scale_layers) {
  gen::GenArch a = gen::PresetDefaultArch(preset);
  if (!arch.empty()) {
    MOESTREAM_ASSIGN_OR_RETURN(a, gen::ParseGenArch(arch));
  }
  MOESTREAM_ASSIGN_OR_RETURN(GenOptions base, gen::PresetOptions(preset, a));
  if (p.count("--scale") > 0 || scale_layers) {
    MOESTREAM_RETURN_IF_ERROR(gen::ScaleOptions(scale, scale_layers, &base));
  }
  // Flags that have no meaning for the chosen architecture are errors, not
  // silently dropped.
  auto reject = [&](const char* flag, const char* why) -> absl::Status {
    if (p.count(absl::StrCat("--", flag)) == 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " does not apply to --arch ",
                                                   Av(gen::GenArchName(a)), ": ", why));
  };
  if (a == gen::GenArch::kLlama) {
    MOESTREAM_RETURN_IF_ERROR(reject("experts", "it is dense"));
    MOESTREAM_RETURN_IF_ERROR(reject("top-k", "it is dense"));
    MOESTREAM_RETURN_IF_ERROR(reject("expert-ffn", "it is dense (use --ffn)"));
    MOESTREAM_RETURN_IF_ERROR(reject("router-skew", "it is dense"));
  }
  if (a == gen::GenArch::kMixtral) {
    MOESTREAM_RETURN_IF_ERROR(reject("ffn", "its experts are sized by --expert-ffn"));
  }
  if (a != gen::GenArch::kLlama4 && a != gen::GenArch::kDeepseek2) {
    for (const char* f : {"moe-every", "dense-lead", "shared-experts"}) {
      MOESTREAM_RETURN_IF_ERROR(reject(f, "only llama4 and deepseek2 have it"));
    }
  }
  if (a != gen::GenArch::kGptOss) {
    MOESTREAM_RETURN_IF_ERROR(reject("sliding-window", "only gpt-oss has it"));
  }
  if (a != gen::GenArch::kDeepseek2) {
    for (const char* f : {"q-lora-rank", "kv-lora-rank"}) {
      MOESTREAM_RETURN_IF_ERROR(reject(f, "only deepseek2 has latent attention"));
    }
  }
  return base;
}

class GenCommand : public Command {
 public:
  void Register(CLI::App& app) override {
    app_ = &app;
    app.add_option("-o,--output", out_, "output GGUF path (written via a temporary + rename)");
    app.add_option("--arch", arch_,
                   "qwen3moe | mixtral (arch 'llama' with experts) | llama (dense) | llama4 | deepseek2 | gpt-oss; empty = the "
                   "preset's (qwen3moe for tiny/small)");
    app.add_option("--preset", preset_,
                   "shape preset: " + absl::StrJoin(gen::PresetNames(), ", "));
    app.add_option("--scale", scale_,
                   "divide hidden, ffn, expert-ffn and vocab by F (rounded to multiples of 256) "
                   "and the heads to match; head-dim, experts and top-k are kept");
    app.add_flag("--scale-layers", scale_layers_, "with --scale, divide the layer count by F too");
    // Shape flags override the preset only when given; 0 stands for "the
    // preset's" in --help.
    app.add_option("--layers", layers_, "transformer blocks");
    app.add_option("--hidden", hidden_, "hidden size (embedding_length)");
    app.add_option("--heads", heads_, "query heads");
    app.add_option("--kv-heads", kv_heads_, "key/value heads (divides --heads)");
    app.add_option("--head-dim", head_dim_, "per-head width (key_length, rope dims)");
    app.add_option("--experts", experts_, "routed experts per layer");
    app.add_option("--top-k", top_k_, "experts used per token");
    app.add_option("--expert-ffn", expert_ffn_, "rows of each expert's gate/up matrix");
    app.add_option("--moe-every", moe_every_,
                   "llama4/deepseek2: MoE on every N-th layer, dense FFN on the others");
    app.add_option("--dense-lead", dense_lead_, "llama4/deepseek2: leading dense layers");
    app.add_option("--shared-experts", shared_experts_,
                   "llama4/deepseek2: shared experts per MoE layer (each --expert-ffn wide)");
    app.add_option("--q-lora-rank", q_lora_rank_, "deepseek2: q LoRA rank (0 = a plain q)");
    app.add_option("--kv-lora-rank", kv_lora_rank_, "deepseek2: the cached latent's width");
    app.add_option("--sliding-window", sliding_window_,
                   "gpt-oss: the window of its sliding-window layers (its experts are always "
                   "mxfp4)");
    app.add_option("--ffn", ffn_, "dense FFN width (llama; qwen3moe's feed_forward_length)");
    app.add_option("--vocab", vocab_, "vocabulary size (rows of token_embd and output)");
    app.add_option("--context", context_, "context_length in tokens");
    app.add_option("--rope-theta", rope_theta_,
                   "rope.freq_base; 0 = the architecture's (1e6 qwen3moe/mixtral, 1e4 llama)");
    app.add_option("--type", type_,
                   "matrix type: f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k, or q4_k_m (llama.cpp's per-tensor "
                   "mix); norms and routers stay f32");
    app.add_option("--seed", seed_, "PRNG seed");
    app.add_option("--expert-layout", layout_,
                   "stacked (ffn_*_exps) | split (per-expert ffn_*.E, mixtral only)");
    app.add_option("--router-skew", router_skew_,
                   "Zipf exponent of expert popularity per layer; 0 = none");
    app.add_option("--name", name_, "general.name; empty = synthetic-ARCH-TYPE");
    app.add_option("-t,--threads", threads_, "worker threads; 0 = all cores");
    app.add_flag("--quiet", quiet_, "no progress on stderr");
    app.add_flag("--header-only", header_only_,
                 "write the metadata and tensor table only, no tensor data (for plan and "
                 "inspect: a 400B model's shape in a few MB)");
  }

  absl::Status Run() override {
    const CLI::App& p = *app_;
    auto given = [&p](const char* flag) { return p.count(absl::StrCat("--", flag)) > 0; };
    if (out_.empty()) return absl::InvalidArgumentError("-o/--output OUT is required");
    MOESTREAM_ASSIGN_OR_RETURN(GenOptions o,
                               ShapeFromFlags(p, preset_, arch_, scale_, scale_layers_));
    MOESTREAM_ASSIGN_OR_RETURN(gen::GenType t, gen::ParseGenType(type_));
    o.type = t.type;
    o.mix = t.mix;
    if (seed_ < 0) {
      return absl::InvalidArgumentError(absl::StrCat("--seed must be >= 0 (got ", seed_, ")"));
    }
    o.seed = static_cast<uint64_t>(seed_);
    MOESTREAM_ASSIGN_OR_RETURN(o.expert_layout, gen::ParseExpertLayout(layout_));
    o.name = name_;
    o.threads = static_cast<int>(threads_);
    o.router_skew = router_skew_;
    o.header_only = header_only_;
    if (given("threads") && (threads_ < 1 || threads_ > kernels::kMaxThreads)) {
      return absl::InvalidArgumentError(absl::StrCat("--threads ", threads_, " is out of range 1..",
                                                     kernels::kMaxThreads));
    }
    // Explicit hyper-parameters override the preset; 0 or negative values
    // reach Validate(), which names the flag.
    auto over = [&](const char* flag, int64_t v, int64_t* field) {
      if (given(flag)) *field = v;
    };
    over("layers", layers_, &o.layers);
    over("hidden", hidden_, &o.hidden);
    over("heads", heads_, &o.heads);
    over("kv-heads", kv_heads_, &o.kv_heads);
    over("head-dim", head_dim_, &o.head_dim);
    over("experts", experts_, &o.experts);
    over("top-k", top_k_, &o.top_k);
    over("expert-ffn", expert_ffn_, &o.expert_ffn);
    over("ffn", ffn_, &o.ffn);
    over("vocab", vocab_, &o.vocab);
    over("context", context_, &o.context);
    over("moe-every", moe_every_, &o.moe_every);
    over("dense-lead", dense_lead_, &o.dense_lead);
    over("shared-experts", shared_experts_, &o.shared_experts);
    over("q-lora-rank", q_lora_rank_, &o.q_lora_rank);
    over("kv-lora-rank", kv_lora_rank_, &o.kv_lora_rank);
    over("sliding-window", sliding_window_, &o.sliding_window);
    if (given("rope-theta")) {
      if (!(rope_theta_ > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--rope-theta must be positive (got ", rope_theta_, ")"));
      }
      o.rope_theta = rope_theta_;
    }
    MOESTREAM_RETURN_IF_ERROR(o.Validate());

    ProgressPrinter printer(quiet_);
    const auto t0 = std::chrono::steady_clock::now();
    gen::GenSummary summary;
    MOESTREAM_RETURN_IF_ERROR(gen::GenerateModel(
        o, out_, [&](uint64_t done, uint64_t total) { printer.Update(done, total); }, &summary));
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "wrote %s: %s %s, %lld layers, hidden %lld, %lld experts top-%lld, %.1f M params, %.1f "
        "MB in %.2f s (%.0f MB/s)\n",
        out_.c_str(), std::string(gen::GenArchName(o.arch)).c_str(),
        std::string(o.mix != gen::QuantMix::kNone ? gen::QuantMixName(o.mix)
                                                  : GgmlTypeName(o.type))
            .c_str(),
        static_cast<long long>(o.layers),
        static_cast<long long>(o.hidden),
        static_cast<long long>(o.arch == gen::GenArch::kLlama ? 0 : o.experts),
        static_cast<long long>(o.arch == gen::GenArch::kLlama ? 0 : o.top_k),
        summary.parameters / 1e6, summary.data_bytes / 1e6, secs,
        secs > 0 ? summary.data_bytes / 1e6 / secs : 0.0);
    return absl::OkStatus();
  }

 private:
  const CLI::App* app_ = nullptr;  // to tell which shape flags were given
  std::string out_, arch_, preset_ = "tiny", type_ = "f32", layout_ = "stacked", name_;
  double scale_ = 1.0, rope_theta_ = 0, router_skew_ = 1.0;
  bool scale_layers_ = false, quiet_ = false, header_only_ = false;
  int64_t moe_every_ = 0, dense_lead_ = 0, shared_experts_ = 0, q_lora_rank_ = 0,
          kv_lora_rank_ = 0, sliding_window_ = 0;
  int64_t layers_ = 0, hidden_ = 0, heads_ = 0, kv_heads_ = 0, head_dim_ = 0, experts_ = 0,
          top_k_ = 0, expert_ffn_ = 0, ffn_ = 0, vocab_ = 0, context_ = 0, seed_ = 1,
          threads_ = 0;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(gen, "write a synthetic qwen3moe / mixtral / llama GGUF", GenCommand);

}  // namespace moestream::cli
