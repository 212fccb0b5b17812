#include "trace/trace_import.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"
#include "trace/csv.h"
#include "trace/field_check.h"

namespace moestream::trace {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open trace '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A non-empty line of a text file and its 1-based number (blank lines are
// skipped but still counted, so errors point at the right line).
struct Line {
  size_t no;
  std::string_view text;
};

std::vector<Line> Lines(const std::string& data) {
  std::vector<Line> out;
  size_t start = 0;
  for (size_t no = 1; start < data.size(); ++no) {
    size_t nl = data.find('\n', start);
    if (nl == std::string::npos) nl = data.size();
    std::string_view line(data.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) out.push_back({no, line});
    start = nl + 1;
  }
  return out;
}

absl::Status BadLine(const std::string& path, size_t line_no, std::string_view what) {
  return absl::DataLossError(
      absl::StrCat("trace '", Av(path), "' line ", line_no, ": ", Av(what)));
}

// ---- the JSON objects of the jsonl formats, one per line

using Json = nlohmann::json;

absl::StatusOr<Json> ParseJsonLine(const std::string& path, const Line& line) {
  try {
    Json j = Json::parse(line.text);
    if (!j.is_object()) return BadLine(path, line.no, "expected a JSON object");
    return j;
  } catch (const Json::exception& e) {
    // nlohmann reports malformed input by exception; it stops here, as one
    // error naming the file and line.
    return BadLine(path, line.no, absl::StrCat("not valid JSON: ", e.what()));
  }
}

// Where a record's field errors point: "trace 'PATH' line N".
std::string Where(const std::string& path, size_t line_no) {
  return absl::StrCat("trace '", path, "' line ", line_no);
}

bool JsonString(const Json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

// A record's numeric fields, each checked: an integer in its range, or a
// gate weight (finite, >= 0). Present keys of the wrong kind or out of range
// are one error naming file, line, field, value and range; a missing key is
// reported by the caller, which knows what the record needs.
class JsonFields {
 public:
  JsonFields(const Json& j, std::string where) : j_(j), where_(std::move(where)) {}
  bool Has(const char* key) const { return j_.contains(key); }
  // *out unchanged when the key is absent.
  absl::Status Int(const char* key, int64_t lo, int64_t hi, int64_t* out) const {
    auto it = j_.find(key);
    if (it == j_.end()) return absl::OkStatus();
    return IntValue(key, *it, lo, hi, out);
  }
  absl::Status IntArray(const char* key, int64_t lo, int64_t hi, std::vector<int32_t>* out) const {
    out->clear();
    auto it = j_.find(key);
    if (it == j_.end()) return absl::OkStatus();
    MOESTREAM_RETURN_IF_ERROR(CheckArray(key, *it));
    for (size_t i = 0; i < it->size(); ++i) {
      int64_t v = 0;
      MOESTREAM_RETURN_IF_ERROR(IntValue(absl::StrCat(key, "[", i, "]"), (*it)[i], lo, hi, &v));
      out->push_back(int32_t(v));
    }
    return absl::OkStatus();
  }
  absl::Status WeightArray(const char* key, std::vector<float>* out) const {
    out->clear();
    auto it = j_.find(key);
    if (it == j_.end()) return absl::OkStatus();
    MOESTREAM_RETURN_IF_ERROR(CheckArray(key, *it));
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& v = (*it)[i];
      if (!v.is_number() || !WeightOk(v.get<double>())) {
        return BadField(where_, absl::StrCat(key, "[", i, "]"), v.dump(), kWeightRange);
      }
      out->push_back(v.get<float>());
    }
    return absl::OkStatus();
  }

 private:
  absl::Status CheckArray(const char* key, const Json& v) const {
    if (!v.is_array() || v.size() > size_t(kMaxTraceTopK)) {
      return BadField(where_, key, v.is_array() ? absl::StrCat("[", v.size(), " values]") : v.dump(),
                      absl::StrCat("an array of at most ", kMaxTraceTopK, " numbers"));
    }
    return absl::OkStatus();
  }
  absl::Status IntValue(std::string_view field, const Json& v, int64_t lo, int64_t hi,
                        int64_t* out) const {
    if (!v.is_number() || !IntIn(v.get<double>(), lo, hi, out)) {
      return BadField(where_, field, v.dump(), IntRange(lo, hi));
    }
    return absl::OkStatus();
  }
  const Json& j_;
  std::string where_;
};

// Largest values of record fields the importers keep as 32-bit integers.
constexpr int64_t kMaxId = INT32_MAX;  // problem, turn, token index/position, step

// The first line of a file parsed as JSON, or null when it is not an object.
Json FirstLineJson(const std::string& line) {
  Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : Json();
}

void FinishShape(Trace& t, int n_layers, int n_experts, std::vector<int> layer_ids) {
  t.shape.n_layers = n_layers;
  t.shape.n_experts = n_experts;
  t.shape.layer_ids = std::move(layer_ids);
  int k = 0;
  for (const TraceCell& c : t.cells) k = std::max(k, int(c.n_experts));
  t.shape.top_k = std::max(t.shape.top_k, k);
}

// The fields of a CSV line as views into `line` or, when it has quoted
// fields, into `storage` (route traces run to millions of rows, nearly all
// without quotes: those are split in place).
absl::Status CsvFields(const std::string& path, const Line& line, std::vector<std::string>* storage,
                       std::vector<absl::string_view>* fields) {
  if (line.text.find('"') == std::string_view::npos) {
    *fields = absl::StrSplit(Av(line.text), ',');
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> split = SplitCsvRecord(line.text);
  if (!split.ok()) return BadLine(path, line.no, Sv(split.status().message()));
  *storage = *std::move(split);
  fields->assign(storage->begin(), storage->end());
  return absl::OkStatus();
}

// ---- route-csv

absl::StatusOr<Trace> ImportRouteCsv(const std::string& path) {
  MOESTREAM_ASSIGN_OR_RETURN(std::string data, ReadAll(path));
  std::vector<Line> lines = Lines(data);
  Trace t;
  t.shape.source = "route-csv";
  // From the preamble; 0 = not given (then the caps bound the values).
  int64_t n_expert = 0, n_layer = 0, top_k = 0;
  std::map<int, uint64_t> layer_bytes;
  std::map<std::string, int> col;
  size_t n_fields = 0;  // a row needs at least this many (the last needed column)
  struct Row {
    size_t line_no;
    int turn, phase, step, layer, expert;
    float weight;
  };
  std::vector<Row> rows;
  std::vector<std::string> storage;
  std::vector<absl::string_view> f;
  for (const Line& l : lines) {
    std::string_view line = l.text;
    const std::string where = Where(path, l.no);
    if (line[0] == '#') {
      int64_t layer = -1, bytes = 0;
      for (absl::string_view kv : absl::StrSplit(Av(line.substr(1)), ' ', absl::SkipEmpty())) {
        size_t eq = kv.find('=');
        if (eq == std::string_view::npos) continue;
        absl::string_view k = kv.substr(0, eq), v = kv.substr(eq + 1);
        // Each known key is checked: a count out of range is an error, not a
        // value to ignore or to override from the rows.
        auto check = [&](int64_t lo, int64_t hi, int64_t* out) -> absl::Status {
          if (IntIn(Sv(v), lo, hi, out)) return absl::OkStatus();
          return BadField(where, Sv(k), Sv(v), IntRange(lo, hi));
        };
        if (k == "arch") t.shape.model = std::string(v);
        if (k == "n_expert") MOESTREAM_RETURN_IF_ERROR(check(1, kMaxTraceExperts, &n_expert));
        if (k == "n_layer") MOESTREAM_RETURN_IF_ERROR(check(1, kMaxTraceLayers, &n_layer));
        if (k == "n_expert_used") {
          MOESTREAM_RETURN_IF_ERROR(
              check(1, std::min<int64_t>(kMaxTraceTopK, n_expert ? n_expert : kMaxTraceTopK),
                    &top_k));
        }
        if (k == "layer") {
          MOESTREAM_RETURN_IF_ERROR(check(0, (n_layer ? n_layer : kMaxTraceLayers) - 1, &layer));
        }
        if (k == "expert_bytes") {
          MOESTREAM_RETURN_IF_ERROR(check(0, int64_t(kMaxTraceExpertBytes), &bytes));
        }
      }
      if (layer >= 0) layer_bytes[int(layer)] = uint64_t(bytes);
      continue;
    }
    MOESTREAM_RETURN_IF_ERROR(CsvFields(path, l, &storage, &f));
    if (col.empty()) {
      for (size_t c = 0; c < f.size(); ++c) col[std::string(f[c])] = int(c);
      for (const char* need : {"turn", "phase", "step", "layer", "slot", "expert", "weight"}) {
        if (!col.count(need)) {
          return BadLine(path, l.no, absl::StrCat("header lacks column '", need, "'"));
        }
        n_fields = std::max(n_fields, size_t(col[need]) + 1);
      }
      continue;
    }
    if (f.size() < n_fields) {
      return BadLine(path, l.no, absl::StrCat("malformed row '", Av(line), "': ", f.size(),
                                              " fields, the header's columns need ", n_fields));
    }
    Row r;
    r.line_no = l.no;
    auto get = [&](const char* name, int64_t lo, int64_t hi, int* out) -> absl::Status {
      absl::string_view text = f[size_t(col[name])];
      int64_t v = 0;
      if (!IntIn(Sv(text), lo, hi, &v)) return BadField(where, name, Sv(text), IntRange(lo, hi));
      *out = int(v);
      return absl::OkStatus();
    };
    int slot = 0;
    MOESTREAM_RETURN_IF_ERROR(get("turn", 0, kMaxId, &r.turn));
    MOESTREAM_RETURN_IF_ERROR(get("phase", 0, 1, &r.phase));
    MOESTREAM_RETURN_IF_ERROR(get("step", 0, kMaxId, &r.step));
    MOESTREAM_RETURN_IF_ERROR(get("layer", 0, (n_layer ? n_layer : kMaxTraceLayers) - 1, &r.layer));
    MOESTREAM_RETURN_IF_ERROR(get("slot", 0, (top_k ? top_k : kMaxTraceTopK) - 1, &slot));
    MOESTREAM_RETURN_IF_ERROR(
        get("expert", 0, (n_expert ? n_expert : kMaxTraceExperts) - 1, &r.expert));
    absl::string_view w = f[size_t(col["weight"])];
    if (!WeightIn(Sv(w), &r.weight)) return BadField(where, "weight", Sv(w), kWeightRange);
    rows.push_back(r);
  }
  if (col.empty() || rows.empty()) return absl::DataLossError(absl::StrCat("trace '", path, "' has no data rows"));
  for (const Row& r : rows) layer_bytes.try_emplace(r.layer, 0);
  std::vector<int> layer_ids;
  std::map<int, int> dense;
  for (auto& [id, bytes] : layer_bytes) {
    dense[id] = int(layer_ids.size());
    layer_ids.push_back(id);
    t.shape.expert_bytes.push_back(bytes);
  }
  const int64_t max_k = top_k ? top_k : kMaxTraceTopK;
  int max_expert = 0;
  std::vector<int32_t> ids;
  std::vector<float> ws;
  for (size_t i = 0; i < rows.size();) {
    size_t j = i;
    ids.clear();
    ws.clear();
    while (j < rows.size() && rows[j].turn == rows[i].turn && rows[j].phase == rows[i].phase &&
           rows[j].step == rows[i].step && rows[j].layer == rows[i].layer) {
      if (int64_t(ids.size()) == max_k) {
        return BadLine(path, rows[j].line_no,
                       absl::StrCat("more than ", max_k, " experts for one token at layer ",
                                    rows[j].layer, top_k ? " (n_expert_used)" : ""));
      }
      ids.push_back(rows[j].expert);
      ws.push_back(rows[j].weight);
      max_expert = std::max(max_expert, rows[j].expert);
      ++j;
    }
    TraceCell c;
    c.seq = uint32_t(rows[i].turn);
    c.phase = rows[i].phase == 0 ? Phase::kPrefill : Phase::kDecode;
    c.pos = uint32_t(rows[i].step);
    c.step = c.phase == Phase::kPrefill ? 0 : c.pos;  // the prompt is one batch
    c.layer = uint16_t(dense[rows[i].layer]);
    t.AddCell(c, ids, ws);
    i = j;
  }
  t.shape.top_k = int(top_k);
  // The preamble's expert count is the model's; without one, the rows tell.
  FinishShape(t, int(layer_ids.size()), n_expert ? int(n_expert) : max_expert + 1, layer_ids);
  return t;
}

// ---- mixtral jsonl (routing and raw)

absl::Status ImportMixtralFile(const std::string& path, Trace& t, uint32_t* next_seq,
                               int* max_layer, int* max_expert) {
  MOESTREAM_ASSIGN_OR_RETURN(std::string data, ReadAll(path));
  std::vector<Line> lines = Lines(data);
  bool raw = false;  // decided by the first record: "token_pos" instead of "token_idx"
  struct Row {
    int problem, layer, idx;
    Phase phase;
    std::vector<int32_t> ids;
    std::vector<float> w;
  };
  std::vector<Row> rows;
  // raw: per (problem, layer), prompt tokens while token_pos increases.
  std::map<std::pair<int, int>, std::pair<int, int>> state;  // -> (last pos, decode count)
  std::map<std::pair<int, int>, int> prefill_count;
  for (size_t i = 0; i < lines.size(); ++i) {
    MOESTREAM_ASSIGN_OR_RETURN(Json j, ParseJsonLine(path, lines[i]));
    if (i == 0) raw = j.contains("token_pos");
    Row r;
    const JsonFields fields(j, Where(path, lines[i].no));
    const char* idx_key = raw ? "token_pos" : "token_idx";
    int64_t problem = -1, layer = -1, idx = -1;
    MOESTREAM_RETURN_IF_ERROR(fields.Int("problem_id", 0, kMaxId, &problem));
    MOESTREAM_RETURN_IF_ERROR(fields.Int("layer", 0, kMaxTraceLayers - 1, &layer));
    MOESTREAM_RETURN_IF_ERROR(fields.Int(idx_key, 0, kMaxId, &idx));
    MOESTREAM_RETURN_IF_ERROR(fields.IntArray("experts", 0, kMaxTraceExperts - 1, &r.ids));
    MOESTREAM_RETURN_IF_ERROR(fields.WeightArray("gating_probs", &r.w));
    if (problem < 0 || layer < 0 || idx < 0 || r.ids.empty() || r.ids.size() != r.w.size()) {
      return BadLine(path, lines[i].no,
                     absl::StrCat("expected problem_id, layer, ", idx_key,
                                  ", experts and gating_probs of equal length"));
    }
    r.problem = int(problem);
    r.layer = int(layer);
    r.idx = int(idx);
    r.phase = Phase::kDecode;
    if (raw) {
      auto key = std::make_pair(r.problem, r.layer);
      auto [it, fresh] = state.try_emplace(key, std::make_pair(-1, -1));
      auto& [last, decode] = it->second;
      if (decode < 0 && r.idx > last) {
        r.phase = Phase::kPrefill;
        last = r.idx;
        prefill_count[key]++;
      } else {
        r.idx = ++decode;  // decode token index within the layer
      }
      (void)fresh;
    }
    *max_layer = std::max(*max_layer, r.layer);
    for (int32_t e : r.ids) *max_expert = std::max(*max_expert, int(e));
    rows.push_back(std::move(r));
  }
  int prompt = 0;
  for (auto& [k, n] : prefill_count) prompt = std::max(prompt, n);
  // Execution order: prefill layer-major (one batch), decode token-major.
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    if (a.problem != b.problem) return a.problem < b.problem;
    if (a.phase != b.phase) return a.phase < b.phase;
    if (a.phase == Phase::kPrefill) {
      return a.layer != b.layer ? a.layer < b.layer : a.idx < b.idx;
    }
    return a.idx != b.idx ? a.idx < b.idx : a.layer < b.layer;
  });
  int last_problem = -1;
  uint32_t seq = *next_seq;
  for (const Row& r : rows) {
    if (r.problem != last_problem) {
      seq = (*next_seq)++;
      last_problem = r.problem;
    }
    TraceCell c;
    c.seq = seq;
    c.layer = uint16_t(r.layer);
    c.phase = r.phase;
    if (r.phase == Phase::kPrefill) {
      c.step = 0;
      c.pos = uint32_t(r.idx);
    } else {
      c.step = uint32_t(r.idx) + (raw ? 1 : 0);
      c.pos = uint32_t(prompt + r.idx);
    }
    t.AddCell(c, r.ids, r.w);
  }
  return absl::OkStatus();
}

