// Internal to packed_gemm: the kernels of packed_gemm_amx.cpp, the one translation unit built
// with the AMX and AVX512-BF16 flags. Call them only after gemm_isa() said the CPU has them.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "model/ops/packed_gemm.h"

namespace dpep::gemm_detail {

// 16x32 fp8 tile (512 bytes) -> bf16 tile (1024 bytes): bf16(fp8_value * scale), round to
// nearest even: the same values as f32_to_bf16(fp8_e4m3_to_f32(q) * scale).
void fp8_tile_to_bf16_avx512(const uint8_t* src, float scale, uint16_t* dst);

// 32 e4m3 codes -> their exact bf16 values (no scale): what the AVX512-BF16 kernel multiplies.
void fp8x32_to_bf16_exact_avx512(const uint8_t* src, uint16_t* dst);

// Asks Linux for the AMX tile state once; false if the kernel refuses.
bool request_amx_permission();

// Output columns of the pairs of 16-row tiles [pair_begin, pair_end) only.
void gemm_amx(const float* x, int M, int ldx, const PackedWeight& w, int pair_begin, int pair_end,
              float* y, int ldy, GemmScratch& s);
void gemm_avx512bf16(const float* x, int M, int ldx, const PackedWeight& w, int pair_begin,
                     int pair_end, float* y, int ldy, GemmScratch& s);

// Elements of the scratch buffers a call needs (the kernels and GemmScratch::reserve agree).
constexpr int kGemmTileElems = 512;
constexpr int kGemmChunkTiles = 8;  // AVX512-BF16: k tiles per pass over a block of tiles
inline size_t gemm_x_elems(int M, int KT) {
  return static_cast<size_t>((M + 15) / 16) * KT * kGemmTileElems + 32;  // >= M * KT * 32
}
inline size_t gemm_conv_elems(int KT) {  // AMX: a pair of tile columns; AVX: 4 x one chunk
  return std::max<size_t>(2 * static_cast<size_t>(KT), 4 * kGemmChunkTiles) * kGemmTileElems + 32;
}
inline size_t gemm_accs_floats(int M) {
  return static_cast<size_t>(16) * M * 16 + 16;
}

}  // namespace dpep::gemm_detail
