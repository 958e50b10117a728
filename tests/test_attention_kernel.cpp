// Attention kernels against a scalar reference (double sums), float32 and bf16 caches:
// heads 1..128 (12 and 17 included), contexts 1..300 and ~1000, several page sizes and padded
// widths; and the determinism of the bf16 kernel, bitwise: 1 vs 2 threads, chunked vs
// unchunked prefill, decode vs prefill at the same position, page size 16 vs 64.
// Built a second time with AddressSanitizer under -DDPEP_SANITIZE=ON (ctest label sanitizer).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "model/batch.h"
#include "model/ops/attention_absorb.h"
#include "model/ops/attention_bf16.h"
#include "model/ops/attention_kernel.h"
#include "model/ops/dtypes.h"

using namespace dpep;

namespace {

struct Dims {
  int heads, kv_lora, rope;
  int width() const { return kv_lora + rope; }
};

// A one-layer cache holding L random tokens in shuffled pages (NaN in every unwritten slot, so
// a read past the context shows up), plus the values it holds as float (bf16-rounded if bf16).
struct TestCache {
  Dims dims;
  bool bf16;
  std::vector<float> data;
  KvCacheView view;
  std::vector<int> table;
  std::vector<float> keys;  // [L][width], as the kernel sees them

  TestCache(Dims d, int L, int page_size, bool bf16_, uint32_t seed) : dims(d), bf16(bf16_) {
    const int W = d.width(), np = (L + page_size - 1) / page_size + 1;
    view.num_layers = 1;
    view.num_pages = np;
    view.page_size = page_size;
    view.width = W;
    view.bf16 = bf16;
    view.kv_lora = d.kv_lora;
    data.assign(static_cast<size_t>(np) * view.page_floats(), NAN);
    view.data = data.data();
    table.resize(np);
    std::iota(table.begin(), table.end(), 0);
    std::mt19937 g(seed), shuffle(seed + 1);
    std::shuffle(table.begin(), table.end(), shuffle);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    keys.resize(static_cast<size_t>(L) * W);
    for (int k = 0; k < L; ++k) {
      float* row = &keys[static_cast<size_t>(k) * W];
      for (int i = 0; i < W; ++i) row[i] = bf16 ? bf16_to_f32(f32_to_bf16(u(g))) : u(g);
      view.store(0, table[k / page_size], k % page_size, row);
    }
  }
  MlaBf16Pages pages() const {
    return {reinterpret_cast<const uint16_t*>(view.page(0, 0)), view.page_floats() * 2,
            view.page_size, KvCacheView::bf16_row_stride(view.width)};
  }
};

// Queries [T][heads][width] (bf16-rounded when the cache is bf16, as the kernel rounds them).
std::vector<float> make_queries(const Dims& d, int T, bool round, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<float> q(static_cast<size_t>(T) * d.heads * d.width());
  for (auto& x : q) x = round ? bf16_to_f32(f32_to_bf16(u(g))) : u(g);
  return q;
}

// softmax(q . keys[0..pos]) . values for one (token, head) row, in double.
void reference_row(const TestCache& c, const float* q, int pos, double* out) {
  const int W = c.dims.width(), kvl = c.dims.kv_lora;
  std::vector<double> s(pos + 1);
  double mx = -INFINITY;
  for (int k = 0; k <= pos; ++k) {
    double acc = 0;
    for (int i = 0; i < W; ++i) acc += double(q[i]) * c.keys[static_cast<size_t>(k) * W + i];
    s[k] = acc;
    mx = std::max(mx, acc);
  }
  double sum = 0;
  for (auto& x : s) sum += (x = std::exp(x - mx));
  std::fill(out, out + kvl, 0.0);
  for (int k = 0; k <= pos; ++k)
    for (int i = 0; i < kvl; ++i) out[i] += s[k] / sum * c.keys[static_cast<size_t>(k) * W + i];
}

// Runs the bf16 kernel for tokens [t0, t1) (positions = token index) in query blocks.
void run_bf16(const TestCache& c, const std::vector<float>& q, int t0, int t1,
              std::vector<float>& out, MlaAttnWorkspace& ws, int block_tokens = 0) {
  const Dims& d = c.dims;
  const int qt = block_tokens > 0 ? block_tokens : mla_query_block_tokens(d.heads);
  out.resize(q.size() / d.width() * d.kv_lora);
  std::vector<MlaQueryBlock> blocks;
  for (int t = t0; t < t1; t += qt)
    blocks.push_back({q.data() + static_cast<size_t>(t) * d.heads * d.width(),
                      out.data() + static_cast<size_t>(t) * d.heads * d.kv_lora,
                      std::min(qt, t1 - t), t, c.table.data()});
  mla_attention_bf16({d.heads, d.width(), d.kv_lora}, c.pages(), blocks.data(),
                     static_cast<int>(blocks.size()), ws);
}

// Largest |kernel - reference| over the given token rows, relative to the largest |value|.
double worst_error(const TestCache& c, const std::vector<float>& q, const std::vector<float>& out,
                   const std::vector<int>& tokens) {
  const Dims& d = c.dims;
  std::vector<double> ref(d.kv_lora);
  double worst = 0;
  for (int t : tokens)
    for (int h = 0; h < d.heads; ++h) {
      const size_t row = static_cast<size_t>(t) * d.heads + h;
      reference_row(c, &q[row * d.width()], t, ref.data());
      for (int i = 0; i < d.kv_lora; ++i) {
        const float v = out[row * d.kv_lora + i];
        if (!std::isfinite(v)) return INFINITY;
        worst = std::max(worst, std::fabs(v - ref[i]));
      }
    }
  return worst;  // values are in [-1, 1]
}

std::vector<int> all_tokens(int L) {
  std::vector<int> t(L);
  std::iota(t.begin(), t.end(), 0);
  return t;
}

std::vector<MlaBackend> backends() {
  std::vector<MlaBackend> b{MlaBackend::Avx512Bf16};
  if (mla_amx_available()) b.push_back(MlaBackend::Amx);
  return b;
}

const char* name(MlaBackend b) {
  return b == MlaBackend::Amx ? "amx" : "avx512-bf16";
}

struct BackendGuard {
  MlaBackend saved = mla_backend();
  ~BackendGuard() { mla_set_backend(saved); }
};

// Tolerance of the bf16 kernel: probabilities are rounded to bf16 (relative 2^-9) before P V,
// so the weighted average of values in [-1, 1] may move by about 2 * 2^-9.
constexpr double kBf16Tol = 6e-3;

}  // namespace

