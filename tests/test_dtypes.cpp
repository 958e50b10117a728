// Number formats against values worked out by hand: fp8 e4m3fn decode, the fast fp8 rounding
// against the exhaustive reference, bf16 rounding, f16 decode, fp8 block (de)quantisation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "model/io/fp8_block.h"
#include "model/io/tensor_convert.h"
#include "model/ops/dtypes.h"

using namespace dpep;

namespace {
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
}  // namespace

TEST(Fp8, DecodeByHand) {
  // s eeee mmm, bias 7; exponent field 0 is subnormal m/8 * 2^-6.
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);                  // 0 0111 000
  EXPECT_EQ(fp8_e4m3_to_f32(0x3c), 1.5f);                  // 0 0111 100
  EXPECT_EQ(fp8_e4m3_to_f32(0x40), 2.0f);                  // 0 1000 000
  EXPECT_EQ(fp8_e4m3_to_f32(0xb8), -1.0f);                 // 1 0111 000
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal 1/8 * 2^-6
  EXPECT_EQ(fp8_e4m3_to_f32(0x07), 7 * std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.0f);                // 0 1111 110 = 1.75 * 2^8
  EXPECT_EQ(fp8_e4m3_to_f32(0x77), 240.0f);                // 0 1110 111 = 1.875 * 2^7
  EXPECT_EQ(fp8_e4m3_to_f32(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(fp8_e4m3_to_f32(0x80)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7f)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0xff)));
  EXPECT_EQ(fp8_e4m3_to_f32(0xfe), -448.0f);  // no infinities in e4m3fn
}

TEST(Fp8, LutMatchesDecode) {
  const float* lut = fp8_e4m3_lut();
  for (int i = 0; i < 256; ++i) {
    const float want = fp8_e4m3_to_f32(static_cast<uint8_t>(i));
    if (std::isnan(want))
      EXPECT_TRUE(std::isnan(lut[i])) << i;
    else
      EXPECT_EQ(bits(lut[i]), bits(want)) << i;
  }
}

TEST(Fp8, FastRoundingMatchesExhaustiveSearch) {
  // Every bf16 bit pattern (covers all exponents) plus random floats and the exact midpoints.
  std::vector<float> xs;
  for (uint32_t b = 0; b < 0x10000; ++b) xs.push_back(from_bits(b << 16));
  std::mt19937 rng(1);
  for (int i = 0; i < 200000; ++i)
    xs.push_back(std::ldexp(static_cast<float>(rng()) / 4294967296.0f, int(rng() % 30) - 20) *
                 (rng() & 1 ? 1 : -1));
  for (int c = 0; c < 0x7e; ++c) {  // halfway between neighbouring codes: ties go to the even code
    const float lo = fp8_e4m3_to_f32(c), hi = fp8_e4m3_to_f32(c + 1);
    xs.push_back(0.5f * (lo + hi));
    xs.push_back(-0.5f * (lo + hi));
  }
  for (float x : xs) {
    if (std::isnan(x)) continue;
    ASSERT_EQ(fp8_e4m3_round(x), f32_to_fp8_e4m3(x)) << x << " bits " << std::hex << bits(x);
  }
  EXPECT_EQ(fp8_e4m3_round(1.0f), 0x38);
  EXPECT_EQ(fp8_e4m3_round(1.0625f), 0x38);  // halfway 1 and 1.125 -> even mantissa 000
  EXPECT_EQ(fp8_e4m3_round(1.1875f), 0x3a);  // halfway 1.125 and 1.25 -> even mantissa 010
  EXPECT_EQ(fp8_e4m3_round(1000.0f), 0x7e);  // saturates at 448
  EXPECT_EQ(fp8_e4m3_round(-1e30f), 0xfe);
  EXPECT_EQ(fp8_e4m3_round(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal: tie to 0
  EXPECT_EQ(fp8_e4m3_round(std::ldexp(3.0f, -10)), 0x02);  // 1.5 ulp: tie to even 2
  EXPECT_EQ(fp8_e4m3_round(NAN), 0x7f);
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000)), 0x3f80);  // exactly half an ulp above 1: even stays
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000)),
            0x3f82);  // half an ulp above odd 0x3f81: up to even
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001)), 0x3f81);  // just above half: up
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f807fff)), 0x3f80);  // just below half: down
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffff)), 0x7f80);  // FLT_MAX rounds to +inf
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  const uint16_t n = f32_to_bf16(NAN);
  EXPECT_EQ(n & 0x7f80, 0x7f80);
  EXPECT_NE(n & 0x7f, 0);  // still a NaN, not inf
  EXPECT_EQ(bf16_to_f32(0x3fc0), 1.5f);
}

TEST(F16, DecodeByHand) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ff), 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));
  EXPECT_TRUE(std::isinf(f16_to_f32(0xfc00)) && f16_to_f32(0xfc00) < 0);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
}

TEST(Fp8Block, QuantiseThenDequantise) {
  // [130, 3]: block rows 0..127 and 128..129, one column block.
  const int R = 130, C = 3;
  std::vector<float> w(R * C, 0.0f);
  w[0] = 7.0f;              // block (0,0) max -> scale 7/448 = 1/64, 7 -> 448
  w[1] = -3.5f;             // -3.5 * 64 = -224 = -1.75 * 2^7: 1 1110 110 = 0xf6
  w[128 * C + 2] = -0.25f;  // block (1,0) max 0.25 -> scale 0.25/448
  w[129 * C + 0] = 0.125f;  // 0.125/0.25*448 = 224: 0 1110 110 = 0x76
  std::vector<uint8_t> q(R * C);
  std::vector<float> s(2);
  fp8_block_quantize(w.data(), R, C, q.data(), s.data());
  EXPECT_EQ(s[0], 7.0f / 448.0f);
  EXPECT_EQ(s[1], 0.25f / 448.0f);
  EXPECT_EQ(q[0], 0x7e);
  EXPECT_EQ(q[1], 0xf6);
  EXPECT_EQ(q[128 * C + 2], 0xfe);
  EXPECT_EQ(q[129 * C + 0], 0x76);
  std::vector<float> back(R * C);
  fp8_block_dequant(q.data(), s.data(), R, C, back.data());
  EXPECT_EQ(back[0], 7.0f);
  EXPECT_EQ(back[1], -3.5f);
  EXPECT_FLOAT_EQ(back[128 * C + 2], -0.25f);
  EXPECT_FLOAT_EQ(back[129 * C + 0], 0.125f);
  EXPECT_EQ(back[5], 0.0f);
  std::vector<uint16_t> b(R * C);
  fp8_block_dequant_bf16(q.data(), s.data(), R, C, b.data());
  for (int i = 0; i < R * C; ++i) EXPECT_EQ(b[i], f32_to_bf16(back[i]));
  // An all-zero block gets scale 1, not a division by zero.
  std::vector<float> z(4, 0.0f);
  uint8_t qz[4];
  float sz;
  fp8_block_quantize(z.data(), 2, 2, qz, &sz);
  EXPECT_EQ(sz, 1.0f);
  EXPECT_EQ(qz[3], 0);
}
