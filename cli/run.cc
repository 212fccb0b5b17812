// `moestream run`: generate from a prompt, streaming tokens as they are
// sampled, and end with a timing summary.
//
//   moestream run -m model.gguf --prompt-ids 1,2,3 -n 32 --temp 0
//   moestream run -m model.gguf -p "Once upon a time" -n 64
//   moestream run -m model.gguf --chat -p "Why is the sky blue?" --system "Be brief."
//   moestream run -m model.gguf --prompt-ids 1,2,3 -n 16 --json --dump-logits out.f32
//   moestream run -m model.gguf -p "Hi" --device-budget 64M --experts-on nvme --link pcie4x16
//
// With offloading (--device-budget / --experts-on, see engine_flags.h) the
// summary and its JSON add the expert cache's figures over the whole run
// (OffloadReport: hit_rate, prefetch_precision, prefetch_recall, link_bytes,
// tier_bytes, stall_ms, overlap_efficiency, budgets and high-water marks).
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/atomic_file.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cli/command.h"
#include "cli/engine_flags.h"
#include "engine/recording_expert_provider.h"
#include "text/chat_template.h"
#include "engine/sampler.h"
#include "nlohmann/json.hpp"
#include "engine/session.h"
#include "model/model_config.h"
#include "text/tokenizer.h"

namespace moestream::cli {
namespace {

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, absl::ByAnyChar(", "), absl::SkipEmpty())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id) || id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt-ids: '", part, "' is not a token id (expected e.g. 1,2,3)"));
    }
    ids.push_back(id);
  }
  return ids;
}

// Logits of every processed position, written to FILE through an
// AtomicFile: FILE (and then FILE.json) appear only when the run completes.
class LogitsDump {
 public:
  absl::Status Open(const std::string& path) {
    absl::StatusOr<AtomicFile> f = AtomicFile::Create(path);
    if (!f.ok()) return Prefixed(f.status());
    file_.emplace(*std::move(f));
    return absl::OkStatus();
  }
  absl::Status Append(std::span<const float> logits, int64_t rows) {
    const std::string_view bytes(reinterpret_cast<const char*>(logits.data()),
                                 logits.size() * sizeof(float));
    MOESTREAM_RETURN_IF_ERROR(Prefixed(file_->Write(bytes)));
    rows_ += rows;
    return absl::OkStatus();
  }
  absl::Status Finish(int64_t n_vocab, int64_t n_prompt) {
    nlohmann::ordered_json meta;
    meta["dtype"] = "float32";
    meta["endian"] = "little";
    meta["order"] = "row-major";
    meta["shape"] = {rows_, n_vocab};
    meta["prompt_positions"] = n_prompt;
    meta["generated_positions"] = rows_ - n_prompt;
    MOESTREAM_RETURN_IF_ERROR(Prefixed(file_->Commit()));
    return Prefixed(WriteFileAtomically(file_->path() + ".json", meta.dump() + "\n"));
  }

 private:
  static absl::Status Prefixed(const absl::Status& s) {
    if (s.ok()) return s;
    return absl::Status(s.code(), absl::StrCat("--dump-logits: ", s.message()));
  }

  std::optional<AtomicFile> file_;
  int64_t rows_ = 0;
};

// The flags of `run`, besides the engine's.
struct RunFlags {
  EngineFlags engine;
  std::string prompt_ids;   // --prompt-ids ID,ID,...
  std::string prompt_text;  // -p/--prompt TEXT
  bool chat = false;
  std::string system_text;  // --system
  std::string chat_format;
  std::string output = "auto";
  int64_t n_predict = 32;
  double temp = 0.8;
  int64_t top_k = 40;
  double top_p = 0.95;
  double min_p = 0.05;
  double repeat_penalty = 1.0;
  int64_t repeat_last_n = 64;
  int64_t seed = -1;  // < 0: random
  bool ignore_eos = false;
  bool json = false;
  std::string record_trace;
  std::string dump_path;  // --dump-logits

