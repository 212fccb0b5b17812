// NVMe tier throughput: expert reads through UringReader (O_DIRECT, registered
// buffers) next to fio's io_uring engine on the same file, at the same block
// size and queue depth, in the same run. Both bypass the page cache
// (O_DIRECT / --direct=1), so neither measures RAM.
//
//   nvme_bench --file /mnt/nvme/bench.bin --size 4G --block-size 1M --queue-depth 32
//   nvme_bench --layout gguf ...   # 3 unaligned ranges per expert (staged copies)
//   nvme_bench --json
//
// The file is a synthetic expert file: `--expert-size` blobs back to back
// (layout "store": one 4 KiB-aligned blob per expert, read straight into
// aligned slots) or three unaligned ranges per expert as in a stacked GGUF
// (layout "gguf": aligned supersets, staged and copied). It is created (random
// bytes, fsynced) when missing or too small and kept for the next run.
// Prints GB/s for moestream and for fio, and their ratio (target >= 0.90).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "cli/command.h"
#include "io/expert_tier.h"
#include "io/uring_reader.h"
#include "nlohmann/json.hpp"

namespace moestream {
namespace {

struct Args {
  std::string file = "nvme_bench.bin";
  uint64_t size = 2ull << 30;
  uint64_t block = 1 << 20;
  int64_t depth = 32;
  uint64_t expert = 8 << 20;
  std::string layout = "store";
  std::string reader = "uring";
  int64_t passes = 2;
  bool json = false;
  bool checksum = false;

