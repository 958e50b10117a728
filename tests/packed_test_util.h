// Random inputs for the packed GEMM's tests: normal values, and a weight matrix packed as bf16
// or as FP8 with 128x128 block scales.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "model/io/fp8_block.h"
#include "model/ops/packed_gemm.h"

namespace dpep::testing {

inline std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// [n, k] of normal values (stddev `scale`), packed as bf16, or quantised to FP8 blocks first.
inline PackedWeight random_packed(bool fp8, int n, int k, uint32_t seed, float scale) {
  const auto w = random_vec(static_cast<size_t>(n) * k, seed, scale);
  if (!fp8) return PackedWeight::from_f32(w.data(), n, k);
  std::vector<uint8_t> q(w.size());
  std::vector<float> s(fp8_blocks(n) * fp8_blocks(k));
  fp8_block_quantize(w.data(), n, k, q.data(), s.data());
  return PackedWeight::from_fp8(q.data(), s.data(), n, k);
}

}  // namespace dpep::testing
