// `moestream pack MODEL -o STORE`: writes the packed expert store (format in
// io/expert_store.h): every routed expert's gate, up and down matrices in one
// 4 KiB-aligned, checksummed blob, so `--experts-on nvme --store STORE` reads
// each expert with aligned reads. Written through an AtomicFile (io/).
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

class PackCommand : public Command {
 public:
  void Register(CLI::App& app) override {
    app.add_option("model", models_, "GGUF model whose routed experts to pack")->default_str("");
    app.add_option("-o,--output", out_, "store file to write (required)");
    app.add_option("--reader", reader_, "how to read MODEL: auto, uring or pread");
    app.add_option("--queue-depth", depth_, "reads in flight");
    AddByteSizeOption(app, "--block-size", &block_, "largest single read, multiple of 4K");
    app.add_option("--window", window_, "experts read ahead of the writer");
    app.add_flag("--verify", verify_, "re-read the store and verify every blob's checksum");
    app.add_flag("--quiet", quiet_, "no progress line");
  }

  absl::Status Run() override {
    if (models_.size() != 1) {
      return absl::InvalidArgumentError("expected exactly one MODEL argument");
    }
    if (out_.empty()) return absl::InvalidArgumentError("--output/-o STORE is required");
    io::StorePackOptions o;
    o.reader.kind = reader_;
    o.reader.queue_depth = static_cast<int>(depth_);
    o.reader.block_bytes = block_;
    o.window = static_cast<int>(window_);
    o.show_progress = !quiet_;
    MOESTREAM_RETURN_IF_ERROR(io::PackExpertStore(models_[0], out_, o));
    if (verify_) MOESTREAM_RETURN_IF_ERROR(VerifyStore(out_, o.reader));
    MOESTREAM_ASSIGN_OR_RETURN(io::ExpertStore store, io::ExpertStore::Open(out_));
    std::printf("%s: %zu experts in %zu layers, %.1f MiB%s\n", out_.c_str(),
                store.layout()->size(), store.layout()->moe_layers().size(),
                double(store.layout()->total_blob_bytes()) / (1 << 20),
                verify_ ? ", checksums verified" : "");
    return absl::OkStatus();
  }

 private:
  std::vector<std::string> models_;
  std::string out_;
  std::string reader_ = "auto";
  int64_t depth_ = 32;
  int64_t window_ = 16;
  uint64_t block_ = 1 << 20;
  bool verify_ = false;
  bool quiet_ = false;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(pack, "pack routed experts into an aligned, checksummed store",
                           PackCommand);

}  // namespace moestream::cli
