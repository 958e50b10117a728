// Element conversion between checkpoint dtypes and dpep's stored dtypes, for the converter.
#pragma once
#include <cstdint>
#include <vector>

#include "model/io/safetensors.h"
#include "model/ops/dtypes.h"

namespace dpep {

// IEEE half to float (exact).
float f16_to_f32(uint16_t h);

// Converts n elements of a checkpoint dtype (BF16, F16, F32) to float32 / bf16.
// Throws std::invalid_argument for other dtypes.
void st_to_f32(StDType src, const void* in, float* out, int64_t n);
void st_to_bf16(StDType src, const void* in, uint16_t* out, int64_t n);

// Reads float32 block scales stored as F32, BF16 or F16.
std::vector<float> st_scales_to_f32(StDType src, const std::vector<uint8_t>& raw);

}  // namespace dpep