  void Register(CLI::App& app) {
    app.add_option("--file", file, "the synthetic expert file (created when missing or short)");
    cli::AddByteSizeOption(app, "--size", &size, "bytes of the file to read");
    cli::AddByteSizeOption(app, "--block-size", &block, "largest single read");
    app.add_option("--queue-depth", depth, "reads in flight");
    cli::AddByteSizeOption(app, "--expert-size", &expert, "bytes per expert, a multiple of 4096");
    app.add_option("--layout", layout,
                   "store (one aligned blob per expert) or gguf (three unaligned ranges)");
    app.add_option("--reader", reader, "uring, pread or auto");
    app.add_option("--passes", passes, "reads of the whole file");
    app.add_flag("--checksum", checksum, "verify each expert's checksum as it is read");
    app.add_flag("--json", json, "print one JSON object");
  }
};

absl::Status EnsureFile(const Args& a) {
  struct stat st;
  if (::stat(a.file.c_str(), &st) == 0 && uint64_t(st.st_size) >= a.size) return absl::OkStatus();
  std::fprintf(stderr, "nvme_bench: writing %s (%.1f GiB)...\n", a.file.c_str(),
               double(a.size) / (1ull << 30));
  int fd = ::open(a.file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat(a.file, ": cannot create: ", std::strerror(errno)));
  std::vector<uint64_t> buf((16 << 20) / 8);
  std::mt19937_64 rng(1);
  for (uint64_t off = 0; off < a.size; off += buf.size() * 8) {
    for (uint64_t& v : buf) v = rng();
    uint64_t n = std::min<uint64_t>(buf.size() * 8, a.size - off);
    if (::pwrite(fd, buf.data(), n, off_t(off)) != ssize_t(n)) {
      ::close(fd);
      return absl::UnavailableError(absl::StrCat(a.file, ": write failed"));
    }
  }
  ::fsync(fd);
  ::close(fd);
  return absl::OkStatus();
}

// Experts of `a.expert` bytes tiling the file; "gguf" splits each into three
// ranges at unaligned offsets (as slices of stacked tensors are).
absl::StatusOr<io::ExpertLayout> MakeLayout(const Args& a) {
  std::vector<io::ExpertInfo> entries;
  uint64_t n = a.size / a.expert;
  for (uint64_t i = 0; i < n; ++i) {
    io::ExpertInfo e;
    e.layer = 0;
    e.expert = int(i);
    uint64_t base = i * a.expert;
    if (a.layout == "store") {
      e.matrices[0] = {GgmlType::kI8, int64_t(a.expert), 1, a.expert, 0};
      e.blob_bytes = a.expert;
      e.n_segments = 1;
      e.segments[0] = {base, a.expert, 0};
    } else {
      uint64_t third = a.expert / 3 - 100;
      for (int m = 0; m < 3; ++m) e.matrices[m] = {GgmlType::kI8, int64_t(third), 1, third, 0};
      e.blob_bytes = io::ExpertLayout::AssignBlobOffsets(e.matrices);
      e.n_segments = 3;
      for (int m = 0; m < 3; ++m) {
        e.segments[m] = {base + 96 + uint64_t(m) * (third + 32), third, e.matrices[m].blob_offset};
      }
    }
    entries.push_back(e);
  }
  return io::ExpertLayout::FromEntries(a.file, a.size, std::move(entries));
}

struct Result {
  double gbps = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  std::string kind;
};

absl::StatusOr<Result> RunMoestream(const Args& a) {
  MOESTREAM_ASSIGN_OR_RETURN(io::ExpertLayout l, MakeLayout(a));
  auto layout = std::make_shared<const io::ExpertLayout>(std::move(l));
  io::ReaderOptions o;
  o.kind = a.reader;
  o.queue_depth = int(a.depth);
  o.block_bytes = a.block;
  o.verify_checksums = a.checksum;
  MOESTREAM_ASSIGN_OR_RETURN(auto reader, io::OpenExpertReader(layout, o));
  // Enough expert slots in flight to keep queue_depth blocks outstanding.
  size_t window = std::max<size_t>(2, (size_t(a.depth) * a.block + layout->max_blob_bytes() - 1) /
                                          layout->max_blob_bytes() + 1);
  std::vector<uint8_t*> slots;
  for (size_t i = 0; i < window; ++i) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, layout->max_blob_bytes()) != 0) return absl::ResourceExhaustedError("slots");
    std::memset(p, 0, layout->max_blob_bytes());
    slots.push_back(static_cast<uint8_t*>(p));
  }
  std::vector<uint8_t*> free_slots = slots;
  auto start = std::chrono::steady_clock::now();
  uint64_t bytes = 0;
  absl::Status first;
  std::vector<io::ExpertReadCompletion> done;
  for (int pass = 0; pass < a.passes; ++pass) {
    size_t next = 0;
    while (next < layout->size() || reader->in_flight() > 0) {
      while (next < layout->size() && !free_slots.empty()) {
        const io::ExpertInfo& e = layout->experts()[next++];
        uint8_t* s = free_slots.back();
        free_slots.pop_back();
        first.Update(reader->Submit({e.layer, e.expert, s, reinterpret_cast<uint64_t>(s)}));
      }
      done.clear();
      reader->Reap(&done, true);
      for (const auto& c : done) {
        first.Update(c.status);
        free_slots.push_back(reinterpret_cast<uint8_t*>(c.tag));
        bytes += layout->Find(c.layer, c.expert)->blob_bytes;
      }
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (uint8_t* s : slots) std::free(s);
  MOESTREAM_RETURN_IF_ERROR(first);
  // Bytes the reader pulled from the file (aligned supersets) over time.
  uint64_t file_bytes = reader->stats().bytes_read;
  return Result{double(file_bytes) / secs / 1e9, file_bytes, secs, std::string(reader->kind())};
}

absl::StatusOr<Result> RunFio(const Args& a) {
  uint64_t total = a.size / a.expert * a.expert;
  std::string cmd = absl::StrCat(
      "fio --name=nvme_bench --filename=", a.file, " --rw=read --bs=", a.block,
      " --iodepth=", a.depth, " --ioengine=io_uring --direct=1 --size=", total,
      " --loops=", a.passes, " --output-format=json 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return absl::UnavailableError("cannot run fio");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  // fio prints its JSON after any warnings: start at the first brace.
  const size_t brace = out.find('{');
  const nlohmann::json report = nlohmann::json::parse(
      brace == std::string::npos ? std::string_view() : std::string_view(out).substr(brace),
      nullptr, /*allow_exceptions=*/false);
  const nlohmann::json* read = nullptr;
  if (!report.is_discarded() && report.contains("jobs") && report["jobs"].is_array() &&
      !report["jobs"].empty() && report["jobs"][0].contains("read")) {
    read = &report["jobs"][0]["read"];
  }
  auto number = [&](const char* key) -> std::optional<double> {
    if (read == nullptr || !read->contains(key) || !(*read)[key].is_number()) return std::nullopt;
    return (*read)[key].get<double>();
  };
  const std::optional<double> bw = number("bw_bytes"), io = number("io_bytes"),
                              runtime_ms = number("runtime");
  if (rc != 0 || !bw || !io || !runtime_ms) {
    return absl::UnavailableError(absl::StrCat("fio failed (", cmd, "): ", out.substr(0, 400)));
  }
  Result r;
  r.kind = "fio";
  r.gbps = *bw / 1e9;
  r.bytes = uint64_t(*io);
  r.seconds = *runtime_ms / 1e3;
  return r;
}

int Main(int argc, char** argv) {
  Args a;
  CLI::App app("NVMe tier throughput: moestream's reader next to fio on the same file",
               "nvme_bench");
  cli::ConfigureApp(app);
  a.Register(app);
  absl::StatusOr<cli::Parsed> parsed =
      cli::ParseFlags(app, std::vector<std::string>(argv + 1, argv + argc));
  if (parsed.ok() && *parsed == cli::Parsed::kHelpShown) return 0;
  if (!parsed.ok()) {
    std::fprintf(stderr, "nvme_bench: error: %s\n", std::string(parsed.status().message()).c_str());
    return 2;
  }
  absl::Status s;
  if (s.ok() && a.layout != "store" && a.layout != "gguf") {
    s = absl::InvalidArgumentError("--layout: expected store or gguf");
  }
  if (s.ok() && (a.expert < 4096 || a.expert % 4096 != 0 || a.size < a.expert)) {
    s = absl::InvalidArgumentError("--expert-size: expected a multiple of 4096, at most --size");
  }
  if (s.ok()) s = EnsureFile(a);
  absl::StatusOr<Result> ours = s.ok() ? RunMoestream(a) : absl::StatusOr<Result>(s);
  if (!ours.ok()) {
    std::fprintf(stderr, "nvme_bench: error: %s\n", std::string(ours.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<Result> fio = RunFio(a);
  if (!fio.ok()) {
    std::fprintf(stderr, "nvme_bench: error: %s\n", std::string(fio.status().message()).c_str());
    return 1;
  }
  double ratio = ours->gbps / fio->gbps;
  if (a.json) {
    nlohmann::ordered_json out;
    out["file"] = a.file;
    out["layout"] = a.layout;
    out["block_bytes"] = a.block;
    out["queue_depth"] = a.depth;
    out["expert_bytes"] = a.expert;
    out["reader"] = ours->kind;
    out["moestream_gbps"] = ours->gbps;
    out["fio_gbps"] = fio->gbps;
    out["ratio"] = ratio;
    std::puts(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("file %s, layout %s, block %llu, queue depth %lld, expert %llu bytes\n",
                a.file.c_str(), a.layout.c_str(), (unsigned long long)a.block, (long long)a.depth,
                (unsigned long long)a.expert);
    std::printf("  moestream %-5s %8.3f GB/s  (%.2f GB in %.2f s)\n", ours->kind.c_str(), ours->gbps,
                double(ours->bytes) / 1e9, ours->seconds);
    std::printf("  fio io_uring    %8.3f GB/s  (%.2f GB in %.2f s)\n", fio->gbps,
                double(fio->bytes) / 1e9, fio->seconds);
    std::printf("  ratio %.3f (target >= 0.90)\n", ratio);
  }
  return 0;
}

}  // namespace
}  // namespace moestream

int main(int argc, char** argv) { return moestream::Main(argc, argv); }
