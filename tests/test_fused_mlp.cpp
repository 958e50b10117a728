// The fused expert path of the bf16 mode: gate and up interleaved in one packed matrix, products
// split over output columns (packed_gemm_columns), SiLU times up right after the product, and the
// MoE layer's (expert, column block) work items. Each must give bitwise the results of the
// separate products it replaces.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "model/mlp.h"
#include "model/moe.h"
#include "model/ops/packed_gemm.h"
#include "packed_test_util.h"

using namespace dpep;

namespace {

// The values these tests used: stddev 0.1 unless given.
std::vector<float> random_vec(size_t n, int seed, float scale = 0.1f) {
  return dpep::testing::random_vec(n, static_cast<uint32_t>(seed), scale);
}

PackedWeight packed(bool fp8, int n, int k, int seed) {
  return dpep::testing::random_packed(fp8, n, k, static_cast<uint32_t>(seed), 0.1f);
}

std::vector<float> rows(const PackedWeight& w) {
  std::vector<float> r(static_cast<size_t>(w.n()) * w.k());
  w.rows_f32(0, w.n(), r.data());
  return r;
}

bool gemm_available() {
  return gemm_isa() != GemmIsa::None;
}

}  // namespace

TEST(InterleaveRows, BlocksOfGateAndUpInTurnWithTheirScales) {
  for (bool fp8 : {false, true})
    for (int group : fp8 ? std::vector<int>{128} : std::vector<int>{16, 128}) {
      const int n = 256, k = 200;  // k: a partial last tile and scale block
      const PackedWeight a = packed(fp8, n, k, 1), b = packed(fp8, n, k, 2);
      const PackedWeight f = PackedWeight::interleave_rows(a, b, group);
      ASSERT_EQ(f.n(), 2 * n);
      ASSERT_EQ(f.k(), k);
      ASSERT_EQ(f.dtype(), a.dtype());
      const auto ra = rows(a), rb = rows(b), rf = rows(f);
      for (int r = 0; r < 2 * n; ++r) {
        const int block = r / group, i = r % group;
        const auto& src = block % 2 == 0 ? ra : rb;
        const int sr = block / 2 * group + i;
        for (int c = 0; c < k; ++c)
          ASSERT_EQ(rf[static_cast<size_t>(r) * k + c], src[static_cast<size_t>(sr) * k + c])
              << (fp8 ? "fp8" : "bf16") << " group " << group << " row " << r << " col " << c;
      }
    }
}

TEST(InterleaveRows, RefusesGroupsThatDoNotFit) {
  const PackedWeight a = packed(false, 96, 64, 1), b = packed(false, 96, 64, 2);
  EXPECT_THROW(PackedWeight::interleave_rows(a, b, 8), std::invalid_argument);   // < a tile
  EXPECT_THROW(PackedWeight::interleave_rows(a, b, 64), std::invalid_argument);  // 96 % 64
  EXPECT_THROW(PackedWeight::interleave_rows(a, packed(false, 96, 32, 2), 32),
               std::invalid_argument);  // shapes differ
  const PackedWeight fa = packed(true, 256, 64, 1), fb = packed(true, 256, 64, 2);
  EXPECT_THROW(PackedWeight::interleave_rows(fa, fb, 64), std::invalid_argument);  // splits scales
  EXPECT_THROW(PackedWeight::interleave_rows(a, fa, 32), std::invalid_argument);   // dtypes differ
}

// q_a and kv_a as one matrix: a's rows then b's, FP8 scales with them.
TEST(ConcatRows, RowsOfBothInOrderWithTheirScales) {
  for (bool fp8 : {false, true}) {
    const int na = fp8 ? 256 : 96, nb = 72, k = 200;  // b: partial tiles and scale blocks
    const PackedWeight a = packed(fp8, na, k, 3), b = packed(fp8, nb, k, 4);
    const PackedWeight f = PackedWeight::concat_rows(a, b);
    ASSERT_EQ(f.n(), na + nb);
    const auto ra = rows(a), rb = rows(b), rf = rows(f);
    for (size_t i = 0; i < ra.size(); ++i) ASSERT_EQ(rf[i], ra[i]) << i;
    for (size_t i = 0; i < rb.size(); ++i) ASSERT_EQ(rf[ra.size() + i], rb[i]) << i;
  }
  const PackedWeight a = packed(false, 48, 64, 1), b = packed(false, 32, 64, 2);
  EXPECT_THROW(PackedWeight::concat_rows(a, b), std::invalid_argument);  // 48: half a tile pair
  EXPECT_THROW(PackedWeight::concat_rows(packed(true, 64, 64, 1), packed(true, 64, 64, 2)),
               std::invalid_argument);  // FP8: 64 rows split a scale block
  EXPECT_THROW(PackedWeight::concat_rows(packed(false, 64, 64, 1), packed(false, 64, 32, 2)),
               std::invalid_argument);  // k differs
}