absl::StatusOr<Trace> ImportMixtral(const std::vector<std::string>& files) {
  Trace t;
  t.shape.source = "mixtral-jsonl";
  t.shape.model = "mixtral";
  uint32_t seq = 0;
  int max_layer = 0, max_expert = 0;
  for (const std::string& f : files) {
    MOESTREAM_RETURN_IF_ERROR(ImportMixtralFile(f, t, &seq, &max_layer, &max_expert));
  }
  std::vector<int> ids;
  for (int l = 0; l <= max_layer; ++l) ids.push_back(l);
  FinishShape(t, max_layer + 1, max_expert + 1, ids);
  return t;
}

// ---- vLLM logger jsonl (Qwen1.5-MoE, OLMoE)

struct VllmFile {
  int layer = 0;
  int top_k = 0;
  int n_experts = 0;
  std::string model;
  struct Row {
    std::vector<int32_t> ids;
    std::vector<float> w;
  };
  std::vector<std::vector<Row>> batches;  // real batches: [0] prefill, then decode
  bool global_counter = false;
};

absl::StatusOr<VllmFile> ParseVllmFile(const std::string& path) {
  MOESTREAM_ASSIGN_OR_RETURN(std::string data, ReadAll(path));
  VllmFile f;
  std::vector<std::vector<VllmFile::Row>> batches;
  int64_t prev_idx = -1;
  bool restarted = false;
  int layer = -1;
  for (const Line& line : Lines(data)) {
    MOESTREAM_ASSIGN_OR_RETURN(Json j, ParseJsonLine(path, line));
    std::string type;
    JsonString(j, "type", &type);
    const JsonFields fields(j, Where(path, line.no));
    if (type == "meta") {
      if (!batches.empty()) return BadLine(path, line.no, "a \"meta\" row after route rows");
      int64_t v = 0;
      MOESTREAM_RETURN_IF_ERROR(fields.Int("num_experts", 1, kMaxTraceExperts, &v));
      f.n_experts = int(v);
      v = 0;
      MOESTREAM_RETURN_IF_ERROR(
          fields.Int("top_k", 1, std::min(kMaxTraceTopK, f.n_experts ? f.n_experts : kMaxTraceTopK), &v));
      f.top_k = int(v);
      JsonString(j, "model_id", &f.model);
      continue;
    }
    if (type != "route") return BadLine(path, line.no, "expected a \"type\": \"route\" row");
    int64_t idx = -1, l = -1;
    VllmFile::Row r;
    MOESTREAM_RETURN_IF_ERROR(fields.Int("token_idx", 0, kMaxId, &idx));
    MOESTREAM_RETURN_IF_ERROR(fields.Int("layer", 0, kMaxTraceLayers - 1, &l));
    MOESTREAM_RETURN_IF_ERROR(fields.IntArray(
        "topk_ids", 0, (f.n_experts ? f.n_experts : kMaxTraceExperts) - 1, &r.ids));
    MOESTREAM_RETURN_IF_ERROR(fields.WeightArray("topk_weights", &r.w));
    if (idx < 0 || l < 0 || r.ids.empty() || r.ids.size() != r.w.size()) {
      return BadLine(path, line.no,
                     "expected token_idx, layer, topk_ids and topk_weights of equal length");
    }
    if (f.top_k > 0 && int(r.ids.size()) > f.top_k) {
      return BadField(Where(path, line.no), "topk_ids", absl::StrCat("[", r.ids.size(), " values]"),
                      absl::StrCat("an array of at most ", f.top_k, " ids (the meta row's top_k)"));
    }
    if (layer >= 0 && int(l) != layer) {
      return BadLine(path, line.no, "rows of several layers in one vLLM logger file");
    }
    layer = int(l);
    if (int64_t(idx) == 0 || batches.empty()) {
      if (int64_t(idx) == 0 && prev_idx >= 0) restarted = true;
      batches.emplace_back();
    }
    prev_idx = int64_t(idx);
    batches.back().push_back(std::move(r));
  }
  if (batches.empty()) return absl::DataLossError(absl::StrCat("trace '", path, "' has no route rows"));
  f.layer = layer;
  auto identical = [](const std::vector<VllmFile::Row>& b) {
    for (const auto& r : b) {
      if (r.ids != b[0].ids || r.w != b[0].w) return false;
    }
    return true;
  };
  if (!restarted) {
    // One global counter: drop the leading dummy run, then one row per step.
    f.global_counter = true;
    std::vector<VllmFile::Row>& all = batches[0];
    size_t start = 0;
    while (start < all.size() && all[start].ids == all[0].ids && all[start].w == all[0].w) ++start;
    if (start == 1) start = 0;  // a single row is no dummy run
    for (size_t i = start; i < all.size(); ++i) f.batches.push_back({std::move(all[i])});
    return f;
  }
  size_t first = 0;
  while (first < batches.size() && batches[first].size() > 1 && identical(batches[first])) ++first;
  size_t largest = first;
  for (size_t i = first; i < batches.size(); ++i) {
    if (batches[i].size() > batches[largest].size()) largest = i;
  }
  for (size_t i = largest; i < batches.size(); ++i) f.batches.push_back(std::move(batches[i]));
  return f;
}

