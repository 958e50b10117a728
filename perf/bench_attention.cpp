// Speed of the bf16 MLA attention kernel (model/ops/attention_bf16.h) alone: one sequence's
// prefill of P tokens and its decode rows at context C, with the bench preset's shape (16 heads,
// kv_lora 256, rope 32) unless given. Absorbed FLOPs as model/flops.cpp counts them:
// 2 x heads x (2 kv_lora + rope) per (query row, visible key). Best of 5 runs.
//   bench_attention [P=256] [C=384] [heads=16] [kv_lora=256] [rope=32]
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

#include "model/batch.h"
#include "model/ops/attention_bf16.h"

using namespace dpep;

int main(int argc, char** argv) {
  auto arg = [&](int i, int def) { return argc > i ? std::atoi(argv[i]) : def; };
  const int P = arg(1, 256), C = arg(2, 384), heads = arg(3, 16), kvl = arg(4, 256),
            rope = arg(5, 32);
  const int W = kvl + rope, ps = 64, L = std::max(P, C);
  KvCacheView v;
  v.num_layers = 1, v.num_pages = (L + ps - 1) / ps, v.page_size = ps, v.width = W, v.bf16 = true,
  v.kv_lora = kvl;
  std::vector<float> data(v.num_pages * v.page_floats());
  v.data = data.data();
  std::vector<int> table(v.num_pages);
  for (int i = 0; i < v.num_pages; ++i) table[i] = i;
  std::mt19937 g(1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> row(W), q(static_cast<size_t>(L) * heads * W), out(q.size());
  for (int k = 0; k < L; ++k) {
    for (auto& x : row) x = u(g);
    v.store(0, k / ps, k % ps, row.data());
  }
  for (auto& x : q) x = 0.2f * u(g);
  const MlaBf16Pages pages{reinterpret_cast<const uint16_t*>(v.page(0, 0)), v.page_floats() * 2, ps,
                           KvCacheView::bf16_row_stride(W)};
  MlaAttnWorkspace ws;
  // Wall time, or with one thread the thread's CPU time (a shared machine deschedules us).
  auto clock_s = [] {
    timespec ts;
    clock_gettime(omp_get_max_threads() == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
  };
  auto best_of = [&](auto&& f) {
    double best = 1e30;
    for (int r = 0; r < 5; ++r) {
      const double t0 = clock_s();
      f();
      best = std::min(best, clock_s() - t0);
    }
    return best;
  };
  const double flop_per_pair = 2.0 * heads * (2.0 * kvl + rope);
  std::vector<MlaQueryBlock> blocks;
  const int qt = mla_query_block_tokens(heads);
  for (int t = 0; t < P; t += qt)
    blocks.push_back({q.data() + static_cast<size_t>(t) * heads * W,
                      out.data() + static_cast<size_t>(t) * heads * kvl, std::min(qt, P - t), t,
                      table.data()});
  const double tp = best_of([&] {
    mla_attention_bf16({heads, W, kvl}, pages, blocks.data(), static_cast<int>(blocks.size()), ws);
  });
  const double pairs = 0.5 * P * (P + 1.0);
  fmt::print("bf16 attention, {} threads ({}), heads {}, kv_lora {}, rope {}:\n",
             omp_get_max_threads(), omp_get_max_threads() == 1 ? "thread CPU time" : "wall time",
             heads, kvl, rope);
  fmt::print("  prefill {} tokens: {:.3f} ms, {:.1f} GFLOP/s\n", P, tp * 1e3,
             pairs * flop_per_pair / tp / 1e9);
  const MlaQueryBlock d{q.data(), out.data(), 1, C - 1, table.data()};
  const double td = best_of([&] {
                      for (int i = 0; i < 20; ++i)
                        mla_attention_bf16({heads, W, kvl}, pages, &d, 1, ws);
                    }) /
                    20;
  fmt::print("  decode row at context {}: {:.1f} us, {:.1f} GFLOP/s, {:.2f} GB/s of cache\n", C,
             td * 1e6, C * flop_per_pair / td / 1e9,
             C * KvCacheView::bf16_row_stride(W) * 2.0 / td / 1e9);
  return 0;
}
