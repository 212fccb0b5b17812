// `moestream bench`: prefill and decode throughput with every expert
// resident. Each repetition resets the context, prefills a fixed
// pseudo-random prompt as one batch and decodes greedily; the medians over
// the repetitions are reported (and every repetition with --json), beside
// tokens per CPU-second of the process (meaningful on a shared machine).
//
//   moestream bench -m model.gguf --prompt 128 --gen 64 --reps 3 -t 2 --json
//   moestream bench -m model.gguf --device-budget 64M --experts-on nvme --link pcie4x16 --json
//
// With offloading (engine_flags.h) the expert cache's figures are reported
// over the decode phases of all repetitions (OffloadReport: hit_rate,
// prefetch_precision/recall, link_bytes, tier_bytes, stall_ms,
// overlap_efficiency, budgets and high-water marks), plus the overlap
// efficiency of each repetition.
//
// Decode's use of memory bandwidth (cpu backend, experts resident):
// decode_weight_GBps = the weight bytes one decode step reads (every dense
// matrix, the routers, the LM head and k routed experts per MoE layer) ×
// decode tok/s; decode_weight_to_memcpy_ratio divides it by memcpy's memory
// traffic (2 × bytes copied per second, the bench's thread count, measured
// in this process after the repetitions); overhead_ms_per_token is the
// decode time per token outside the matrix products (attention, norms,
// router, top-k, sampling, hand-offs).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "base/status_macros.h"
#include "cli/command.h"
#include "cli/engine_flags.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "kernels/cpu/memcpy_probe.h"
#include "kernels/quant.h"
#include "model/model_config.h"
#include "nlohmann/json.hpp"