TEST(AttentionKernel, Bf16PrefillSweepAgainstReference) {
  if (!mla_bf16_cache_supported()) GTEST_SKIP() << "build without AVX512-BF16";
  BackendGuard guard;
  MlaAttnWorkspace ws;
  struct Case {
    Dims d;
    int L, page;
  };
  // Every token of a prefill of L tokens covers contexts 1..L. (40, 8): width 48 padded to a
  // 64-element row, kv_lora not a multiple of 32.
  const Case cases[] = {{{1, 64, 32}, 300, 16},  {{2, 40, 8}, 300, 32},   {{12, 64, 32}, 300, 64},
                        {{16, 64, 32}, 140, 16}, {{17, 40, 8}, 300, 16},  {{17, 64, 32}, 260, 128},
                        {{128, 64, 32}, 40, 32}, {{3, 256, 32}, 200, 64}, {{12, 16, 8}, 129, 16}};
  for (MlaBackend b : backends()) {
    mla_set_backend(b);
    for (const Case& cs : cases) {
      TestCache c(cs.d, cs.L, cs.page, true, cs.L + cs.d.heads);
      const auto q = make_queries(cs.d, cs.L, true, cs.d.heads);
      std::vector<float> out;
      run_bf16(c, q, 0, cs.L, out, ws);
      EXPECT_LT(worst_error(c, q, out, all_tokens(cs.L)), kBf16Tol)
          << name(b) << " heads " << cs.d.heads << " kv_lora " << cs.d.kv_lora << " L " << cs.L
          << " page " << cs.page;
    }
  }
}