  void Register(CLI::App& app) {
    engine.Register(app);
    app.add_option("--prompt-ids", prompt_ids, "prompt token ids ID,ID,..., used as given (no BOS added)");
    app.add_option("-p,--prompt", prompt_text,
                   "prompt text, tokenized with the model's vocabulary (BOS as it says)");
    app.add_flag("--chat", chat, "format -p as a user turn of the model's chat template");
    app.add_option("--system", system_text, "system message for --chat");
    app.add_option("--chat-format", chat_format,
                   "chat family instead of the one the GGUF's template shows");
    app.add_option("--output", output, "stream text or token ids: auto (text with -p), text or ids");
    app.add_option("-n,--n-predict", n_predict, "tokens to generate");
    app.add_option("--temp", temp, "temperature; 0 = greedy");
    app.add_option("--top-k", top_k, "top-k sampling; 0 = off");
    app.add_option("--top-p", top_p, "top-p sampling; 1 = off");
    app.add_option("--min-p", min_p, "min-p sampling; 0 = off");
    app.add_option("--repeat-penalty", repeat_penalty, "repetition penalty; 1 = off");
    app.add_option("--repeat-last-n", repeat_last_n, "tokens the penalty looks back; -1 = all");
    app.add_option("--seed", seed, "sampling seed; -1 = random");
    app.add_flag("--ignore-eos", ignore_eos, "keep generating past end-of-generation tokens");
    app.add_flag("--json", json,
                 "print the summary as one JSON object on stdout (tokens go to stderr)");
    app.add_option("--record-trace", record_trace,
                   "record the routing (every token at every MoE layer) as a trace for `replay`");
    app.add_option("--dump-logits", dump_path,
                   "write float32 LE logits of every processed position to FILE (+ FILE.json)");
  }
};

