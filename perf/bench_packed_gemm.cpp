// packed_gemm on one thread, bf16 and FP8 weights, in one run: weight read rate at small M
// (decode: the weight matrix is larger than the caches, so each call streams it from memory)
// against a plain read of a buffer of the same size, and GFLOP/s at larger M.
//   bench_packed_gemm [N=4096] [K=7168] [MAX_M=256]   (run with OMP_NUM_THREADS=1)
// MAX_M adds M = 1024, 4096, 8192 up to it (prefill chunks).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "model/io/fp8_block.h"
#include "model/ops/packed_gemm.h"
#include "model/ops/weight_arena.h"

using namespace dpep;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename F>
double median_seconds(F&& f, int reps) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now();
    f();
    t.push_back(now() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int N = argc > 1 ? std::atoi(argv[1]) : 4096, K = argc > 2 ? std::atoi(argv[2]) : 7168;
  const int max_m = std::max(256, argc > 3 ? std::atoi(argv[3]) : 256);
  if (gemm_isa() == GemmIsa::None) {
    fmt::print("no bf16 GEMM kernel on this CPU\n");
    return 0;
  }
  std::mt19937 g(1);
  std::normal_distribution<float> d(0, 0.05f);
  std::vector<float> w(static_cast<size_t>(N) * K);
  for (auto& v : w) v = d(g);
  std::vector<uint8_t> q(w.size());
  std::vector<float> s(fp8_blocks(N) * fp8_blocks(K));
  fp8_block_quantize(w.data(), N, K, q.data(), s.data());
  const PackedWeight wb = PackedWeight::from_f32(w.data(), N, K);
  const PackedWeight wf = PackedWeight::from_fp8(q.data(), s.data(), N, K);
  std::vector<float>().swap(w);
  std::vector<uint8_t>().swap(q);

  // Plain read of a buffer as large as the bf16 weights, in the weights' huge-page slabs.
  const std::shared_ptr<uint8_t> mem = weight_alloc(wb.bytes());
  float* buf = reinterpret_cast<float*>(mem.get());
  const size_t nbuf = wb.bytes() / 4;
  std::fill_n(buf, nbuf, 1.0f);
  float sink = 0;
  const double t_read = median_seconds(
      [&] {
        float acc[16] = {0};
        for (size_t i = 0; i + 16 <= nbuf; i += 16)
          for (int k = 0; k < 16; ++k) acc[k] += buf[i + k];
        sink += std::accumulate(acc, acc + 16, 0.0f);
      },
      7);
  const double read_gbs = nbuf * 4.0 / t_read / 1e9;
  fmt::print("kernel {}, N={} K={}: bf16 weights {:.1f} MB, fp8 {:.1f} MB\n",
             gemm_isa_name(gemm_isa()), N, K, wb.bytes() / 1e6, wf.bytes() / 1e6);
  fmt::print("plain read, one thread: {:.2f} GB/s [{}]\n", read_gbs, sink > 0 ? "ok" : "?");
  std::vector<float> x(static_cast<size_t>(max_m) * K), y(static_cast<size_t>(max_m) * N);
  for (auto& v : x) v = d(g);
  for (int M : {1, 2, 4, 8, 16, 64, 256, 1024, 4096, 8192}) {
    if (M > max_m) break;
    const int reps = M <= 16 ? 9 : 3;
    // bf16 and fp8 calls alternate, so that both see the same machine load.
    std::vector<double> vb, vf;
    for (int r = 0; r < reps; ++r) {
      vb.push_back(median_seconds([&] { packed_gemm(x.data(), M, K, wb, y.data(), N); }, 1));
      vf.push_back(median_seconds([&] { packed_gemm(x.data(), M, K, wf, y.data(), N); }, 1));
    }
    std::sort(vb.begin(), vb.end());
    std::sort(vf.begin(), vf.end());
    const double tb = vb[reps / 2], tf = vf[reps / 2];
    const double flop = 2.0 * M * N * K;
    fmt::print(
        "M={:>3}: bf16 {:7.2f} ms {:6.2f} GB/s of weights {:6.1f} GFLOP/s | fp8 {:7.2f} ms {:6.2f} "
        "GB/s {:6.1f} GFLOP/s | fp8/bf16 time {:.2f}\n",
        M, tb * 1e3, wb.bytes() / tb / 1e9, flop / tb / 1e9, tf * 1e3, wf.bytes() / tf / 1e9,
        flop / tf / 1e9, tf / tb);
  }
  return 0;
}
