#include "model/io/tensor_convert.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace dpep {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);  // inf / NaN
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal: man * 2^-24
    float f = static_cast<float>(man) * 0x1p-24f;
    std::memcpy(&u, &f, 4);
    u |= sign;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void st_to_f32(StDType src, const void* in, float* out, int64_t n) {
  switch (src) {
    case StDType::F32:
      std::memcpy(out, in, n * 4);
      return;
    case StDType::BF16:
      to_f32(DType::BF16, in, out, n);
      return;
    case StDType::F16: {
      auto* s = static_cast<const uint16_t*>(in);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(s[i]);
      return;
    }
    default:
      throw std::invalid_argument(std::string("cannot convert ") + st_dtype_name(src));
  }
}

void st_to_bf16(StDType src, const void* in, uint16_t* out, int64_t n) {
  switch (src) {
    case StDType::BF16:
      std::memcpy(out, in, n * 2);
      return;
    case StDType::F32: {
      auto* s = static_cast<const float*>(in);
      for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(s[i]);
      return;
    }
    case StDType::F16: {
      auto* s = static_cast<const uint16_t*>(in);
      for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(f16_to_f32(s[i]));
      return;
    }
    default:
      throw std::invalid_argument(std::string("cannot convert ") + st_dtype_name(src));
  }
}

std::vector<float> st_scales_to_f32(StDType src, const std::vector<uint8_t>& raw) {
  std::vector<float> out(raw.size() / st_dtype_bytes(src));
  st_to_f32(src, raw.data(), out.data(), static_cast<int64_t>(out.size()));
  return out;
}

}  // namespace dpep