namespace moestream::cli {
namespace {

// read_bytes of /proc/self/io: bytes this process caused to be read from
// storage (0 where the kernel does not say).
uint64_t StorageReadBytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  uint64_t v = 0;
  while (in >> key >> v) {
    if (key == "read_bytes:") return v;
  }
  return 0;
}

uint64_t ViewBytes(const kernels::WeightView& v) {
  return v.data == nullptr ? 0 : RowBytes(v.type, static_cast<uint64_t>(v.n_in)) * v.n_out;
}

// Weight bytes one decode step reads: dense matrices, routers, the LM head,
// and k routed experts per MoE layer (as the first expert's size). 0 when
// the routed experts are not resident (offloading).
uint64_t DecodeWeightBytes(const engine::LoadedModel& m) {
  const model::ModelWeights& w = *m.weights;
  uint64_t bytes = ViewBytes(w.output);
  for (const model::LayerWeights& l : w.layers) {
    for (const kernels::WeightView* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up,
                                         &l.ffn_down, &l.router}) {
      bytes += ViewBytes(*v);
    }
    if (l.is_moe()) {
      if (l.experts.empty()) return 0;
      const model::ExpertWeights& e = l.experts.front();
      bytes += static_cast<uint64_t>(m.config.n_expert_used) *
               (ViewBytes(e.gate) + ViewBytes(e.up) + ViewBytes(e.down));
    }
  }
  return bytes;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// --sequences N: decode tok/s of N sequences stepped one after another
// and together (Engine::StepSequences), medians over the repetitions; with
// offloading, the expert loads and bytes moved per generated token of each.
struct SequencesResult {
  int64_t sequences = 0;
  double alone_tok_s = 0, together_tok_s = 0;
  double alone_loads_per_token = 0, together_loads_per_token = 0;
  double alone_bytes_per_token = 0, together_bytes_per_token = 0;
};

int32_t Argmax(std::span<const float> v) {
  return int32_t(std::max_element(v.begin(), v.end()) - v.begin());
}

absl::StatusOr<SequencesResult> BenchSequences(engine::LoadedModel& m,
                                               engine::CachedExpertProvider* offload,
                                               const EngineFlags& ef, int64_t n, int64_t n_prompt,
                                               int64_t n_gen, int64_t reps) {
  // The model's engine's memory goes to the first sequence's, which carries
  // the batched steps (as the server's first slot).
  m.engine.reset();
  MOESTREAM_ASSIGN_OR_RETURN(engine::EngineOptions eo, ef.EngineOptions());
  std::vector<std::unique_ptr<engine::Engine>> owned;
  std::vector<engine::Engine*> seqs;
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t i = 0; i < n; ++i) {
    engine::EngineOptions o = eo;
    if (i == 0) o.batch_sequences = n;
    MOESTREAM_ASSIGN_OR_RETURN(
        std::unique_ptr<engine::Engine> e,
        engine::Engine::Create(*m.backend, m.config, *m.weights, m.provider.get(), o));
    seqs.push_back(e.get());
    owned.push_back(std::move(e));
    std::mt19937 rng(uint32_t(4321 + i));
    std::uniform_int_distribution<int32_t> pick(0, int32_t(m.config.n_vocab - 1));
    std::vector<int32_t> p;
    while (int64_t(p.size()) < n_prompt) {
      const int32_t id = pick(rng);
      if (!m.config.IsEog(id)) p.push_back(id);
    }
    prompts.push_back(std::move(p));
  }
  std::vector<int32_t> tokens(size_t(n), 0);
  // One decode phase of n_gen steps; returns seconds, adds the offload window.
  auto phase = [&](bool together, engine::OffloadStats* window) -> absl::StatusOr<double> {
    for (int64_t i = 0; i < n; ++i) {
      seqs[size_t(i)]->Reset();
      MOESTREAM_RETURN_IF_ERROR(seqs[size_t(i)]->Process(prompts[size_t(i)], engine::LogitsMode::kLast));
    }
    const engine::OffloadStats before = offload ? offload->stats() : engine::OffloadStats{};
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t step = 0; step < n_gen; ++step) {
      for (int64_t i = 0; i < n; ++i) tokens[size_t(i)] = Argmax(seqs[size_t(i)]->last_logits());
      if (together) {
        MOESTREAM_RETURN_IF_ERROR(seqs.front()->StepSequences(seqs, tokens));
      } else {
        for (int64_t i = 0; i < n; ++i) {
          MOESTREAM_RETURN_IF_ERROR(
              seqs[size_t(i)]->Process({&tokens[size_t(i)], 1}, engine::LogitsMode::kLast));
        }
      }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (offload != nullptr) window->Add(offload->stats().Minus(before));
    return secs;
  };
  std::vector<double> alone, together;
  engine::OffloadStats w_alone, w_together;
  for (int64_t r = 0; r < reps; ++r) {
    MOESTREAM_ASSIGN_OR_RETURN(double a, phase(false, &w_alone));
    MOESTREAM_ASSIGN_OR_RETURN(double t, phase(true, &w_together));
    alone.push_back(a > 0 ? double(n * n_gen) / a : 0);
    together.push_back(t > 0 ? double(n * n_gen) / t : 0);
  }
  SequencesResult out;
  out.sequences = n;
  out.alone_tok_s = Median(alone);
  out.together_tok_s = Median(together);
  const double tokens_total = double(n * n_gen * reps);
  if (offload != nullptr && tokens_total > 0) {
    auto moved = [](const engine::OffloadStats& w) {
      uint64_t b = w.cache.link_bytes;
      for (uint64_t t : w.cache.tier_bytes) b += t;
      return double(b);
    };
    out.alone_loads_per_token = double(w_alone.cache.loads) / tokens_total;
    out.together_loads_per_token = double(w_together.cache.loads) / tokens_total;
    out.alone_bytes_per_token = moved(w_alone) / tokens_total;
    out.together_bytes_per_token = moved(w_together) / tokens_total;
  }
  return out;
}

// The flags of `bench`, besides the engine's.
struct BenchFlags {
  EngineFlags engine;
  int64_t n_prompt = 128;
  int64_t n_gen = 64;
  int64_t reps = 3;
  int64_t sequences = 1;
  bool json = false;

