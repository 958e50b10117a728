// packed_gemm (AMX and AVX512-BF16 kernels, bf16 and FP8 weights) against a scalar reference,
// bitwise determinism across row counts and thread counts, exact dequantisation, and the memory
// the weights and large load-time buffers come from (WeightArena, LargeAllocator).
#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "model/io/fp8_block.h"
#include "model/ops/large_alloc.h"
#include "model/ops/packed_gemm.h"
#include "model/ops/packed_gemm_kernels.h"
#include "model/ops/weight_arena.h"
#include "packed_test_util.h"

using namespace dpep;
using dpep::testing::random_vec;

namespace {

std::vector<GemmIsa> isas() {
  std::vector<GemmIsa> out;
  if (gemm_isa() == GemmIsa::Amx) out.push_back(GemmIsa::Amx);
  if (gemm_isa() != GemmIsa::None) out.push_back(GemmIsa::Avx512Bf16);
  return out;
}

struct Weight {
  PackedWeight packed;
  std::vector<float> ref;  // [n, k]: the bf16 values the AMX kernel multiplies, widened
  std::vector<float> q;    // fp8 only: the e4m3 values, unscaled [n, k]
  std::vector<float> s;    // fp8 only: block scales
};

Weight make_weight(bool fp8, int n, int k, uint32_t seed) {
  auto w = random_vec(static_cast<size_t>(n) * k, seed, 0.05f);
  Weight out;
  out.ref.resize(w.size());
  if (fp8) {
    std::vector<uint8_t> q(w.size());
    std::vector<float> s(fp8_blocks(n) * fp8_blocks(k));
    fp8_block_quantize(w.data(), n, k, q.data(), s.data());
    out.packed = PackedWeight::from_fp8(q.data(), s.data(), n, k);
    for (uint8_t c : q) out.q.push_back(fp8_e4m3_to_f32(c));
    out.s = s;
    std::vector<uint16_t> b(w.size());
    fp8_block_dequant_bf16(q.data(), s.data(), n, k, b.data());
    for (size_t i = 0; i < w.size(); ++i) out.ref[i] = bf16_to_f32(b[i]);
  } else {
    out.packed = PackedWeight::from_f32(w.data(), n, k);
    for (size_t i = 0; i < w.size(); ++i) out.ref[i] = bf16_to_f32(f32_to_bf16(w[i]));
  }
  return out;
}

// Reference in double over the bf16-rounded inputs; tolerance from the magnitude of the terms.
// FP8 on AVX512-BF16: bf16(x * block scale) times the exact e4m3 value.
void expect_close(const std::vector<float>& x, int M, int K, const Weight& w, int N,
                  const std::vector<float>& y, int ldy, const std::string& what, GemmIsa isa) {
  const bool scaled_x = !w.q.empty() && isa == GemmIsa::Avx512Bf16;
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < N; ++j) {
      double s = 0, mag = 0;
      for (int c = 0; c < K; ++c) {
        const size_t e = static_cast<size_t>(j) * K + c;
        const double t =
            scaled_x ? static_cast<double>(bf16_to_f32(
                           f32_to_bf16(x[m * K + c] * w.s[(j / 128) * fp8_blocks(K) + c / 128]))) *
                           w.q[e]
                     : static_cast<double>(bf16_to_f32(f32_to_bf16(x[m * K + c]))) * w.ref[e];
        s += t;
        mag += std::fabs(t);
      }
      ASSERT_NEAR(y[static_cast<size_t>(m) * ldy + j], s, 1e-5 * mag + 1e-30)
          << what << " row " << m << " col " << j;
    }
}

}  // namespace

TEST(PackedGemm, IsaIsReported) {
  const GemmIsa isa = gemm_isa();
  EXPECT_STRNE(gemm_isa_name(isa), "?");
  // The kernels refuse an ISA the CPU lacks instead of faulting.
  if (isa != GemmIsa::Amx) {
    PackedWeight w = PackedWeight::from_f32(std::vector<float>(32 * 32, 1.0f).data(), 32, 32);
    std::vector<float> x(32, 1.0f), y(32);
    EXPECT_THROW(packed_gemm(x.data(), 1, 32, w, y.data(), 32, GemmIsa::Amx),
                 std::invalid_argument);
  }
  PackedWeight w = PackedWeight::from_f32(std::vector<float>(32 * 32, 1.0f).data(), 32, 32);
  std::vector<float> x(32, 1.0f), y(32);
  EXPECT_THROW(packed_gemm(x.data(), 1, 32, w, y.data(), 32, GemmIsa::None), std::invalid_argument);
  EXPECT_THROW(packed_gemm(x.data(), 1, 16, w, y.data(), 32), std::invalid_argument);
}

