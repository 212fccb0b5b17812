// Writes the seed corpus for gguf_fuzzer: small valid GGUF files covering
// every value type, nested arrays, every tensor type, a non-default
// alignment, stacked and per-expert experts, and (when given) the header of a
// real model file.
//
//   make_gguf_seeds OUTDIR [MODEL.gguf ...]
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "io/gguf.h"

namespace {

using moestream::Av;
using moestream::GgmlType;
using moestream::GgmlTypeTraits;
using moestream::GgmlTypeTraitsOf;
using namespace moestream::io;

absl::Status Zero(std::span<uint8_t> out) {
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i);
  return absl::OkStatus();
}

absl::Status WriteValueTypes(const std::string& dir) {
  GgufWriter w;
  w.SetString("general.architecture", "qwen3moe");
  w.Set("t.u8", GgufValue::Uint(GgufType::kUint8, 7));
  w.Set("t.i8", GgufValue::Int(GgufType::kInt8, -7));
  w.Set("t.u16", GgufValue::Uint(GgufType::kUint16, 700));
  w.Set("t.i16", GgufValue::Int(GgufType::kInt16, -700));
  w.SetUint32("t.u32", 70000);
  w.SetInt32("t.i32", -70000);
  w.SetFloat32("t.f32", 0.5f);
  w.SetBool("t.bool", true);
  w.SetUint64("t.u64", 1ull << 40);
  w.Set("t.i64", GgufValue::Int(GgufType::kInt64, -(1ll << 40)));
  w.Set("t.f64", GgufValue::Float(GgufType::kFloat64, 0.25));
  w.SetStringArray("tokenizer.ggml.tokens", {"<unk>", "a", "bc"});
  w.SetFloat32Array("tokenizer.ggml.scores", {0, -1, -2});
  w.SetInt32Array("tokenizer.ggml.token_type", {2, 1, 1});
  w.Set("t.nested", GgufValue::Array(GgufType::kArray,
                                     {GgufValue::Array(GgufType::kUint8, {GgufValue::Uint(GgufType::kUint8, 1)}),
                                      GgufValue::Array(GgufType::kString, {GgufValue::String("x")})}));
  return w.Write(dir + "/value_types.gguf");
}

absl::Status WriteTensorTypes(const std::string& dir, uint32_t alignment) {
  GgufWriter w(alignment);
  for (uint32_t id = 0; id < 64; ++id) {
    const GgmlTypeTraits* tr = GgmlTypeTraitsOf(id);
    if (tr == nullptr) continue;
    absl::Status s = w.AddTensor(absl::StrCat("t.", Av(tr->name)), tr->type,
                                 {int64_t(tr->block_elems), 2}, Zero);
    if (!s.ok()) return s;
  }
  return w.Write(absl::StrCat(dir, "/tensor_types_a", alignment, ".gguf"));
}

absl::Status WriteExperts(const std::string& dir, bool stacked) {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint32("llama.expert_count", 4);
  w.SetUint32("llama.expert_used_count", 2);
  for (const char* m : {"gate", "up", "down"}) {
    if (stacked) {
      absl::Status s = w.AddTensor(absl::StrCat("blk.0.ffn_", m, "_exps.weight"), GgmlType::kQ8_0,
                                   {32, 2, 4}, Zero);
      if (!s.ok()) return s;
      continue;
    }
    for (int e = 0; e < 4; ++e) {
      absl::Status s = w.AddTensor(absl::StrCat("blk.0.ffn_", m, ".", e, ".weight"),
                                   GgmlType::kF16, {8, 2}, Zero);
      if (!s.ok()) return s;
    }
  }
  return w.Write(absl::StrCat(dir, stacked ? "/experts_stacked.gguf" : "/experts_split.gguf"));
}

// The header (up to the data section) of a real file: the fuzzer parses it as
// the image of a larger file.
absl::Status WriteHeaderOf(const std::string& dir, const std::string& model, int index) {
  absl::StatusOr<GgufFile> f = GgufFile::Open(model);
  if (!f.ok()) return f.status();
  std::ifstream in(model, std::ios::binary);
  std::string head(f->data_offset(), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  std::ofstream out(absl::StrCat(dir, "/header_", index, ".gguf"), std::ios::binary);
  out.write(head.data(), static_cast<std::streamsize>(head.size()));
  if (!in || !out) return absl::DataLossError(absl::StrCat(model, ": cannot copy the header"));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_gguf_seeds OUTDIR [MODEL.gguf ...]\n");
    return 2;
  }
  std::string dir = argv[1];
  std::vector<absl::Status> results = {WriteValueTypes(dir), WriteTensorTypes(dir, 32),
                                       WriteTensorTypes(dir, 64), WriteExperts(dir, true),
                                       WriteExperts(dir, false)};
  for (int i = 2; i < argc; ++i) results.push_back(WriteHeaderOf(dir, argv[i], i - 2));
  for (const absl::Status& s : results) {
    if (!s.ok()) {
      std::fprintf(stderr, "make_gguf_seeds: error: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  return 0;
}
