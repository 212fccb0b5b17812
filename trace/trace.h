// Routing traces: which experts each token chose at each MoE layer, recorded
// from moestream runs or imported from public traces, and replayed through the
// real expert cache (trace/replay.h).
//
// ---------------------------------------------------------------------------
// In memory. A Trace is the model shape plus a list of cells in execution
// order; a cell is one token at one MoE layer:
//   seq    sequence (prompt/problem) id; replay starts each sequence cold
//   step   batch id inside the sequence: cells with equal (seq, step, layer)
//          were routed in one forward batch (a prefill, or a batched decode
//          step) and are fetched as one request of their union
//   pos    token position in the sequence (context index)
//   layer  dense layer index 0..n_layers-1 (shape.layer_ids maps it to the
//          model's own layer number: traces may hold a subset of layers)
//   phase  prefill or decode
//   experts, weights: the top-k chosen (gate order) and their gate weights
//   guesses: what the live predictor guessed for this cell before routing
//          (only in traces recorded live with a predictor)
//
// On disk (binary, little-endian, version 2; ".mstrace"):
//   char[8]  magic "MSTRACE\0"
//   u32      version = 2
//   u32      n_layers, n_experts, top_k
//   str      model name            (str = u32 length + bytes)
//   str      source format ("moestream", "route-csv", "mixtral-jsonl", ...)
//   u32 n + i32[n]   layer_ids     (model layer number of each dense layer)
//   u32 n + u64[n]   expert_bytes  (per dense layer; empty or 0 = unknown)
//   u64      n_cells, n_entries (experts), n_guesses
//   n_cells x 20 B:  u32 seq, u32 step, u32 pos, u16 layer, u8 phase,
//                    u8 n_experts, u16 n_guesses, u16 reserved (0)
//   u16[n_entries]   expert ids, cell after cell
//   f32[n_entries]   gate weights, same order
//   u32[n_guesses]   guessed keys (layer << 16 | expert), cell after cell
//   u64      FNV-1a 64 of every preceding byte (standard: offset basis
//            14695981039346656037, prime 1099511628211)
// About 26 bytes per (token, layer) at top-2: a 48-layer model decoding 10k
// tokens is ~20 MB. Writers write version 2. Version 1 is the same layout
// with a checksum whose offset basis lacks a digit (1469598103934665603);
// readers still accept it with that basis, so old traces keep loading.
// Readers reject other magics and versions (kDataLoss / kUnimplemented),
// verify the checksum and check every field against the shape and the caps
// below (kDataLoss naming the file, the field, its value and the range).
//
// Caps (every format): at most kMaxTraceLayers dense layers, model layer
// numbers below kMaxTraceLayers, kMaxTraceExperts experts per layer,
// kMaxTraceTopK experts per cell (and top-k <= experts), expert sizes up to
// kMaxTraceExpertBytes, gate weights finite and >= 0, guesses inside the
// shape. Replay allocates per (layer, expert), so the caps bound its memory
// whatever a file claims.
//
// CSV export (one row per routed expert):
//   seq,step,pos,phase,layer,layer_id,rank,expert,weight
//
//   Trace t;  t.shape = {...};
//   t.AddCell({.seq = 0, .step = 5, .pos = 5, .layer = 3, .phase = Phase::kDecode}, ids, w);
//   MOESTREAM_RETURN_IF_ERROR(WriteTrace(t, "run.mstrace"));
//   MOESTREAM_ASSIGN_OR_RETURN(Trace u, ReadTrace("run.mstrace"));
//
// Recording from the engine (trace/trace.h's TraceRecorder): after layer
// L's router picks `ids` with `weights` for the token at `pos`:
//   recorder.Record(L, pos, Phase::kDecode, ids, weights);   // + guesses
// and recorder.Finish() writes the file (atomically).
#ifndef MOESTREAM_TRACE_TRACE_H_
#define MOESTREAM_TRACE_TRACE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/expert_key.h"

