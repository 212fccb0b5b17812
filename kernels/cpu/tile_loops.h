// Loops that cut a rows × tokens product into register tiles, shared by the
// ISA kernel files (which instantiate them with their own tile kernels). A
// tile kernel is a class with a static member template
//   template <int RM, int RN>
//   static void Run(int64_t nb, const uint8_t* w, size_t ws, const uint8_t* x,
//                   size_t xs, float* y, size_t ys);
// computing RM weight rows (stride ws bytes, nb blocks each) against RN
// activation rows (stride xs), writing y[t * ys + r]. Everything here has
// internal linkage, like simd_x86.h: an instantiation compiled for one ISA
// must never be the copy another ISA's file links to.
//
//   RunTiled<MyTile, 4, 3, 4>(nb, w, ws, rows, x, xs, n_tok, y, ys);
#ifndef MOESTREAM_KERNELS_CPU_TILE_LOOPS_H_
#define MOESTREAM_KERNELS_CPU_TILE_LOOPS_H_

#include <xmmintrin.h>  // _mm_prefetch (SSE, baseline x86-64)

#include <cstddef>
#include <cstdint>

namespace moestream::kernels::cpu::tiles {
namespace {

// Rows read side by side are short streams the hardware prefetcher does not
// follow; but a tile's RM rows are contiguous, and so are the next tiles'.
// At each step a tile prefetches its share (kStepBytes per row) of the rows
// kAheadTiles tiles further on: one sequential stream ahead of the reads.
// Prefetches past the matrix's end are harmless (they never fault).
inline constexpr int kAheadTiles = 1;  // measured (AVX-512, Q4_K..Q8_0): 1 beats 0 and 4, ties 2
template <int RM, size_t kStepBytes>
inline void PrefetchAhead(const uint8_t* w, size_t ws, int64_t step) {
  const uint8_t* p = w + kAheadTiles * RM * ws + step * RM * kStepBytes;
  for (size_t off = 0; off < RM * kStepBytes; off += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(p + off), _MM_HINT_T0);
  }
}


// Tiles of RM rows over all tokens, kToks at a time (then one narrower tile).
template <class Tile, int RM, int kToks>
void RunTokens(int64_t nb, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, int64_t n_tok,
               float* y, size_t ys) {
  static_assert(kToks >= 1 && kToks <= 4);
  int64_t t = 0;
  for (; t + kToks <= n_tok; t += kToks) Tile::template Run<RM, kToks>(nb, w, ws, x + t * xs, xs, y + t * ys, ys);
  const int64_t left = n_tok - t;
  x += t * xs;
  y += t * ys;
  if constexpr (kToks > 1) if (left == 1) Tile::template Run<RM, 1>(nb, w, ws, x, xs, y, ys);
  if constexpr (kToks > 2) if (left == 2) Tile::template Run<RM, 2>(nb, w, ws, x, xs, y, ys);
  if constexpr (kToks > 3) if (left == 3) Tile::template Run<RM, 3>(nb, w, ws, x, xs, y, ys);
}

// All rows, kRows at a time (then one narrower tile), each over all tokens.
template <class Tile, int kRows, int kToks>
void RunRows(int64_t nb, const uint8_t* w, size_t ws, int64_t rows, const uint8_t* x, size_t xs,
             int64_t n_tok, float* y, size_t ys) {
  static_assert(kRows >= 1 && kRows <= 4);
  int64_t r = 0;
  for (; r + kRows <= rows; r += kRows) RunTokens<Tile, kRows, kToks>(nb, w + r * ws, ws, x, xs, n_tok, y + r, ys);
  const int64_t left = rows - r;
  w += r * ws;
  y += r;
  if constexpr (kRows > 1) if (left == 1) RunTokens<Tile, 1, kToks>(nb, w, ws, x, xs, n_tok, y, ys);
  if constexpr (kRows > 2) if (left == 2) RunTokens<Tile, 2, kToks>(nb, w, ws, x, xs, n_tok, y, ys);
  if constexpr (kRows > 3) if (left == 3) RunTokens<Tile, 3, kToks>(nb, w, ws, x, xs, n_tok, y, ys);
}

// A row × token block: prefill in kRows × kToks tiles, so each weight block
// loaded serves kToks tokens and each activation block kRows rows; a single
// token in tiles of kRows1 rows. Decode is bound by memory or by the
// kernel's arithmetic depending on the type, so each kernel file picks
// kRows1 by measurement on the expert shapes (AVX2's Q8_0 streams faster one
// row at a time with the next rows prefetched, kRows1 = 1).
template <class Tile, int kRows, int kToks, int kRows1>
void RunTiled(int64_t nb, const void* w, size_t ws, int64_t rows, const void* x, size_t xs,
              int64_t n_tok, float* y, size_t ys) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  if (n_tok == 1) {
    RunRows<Tile, kRows1, 1>(nb, wb, ws, rows, xb, xs, 1, y, ys);
  } else {
    RunRows<Tile, kRows, kToks>(nb, wb, ws, rows, xb, xs, n_tok, y, ys);
  }
}

}  // namespace
}  // namespace moestream::kernels::cpu::tiles

#endif  // MOESTREAM_KERNELS_CPU_TILE_LOOPS_H_