  void Register(CLI::App& app) {
    engine.Register(app);
    app.add_option("--prompt", n_prompt, "prompt tokens prefilled as one batch");
    app.add_option("--gen", n_gen, "tokens decoded one at a time");
    app.add_option("--reps", reps, "repetitions; medians are reported");
    app.add_option("--sequences", sequences,
                   "then decode N sequences one after another and together (as the server's "
                   "slots), and report both");
    app.add_flag("--json", json, "print the results as one JSON object on stdout");
  }
};

absl::Status Bench(const BenchFlags& flags) {
  EngineFlags ef = flags.engine;
  const int64_t n_prompt = flags.n_prompt, n_gen = flags.n_gen, reps = flags.reps;
  const bool json = flags.json;
  if (n_prompt < 1) return absl::InvalidArgumentError("--prompt must be >= 1");
  if (n_gen < 0) return absl::InvalidArgumentError("--gen must be >= 0");
  if (reps < 1 || reps > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("--reps ", reps, " is out of range 1..1000"));
  }
  if (flags.sequences < 1 || flags.sequences > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("--sequences ", flags.sequences, " is out of range 1..256"));
  }
  if (ef.ctx == 0) ef.ctx = n_prompt + n_gen + 1;
  if (flags.sequences > ef.batch) {
    return absl::InvalidArgumentError(absl::StrCat("--sequences ", flags.sequences,
                                                   " exceeds --batch ", ef.batch));
  }

  engine::CachedExpertProvider* offload = nullptr;
  std::unique_ptr<engine::LoadedModel> m;
  {
    MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile header, io::GgufFile::Open(ef.model));
    MOESTREAM_ASSIGN_OR_RETURN(model::ModelConfig config, model::ReadModelConfig(header));
    MOESTREAM_ASSIGN_OR_RETURN(m, LoadModelForSequences(ef, config, int(flags.sequences),
                                                        "--sequences", !json, &offload));
  }
  engine::Engine& engine = *m->engine;

  // A fixed prompt of ids that are not end-of-generation tokens.
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(m->config.n_vocab - 1));
  std::vector<int32_t> prompt;
  while (static_cast<int64_t>(prompt.size()) < n_prompt) {
    const int32_t id = pick(rng);
    if (!m->config.IsEog(id)) prompt.push_back(id);
  }
  engine::SamplerOptions so;
  so.temperature = 0;
  engine::GenerateOptions go;
  go.n_predict = n_gen + 1;  // n_gen tokens fed back through the model
  go.stop_at_eog = false;

  // One short warm-up (page faults, thread pool start).
  {
    engine::Sampler s(so);
    engine::GenerateOptions warm = go;
    warm.n_predict = std::min<int64_t>(go.n_predict, 4);
    engine.Reset();
    MOESTREAM_ASSIGN_OR_RETURN(engine::GenerationResult w,
                               engine::Generate(engine, s, {prompt.data(), std::min<size_t>(prompt.size(), 16)},
                                                 warm, nullptr));
    (void)w;
  }
  std::vector<double> prefill, decode, ttft, prefill_cpu, decode_cpu, overlap;
  // Matrix-product time within the decode phases (backends that report it).
  kernels::ComputeStats compute_start;
  uint64_t decode_matmul_ns = 0;
  double decode_ms_total = 0;
  // Offloading: the decode phase starts at the first sampled token.
  engine::OffloadStats decode_window, decode_start;
  double decode_window_ms = 0;
  int64_t decode_tokens = 0;
  engine::GenerationStats latency;  // every rep's decode steps, for percentiles
  // Bytes the process read from storage (page-cache misses and direct
  // reads alike) during the decode phases: what every tier costs the disk.
  uint64_t storage_start = 0, storage_decode = 0;
  engine::TokenFn on_token;
  bool first_token = true;
  on_token = [&](int32_t) {
    if (first_token) {
      if (offload != nullptr) decode_start = offload->stats();
      compute_start = m->backend->compute_stats();
      storage_start = StorageReadBytes();
    }
    first_token = false;
    return true;
  };
  for (int64_t r = 0; r < reps; ++r) {
    engine::Sampler s(so);
    engine.Reset();
    first_token = true;
    MOESTREAM_ASSIGN_OR_RETURN(engine::GenerationResult res,
                               engine::Generate(engine, s, prompt, go, on_token));
    if (offload != nullptr) {
      const engine::OffloadStats w = offload->stats().Minus(decode_start);
      decode_window.Add(w);
      decode_window_ms += res.stats.decode_ms;
      overlap.push_back(
          MakeOffloadReport(*m, ef, *offload, w, res.stats.decode_ms, res.stats.decoded_tokens)
              .overlap_efficiency());
    }
    decode_tokens += res.stats.decoded_tokens;
    decode_ms_total += res.stats.decode_ms;
    decode_matmul_ns += m->backend->compute_stats().matmul_ns - compute_start.matmul_ns;
    storage_decode += StorageReadBytes() - storage_start;
    latency.token_ms.insert(latency.token_ms.end(), res.stats.token_ms.begin(),
                            res.stats.token_ms.end());
    prefill.push_back(res.stats.prefill_tok_s());
    decode.push_back(res.stats.decode_tok_s());
    ttft.push_back(res.stats.ttft_ms);
    const engine::GenerationStats& st = res.stats;
    prefill_cpu.push_back(st.prefill_cpu_ms > 0 ? st.prompt_tokens * 1e3 / st.prefill_cpu_ms : 0);
    decode_cpu.push_back(st.decode_cpu_ms > 0 ? st.decoded_tokens * 1e3 / st.decode_cpu_ms : 0);
    if (!json) {
      std::fprintf(stderr,
                   "rep %lld: prefill %.1f tok/s (%.1f tok/cpu-s), decode %.1f tok/s (%.1f tok/cpu-s)\n",
                   static_cast<long long>(r + 1), prefill.back(), prefill_cpu.back(),
                   decode.back(), decode_cpu.back());
      if (offload != nullptr) {
        std::fprintf(stderr, "rep %lld: decode overlap efficiency %.3f\n",
                     static_cast<long long>(r + 1), overlap.back());
      }
    }
  }
  const double pp = Median(prefill), tg = Median(decode), tt = Median(ttft);
  const double pp_cpu = Median(prefill_cpu), tg_cpu = Median(decode_cpu);
  std::optional<OffloadReport> report;
  if (offload != nullptr) {
    report = MakeOffloadReport(*m, ef, *offload, decode_window, decode_window_ms, decode_tokens);
  }
  // Bandwidth use: against memcpy measured now, in this process.
  const bool cpu = m->backend->name() == "cpu";
  const uint64_t step_bytes = DecodeWeightBytes(*m);
  const double weight_gbps = double(step_bytes) * tg / 1e9;
  const double memcpy_gbps = cpu && step_bytes > 0 ? kernels::cpu::MeasureMemcpyGbps(ef.threads, 4) : 0;
  const double overhead_ms =
      cpu && decode_tokens > 0 ? (decode_ms_total - decode_matmul_ns / 1e6) / double(decode_tokens) : 0;
  std::optional<SequencesResult> seq;
  if (flags.sequences > 1) {
    MOESTREAM_ASSIGN_OR_RETURN(seq, BenchSequences(*m, offload, ef, flags.sequences, n_prompt,
                                                   n_gen, reps));
  }
  if (json) {
    nlohmann::ordered_json out;
    out["model"] = ef.model;
    out["arch"] = m->config.arch;
    out["backend"] = m->backend->Describe();
    out["prompt_tokens"] = n_prompt;
    out["gen_tokens"] = n_gen;
    out["reps"] = reps;
    out["prefill_tok_s"] = pp;
    out["decode_tok_s"] = tg;
    out["ttft_ms"] = tt;
    out["prefill_tok_per_cpu_s"] = pp_cpu;
    out["decode_tok_per_cpu_s"] = tg_cpu;
    out["threads"] = ef.threads;
    out["weights_bytes"] = m->weights->device_bytes();
    out["prefill_tok_s_reps"] = prefill;
    out["decode_tok_s_reps"] = decode;
    out["decode_tokens"] = decode_tokens;
    out["storage_read_bytes_per_token"] =
        decode_tokens > 0 ? double(storage_decode) / double(decode_tokens) : 0.0;
    if (cpu && step_bytes > 0) {
      out["decode_weight_bytes_per_token"] = step_bytes;
      out["decode_weight_GBps"] = weight_gbps;
      out["memcpy_GBps"] = memcpy_gbps;
      out["decode_weight_to_memcpy_ratio"] = weight_gbps / (2 * memcpy_gbps);
    }
    if (cpu) out["overhead_ms_per_token"] = overhead_ms;
    out["decode_latency_ms"] = {{"p50", latency.TokenLatencyMs(0.5)},
                                {"p90", latency.TokenLatencyMs(0.9)},
                                {"p99", latency.TokenLatencyMs(0.99)}};
    out["offload"] = report.has_value();
    if (report) {
      report->AddJsonFields(out);
      out["overlap_efficiency_reps"] = overlap;
    }
    if (seq) {
      nlohmann::ordered_json j;
      j["sequences"] = seq->sequences;
      j["alone_decode_tok_s"] = seq->alone_tok_s;
      j["together_decode_tok_s"] = seq->together_tok_s;
      j["together_to_alone_ratio"] =
          seq->alone_tok_s > 0 ? seq->together_tok_s / seq->alone_tok_s : 0.0;
      if (report) {
        j["alone_loads_per_token"] = seq->alone_loads_per_token;
        j["together_loads_per_token"] = seq->together_loads_per_token;
        j["alone_bytes_moved_per_token"] = seq->alone_bytes_per_token;
        j["together_bytes_moved_per_token"] = seq->together_bytes_per_token;
      }
      out["sequences"] = j;
    }
    std::puts(out.dump().c_str());
  } else {
    std::printf("%s\nprefill %lld tokens: %.1f tok/s (%.1f tok/cpu-s)   decode %lld tokens: "
                "%.1f tok/s (%.1f tok/cpu-s)   (median of %lld; ttft %.1f ms)\n",
                m->config.Summary().c_str(), static_cast<long long>(n_prompt), pp, pp_cpu,
                static_cast<long long>(n_gen), tg, tg_cpu, static_cast<long long>(reps), tt);
    std::printf("decode latency per token: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms\n",
                latency.TokenLatencyMs(0.5), latency.TokenLatencyMs(0.9),
                latency.TokenLatencyMs(0.99));
    if (cpu && step_bytes > 0) {
      std::printf("decode reads %.1f MB of weights per token: %.2f GB/s, %.2f of memcpy's traffic "
                  "(%.2f GB/s copied); %.2f ms per token outside the matrix products\n",
                  step_bytes / 1e6, weight_gbps, weight_gbps / (2 * memcpy_gbps), memcpy_gbps,
                  overhead_ms);
    }
    if (report) std::printf("decode phases:\n%s", report->Text().c_str());
    if (seq) {
      std::printf("%lld sequences, decode tok/s of all together: %.1f one after another, %.1f "
                  "stepped together (%.2fx)\n",
                  static_cast<long long>(seq->sequences), seq->alone_tok_s, seq->together_tok_s,
                  seq->alone_tok_s > 0 ? seq->together_tok_s / seq->alone_tok_s : 0.0);
      if (report) {
        std::printf("  per generated token: %.2f expert loads and %.1f MB moved one after another, "
                    "%.2f and %.1f MB together\n",
                    seq->alone_loads_per_token, seq->alone_bytes_per_token / 1e6,
                    seq->together_loads_per_token, seq->together_bytes_per_token / 1e6);
      }
    }
  }
  return absl::OkStatus();
}

class BenchCommand : public Command {
 public:
  void Register(CLI::App& app) override { flags_.Register(app); }
  absl::Status Run() override { return Bench(flags_); }

 private:
  BenchFlags flags_;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(bench, "prefill and decode tok/s of a model (median of repetitions)",
                           BenchCommand);

}  // namespace moestream::cli
