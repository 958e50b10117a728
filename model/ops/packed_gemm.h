// y[M, N] = bf16(x[M, K]) W^T with float32 accumulation, on AMX tiles (or AVX512-BF16 where the
// CPU has no AMX). W is prepacked once, at load time, into 16x32 tiles: either bf16, or FP8 e4m3
// with its 128x128 block scales (W8A16), turned into bf16 inside the kernel a tile or a
// cache-sized slab at a time, never whole:
// - AVX512-BF16: the e4m3 codes are exact in bf16; the block scale multiplies x, rounded to bf16
//   after the multiplication: y = sum over blocks of bf16(x * scale) . q;
// - AMX: each tile is bf16(q * scale) and x is bf16(x).
//
// Deterministic by construction: threads split output columns (N) only, every output element
// is accumulated over its pairs of k in ascending order by the same instructions on the same
// inputs whatever M, the register blocking and the thread count (AVX512-BF16: one float32 lane
// per element; AMX: one C tile element). So a row's result is bitwise independent of the other
// rows and of the thread count.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/ops/dtypes.h"

namespace dpep {

enum class GemmIsa { None, Avx512Bf16, Amx };
const char* gemm_isa_name(GemmIsa isa);

// Best kernel this CPU and OS offer (CPUID; for AMX also the Linux tile-state permission,
// asked once per process). None: no bf16 kernel, use float32.
GemmIsa gemm_isa();

// W [n, k] in tiles of 16 rows x 32 columns, tile (nt, kt) at ((nt * k_tiles) + kt) * 512
// elements; n is padded to a multiple of 32 and k to 32 with zeros. Inside a tile the elements
// go by pairs of k (VNNI, the AMX B-operand layout): (row i, column c) at
// (c / 2) * 32 + i * 2 + c % 2, so one 64-byte vector is a pair of k for all 16 rows.
class PackedWeight {
 public:
  PackedWeight() = default;
  static PackedWeight from_f32(const float* w, int n, int k);      // rounded to bf16
  static PackedWeight from_bf16(const uint16_t* w, int n, int k);  // row-major bf16 bits
  // q [n, k] e4m3 codes, scale_inv [ceil(n/128), ceil(k/128)].
  static PackedWeight from_fp8(const uint8_t* q, const float* scale_inv, int n, int k);
  // [2n, k]: blocks of `group` rows from a and b in turn (a's rows [0, group), b's [0, group),
  // a's [group, 2 group), ...), values unchanged. a and b have one shape and dtype; group is a
  // multiple of 16 that divides n (of 128 for FP8: whole scale blocks). Throws otherwise.
  static PackedWeight interleave_rows(const PackedWeight& a, const PackedWeight& b, int group);
  // [a.n + b.n, k]: a's rows then b's, values unchanged. One k and dtype; a.n a multiple of 32
  // (whole pairs of tiles; 128 for FP8: whole scale blocks). Throws otherwise.
  static PackedWeight concat_rows(const PackedWeight& a, const PackedWeight& b);

  DType dtype() const { return dtype_; }  // BF16 or F8E4M3
  int n() const { return n_; }
  int k() const { return k_; }
  int n_tiles() const { return n_tiles_; }
  int k_tiles() const { return k_tiles_; }
  bool empty() const { return n_ == 0; }
  size_t bytes() const;  // tiles and scales as held

  // Rows [r0, r0 + nr) as float32 row-major [nr, k] (the exact dequantised values: bf16 widened,
  // fp8 code times its block scale).
  void rows_f32(int r0, int nr, float* out) const;

  const uint8_t* tiles() const { return data_.get(); }
  float scale(int nt, int kt) const;  // fp8 block scale of tile (nt, kt); 0 for padding tiles

 private:
  void allocate(DType t, int n, int k);
  DType dtype_ = DType::BF16;
  int n_ = 0, k_ = 0, n_tiles_ = 0, k_tiles_ = 0;
  std::shared_ptr<uint8_t> data_;  // from weight_alloc (model/ops/weight_arena.h)
  std::vector<float> scale_inv_;   // fp8 only
};

// The buffers of packed_gemm calls made from one thread, kept by the caller (the model's
// run-state, model/run_state.h) and only grown, so that a warm call allocates nothing: x rounded
// to bf16 (or packed for AMX), shared by the call's threads, and per worker thread of the call
// the fp8 conversions, the accumulators and the block scales.
struct GemmScratch {
  std::vector<uint16_t> x;
  struct Worker {
    std::vector<uint16_t> conv, xscaled;
    std::vector<float> accs;  // 16 floats per accumulator vector, plus room to align to 64 bytes
    std::vector<float> sc;
  };
  std::vector<Worker> workers;
  std::vector<float> dequant;  // float32 mode on bf16/FP8 weights: dequantised rows (Linear)
  // Grows the buffers to what calls of up to M rows on w need, for up to `threads` workers.
  void reserve(const PackedWeight& w, int M, int threads);
};

// y[m * ldy + j] = sum_k bf16(x[m * ldx + k]) * W[j][k] for m < M, j < N, in float32.
// isa must not be None (throws std::invalid_argument); defaults to gemm_isa(). Without a
// scratch, a thread_local one of the calling thread is used.
void packed_gemm(const float* x, int M, int ldx, const PackedWeight& w, float* y, int ldy);
void packed_gemm(const float* x, int M, int ldx, const PackedWeight& w, float* y, int ldy,
                 GemmScratch* scratch);
void packed_gemm(const float* x, int M, int ldx, const PackedWeight& w, float* y, int ldy,
                 GemmIsa isa, GemmScratch* scratch = nullptr);
// The output columns of the pairs of 16-row tiles [pair_begin, pair_end) only (columns
// [32 * pair_begin, min(32 * pair_end, N)), written at their own index in y; the others are not
// touched). Each element is computed exactly as packed_gemm computes it, so callers may split a
// product's columns over threads or work items freely.
void packed_gemm_columns(const float* x, int M, int ldx, const PackedWeight& w, int pair_begin,
                         int pair_end, float* y, int ldy, GemmScratch* scratch);
void packed_gemm_columns(const float* x, int M, int ldx, const PackedWeight& w, int pair_begin,
                         int pair_end, float* y, int ldy, GemmIsa isa, GemmScratch* scratch);

}  // namespace dpep