TEST(PackedGemm, Fp8TileConversionMatchesScalarForEveryCode) {
  if (gemm_isa() == GemmIsa::None) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  for (float scale : {1.0f, 0.0123f, 3.5e-5f, 700.0f}) {
    std::vector<uint8_t> q(512);
    for (int i = 0; i < 512; ++i) {
      q[i] = static_cast<uint8_t>(i & 0xff);
      if ((q[i] & 0x7f) == 0x7f) q[i] = 0x7e;  // NaN codes are not weights
    }
    std::vector<uint16_t> v(512);
    gemm_detail::fp8_tile_to_bf16_avx512(q.data(), scale, v.data());
    for (int i = 0; i < 512; ++i)
      ASSERT_EQ(v[i], f32_to_bf16(fp8_e4m3_to_f32(q[i]) * scale))
          << "code " << int(q[i]) << " scale " << scale;
  }
}

TEST(PackedGemm, Fp8CodesExactInBf16) {
  if (gemm_isa() == GemmIsa::None) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  for (int base = 0; base < 256; base += 32) {
    uint8_t q[32];
    uint16_t v[32];
    for (int i = 0; i < 32; ++i) q[i] = static_cast<uint8_t>(base + i);
    gemm_detail::fp8x32_to_bf16_exact_avx512(q, v);
    for (int i = 0; i < 32; ++i) {
      if ((q[i] & 0x7f) == 0x7f) continue;  // NaN codes are not weights
      ASSERT_EQ(v[i], f32_to_bf16(fp8_e4m3_to_f32(q[i]))) << "code " << int(q[i]);
      ASSERT_EQ(bf16_to_f32(v[i]), fp8_e4m3_to_f32(q[i])) << "code " << int(q[i]);  // exact
    }
  }
}

TEST(PackedGemm, MatchesScalarReference) {
  const std::vector<std::pair<int, int>> shapes = {{16, 32},   {1, 1},     {33, 45}, {130, 200},
                                                   {256, 384}, {300, 129}, {40, 257}};
  std::vector<int> ms;
  for (int m = 1; m <= 17; ++m) ms.push_back(m);
  ms.push_back(64);
  ms.push_back(100);
  for (GemmIsa isa : isas())
    for (bool fp8 : {false, true})
      for (auto [N, K] : shapes) {
        Weight w = make_weight(fp8, N, K, 7 + N + K);
        for (int M : ms) {
          if (M > 17 && N * K > 40000) continue;  // keep the double reference short
          auto x = random_vec(static_cast<size_t>(M) * K, 100 + M);
          const int ldy = N + 3;
          std::vector<float> y(static_cast<size_t>(M) * ldy, -7.0f);
          packed_gemm(x.data(), M, K, w.packed, y.data(), ldy, isa);
          expect_close(x, M, K, w, N, y, ldy,
                       std::string(gemm_isa_name(isa)) + (fp8 ? " fp8" : " bf16") +
                           " M=" + std::to_string(M) + " N=" + std::to_string(N) +
                           " K=" + std::to_string(K),
                       isa);
          // Padding columns of y are not written.
          for (int m = 0; m < M; ++m)
            for (int j = N; j < ldy; ++j) ASSERT_EQ(y[static_cast<size_t>(m) * ldy + j], -7.0f);
        }
      }
}

// A row's result is bitwise the same whatever the other rows, the row count and the threads.
TEST(PackedGemm, RowResultIndependentOfRowCountAndThreads) {
  // Large enough (> 2^20 weight elements) for the kernels to split columns over threads, and
  // more rows than one pass of the kernel takes (192: rows in chunks).
  const int N = 1100, K = 1000, Mmax = 420;
  for (GemmIsa isa : isas())
    for (bool fp8 : {false, true}) {
      Weight w = make_weight(fp8, N, K, 3);
      auto x = random_vec(static_cast<size_t>(Mmax) * K, 11);
      std::vector<float> alone(static_cast<size_t>(Mmax) * N);
      omp_set_num_threads(1);
      for (int m = 0; m < Mmax; ++m)
        packed_gemm(&x[static_cast<size_t>(m) * K], 1, K, w.packed,
                    &alone[static_cast<size_t>(m) * N], N, isa);
      for (int threads : {1, 2, 3})
        for (int M : {2, 15, 16, 17, 33, 64, 100, 193, 420}) {
          omp_set_num_threads(threads);
          std::vector<float> y(static_cast<size_t>(M) * N);
          packed_gemm(x.data(), M, K, w.packed, y.data(), N, isa);
          for (size_t i = 0; i < y.size(); ++i)
            ASSERT_EQ(y[i], alone[i]) << gemm_isa_name(isa) << (fp8 ? " fp8" : " bf16")
                                      << " M=" << M << " threads=" << threads << " element " << i;
        }
      omp_set_num_threads(1);
    }
}

// Strided input rows (ldx > K) read only the first K values of each row.
TEST(PackedGemm, StridedInput) {
  const int N = 48, K = 70, M = 5, ldx = 96;
  for (GemmIsa isa : isas()) {
    Weight w = make_weight(true, N, K, 5);
    auto xs = random_vec(static_cast<size_t>(M) * ldx, 9);
    std::vector<float> x(static_cast<size_t>(M) * K);
    for (int m = 0; m < M; ++m)
      for (int c = 0; c < K; ++c) x[m * K + c] = xs[m * ldx + c];
    std::vector<float> y1(M * N), y2(M * N);
    packed_gemm(xs.data(), M, ldx, w.packed, y1.data(), N, isa);
    packed_gemm(x.data(), M, K, w.packed, y2.data(), N, isa);
    EXPECT_EQ(y1, y2);
  }
}