absl::StatusOr<Trace> ImportVllm(std::vector<std::string> files) {
  std::vector<VllmFile> parsed;
  for (const std::string& p : files) {
    MOESTREAM_ASSIGN_OR_RETURN(VllmFile f, ParseVllmFile(p));
    parsed.push_back(std::move(f));
  }
  std::stable_sort(parsed.begin(), parsed.end(),
                   [](const VllmFile& a, const VllmFile& b) { return a.layer < b.layer; });
  for (size_t i = 1; i < parsed.size(); ++i) {
    bool same = parsed[i].batches.size() == parsed[0].batches.size();
    for (size_t b = 0; same && b < parsed[0].batches.size(); ++b) {
      same = parsed[i].batches[b].size() == parsed[0].batches[b].size();
    }
    if (parsed[i].n_experts != parsed[0].n_experts) {
      return absl::DataLossError(absl::StrCat("vLLM logger files '", files[0], "' and others ",
                                              "declare different num_experts (",
                                              parsed[0].n_experts, " and ", parsed[i].n_experts,
                                              "): cannot merge them into one trace"));
    }
    if (!same || parsed[i].layer == parsed[i - 1].layer) {
      return absl::DataLossError(absl::StrCat(
          "vLLM logger files '", files[0], "' and others do not share one batch structure "
          "(or repeat a layer): cannot merge them into one trace"));
    }
  }
  Trace t;
  t.shape.source = "vllm-logger";
  t.shape.model = parsed[0].model;
  int max_expert = 0;
  std::vector<int> layer_ids;
  for (const VllmFile& f : parsed) layer_ids.push_back(f.layer);
  const VllmFile& ref = parsed[0];
  for (size_t b = 0; b < ref.batches.size(); ++b) {
    for (size_t l = 0; l < parsed.size(); ++l) {
      for (size_t r = 0; r < ref.batches[b].size(); ++r) {
        const VllmFile::Row& row = parsed[l].batches[b][r];
        TraceCell c;
        c.seq = 0;
        c.step = uint32_t(b);
        c.layer = uint16_t(l);
        bool prefill = !ref.global_counter && b == 0;
        c.phase = prefill ? Phase::kPrefill : Phase::kDecode;
        c.pos = prefill || ref.global_counter ? uint32_t(r + b) : uint32_t(b);
        for (int32_t e : row.ids) max_expert = std::max(max_expert, int(e));
        t.AddCell(c, row.ids, row.w);
      }
    }
  }
  t.shape.top_k = ref.top_k;
  // The meta row's expert count is the model's; without one, the rows tell.
  FinishShape(t, int(parsed.size()), ref.n_experts ? ref.n_experts : max_expert + 1, layer_ids);
  return t;
}

