#include "model/io/fp8_block.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/ops/dtypes.h"

namespace dpep {

const float* fp8_e4m3_lut() {
  static const auto table = [] {
    struct T {
      float v[256];
    } t;
    for (int i = 0; i < 256; ++i) t.v[i] = fp8_e4m3_to_f32(static_cast<uint8_t>(i));
    return t;
  }();
  return table.v;
}

uint8_t fp8_e4m3_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint8_t sign = (u >> 31) ? 0x80 : 0;
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return 0x7f;  // NaN
  const int exp = static_cast<int>(u >> 23) - 127;
  int code;
  if (exp < -6) {
    // Subnormal range: codes 0..8 are m * 2^-9 (code 8 is the smallest normal, 2^-6).
    float a;
    std::memcpy(&a, &u, 4);
    code = static_cast<int>(std::nearbyint(a * 512.0f));  // ties to even = even code
  } else {
    if (exp > 8) return sign | 0x7e;
    uint32_t mant = u & 0x7fffffu, m = mant >> 20, rem = mant & 0xfffffu;
    if (rem > 0x80000u || (rem == 0x80000u && (m & 1u))) ++m;  // carries into the exponent
    code = (exp + 7) * 8 + static_cast<int>(m);
  }
  return sign | static_cast<uint8_t>(std::min(code, 0x7e));
}

void fp8_block_dequant(const uint8_t* q, const float* scale_inv, int64_t rows, int64_t cols,
                       float* out) {
  const float* lut = fp8_e4m3_lut();
  const int64_t sc = fp8_blocks(cols);
  for (int64_t i = 0; i < rows; ++i) {
    const float* s = scale_inv + (i / kFp8Block) * sc;
    const uint8_t* qi = q + i * cols;
    float* oi = out + i * cols;
    for (int64_t b = 0; b < sc; ++b) {  // one scale per 128 columns
      const float sb = s[b];
      const int64_t j1 = std::min(cols, (b + 1) * kFp8Block);
      for (int64_t j = b * kFp8Block; j < j1; ++j) oi[j] = lut[qi[j]] * sb;
    }
  }
}

void fp8_block_dequant_bf16(const uint8_t* q, const float* scale_inv, int64_t rows, int64_t cols,
                            uint16_t* out) {
  const float* lut = fp8_e4m3_lut();
  const int64_t sc = fp8_blocks(cols);
  for (int64_t i = 0; i < rows; ++i) {
    const float* s = scale_inv + (i / kFp8Block) * sc;
    const uint8_t* qi = q + i * cols;
    uint16_t* oi = out + i * cols;
    for (int64_t j = 0; j < cols; ++j) oi[j] = f32_to_bf16(lut[qi[j]] * s[j / kFp8Block]);
  }
}

void fp8_block_quantize(const float* w, int64_t rows, int64_t cols, uint8_t* q, float* scale_inv) {
  const int64_t sr = fp8_blocks(rows), sc = fp8_blocks(cols);
  for (int64_t bi = 0; bi < sr; ++bi) {
    const int64_t r0 = bi * kFp8Block, r1 = std::min(rows, r0 + kFp8Block);
    for (int64_t bj = 0; bj < sc; ++bj) {
      const int64_t c0 = bj * kFp8Block, c1 = std::min(cols, c0 + kFp8Block);
      float amax = 0;
      for (int64_t i = r0; i < r1; ++i)
        for (int64_t j = c0; j < c1; ++j) amax = std::max(amax, std::fabs(w[i * cols + j]));
      const float s = amax > 0 ? amax / 448.0f : 1.0f;
      scale_inv[bi * sc + bj] = s;
      const float inv = 1.0f / s;
      for (int64_t i = r0; i < r1; ++i)
        for (int64_t j = c0; j < c1; ++j) q[i * cols + j] = fp8_e4m3_round(w[i * cols + j] * inv);
    }
  }
}

}  // namespace dpep