// rows_f32 gives the exact dequantised values (what the float32 mode multiplies).
TEST(PackedGemm, RowsF32AreExact) {
  const int N = 300, K = 200;
  auto w = random_vec(static_cast<size_t>(N) * K, 21, 0.1f);
  std::vector<uint8_t> q(w.size());
  std::vector<float> s(fp8_blocks(N) * fp8_blocks(K)), deq(w.size());
  fp8_block_quantize(w.data(), N, K, q.data(), s.data());
  fp8_block_dequant(q.data(), s.data(), N, K, deq.data());
  PackedWeight p = PackedWeight::from_fp8(q.data(), s.data(), N, K);
  EXPECT_EQ(p.dtype(), DType::F8E4M3);
  EXPECT_EQ(p.bytes(), static_cast<size_t>(320) * 224 + s.size() * 4);  // padded tiles + scales
  std::vector<float> rows(static_cast<size_t>(150) * K);
  p.rows_f32(100, 150, rows.data());
  for (int r = 0; r < 150; ++r)
    for (int c = 0; c < K; ++c) ASSERT_EQ(rows[r * K + c], deq[(100 + r) * K + c]);
  EXPECT_THROW(p.rows_f32(250, 100, rows.data()), std::out_of_range);

  std::vector<uint16_t> b(w.size());
  for (size_t i = 0; i < w.size(); ++i) b[i] = f32_to_bf16(w[i]);
  PackedWeight pb = PackedWeight::from_bf16(b.data(), N, K);
  pb.rows_f32(0, N, deq.data());
  for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(deq[i], bf16_to_f32(b[i]));
}

// Packed weights share huge-page slabs: every block is 64-byte aligned, zeroed, disjoint from the
// others, and stays valid after the blocks carved before it are freed.
TEST(WeightArena, BlocksAreAlignedZeroedDisjointAndOutliveTheirNeighbours) {
  std::vector<std::shared_ptr<uint8_t>> blocks;
  const std::vector<size_t> sizes = {1, 63, 64, 1000, size_t(3) << 20, 5, size_t(9) << 20, 77};
  for (size_t n : sizes) {
    blocks.push_back(weight_alloc(n));
    const uint8_t* p = blocks.back().get();
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << n;
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], 0) << n;
    std::memset(blocks.back().get(), static_cast<int>(blocks.size()), n);
  }
  blocks[0].reset();
  blocks[2].reset();
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (!blocks[b]) continue;
    for (size_t i = 0; i < sizes[b]; ++i) ASSERT_EQ(blocks[b].get()[i], b + 1) << b;
  }
}

// A freed block's range serves the next blocks (first fit), so that weights freed while the
// model is packed (gate and up once fused) do not stay resident.
TEST(WeightArena, FreedRangesAreReused) {
  const size_t mb = size_t(1) << 20;
  std::shared_ptr<uint8_t> a = weight_alloc(mb), b = weight_alloc(mb);
  uint8_t* const pa = a.get();
  std::memset(pa, 7, mb);
  a.reset();
  std::shared_ptr<uint8_t> c = weight_alloc(mb / 2), d = weight_alloc(mb / 2);
  EXPECT_EQ(c.get(), pa);
  EXPECT_EQ(d.get(), pa + mb / 2);
  for (size_t i = 0; i < mb / 2; ++i) ASSERT_EQ(c.get()[i], 0) << "reused memory is zeroed";
  EXPECT_NE(b.get(), c.get());
}

// Resident bytes of this process (/proc/self/statm: pages).
static size_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  size_t total = 0, resident = 0;
  f >> total >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// A large block of LargeAllocator leaves the process when freed, even after glibc has raised its
// mmap threshold (freeing a 30 MB mmapped block raises it to 30 MB; glibc does so for blocks up to
// 32 MB) and with a small block allocated after it. A plain std::vector fails this: its 24 MB then
// come from the heap and stay resident behind the small block.
TEST(LargeAllocator, FreedLargeBlocksLeaveTheProcess) {
  { std::vector<uint8_t> raise(size_t(30) << 20, 1); }
  const size_t n = size_t(24) << 20;
  auto big = std::make_unique<LargeBytes>(n, uint8_t{3});
  auto small = std::make_unique<std::vector<uint8_t>>(1000, uint8_t{1});
  EXPECT_EQ((*big)[n - 1], 3);
  const size_t with = resident_bytes();
  big.reset();
  const size_t without = resident_bytes();
  EXPECT_GE(with, without + (size_t(20) << 20)) << with << " vs " << without;
  EXPECT_EQ((*small)[999], 1);
  LargeBytes tiny(10, uint8_t{5});  // below 1 MB: malloc
  EXPECT_EQ(tiny[9], 5);
}