absl::Status Run(const RunFlags& flags) {
  const EngineFlags& ef = flags.engine;
  const std::string& prompt_ids = flags.prompt_ids;
  const std::string& prompt_text = flags.prompt_text;
  const std::string& output = flags.output;
  const std::string& dump_path = flags.dump_path;
  const int64_t n_predict = flags.n_predict;
  const bool chat = flags.chat, json = flags.json;
  if (prompt_ids.empty() == prompt_text.empty()) {
    return absl::InvalidArgumentError("give exactly one of --prompt-ids and -p/--prompt");
  }
  if (chat && prompt_text.empty()) return absl::InvalidArgumentError("--chat needs -p TEXT");
  if (output != "auto" && output != "text" && output != "ids") {
    return absl::InvalidArgumentError(absl::StrCat("--output '", output, "': expected auto, text or ids"));
  }
  std::vector<int32_t> prompt;
  if (!prompt_ids.empty()) {
    MOESTREAM_ASSIGN_OR_RETURN(prompt, ParseIds(prompt_ids));
    if (prompt.empty()) return absl::InvalidArgumentError("--prompt-ids: no ids given");
  }
  if (n_predict < 0) return absl::InvalidArgumentError("--n-predict must be >= 0");
  if (flags.seed < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seed ", flags.seed, ": expected -1 (random) or a seed >= 0"));
  }

  engine::SamplerOptions so;
  so.temperature = flags.temp;
  so.top_k = flags.top_k;
  so.top_p = flags.top_p;
  so.min_p = flags.min_p;
  so.repeat_penalty = flags.repeat_penalty;
  so.repeat_last_n = flags.repeat_last_n;
  so.seed = flags.seed < 0 ? engine::kRandomSeed : static_cast<uint64_t>(flags.seed);
  MOESTREAM_RETURN_IF_ERROR(so.Validate());

  // Everything that can be checked from the GGUF's header and the flags is
  // checked before any weight loads: the outputs' paths, the tokenizer and
  // the prompt, the context.
  LogitsDump dump;
  if (!dump_path.empty()) {
    MOESTREAM_RETURN_IF_ERROR(dump.Open(dump_path));
    if (absl::Status s = CheckOutputPath(dump_path + ".json"); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("--dump-logits: ", s.message()));
    }
  }
  if (!flags.record_trace.empty()) {
    if (absl::Status s = CheckOutputPath(flags.record_trace); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("--record-trace: ", s.message()));
    }
  }
  if (ef.model.empty()) return absl::InvalidArgumentError("-m MODEL is required");
  MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile header, io::GgufFile::Open(ef.model));
  MOESTREAM_ASSIGN_OR_RETURN(model::ModelConfig config, model::ReadModelConfig(header));
  MOESTREAM_ASSIGN_OR_RETURN(engine::EngineOptions eo, ef.EngineOptions());
  std::unique_ptr<text::Tokenizer> tokenizer;
  if (!prompt_text.empty() || output == "text") {
    absl::StatusOr<text::Tokenizer> t = text::Tokenizer::FromGguf(header);
    if (!t.ok()) {
      return absl::Status(t.status().code(),
                          absl::StrCat(!prompt_text.empty() ? "-p" : "--output text",
                                       " needs the model's vocabulary: ", t.status().message()));
    }
    tokenizer = std::make_unique<text::Tokenizer>(*std::move(t));
  }
  if (!prompt_text.empty()) {
    if (chat) {
      std::vector<text::ChatMessage> msgs;
      if (!flags.system_text.empty()) msgs.push_back({"system", flags.system_text});
      msgs.push_back({"user", prompt_text});
      MOESTREAM_ASSIGN_OR_RETURN(std::string formatted,
                                 text::FormatChat(header, msgs, true, flags.chat_format));
      prompt = tokenizer->Encode(formatted, /*add_special=*/true, /*parse_special=*/true);
    } else {
      prompt = tokenizer->Encode(prompt_text, /*add_special=*/true, /*parse_special=*/false);
    }
    if (prompt.empty()) return absl::InvalidArgumentError("-p: the prompt has no tokens");
  }
  for (int32_t id : prompt) {
    if (id >= config.n_vocab) {
      return absl::InvalidArgumentError(absl::StrCat("--prompt-ids: id ", id,
                                                     " is outside the vocabulary 0..",
                                                     config.n_vocab - 1));
    }
  }
  if (static_cast<int64_t>(prompt.size()) + n_predict > eo.ResolvedCtx(config)) {
    return absl::InvalidArgumentError(absl::StrCat("prompt (", prompt.size(), ") + -n ", n_predict,
                                                   " exceeds the context of ",
                                                   eo.ResolvedCtx(config),
                                                   " positions (raise --ctx)"));
  }

  engine::LoadOptions lo;
  lo.verbose = true;
  lo.record_trace = flags.record_trace;
  engine::CachedExpertProvider* offload = nullptr;
  EngineFlags ef_run = ef;
  ef_run.all_logits = !dump_path.empty();
  MOESTREAM_ASSIGN_OR_RETURN(std::unique_ptr<engine::LoadedModel> m,
                             LoadModel(ef_run, lo, &offload));
  engine::Engine& engine = *m->engine;
  if (tokenizer != nullptr) {
    // The vocabulary knows end-of-generation tokens the metadata may not name.
    for (int32_t id : tokenizer->eog_ids()) {
      if (!m->config.IsEog(id)) m->config.eog_ids.push_back(id);
    }
  }
  if (engine.n_ctx() != eo.ResolvedCtx(config)) {
    return absl::InternalError(absl::StrCat("context ", engine.n_ctx(), " differs from the ",
                                            eo.ResolvedCtx(config), " planned before loading"));
  }
  const bool as_text = output == "text" || (output == "auto" && tokenizer != nullptr);
  std::unique_ptr<text::Detokenizer> detok;
  if (as_text) detok = std::make_unique<text::Detokenizer>(*tokenizer);
  std::string text;

  engine::LogitsFn on_logits;
  if (!dump_path.empty()) {
    on_logits = [&dump](std::span<const float> l, int64_t rows) { return dump.Append(l, rows); };
  }
  FILE* tok_out = json ? stderr : stdout;
  engine::GenerateOptions go;
  go.n_predict = n_predict;
  go.stop_at_eog = !flags.ignore_eos;
  go.all_logits = !dump_path.empty();
  engine::Sampler sampler(so);
  bool first = true;
  auto on_token = [&](int32_t id) {
    if (detok != nullptr) {
      const std::string piece = detok->Push(id);
      text += piece;
      std::fputs(piece.c_str(), tok_out);
    } else {
      std::fprintf(tok_out, first ? "%d" : " %d", id);
    }
    std::fflush(tok_out);
    first = false;
    return true;
  };
  if (m->recorder != nullptr) m->recorder->BeginSequence(static_cast<int64_t>(prompt.size()));
  const engine::OffloadStats offload_before =
      offload != nullptr ? offload->stats() : engine::OffloadStats{};
  MOESTREAM_ASSIGN_OR_RETURN(engine::GenerationResult r,
                             engine::Generate(engine, sampler, prompt, go, on_token, on_logits));
  std::optional<OffloadReport> report;
  if (offload != nullptr) {
    report = MakeOffloadReport(*m, ef, *offload, offload->stats().Minus(offload_before),
                               r.stats.total_ms, r.stats.prompt_tokens + r.stats.decoded_tokens);
  }
  if (detok != nullptr) {
    const std::string rest = detok->Flush();
    text += rest;
    std::fputs(rest.c_str(), tok_out);
  }
  std::fprintf(tok_out, "\n");
  std::fflush(tok_out);
  if (m->recorder != nullptr) MOESTREAM_RETURN_IF_ERROR(m->recorder->Finish());
  if (!dump_path.empty()) {
    MOESTREAM_RETURN_IF_ERROR(dump.Finish(m->config.n_vocab, static_cast<int64_t>(prompt.size())));
  }

  const engine::GenerationStats& s = r.stats;
  if (json) {
    nlohmann::ordered_json out;
    out["model"] = ef.model;
    out["backend"] = m->backend->Describe();
    out["prompt_ids"] = prompt;
    out["generated_ids"] = r.generated_ids;
    if (detok != nullptr) out["text"] = text;
    out["prompt_tokens"] = s.prompt_tokens;
    out["generated_tokens"] = s.generated_tokens;
    out["prefill_ms"] = s.prefill_ms;
    out["prefill_tok_s"] = s.prefill_tok_s();
    out["decode_ms"] = s.decode_ms;
    out["decode_tok_s"] = s.decode_tok_s();
    out["decode_latency_ms"] = {{"p50", s.TokenLatencyMs(0.5)},
                                {"p90", s.TokenLatencyMs(0.9)},
                                {"p99", s.TokenLatencyMs(0.99)}};
    out["ttft_ms"] = s.ttft_ms;
    out["total_ms"] = s.total_ms;
    out["load_ms"] = m->load_ms;
    out["seed"] = sampler.seed();
    out["stopped_at_eog"] = r.stopped_at_eog;
    out["offload"] = report.has_value();
    if (report) report->AddJsonFields(out);
    // Text from a model need not be valid UTF-8: replace, do not throw.
    std::puts(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fprintf(stderr,
                 "prompt: %lld tokens, prefill %.1f tok/s (%.1f ms)\n"
                 "generated: %lld tokens, decode %.1f tok/s (%.1f ms for %lld), ttft %.1f ms%s\n",
                 static_cast<long long>(s.prompt_tokens), s.prefill_tok_s(), s.prefill_ms,
                 static_cast<long long>(s.generated_tokens), s.decode_tok_s(), s.decode_ms,
                 static_cast<long long>(s.decoded_tokens), s.ttft_ms,
                 r.stopped_at_eog ? " (stopped at end of generation)" : "");
    if (s.decoded_tokens > 0) {
      std::fprintf(stderr, "decode latency per token: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms\n",
                   s.TokenLatencyMs(0.5), s.TokenLatencyMs(0.9), s.TokenLatencyMs(0.99));
    }
    if (report) std::fputs(report->Text().c_str(), stderr);
  }
  return absl::OkStatus();
}

class RunCommand : public Command {
 public:
  void Register(CLI::App& app) override { flags_.Register(app); }
  absl::Status Run() override { return cli::Run(flags_); }

 private:
  RunFlags flags_;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(run, "generate tokens from a prompt with a GGUF model", RunCommand);

}  // namespace moestream::cli
