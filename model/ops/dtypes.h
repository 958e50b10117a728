// Number formats of weights on disk: float32, bfloat16, float8 e4m3 (fn: no inf, 0x7f/0xff NaN).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace dpep {

enum class DType { F32, BF16, F8E4M3 };

const char* dtype_name(DType t);            // "f32", "bf16", "f8e4m3"
DType dtype_from_name(const std::string&);  // throws std::invalid_argument
inline int dtype_bytes(DType t) {
  return t == DType::F32 ? 4 : t == DType::BF16 ? 2 : 1;
}

inline float bf16_to_f32(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa; exponent 0 = subnormal m/8 * 2^-6.
inline float fp8_e4m3_to_f32(uint8_t v) {
  const int sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 0x7;
  float out;
  if (exp == 0xf && man == 0x7)
    out = NAN;
  else if (exp == 0)
    out = std::ldexp(static_cast<float>(man) / 8.0f, -6);
  else
    out = std::ldexp(1.0f + static_cast<float>(man) / 8.0f, exp - 7);
  return sign ? -out : out;
}

// Nearest e4m3fn value (ties to even), saturating at +-448. Used to make fp8 test checkpoints.
uint8_t f32_to_fp8_e4m3(float f);

// Convert n raw elements of `type` to float32.
void to_f32(DType type, const void* src, float* dst, size_t n);

}  // namespace dpep