// ---- detection

std::string FirstLine(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  std::getline(in, line);
  return line;
}

struct Detected {
  std::string format;
  std::vector<std::string> files;
};

absl::StatusOr<Detected> Detect(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path, ec)) {
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    Detected d;
    auto collect = [&](auto pred) {
      d.files.clear();
      for (const auto& n : names) {
        if (pred(n)) d.files.push_back(path + "/" + n);
      }
      return !d.files.empty();
    };
    if (collect([](const std::string& n) { return absl::EndsWith(n, ".mstrace"); })) {
      d.files.resize(1);
      d.format = "moestream";
    } else if (collect([](const std::string& n) { return absl::EndsWith(n, ".route.csv"); })) {
      d.files.resize(1);
      d.format = "route-csv";
    } else if (collect([](const std::string& n) { return absl::EndsWith(n, "_routing.jsonl"); })) {
      d.format = "mixtral-jsonl";
    } else if (collect([](const std::string& n) {
                 return absl::StartsWith(n, "moe_") && absl::EndsWith(n, ".jsonl");
               })) {
      d.format = "vllm-logger";
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "no routing trace found in directory '", path,
          "' (expected *.mstrace, *.route.csv, *_routing.jsonl or moe_*.jsonl)"));
    }
    return d;
  }
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat("trace '", path, "' does not exist"));
  std::string line = FirstLine(path);
  Detected d{"", {path}};
  if (line.compare(0, 7, "MSTRACE") == 0) {
    d.format = "moestream";
  } else if (absl::StartsWith(line, "# route_trace") || absl::StartsWith(line, "turn,phase")) {
    d.format = "route-csv";
  } else if (const Json j = FirstLineJson(line); j.contains("gating_probs")) {
    d.format = j.contains("token_pos") ? "mixtral-raw" : "mixtral-jsonl";
  } else if (j.contains("type") && (j["type"] == "meta" || j["type"] == "route")) {
    d.format = "vllm-logger";
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot tell the format of trace '", path,
        "' (expected a moestream trace, a # route_trace CSV, Mixtral or vLLM-logger JSON lines)"));
  }
  return d;
}

}  // namespace

