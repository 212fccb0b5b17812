// Importers for public routing traces, with the source format detected, and
// the expert-popularity input of the `static` policy.
//
// Formats (each file's SOURCE.md under ../shared/data describes it):
//   moestream   our binary trace (trace/trace.h), magic "MSTRACE".
//   route-csv   "# route_trace v1" CSV (Qwen3, Gemma 4, gpt-oss, ...): one
//               row per routed expert; preamble gives arch, n_expert,
//               n_expert_used and per-layer expert_bytes. Prefill rows are
//               one batch (step = 0, layer-major as executed), decode rows one
//               token per step. Layers present (e.g. even layers only) are
//               mapped to dense indices; layer_ids keeps the model's numbers.
//   mixtral-jsonl  {"problem_id","layer","experts","gating_probs","token_idx"}
//               per (problem, layer, decode token), ordered problem -> layer
//               -> token: each problem becomes one sequence, reordered to
//               execution order (token-major). A directory imports every
//               *_routing.jsonl in name order as consecutive sequences.
//               Known defect: tokens with tied [0.5, 0.5] weights were
//               dropped and token_idx renumbered per layer, so layers may
//               be misaligned by up to 3 tokens (harmless per layer).
//   mixtral-raw  same with "token_pos": per layer the prompt tokens
//               (token_pos 0, 1, ...: prefill, one batch) then decode tokens
//               (token_pos 0 each).
//   vllm-logger  {"type":"meta",...} header then {"type":"route",
//               "token_idx","layer","topk_ids","topk_weights"} rows (Qwen1.5-
//               MoE, OLMoE). Rows form forward batches (token_idx restarts at
//               0). Leading dummy batches (all rows identical: vLLM's memory
//               profiling and warm-up) are dropped, and real data starts at
//               the largest remaining batch (the batched prefill); the
//               batches after it are decode steps. A directory of
//               moe_layer<N>.jsonl files (one layer each, same batches) is
//               merged row by row into one multi-layer trace. When token_idx
//               never restarts (OLMoE: a global counter), every row is its
//               own step, phase decode (prefill/decode boundaries are not
//               recorded there).
//
//   MOESTREAM_ASSIGN_OR_RETURN(Trace t, LoadTrace("../shared/data/qwen3-30b-a3b-route-trace"));
//   MOESTREAM_ASSIGN_OR_RETURN(std::vector<double> pop, LoadPopularityCsv(file, t.shape));
#ifndef MOESTREAM_TRACE_TRACE_IMPORT_H_
#define MOESTREAM_TRACE_TRACE_IMPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trace/trace.h"

namespace moestream::trace {

// The format name of a trace file or directory (see above), or
// kInvalidArgument naming the path and what was found.
absl::StatusOr<std::string> DetectTraceFormat(const std::string& path);

// Loads a trace file or directory in any supported format.
absl::StatusOr<Trace> LoadTrace(const std::string& path);

// Expert popularity per (dense layer, expert) for `shape`, from a CSV with a
// "Layer,<label>,Expert_0,..." header (the Qwen3 popularity files; rows of
// the same layer, e.g. two languages, are summed) mapped through
// shape.layer_ids, or from a trace file (counts of routed experts).
absl::StatusOr<std::vector<double>> LoadPopularity(const std::string& path,
                                                   const TraceShape& shape);
// Counts of routed experts per (layer, expert) over the whole trace.
std::vector<double> TracePopularity(const Trace& t);

}  // namespace moestream::trace

#endif  // MOESTREAM_TRACE_TRACE_IMPORT_H_
