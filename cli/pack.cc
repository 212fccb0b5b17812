// `moestream pack MODEL -o STORE`: writes the packed expert store (format in
// io/expert_store.h): every routed expert's gate, up and down matrices in one
// 4 KiB-aligned, checksummed blob, so `--experts-on nvme --store STORE` reads
// each expert with aligned reads. Written to STORE.tmp.<pid> and renamed.
//
//   moestream pack m.gguf -o m.experts
//   moestream pack m.gguf -o m.experts --reader pread --queue-depth 16 --block-size 1M
//   moestream pack m.gguf -o m.experts --verify   # re-reads every blob, checks checksums
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "io/expert_store.h"
#include "io/expert_tier.h"
#include "cli/command.h"
#include "cli/flags.h"

namespace moestream::cli {
namespace {

// Reads every blob of the store back through a reader (checksums verified).
absl::Status VerifyStore(const std::string& path, const io::ReaderOptions& ro) {
  MOESTREAM_ASSIGN_OR_RETURN(io::ExpertStore store, io::ExpertStore::Open(path));
  MOESTREAM_ASSIGN_OR_RETURN(auto reader, io::OpenExpertReader(store.layout(), ro));
  const io::ExpertLayout& layout = *store.layout();
  const size_t window = 8;
  std::vector<uint8_t*> bufs;
  for (size_t i = 0; i < window; ++i) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, layout.max_blob_bytes()) != 0) {
      for (uint8_t* b : bufs) std::free(b);
      return absl::ResourceExhaustedError("pack --verify: cannot allocate read buffers");
    }
    bufs.push_back(static_cast<uint8_t*>(p));
  }
  std::vector<uint8_t*> free_bufs = bufs;
  absl::Status first;
  size_t next = 0;
  std::vector<io::ExpertReadCompletion> done;
  while (next < layout.size() || reader->in_flight() > 0) {
    while (first.ok() && next < layout.size() && !free_bufs.empty()) {
      const io::ExpertInfo& e = layout.experts()[next];
      uint8_t* b = free_bufs.back();
      free_bufs.pop_back();
      first = reader->Submit({e.layer, e.expert, b, reinterpret_cast<uint64_t>(b)});
      ++next;
    }
    if (reader->in_flight() == 0) break;
    done.clear();
    reader->Reap(&done, true);
    for (const auto& c : done) {
      free_bufs.push_back(reinterpret_cast<uint8_t*>(c.tag));
      if (!c.status.ok() && first.ok()) first = c.status;
    }
  }
  for (uint8_t* b : bufs) std::free(b);
  return first;
}

int RunPack(std::vector<std::string> args) {
  FlagParser p("pack");
  std::vector<std::string> pos;
  std::string out, reader = "auto";
  int64_t depth = 32, window = 16;
  uint64_t block = 1 << 20;
  bool verify = false, quiet = false;
  p.Positionals("MODEL", &pos);
  p.String("output", 'o', "STORE", "store file to write (required)", &out);
  p.String("reader", '\0', "KIND", "how to read MODEL: auto, uring or pread (default auto)", &reader);
  p.Int("queue-depth", '\0', "N", "reads in flight (default 32)", &depth);
  p.Bytes("block-size", "BYTES", "largest single read, multiple of 4K (default 1M)", &block);
  p.Int("window", '\0', "N", "experts read ahead of the writer (default 16)", &window);
  p.Bool("verify", "re-read the store and verify every blob's checksum", &verify);
  p.Bool("quiet", "no progress line", &quiet);
  absl::Status s = p.Parse(args);
  if (!s.ok()) return ReportError("pack", s);
  if (p.help_requested()) {
    std::printf("%s", p.Usage().c_str());
    return 0;
  }
  if (pos.size() != 1) {
    return ReportError("pack", absl::InvalidArgumentError("expected exactly one MODEL argument"));
  }
  if (out.empty()) return ReportError("pack", absl::InvalidArgumentError("--output/-o STORE is required"));
  io::StorePackOptions o;
  o.reader.kind = reader;
  o.reader.queue_depth = int(depth);
  o.reader.block_bytes = block;
  o.window = int(window);
  o.show_progress = !quiet;
  s = io::PackExpertStore(pos[0], out, o);
  if (s.ok() && verify) s = VerifyStore(out, o.reader);
  if (!s.ok()) return ReportError("pack", s);
  auto store = io::ExpertStore::Open(out);
  if (!store.ok()) return ReportError("pack", store.status());
  std::printf("%s: %zu experts in %zu layers, %.1f MiB%s\n", out.c_str(), store->layout()->size(),
              store->layout()->moe_layers().size(), double(store->layout()->total_blob_bytes()) / (1 << 20),
              verify ? ", checksums verified" : "");
  return 0;
}

}  // namespace

MOESTREAM_REGISTER_COMMAND(pack, "pack routed experts into an aligned, checksummed store", RunPack);

}  // namespace moestream::cli