TEST(PackedGemmColumns, EqualsTheWholeProductOnItsColumnsAndTouchesNoOther) {
  if (!gemm_available()) GTEST_SKIP() << "no bf16 GEMM kernel on this CPU";
  const int N = 200, K = 150;
  for (bool fp8 : {false, true})
    for (int M : {1, 3, 17, 40}) {
      const PackedWeight w = packed(fp8, N, K, 5);
      const auto x = random_vec(static_cast<size_t>(M) * K, 6, 1.0f);
      std::vector<float> whole(static_cast<size_t>(M) * N);
      packed_gemm(x.data(), M, K, w, whole.data(), N);
      const int pairs = w.n_tiles() / 2;  // 7: the last one partial
      for (auto [p0, p1] : {std::pair{0, 1}, std::pair{2, 5}, std::pair{5, 7}, std::pair{0, 7}}) {
        std::vector<float> y(whole.size(), std::numeric_limits<float>::quiet_NaN());
        packed_gemm_columns(x.data(), M, K, w, p0, p1, y.data(), N, nullptr);
        for (int m = 0; m < M; ++m)
          for (int j = 0; j < N; ++j) {
            const float v = y[static_cast<size_t>(m) * N + j];
            if (j >= 32 * p0 && j < 32 * p1)
              ASSERT_EQ(v, whole[static_cast<size_t>(m) * N + j]) << "M " << M << " col " << j;
            else
              ASSERT_TRUE(std::isnan(v))
                  << "column " << j << " outside [" << p0 << ", " << p1 << ") pairs was written";
          }
      }
      EXPECT_THROW(packed_gemm_columns(x.data(), M, K, w, 0, pairs + 1, whole.data(), N, nullptr),
                   std::out_of_range);
    }
}

// The fused MLP (one gate_up product, SiLU fused) gives bitwise the separate products' result.
TEST(FusedMlp, EqualsSeparateGateAndUpBitwise) {
  if (!gemm_available()) GTEST_SKIP() << "no bf16 GEMM kernel on this CPU";
  const int H = 96;
  for (int I : {256, 48, 40}) {  // group 128; group 16; no group (stays separate)
    const auto g = random_vec(static_cast<size_t>(I) * H, 1), u = random_vec(g.size(), 2);
    const auto d = random_vec(g.size(), 3);
    MlpWeights fused = make_mlp(g.data(), u.data(), d.data(), I, H);
    MlpWeights separate = make_mlp(g.data(), u.data(), d.data(), I, H);
    fused.to_bf16();
    for (Linear* l : {&separate.gate, &separate.up, &separate.down}) l->to_bf16();
    EXPECT_EQ(fused.fused(), I % 16 == 0) << I;
    EXPECT_EQ(fused.group, I % 128 == 0 ? 128 : I % 16 == 0 ? 16 : 0);
    EXPECT_LE(fused.bytes(), separate.bytes());  // the same rows, less tile padding
    for (int T : {1, 5, 33}) {
      const auto x = random_vec(static_cast<size_t>(T) * H, 7 + T, 1.0f);
      std::vector<float> a(static_cast<size_t>(T) * H), b(a.size()), s1, s2;
      mlp_forward(fused, x.data(), T, a.data(), s1);
      mlp_forward(separate, x.data(), T, b.data(), s2);
      for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "I " << I << " T " << T;
    }
  }
}

// The MoE layer's fused path (expert x column-block items over the threads) against its
// per-expert path, bitwise, with 1 and 2 threads and uneven expert loads.
TEST(FusedMoe, WorkItemsEqualPerExpertProductsBitwise) {
  if (!gemm_available()) GTEST_SKIP() << "no bf16 GEMM kernel on this CPU";
  // I = 160 (group 16: 10 blocks, items of 8) and H = 300 (10 tile pairs, items of 8): experts
  // split into two column items in both products.
  const int H = 300, I = 160, E = 8, K = 2;
  MoeWeights fused, separate;
  for (MoeWeights* w : {&fused, &separate}) {
    w->gate = random_vec(static_cast<size_t>(E) * H, 9, 1.0f);
    w->placement = comm::ExpertPlacement{E, 1};
    for (int e = 0; e < E; ++e) {
      const auto g = random_vec(static_cast<size_t>(I) * H, 10 + e),
                 u = random_vec(g.size(), 30 + e), d = random_vec(g.size(), 50 + e);
      w->local.push_back(make_mlp(g.data(), u.data(), d.data(), I, H));
    }
  }
  for (auto& m : fused.local) m.to_bf16();
  for (auto& m : separate.local)
    for (Linear* l : {&m.gate, &m.up, &m.down}) l->to_bf16();
  ASSERT_TRUE(fused.local[0].fused());
  ASSERT_FALSE(separate.local[0].fused());
  MoeOptions opt;
  opt.router.num_experts = E;
  opt.router.top_k = K;
  opt.router.group_limited = false;
  for (int T : {1, 7, 60})
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      const auto x = random_vec(static_cast<size_t>(T) * H, 100 + T, 1.0f);
      std::vector<float> a(static_cast<size_t>(T) * H), b(a.size());
      comm::LoopbackExchange ex1, ex2;
      RunState::Moe rs1, rs2;
      rs1.threads.resize(threads);
      rs2.threads.resize(threads);
      moe_forward(fused, opt, H, x.data(), T, ex1, a.data(), rs1, nullptr);
      moe_forward(separate, opt, H, x.data(), T, ex2, b.data(), rs2, nullptr);
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_EQ(a[i], b[i]) << "T " << T << " threads " << threads << " element " << i;
    }
  omp_set_num_threads(1);
}