absl::StatusOr<std::string> DetectTraceFormat(const std::string& path) {
  MOESTREAM_ASSIGN_OR_RETURN(Detected d, Detect(path));
  return d.format;
}

absl::StatusOr<Trace> LoadTrace(const std::string& path) {
  MOESTREAM_ASSIGN_OR_RETURN(Detected d, Detect(path));
  absl::StatusOr<Trace> t;
  if (d.format == "moestream") {
    t = ReadTrace(d.files[0]);
  } else if (d.format == "route-csv") {
    t = ImportRouteCsv(d.files[0]);
  } else if (d.format == "mixtral-jsonl" || d.format == "mixtral-raw") {
    t = ImportMixtral(d.files);
    if (t.ok()) t->shape.source = d.format;
  } else {
    t = ImportVllm(d.files);
  }
  if (!t.ok()) return t.status();
  if (absl::Status st = t->Validate(); !st.ok()) {
    return absl::DataLossError(absl::StrCat("trace '", path, "': ", st.message()));
  }
  return t;
}

std::vector<double> TracePopularity(const Trace& t) {
  std::vector<double> pop(size_t(t.shape.n_layers) * t.shape.n_experts, 0.0);
  for (const TraceCell& c : t.cells) {
    for (uint16_t e : t.Experts(c)) pop[size_t(c.layer) * t.shape.n_experts + e] += 1.0;
  }
  return pop;
}