TEST(AttentionKernel, Bf16LongDecodeAgainstReference) {
  if (!mla_bf16_cache_supported()) GTEST_SKIP() << "build without AVX512-BF16";
  BackendGuard guard;
  MlaAttnWorkspace ws;
  // DeepSeek-V3's shape (128 heads, 512 + 64) and the bench preset's (16, 256 + 32).
  for (MlaBackend b : backends()) {
    mla_set_backend(b);
    for (Dims d : {Dims{128, 512, 64}, Dims{16, 256, 32}, Dims{12, 512, 64}})
      for (int L : {1000, 1031}) {
        TestCache c(d, L, 64, true, L);
        const auto q = make_queries(d, L, true, L + 1);
        std::vector<float> out;
        const int saved = omp_get_max_threads();
        omp_set_num_threads(2);  // one long row: split mode, (row, split) pairs over threads
        run_bf16(c, q, L - 1, L, out, ws);  // one decode row at position L - 1
        EXPECT_LT(worst_error(c, q, out, {L - 1}), kBf16Tol)
            << name(b) << " heads " << d.heads << " L " << L;
        // Bitwise: one thread (block mode), and the row inside a 3-token block.
        std::vector<float> one, block;
        omp_set_num_threads(1);
        run_bf16(c, q, L - 1, L, one, ws);
        omp_set_num_threads(saved);
        run_bf16(c, q, L - 3, L, block, ws, 3);
        const size_t n = static_cast<size_t>(d.heads) * d.kv_lora, at = (L - 1) * n;
        EXPECT_TRUE(std::equal(out.begin() + at, out.begin() + at + n, one.begin() + at))
            << "1 vs 2 threads, heads " << d.heads << " L " << L;
        EXPECT_TRUE(std::equal(out.begin() + at, out.begin() + at + n, block.begin() + at))
            << "decode vs 3-token block, heads " << d.heads << " L " << L;
      }
  }
}

TEST(AttentionKernel, Bf16BitwiseAcrossThreadsChunkingDecodeAndPages) {
  if (!mla_bf16_cache_supported()) GTEST_SKIP() << "build without AVX512-BF16";
  const int saved_threads = omp_get_max_threads();
  for (Dims d : {Dims{16, 64, 32}, Dims{12, 40, 8}, Dims{17, 64, 32}}) {
    const int L = 420;
    TestCache c16(d, L, 16, true, 7), c64(d, L, 64, true, 7);
    ASSERT_EQ(c16.keys, c64.keys);
    const auto q = make_queries(d, L, true, 3);
    MlaAttnWorkspace ws;
    std::vector<float> one, two, chunked, paged, tmp;
    omp_set_num_threads(1);
    run_bf16(c16, q, 0, L, one, ws);
    omp_set_num_threads(2);
    run_bf16(c16, q, 0, L, two, ws);
    EXPECT_EQ(one, two) << "1 vs 2 threads, heads " << d.heads;
    // Chunks of 37, 163 and 220 tokens, query blocks of 5 tokens: other tiles, other folds.
    chunked.assign(one.size(), 0.0f);
    for (auto [t0, t1] : {std::pair{0, 37}, {37, 200}, {200, L}}) {
      run_bf16(c16, q, t0, t1, tmp, ws, 5);
      std::copy(tmp.begin() + static_cast<size_t>(t0) * d.heads * d.kv_lora,
                tmp.begin() + static_cast<size_t>(t1) * d.heads * d.kv_lora,
                chunked.begin() + static_cast<size_t>(t0) * d.heads * d.kv_lora);
    }
    EXPECT_EQ(one, chunked) << "chunked prefill, heads " << d.heads;
    run_bf16(c64, q, 0, L, paged, ws);
    EXPECT_EQ(one, paged) << "page size 64 vs 16, heads " << d.heads;
    // Decode rows (one token per call, split mode with 2 threads, block mode with 1).
    for (int t : {0, 1, 127, 128, 129, 255, 300, L - 1})
      for (int threads : {1, 2}) {
        omp_set_num_threads(threads);
        run_bf16(c16, q, t, t + 1, tmp, ws);
        const size_t n = static_cast<size_t>(d.heads) * d.kv_lora, at = t * n;
        EXPECT_TRUE(std::equal(tmp.begin() + at, tmp.begin() + at + n, one.begin() + at))
            << "decode at " << t << " vs prefill, " << threads << " threads, heads " << d.heads;
      }
    // Several sequences in one call (block mode with 2 threads too).
    omp_set_num_threads(2);
    std::vector<MlaQueryBlock> blocks;
    std::vector<float> many(one.size());
    for (int t = 0; t < L; t += 3)
      blocks.push_back({q.data() + static_cast<size_t>(t) * d.heads * d.width(),
                        many.data() + static_cast<size_t>(t) * d.heads * d.kv_lora,
                        std::min(3, L - t), t, c16.table.data()});
    mla_attention_bf16({d.heads, d.width(), d.kv_lora}, c16.pages(), blocks.data(),
                       static_cast<int>(blocks.size()), ws);
    EXPECT_EQ(one, many) << "many blocks in one call, heads " << d.heads;
  }
  omp_set_num_threads(saved_threads);
}

