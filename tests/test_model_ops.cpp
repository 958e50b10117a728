// Router, RoPE/YaRN and RMSNorm against values worked out by hand or from the formula in
// double precision (../shared/docs/deepseek-v3-spec.md).
#include <gtest/gtest.h>

#include <cmath>

#include "model/ops/attention_kernel.h"
#include "model/ops/ops.h"
#include "model/rope.h"
#include "model/router.h"

using namespace dpep;

namespace {
RouterParams eight_experts() {
  RouterParams p;
  p.num_experts = 8;
  p.top_k = 2;
  p.n_group = 2;
  p.topk_group = 1;
  p.routed_scaling_factor = 2.5f;
  return p;
}
}  // namespace

TEST(Router, BiasChoosesWeightsComeFromScores) {
  // s = sigmoid(logits) = [.5 .5 .5 .5 .75 .25 .5 .5]; choice = s + bias =
  // [.5 .6 .5 .5 .75 .25 .8 .5]; group scores (best two): g0 1.1, g1 1.55 -> keep g1;
  // top-2 of g1 by choice: 6 (.8), 4 (.75); weights s6=.5, s4=.75 -> /1.25 -> x2.5 = 1.0, 1.5.
  const float logits[8] = {0, 0, 0, 0, std::log(3.0f), std::log(1.0f / 3), 0, 0};
  const float bias[8] = {0, 0.1f, 0, 0, 0, 0, 0.3f, 0};
  int idx[2];
  float w[2];
  route(eight_experts(), logits, bias, 1, idx, w);
  EXPECT_EQ(idx[0], 6);
  EXPECT_EQ(idx[1], 4);
  EXPECT_NEAR(w[0], 1.0f, 1e-6);
  EXPECT_NEAR(w[1], 1.5f, 1e-6);
}

TEST(Router, ExpertsOutsideKeptGroupsScoreZeroNotMinusInfinity) {
  // All s = .5; choice g0 = [-.2 -.2 -.9 -.9] (group -.4), g1 = [-.3 -.3 -.3 -.35] (group -.6):
  // g0 is kept, g1 is masked to 0.0, and 0.0 beats every negative choice of g0.
  const float logits[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const float bias[8] = {-0.7f, -0.7f, -1.4f, -1.4f, -0.8f, -0.8f, -0.8f, -0.85f};
  int idx[2];
  float w[2];
  route(eight_experts(), logits, bias, 1, idx, w);
  EXPECT_GE(idx[0], 4);
  EXPECT_GE(idx[1], 4);
  EXPECT_NEAR(w[0] + w[1], 2.5f, 1e-6);
}

TEST(Router, SimulatedPerfectBalance) {
  int idx[3 * 4] = {};
  simulate_perfect_eplb(idx, 3, 4, comm::ExpertPlacement{16, 2});  // idx[i] = (i mod 2) * 8
  for (int i = 0; i < 12; ++i) EXPECT_EQ(idx[i], (i % 2) * 8);
}

TEST(Rope, YarnInvFreqMatchesTheFormulaForV3) {
  ModelConfig c = ModelConfig::preset("v3");
  auto f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 32u);
  // corr(32) = 64 ln(4096 / (64 pi)) / (2 ln 1e4) = 10.47 -> low 10; corr(1) = 22.5 -> high 23.
  for (int i = 0; i < 32; ++i) {
    const double extrap = std::pow(10000.0, -2.0 * i / 64);
    const double ramp = std::clamp((i - 10.0) / (23.0 - 10.0), 0.0, 1.0);
    const double want = extrap / 40 * ramp + extrap * (1 - ramp);
    EXPECT_NEAR(f[i], want, 2e-6 * want) << i;
  }
  EXPECT_FLOAT_EQ(rope_attention_factor(c), 1.0f);
}

TEST(Rope, RotatesAdjacentPairs) {
  ModelConfig c = ModelConfig::preset("tiny");
  c.qk_rope_head_dim = 4;
  c.rope_scaling.type = RopeType::None;
  Rope r(c);  // inv_freq = [1, 0.01]
  float x[4] = {1, 0, 0, 1};
  r.apply(x, 1, 4, 1);
  EXPECT_NEAR(x[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(x[1], std::sin(1.0), 1e-6);
  EXPECT_NEAR(x[2], -std::sin(0.01), 1e-6);
  EXPECT_NEAR(x[3], std::cos(0.01), 1e-6);
}

TEST(RmsNorm, HandValues) {
  float x[4] = {1, 2, 3, 4};
  const float w[4] = {1, 1, 2, 0.5f};
  rmsnorm_rows(x, 1, 4, w, 1e-6f);  // mean(x^2) = 7.5
  const double inv = 1 / std::sqrt(7.5 + 1e-6);
  EXPECT_NEAR(x[0], inv, 1e-6);
  EXPECT_NEAR(x[1], 2 * inv, 1e-6);
  EXPECT_NEAR(x[2], 6 * inv, 1e-6);
  EXPECT_NEAR(x[3], 2 * inv, 1e-6);
}

TEST(Ops, SiluMulAndSoftmaxAgainstScalar) {
  std::vector<float> g(37), u(37), ref(37);
  for (int i = 0; i < 37; ++i) {
    g[i] = -9 + 0.5f * i;
    u[i] = 0.1f * i - 1;
    ref[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
  }
  silu_mul(g.data(), u.data(), g.size());
  for (int i = 0; i < 37; ++i) EXPECT_NEAR(g[i], ref[i], 1e-5f * (1 + std::fabs(ref[i]))) << i;
  std::vector<float> x(53);
  double z = 0;
  for (int i = 0; i < 53; ++i) z += std::exp(x[i] = std::sin(i) * 7);
  std::vector<float> y = x;
  softmax_fast(y.data(), 53);
  for (int i = 0; i < 53; ++i) EXPECT_NEAR(y[i], std::exp(x[i]) / z, 1e-6) << i;
}

// Router logits: close to a double-precision product, and each element bitwise the same
// whatever the number of rows around it, its row's position, and the thread count.
TEST(Ops, FixedOrderMatmulIsBatchInvariant) {
  for (const int in : {7, 16, 100, 1024}) {
    const int E = 13, T = 37;
    std::vector<float> x(static_cast<size_t>(T) * in), w(static_cast<size_t>(E) * in);
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 1.5f;
    for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.11f * static_cast<float>(i));
    std::vector<float> all(static_cast<size_t>(T) * E);
    matmul_xwt_fixed_order(x.data(), T, in, w.data(), E, all.data());
    for (int t = 0; t < T; ++t)
      for (int e = 0; e < E; ++e) {
        double ref = 0;
        for (int k = 0; k < in; ++k)
          ref += static_cast<double>(x[static_cast<size_t>(t) * in + k]) *
                 w[static_cast<size_t>(e) * in + k];
        EXPECT_NEAR(all[static_cast<size_t>(t) * E + e], ref, 1e-4 * in)
            << in << " " << t << " " << e;
      }
    // Rows 5..(5+n) alone, for n = 1, 2, 5: bitwise the rows of the whole batch.
    for (const int n : {1, 2, 5}) {
      std::vector<float> part(static_cast<size_t>(n) * E);
      matmul_xwt_fixed_order(x.data() + 5 * static_cast<size_t>(in), n, in, w.data(), E,
                             part.data());
      for (size_t i = 0; i < part.size(); ++i)
        ASSERT_EQ(part[i], all[5 * static_cast<size_t>(E) + i]) << "in " << in << " n " << n;
    }
  }
}
