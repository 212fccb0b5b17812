// `moestream gen`: writes a synthetic qwen3moe / mixtral / llama GGUF with
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
#include "cli/flags.h"
#include "gen/model_gen.h"

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
absl::StatusOr<GenOptions> ShapeFromFlags(const FlagParser& p, const std::string& preset,
                                          const std::string& arch, double scale,
                                          bool scale_layers) {
  gen::GenArch a = gen::PresetDefaultArch(preset);
  if (!arch.empty()) {
    MOESTREAM_ASSIGN_OR_RETURN(a, gen::ParseGenArch(arch));
  }
  MOESTREAM_ASSIGN_OR_RETURN(GenOptions base, gen::PresetOptions(preset, a));
  if (p.was_set("scale") || scale_layers) {
    MOESTREAM_RETURN_IF_ERROR(gen::ScaleOptions(scale, scale_layers, &base));
  }
  // Flags that have no meaning for the chosen architecture are errors, not
  // silently dropped.
  auto reject = [&](const char* flag, const char* why) -> absl::Status {
    if (!p.was_set(flag)) return absl::OkStatus();
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
  return base;
}

int RunGen(std::vector<std::string> args) {
  FlagParser p("gen");
  std::string out, arch, preset = "tiny", type = "f32", layout = "stacked", name;
  double scale = 1.0, rope_theta = 0, router_skew = 1.0;
  bool scale_layers = false, quiet = false;
  int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, experts = 0, top_k = 0,
          expert_ffn = 0, ffn = 0, vocab = 0, context = 0, seed = 1, threads = 0;
  p.String("output", 'o', "OUT", "output GGUF path (written via a temporary + rename)", &out);
  p.String("arch", 0, "ARCH",
           "qwen3moe | mixtral (arch 'llama' with experts) | llama (dense); default: the "
           "preset's (qwen3moe for tiny/small)",
           &arch);
  p.String("preset", 0, "NAME",
           "shape preset: " + absl::StrJoin(gen::PresetNames(), ", ") + " (default tiny)",
           &preset);
  p.Double("scale", 0, "F",
           "divide hidden, ffn, expert-ffn and vocab by F (rounded to multiples of 256) and the "
           "heads to match; head-dim, experts and top-k are kept",
           &scale);
  p.Bool("scale-layers", "with --scale, divide the layer count by F too", &scale_layers);
  p.Int("layers", 0, "N", "transformer blocks", &layers);
  p.Int("hidden", 0, "N", "hidden size (embedding_length)", &hidden);
  p.Int("heads", 0, "N", "query heads", &heads);
  p.Int("kv-heads", 0, "N", "key/value heads (divides --heads)", &kv_heads);
  p.Int("head-dim", 0, "N", "per-head width (key_length, rope dims)", &head_dim);
  p.Int("experts", 0, "N", "routed experts per layer", &experts);
  p.Int("top-k", 0, "N", "experts used per token", &top_k);
  p.Int("expert-ffn", 0, "N", "rows of each expert's gate/up matrix", &expert_ffn);
  p.Int("ffn", 0, "N", "dense FFN width (llama; qwen3moe's feed_forward_length)", &ffn);
  p.Int("vocab", 0, "N", "vocabulary size (rows of token_embd and output)", &vocab);
  p.Int("context", 0, "N", "context_length in tokens", &context);
  p.Double("rope-theta", 0, "F", "rope.freq_base (default 1e6 qwen3moe/mixtral, 1e4 llama)",
           &rope_theta);
  p.String("type", 0, "TYPE",
           "matrix type: f32 f16 bf16 q8_0 q4_0 q4_k q6_k (norms and routers stay f32; default "
           "f32)",
           &type);
  p.Int("seed", 0, "N", "PRNG seed (default 1)", &seed);
  p.String("expert-layout", 0, "L",
           "stacked (ffn_*_exps, default) | split (per-expert ffn_*.E, mixtral only)", &layout);
  p.Double("router-skew", 0, "S", "Zipf exponent of expert popularity per layer (default 1; 0 = "
           "none)",
           &router_skew);
  p.String("name", 0, "NAME", "general.name (default synthetic-ARCH-TYPE)", &name);
  p.Int("threads", 't', "N", "worker threads (default: all cores)", &threads);
  p.Bool("quiet", "no progress on stderr", &quiet);

  absl::Status s = p.Parse(args);
  if (!s.ok()) return ReportError("gen", s);
  if (p.help_requested()) {
    std::printf("%s", p.Usage().c_str());
    return 0;
  }
  if (out.empty()) {
    return ReportError("gen", absl::InvalidArgumentError("-o/--output OUT is required"));
  }
  absl::StatusOr<GenOptions> shape = ShapeFromFlags(p, preset, arch, scale, scale_layers);
  if (!shape.ok()) return ReportError("gen", shape.status());
  GenOptions o = *std::move(shape);
  std::optional<GgmlType> t = ParseGgmlType(type);
  if (!t.has_value()) {
    return ReportError("gen", absl::InvalidArgumentError(absl::StrCat(
                                  "--type: unknown type '", type,
                                  "' (expected f32, f16, bf16, q8_0, q4_0, q4_k or q6_k)")));
  }
  o.type = *t;
  if (seed < 0) {
    return ReportError("gen", absl::InvalidArgumentError(
                                  absl::StrCat("--seed must be >= 0 (got ", seed, ")")));
  }
  o.seed = static_cast<uint64_t>(seed);
  absl::StatusOr<gen::ExpertLayout> l = gen::ParseExpertLayout(layout);
  if (!l.ok()) return ReportError("gen", l.status());
  o.expert_layout = *l;
  o.name = name;
  o.threads = static_cast<int>(threads);
  o.router_skew = router_skew;
  if (p.was_set("threads") && threads < 1) {
    return ReportError("gen", absl::InvalidArgumentError(
                                  absl::StrCat("--threads must be >= 1 (got ", threads, ")")));
  }
  // Explicit hyper-parameters override the preset; 0 or negative values
  // reach Validate(), which names the flag.
  auto over = [&](const char* flag, int64_t v, int64_t* field) {
    if (p.was_set(flag)) *field = v;
  };
  over("layers", layers, &o.layers);
  over("hidden", hidden, &o.hidden);
  over("heads", heads, &o.heads);
  over("kv-heads", kv_heads, &o.kv_heads);
  over("head-dim", head_dim, &o.head_dim);
  over("experts", experts, &o.experts);
  over("top-k", top_k, &o.top_k);
  over("expert-ffn", expert_ffn, &o.expert_ffn);
  over("ffn", ffn, &o.ffn);
  over("vocab", vocab, &o.vocab);
  over("context", context, &o.context);
  if (p.was_set("rope-theta")) {
    if (!(rope_theta > 0)) {
      return ReportError("gen", absl::InvalidArgumentError(absl::StrCat(
                                    "--rope-theta must be positive (got ", rope_theta, ")")));
    }
    o.rope_theta = rope_theta;
  }
  s = o.Validate();
  if (!s.ok()) return ReportError("gen", s);

  ProgressPrinter printer(quiet);
  const auto t0 = std::chrono::steady_clock::now();
  gen::GenSummary summary;
  s = gen::GenerateModel(
      o, out, [&](uint64_t done, uint64_t total) { printer.Update(done, total); }, &summary);
  if (!s.ok()) return ReportError("gen", s);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "wrote %s: %s %s, %lld layers, hidden %lld, %lld experts top-%lld, %.1f M params, %.1f MB "
      "in %.2f s (%.0f MB/s)\n",
      out.c_str(), std::string(gen::GenArchName(o.arch)).c_str(),
      std::string(GgmlTypeName(o.type)).c_str(), static_cast<long long>(o.layers),
      static_cast<long long>(o.hidden),
      static_cast<long long>(o.arch == gen::GenArch::kLlama ? 0 : o.experts),
      static_cast<long long>(o.arch == gen::GenArch::kLlama ? 0 : o.top_k),
      summary.parameters / 1e6, summary.data_bytes / 1e6, secs,
      secs > 0 ? summary.data_bytes / 1e6 / secs : 0.0);
  return 0;
}

}  // namespace

MOESTREAM_REGISTER_COMMAND(gen, "write a synthetic qwen3moe / mixtral / llama GGUF", RunGen);

}  // namespace moestream::cli