TEST(AttentionKernel, AmxAndAvx512AgreeToBf16Precision) {
  if (!mla_bf16_cache_supported() || !mla_amx_available()) GTEST_SKIP() << "no AMX";
  BackendGuard guard;
  const Dims d{16, 256, 32};
  TestCache c(d, 300, 64, true, 11);
  const auto q = make_queries(d, 300, true, 12);
  MlaAttnWorkspace ws;
  std::vector<float> a, v;
  mla_set_backend(MlaBackend::Amx);
  run_bf16(c, q, 0, 300, a, ws);
  mla_set_backend(MlaBackend::Avx512Bf16);
  run_bf16(c, q, 0, 300, v, ws);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - v[i])));
  EXPECT_LT(worst, 1e-3);
}

TEST(AttentionKernel, Float32RowKernelSweepAgainstReference) {
  struct Case {
    Dims d;
    int page;
  };
  const Case cases[] = {{{1, 64, 32}, 16},  {{2, 40, 8}, 32},   {{12, 64, 32}, 64},
                        {{16, 64, 32}, 16}, {{17, 40, 8}, 128}, {{128, 512, 64}, 64}};
  for (const Case& cs : cases) {
    const Dims& d = cs.d;
    const int Lmax = d.heads == 128 ? 1000 : 300;
    TestCache c(d, Lmax, cs.page, false, d.heads);
    const auto q = make_queries(d, 1, false, d.heads + 5);
    std::vector<int> lengths;
    if (d.heads == 128)
      lengths = {1, 17, 1000};
    else
      for (int L = 1; L <= Lmax; L += (L < 40 ? 1 : 13)) lengths.push_back(L);
    std::vector<float> out(static_cast<size_t>(d.heads) * d.kv_lora), scratch;
    std::vector<const float*> pages;
    for (int L : lengths) {
      pages.clear();
      for (int p = 0; p * cs.page < L; ++p) pages.push_back(c.view.page(0, c.table[p]));
      scratch.assign(static_cast<size_t>(32) * L + 16 * d.kv_lora + 16 * d.width() + 64, 0.0f);
      mla_attend_row(q.data(), d.heads, d.width(), d.kv_lora, pages.data(), cs.page, L, out.data(),
                     scratch.data());
      // The reference takes token index = position: reuse it with pos = L - 1 for head rows.
      std::vector<double> ref(d.kv_lora);
      double worst = 0;
      for (int h = 0; h < d.heads; ++h) {
        reference_row(c, &q[static_cast<size_t>(h) * d.width()], L - 1, ref.data());
        for (int i = 0; i < d.kv_lora; ++i)
          worst = std::max(worst, std::fabs(out[static_cast<size_t>(h) * d.kv_lora + i] - ref[i]));
      }
      EXPECT_LT(worst, 2e-5) << "heads " << d.heads << " L " << L << " page " << cs.page;
    }
  }
}

// The per-head absorbed products (bf16 mode) against float sums of the same bf16-rounded
// inputs; and a row's result does not depend on the number of rows in the call.
TEST(AttentionKernel, HeadProjectionAgainstReferenceAndRowIndependent) {
  if (!mla_bf16_cache_supported()) GTEST_SKIP() << "build without AVX512-BF16";
  std::mt19937 g(4);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto [heads, in, out] : {std::tuple{16, 64, 256}, {3, 33, 20}, {128, 128, 512}}) {
    std::vector<float> dense(static_cast<size_t>(heads) * in * out);
    for (auto& x : dense) x = bf16_to_f32(f32_to_bf16(u(g)));
    const HeadProjBf16 p = pack_head_proj_from(heads, in, out, dense);
    const int T = 5;
    const size_t xr = static_cast<size_t>(heads) * in + 7,
                 yr = static_cast<size_t>(heads) * out + 3;
    std::vector<float> x(T * xr), y(T * yr, 0.0f), y1(yr, 0.0f);
    for (auto& v : x) v = bf16_to_f32(f32_to_bf16(u(g)));
    head_proj_bf16(p, x.data(), T, xr, in, y.data(), yr, out);
    head_proj_bf16(p, x.data() + 3 * xr, 1, xr, in, y1.data(), yr, out);
    EXPECT_TRUE(std::equal(y1.begin(), y1.end(), y.begin() + 3 * yr)) << heads;
    double worst = 0;
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < heads; ++h)
        for (int o = 0; o < out; ++o) {
          double r = 0;
          for (int i = 0; i < in; ++i)
            r +=
                double(x[t * xr + h * in + i]) * dense[(static_cast<size_t>(h) * in + i) * out + o];
          worst = std::max(worst, std::fabs(r - y[t * yr + h * out + o]));
        }
    EXPECT_LT(worst, 1e-4 * in) << heads << " " << in << " " << out;
  }
}
