// Float8 e4m3fn with one float32 scale per 128x128 block, as DeepSeek ships its weights:
// w[i][j] = q[i][j] * scale_inv[i/128][j/128]; edge blocks are partial.
#pragma once
#include <cstdint>

namespace dpep {

constexpr int64_t kFp8Block = 128;
inline int64_t fp8_blocks(int64_t n) {
  return (n + kFp8Block - 1) / kFp8Block;
}

// 256-entry decode table: fp8_e4m3_lut()[q] == fp8_e4m3_to_f32(q).
const float* fp8_e4m3_lut();

// Nearest e4m3fn code (ties to even), saturating at +-448, NaN -> 0x7f. Bit arithmetic:
// same result as f32_to_fp8_e4m3 but fast enough for whole checkpoints.
uint8_t fp8_e4m3_round(float f);

// q [rows, cols], scale_inv [ceil(rows/128), ceil(cols/128)] -> out [rows, cols].
void fp8_block_dequant(const uint8_t* q, const float* scale_inv, int64_t rows, int64_t cols,
                       float* out);
// Same, rounded to bf16 (round to nearest even) without a float32 copy of the whole matrix.
void fp8_block_dequant_bf16(const uint8_t* q, const float* scale_inv, int64_t rows, int64_t cols,
                            uint16_t* out);
// w [rows, cols] -> q [rows, cols] and scale_inv [ceil(rows/128), ceil(cols/128)] with
// scale_inv = max|w| / 448 over each block (1 for an all-zero block).
void fp8_block_quantize(const float* w, int64_t rows, int64_t cols, uint8_t* q, float* scale_inv);

}  // namespace dpep
