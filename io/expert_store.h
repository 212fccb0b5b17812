// The packed expert store: every routed expert of a model, each in one
// 4 KiB-aligned blob, so the NVMe tier reads an expert with one aligned read
// (or a few block-sized ones) straight into a slot, instead of three
// unaligned slices of stacked GGUF tensors. Written by
// `moestream pack MODEL -o STORE`; read through the same ExpertReaders as a
// GGUF (ExpertStore::layout() gives one segment per expert, with its
// checksum, which the readers verify on every read).
//
// File format, version 2 (all integers little-endian):
//
//   offset 0, 4096 bytes: header
//     0    char[8]  magic "MSEXPST1"
//     8    u32      version (2)
//     12   u32      header bytes (4096)
//     16   u64      file bytes (the whole store)
//     24   u64      index offset (4 KiB-aligned, after the last blob)
//     32   u64      index bytes (entry count * 176)
//     40   u64      XXH64 of the index bytes
//     48   u32      blocks (layers, dense ones included) of the source model
//     52   u32      entry count (routed experts)
//     56   u64      source model file bytes
//     64   u64      source model identity: XXH64 of its GGUF header
//                   (bytes [0, data offset): metadata and tensor infos)
//     72   u32      source file name length n (<= 256)
//     76   char[n]  source file name (base name, no directory)
//     336  u64      source expert sample digest (ExpertSampleDigest): XXH64 of
//                   sampled byte ranges of the source's routed experts, so a
//                   same-shape model with other weights is told apart
//     344  u32      sampled ranges in that digest
//     4088 u64      XXH64 of header bytes [0, 4088)
//   offset 4096: blobs, one per expert in (layer, expert) order, each at a
//     4 KiB-aligned offset, `blob bytes` long (a multiple of 4096): the gate,
//     up and down matrices at their in-blob offsets (256-byte aligned, in
//     that order), zero padding between and after them — exactly the
//     in-memory blob of io/expert_layout.h.
//   index: one 176-byte entry per expert, in (layer, expert) order:
//     0    i32      layer
//     4    i32      expert
//     8    u64      blob file offset
//     16   u64      blob bytes
//     24   u64      XXH64 of the blob's `blob bytes` bytes
//     32   3 x 48 bytes, gate, up, down:
//            u32 ggml type, u32 reserved (0), i64 ne0 (row length),
//            i64 ne1 (rows), u64 offset in blob, u64 bytes, u64 reserved (0)
//
// Readers check the magic, version, header checksum, index checksum, that
// every blob lies inside the file, and each blob's checksum as it is read
// (kDataLoss naming the store, expert and offset on any mismatch).
// ExpertStore::CheckSource refuses a store packed from a different model:
// one whose GGUF header, file size or sampled expert bytes differ (a model
// of the same shape and another seed has an identical header and size).
// Version 1 stores, which have no expert digest, are refused with a
// "re-run moestream pack" message.
// The writer goes through an AtomicFile (a temporary, fsync, rename): a
// crash leaves no partial store behind.
//
//   MOESTREAM_RETURN_IF_ERROR(PackExpertStore("m.gguf", "m.experts", {}));
//   MOESTREAM_ASSIGN_OR_RETURN(ExpertStore store, ExpertStore::Open("m.experts"));
//   MOESTREAM_RETURN_IF_ERROR(store.CheckSource(model_gguf));
//   MOESTREAM_ASSIGN_OR_RETURN(auto reader, OpenExpertReader(store.layout(), ReaderOptions{}));
#ifndef MOESTREAM_IO_EXPERT_STORE_H_
#define MOESTREAM_IO_EXPERT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "io/expert_layout.h"
#include "io/expert_tier.h"
#include "io/gguf.h"

namespace moestream::io {

inline constexpr char kStoreMagic[8] = {'M', 'S', 'E', 'X', 'P', 'S', 'T', '1'};
inline constexpr uint32_t kStoreVersion = 2;
inline constexpr uint64_t kStoreHeaderBytes = 4096;
inline constexpr uint64_t kStoreEntryBytes = 176;

struct StorePackOptions {
  // How the source GGUF is read (kind, queue depth, block size).
  ReaderOptions reader;
  // Experts read ahead of the writer (memory: this many blobs). 1..1024.
  int window = 16;
  // Progress line on stderr (when no ProgressFn is given).
  bool show_progress = true;

  absl::Status Validate() const;
};

// XXH64 of a GGUF's header (bytes [0, data_offset)): the model's identity.
absl::StatusOr<uint64_t> GgufIdentity(const GgufFile& model);

// XXH64 over sampled byte ranges of `layout`'s routed experts, read from its
// file: per MoE layer the first, middle and last expert, and of each of their
// gate/up/down matrices the first, middle and last 4 KiB (or all of a smaller
// one), about 36 KiB per layer. Sets *ranges to the number of ranges hashed.
// `layout` must come from a GGUF (ExpertLayout::FromGguf).
absl::StatusOr<uint64_t> ExpertSampleDigest(const ExpertLayout& layout, uint32_t* ranges = nullptr);

// Packs every routed expert of `gguf_path` into a store at `store_path`.
absl::Status PackExpertStore(const std::string& gguf_path, const std::string& store_path,
                             const StorePackOptions& options, const ProgressFn& progress = nullptr);

class ExpertStore {
 public:
  // Reads and validates header and index (not the blobs).
  static absl::StatusOr<ExpertStore> Open(const std::string& path);

  // kFailedPrecondition when the store was not packed from `model`.
  absl::Status CheckSource(const GgufFile& model) const;

  const std::string& path() const { return path_; }
  std::shared_ptr<const ExpertLayout> layout() const { return layout_; }
  uint64_t source_bytes() const { return source_bytes_; }
  uint64_t source_identity() const { return source_identity_; }
  uint64_t source_expert_digest() const { return source_expert_digest_; }
  const std::string& source_name() const { return source_name_; }

 private:
  std::string path_;
  std::shared_ptr<const ExpertLayout> layout_;
  uint64_t source_bytes_ = 0;
  uint64_t source_identity_ = 0;
  uint64_t source_expert_digest_ = 0;
  uint32_t source_expert_ranges_ = 0;
  std::string source_name_;
};

}  // namespace moestream::io

#endif  // MOESTREAM_IO_EXPERT_STORE_H_
