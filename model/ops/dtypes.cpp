#include "model/ops/dtypes.h"

#include <stdexcept>

namespace dpep {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "f32";
    case DType::BF16:
      return "bf16";
    case DType::F8E4M3:
      return "f8e4m3";
  }
  return "?";
}

DType dtype_from_name(const std::string& s) {
  if (s == "f32" || s == "fp32" || s == "float32") return DType::F32;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "f8e4m3" || s == "fp8" || s == "float8_e4m3fn") return DType::F8E4M3;
  throw std::invalid_argument("unknown dtype '" + s + "' (f32, bf16, f8e4m3)");
}

uint8_t f32_to_fp8_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7e;
  // Exhaustive nearest search over the 127 non-negative finite codes: tiny and exact.
  uint8_t best = 0;
  float best_err = INFINITY;
  for (int c = 0; c < 0x7f; ++c) {
    float v = fp8_e4m3_to_f32(static_cast<uint8_t>(c));
    float err = std::fabs(v - a);
    if (err < best_err || (err == best_err && (c & 1) == 0)) {
      best_err = err;
      best = static_cast<uint8_t>(c);
    }
  }
  return sign | best;
}

void to_f32(DType type, const void* src, float* dst, size_t n) {
  switch (type) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      break;
    case DType::BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      break;
    }
    case DType::F8E4M3: {
      float lut[256];
      for (int i = 0; i < 256; ++i) lut[i] = fp8_e4m3_to_f32(static_cast<uint8_t>(i));
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = lut[s[i]];
      break;
    }
  }
}

}  // namespace dpep
