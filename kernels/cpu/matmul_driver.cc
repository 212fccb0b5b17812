#include "kernels/cpu/matmul_driver.h"

#include <algorithm>

#include "base/check.h"

namespace moestream::kernels::cpu {
namespace {

// Weight bytes a tile may span so it stays in L2 while tokens pass over it.
constexpr size_t kTileBytes = 128 << 10;
// Activation elements converted on the calling thread rather than the pool.
constexpr int64_t kInlineConvertElems = 32 << 10;

}  // namespace

void MatmulDriver::Run(std::span<const MatMulJob> jobs, const MatmulKernels& k, ThreadPool& pool) {
  // 1. Activations, converted once per row. Jobs reading the same activation
  //    rows in the same converted form (an expert's gate and up projections,
  //    or every expert of a decode step) share one conversion.
  act_offset_.assign(jobs.size(), 0);
  size_t total = 0;
  int64_t total_rows = 0;
  tok_tasks_.clear();
  for (size_t j = 0; j < jobs.size(); ++j) {
    const MatMulJob& job = jobs[j];
    const TypeKernels& tk = k.For(job.w.type);
    MOESTREAM_CHECK(tk.dot != nullptr) << "no matmul kernel for type "
                                       << static_cast<int>(job.w.type);
    total_rows += job.w.n_out;
    bool shared = false;
    for (size_t e = 0; e < j && !shared; ++e) {
      const MatMulJob& o = jobs[e];
      if (o.x == job.x && o.n_tok == job.n_tok && o.w.n_in == job.w.n_in &&
          k.For(o.w.type).quantize_act == tk.quantize_act) {
        act_offset_[j] = act_offset_[e];
        shared = true;
      }
    }
    if (shared) continue;
    act_offset_[j] = total;
    total += ActRowBytes(tk, job.w.n_in) * job.n_tok;
    total = (total + 63) & ~size_t{63};
    for (int64_t t = 0; t < job.n_tok; ++t) tok_tasks_.emplace_back(static_cast<int32_t>(j), t);
  }
  if (act_.size() < total) act_.resize(total);
  auto convert = [&](int64_t i) {
    const auto [j, t] = tok_tasks_[i];
    const MatMulJob& job = jobs[j];
    const TypeKernels& tk = k.For(job.w.type);
    const size_t ab = ActRowBytes(tk, job.w.n_in);
    tk.quantize_act(job.x + t * job.w.n_in, job.w.n_in, act_.data() + act_offset_[j] + t * ab);
  };
  // A decode step's conversions (a few rows) take less than a hand-off to
  // the pool: done here, they save one barrier per batch.
  int64_t convert_elems = 0;
  for (const auto& [j, t] : tok_tasks_) convert_elems += jobs[j].w.n_in;
  if (convert_elems <= kInlineConvertElems) {
    for (size_t i = 0; i < tok_tasks_.size(); ++i) convert(static_cast<int64_t>(i));
  } else {
    pool.ParallelFor(static_cast<int64_t>(tok_tasks_.size()), convert);
  }

  // 2. Output rows in contiguous chunks, several per thread for balance.
  const int64_t target_chunks = static_cast<int64_t>(pool.size()) * 4;
  const int64_t rows_per_chunk = std::max<int64_t>(8, (total_rows + target_chunks - 1) / target_chunks);
  chunks_.clear();
  for (size_t j = 0; j < jobs.size(); ++j) {
    for (int64_t r = 0; r < jobs[j].w.n_out; r += rows_per_chunk) {
      chunks_.push_back({static_cast<int32_t>(j), r, std::min(jobs[j].w.n_out, r + rows_per_chunk)});
    }
  }
  pool.ParallelFor(static_cast<int64_t>(chunks_.size()), [&](int64_t c) {
    const Chunk ch = chunks_[c];
    const MatMulJob& job = jobs[ch.job];
    const TypeKernels& tk = k.For(job.w.type);
    const int64_t n = job.w.n_in;
    const size_t wb = RowBytes(job.w.type, n);
    const size_t ab = ActRowBytes(tk, n);
    const uint8_t* w = static_cast<const uint8_t*>(job.w.data);
    const uint8_t* xq = act_.data() + act_offset_[ch.job];
    const int64_t tile = std::max<int64_t>(1, static_cast<int64_t>(kTileBytes / wb));
    for (int64_t r0 = ch.r0; r0 < ch.r1; r0 += tile) {
      const int64_t r1 = std::min(ch.r1, r0 + tile);
      if (tk.dot_tile) {
        tk.dot_tile(n, w + r0 * wb, wb, r1 - r0, xq, ab, job.n_tok, job.y + r0,
                    static_cast<size_t>(job.w.n_out));
        continue;
      }
      for (int64_t t = 0; t < job.n_tok; ++t) {
        float* y = job.y + t * job.w.n_out;
        const uint8_t* x = xq + t * ab;
        for (int64_t r = r0; r < r1; ++r) y[r] = tk.dot(n, w + r * wb, x);
      }
    }
  });
}

}  // namespace moestream::kernels::cpu