absl::StatusOr<std::vector<double>> LoadPopularity(const std::string& path,
                                                   const TraceShape& shape) {
  std::string first = FirstLine(path);
  if (!absl::StartsWith(first, "Layer,")) {
    MOESTREAM_ASSIGN_OR_RETURN(Trace t, LoadTrace(path));
    if (t.shape.n_layers != shape.n_layers || t.shape.n_experts != shape.n_experts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "popularity trace '", path, "' has shape ", t.shape.n_layers, "x", t.shape.n_experts,
          ", the replayed trace ", shape.n_layers, "x", shape.n_experts));
    }
    return TracePopularity(t);
  }
  MOESTREAM_ASSIGN_OR_RETURN(std::string data, ReadAll(path));
  std::vector<Line> lines = Lines(data);
  if (lines.empty()) return absl::DataLossError(absl::StrCat("popularity file '", path, "' is empty"));
  std::vector<std::string> header_storage, row_storage;
  std::vector<absl::string_view> header, f;
  MOESTREAM_RETURN_IF_ERROR(CsvFields(path, lines[0], &header_storage, &header));
  int n_cols = int(header.size()) - 2;
  if (n_cols != shape.n_experts) {
    return absl::InvalidArgumentError(absl::StrCat("popularity file '", path, "' has ", n_cols,
                                                   " experts per layer, the trace ",
                                                   shape.n_experts));
  }
  std::vector<double> pop(size_t(shape.n_layers) * shape.n_experts, 0.0);
  int matched = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    MOESTREAM_RETURN_IF_ERROR(CsvFields(path, lines[i], &row_storage, &f));
    int layer;
    if (f.size() != header.size() || !absl::SimpleAtoi(f[0], &layer)) {
      return BadLine(path, lines[i].no, "expected Layer,<label>,<one value per expert>");
    }
    auto it = std::find(shape.layer_ids.begin(), shape.layer_ids.end(), layer);
    if (it == shape.layer_ids.end()) continue;
    size_t dense = size_t(it - shape.layer_ids.begin());
    ++matched;
    for (int e = 0; e < n_cols; ++e) {
      double v;
      if (!absl::SimpleAtod(f[e + 2], &v) || !WeightOk(v)) {
        return BadField(Where(path, lines[i].no), Sv(header[e + 2]), Sv(f[e + 2]),
                        kWeightRange);
      }
      pop[dense * shape.n_experts + e] += v;
    }
  }
  if (matched == 0) {
    return absl::InvalidArgumentError(absl::StrCat("popularity file '", path,
                                                   "' has no row for the trace's layers"));
  }
  return pop;
}

}  // namespace moestream::trace
