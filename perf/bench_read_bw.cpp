// Read bandwidth with N threads (OMP_NUM_THREADS, default all): each thread sums its own slice
// of one buffer much larger than the caches; median of 7 runs. The one-sequence decode roofline
// (perf/one_sequence_bench.sh) divides the active weight bytes per token by this figure, measured
// with the threads that decode uses.
//   bench_read_bw [MB=1024]
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  const size_t mb = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1024;
  const size_t n = mb * (1 << 20) / sizeof(float);
  std::vector<float> buf(n);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = 1.0f;  // first touch by the reading thread
  std::vector<double> gbs;
  double sink = 0;
  for (int r = 0; r < 7; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
      // Eight independent partial sums so the add latency does not bound the loop.
      float s[8] = {0};
#pragma omp for schedule(static)
      for (size_t i = 0; i < n / 8; ++i)
        for (int k = 0; k < 8; ++k) s[k] += buf[i * 8 + k];
      for (float x : s) total += x;
    }
    sink += total;
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gbs.push_back(n * sizeof(float) / t / 1e9);
  }
  std::sort(gbs.begin(), gbs.end());
  fmt::print(
      "read bandwidth, {} threads, {} MB buffer: {:.1f} GB/s (median of 7; best {:.1f}) [{}]\n",
      omp_get_max_threads(), mb, gbs[gbs.size() / 2], gbs.back(), sink > 0 ? "ok" : "?");
  return 0;
}