namespace moestream::trace {

inline constexpr uint32_t kTraceVersion = 2;        // written
inline constexpr uint32_t kTraceVersionLegacy = 1;  // still read (old checksum basis)
inline constexpr int kMaxTraceLayers = 1024;
inline constexpr int kMaxTraceExperts = 4096;
inline constexpr int kMaxTraceTopK = 255;
inline constexpr uint64_t kMaxTraceExpertBytes = uint64_t{1} << 40;

// FNV-1a 64 of `bytes` from the offset basis `basis` (default the standard
// one; version 1 traces use kFnv1a64LegacyBasis).
inline constexpr uint64_t kFnv1a64Basis = 14695981039346656037ull;
inline constexpr uint64_t kFnv1a64LegacyBasis = 1469598103934665603ull;
uint64_t Fnv1a64(std::string_view bytes, uint64_t basis = kFnv1a64Basis);

enum class Phase : uint8_t { kPrefill = 0, kDecode = 1 };
const char* PhaseName(Phase p);  // "prefill", "decode"

struct TraceShape {
  std::string model;            // e.g. "qwen3moe", "Mixtral-8x7B"
  std::string source;           // format it came from
  int n_layers = 0;             // dense layers in the trace
  int n_experts = 0;            // routed experts per layer
  int top_k = 0;                // experts per token (max over cells)
  std::vector<int> layer_ids;   // model layer number per dense layer
  std::vector<uint64_t> expert_bytes;  // per dense layer, when known
};

struct TraceCell {
  uint32_t seq = 0;
  uint32_t step = 0;
  uint32_t pos = 0;
  uint16_t layer = 0;
  Phase phase = Phase::kDecode;
  uint8_t n_experts = 0;   // filled by AddCell
  uint16_t n_guesses = 0;  // filled by AddCell
  uint64_t offset = 0;     // into experts/weights (filled by AddCell)
  uint64_t guess_offset = 0;
};

struct Trace {
  TraceShape shape;
  std::vector<TraceCell> cells;
  std::vector<uint16_t> experts;
  std::vector<float> weights;
  std::vector<uint32_t> guesses;  // packed ExpertKey

  // Appends a cell; `weights` is empty or the same length as `ids`.
  void AddCell(TraceCell c, std::span<const int32_t> ids, std::span<const float> w,
               std::span<const ExpertKey> guessed = {});
  std::span<const uint16_t> Experts(const TraceCell& c) const {
    return {experts.data() + c.offset, c.n_experts};
  }
  std::span<const float> Weights(const TraceCell& c) const {
    return {weights.data() + c.offset, c.n_experts};
  }
  std::span<const uint32_t> Guesses(const TraceCell& c) const {
    return {guesses.data() + c.guess_offset, c.n_guesses};
  }
  // Checks the shape against the caps above and that shape and cells agree
  // (layer < n_layers, expert < n_experts, k <= top_k, weights finite and
  // >= 0, guesses inside the shape); kDataLoss naming the field and its
  // range, or the first bad cell.
  absl::Status Validate() const;
};

absl::Status WriteTrace(const Trace& t, const std::string& path);
absl::StatusOr<Trace> ReadTrace(const std::string& path);
// CSV of every cell; path "-" writes it to standard output.
absl::Status WriteTraceCsv(const Trace& t, const std::string& path);

// Builds a trace from the engine's routing decisions, token by token, and
// writes it at Finish(). Not thread-safe (the engine thread calls it).
class TraceRecorder {
 public:
  // `layer_ids` defaults to 0..n_layers-1.
  TraceRecorder(std::string path, TraceShape shape);
  // Starts a new sequence (a new prompt); the first sequence is 0.
  void BeginSequence();
  // One token at one MoE layer. Prefill cells of one forward share a step
  // (the recorder numbers prefill batches and decode tokens itself).
  void Record(int layer, uint32_t token_pos, Phase phase, std::span<const int32_t> ids,
              std::span<const float> weights,
              std::span<const ExpertKey> guesses = {});
  // Marks the end of one forward batch (call after the last layer of a
  // prefill or decode step): the next Record starts a new step.
  void EndStep() { ++step_; }
  const Trace& trace() const { return trace_; }
  absl::Status Finish();

 private:
  std::string path_;
  Trace trace_;
  uint32_t seq_ = 0;
  uint32_t step_ = 0;
};

}  // namespace moestream::trace

#endif  // MOESTREAM_TRACE_TRACE_H_
