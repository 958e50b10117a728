// Read bandwidth with N threads (OMP_NUM_THREADS, default all): each thread sums its own slice
// of one buffer much larger than the caches; median of 7 runs. The one-sequence decode roofline
// (perf/one_sequence_bench.sh) divides the active weight bytes per token by this figure, measured
// with the threads that decode uses. The buffer lives in transparent huge pages, as the model's
// weights do (model/ops/weight_arena.h); the same read over 4 KB pages is printed after it.
//   bench_read_bw [MB=1024]
#include <fmt/format.h>
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

namespace {

// Median and best GB/s of 7 reads of buf[0, n) split over the threads.
std::pair<double, double> read_rate(const float* buf, size_t n, double& sink) {
  std::vector<double> gbs;
  for (int r = 0; r < 7; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
      // 64 independent partial sums so the add latency does not bound the loop.
      float s[64] = {0};
#pragma omp for schedule(static)
      for (size_t i = 0; i < n / 64; ++i)
        for (int k = 0; k < 64; ++k) s[k] += buf[i * 64 + k];
      for (float x : s) total += x;
    }
    sink += total;
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gbs.push_back(n * sizeof(float) / t / 1e9);
  }
  std::sort(gbs.begin(), gbs.end());
  return {gbs[gbs.size() / 2], gbs.back()};
}

float* touched_buffer(size_t n, bool huge) {
  const size_t bytes = n * sizeof(float), align = size_t(1) << 21;
  void* p = nullptr;
  if (posix_memalign(&p, align, bytes) != 0) return nullptr;
  if (huge)
    madvise(p, bytes / align * align, MADV_HUGEPAGE);
  else
    madvise(p, bytes, MADV_NOHUGEPAGE);
  float* buf = static_cast<float*>(p);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = 1.0f;  // first touch by the reading thread
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mb = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1024;
  const size_t n = mb * (1 << 20) / sizeof(float) / 64 * 64;
  double sink = 0;
  for (bool huge : {true, false}) {
    float* buf = touched_buffer(n, huge);
    if (!buf) return 1;
    const auto [median, best] = read_rate(buf, n, sink);
    std::free(buf);
    fmt::print(
        "read bandwidth, {} threads, {} MB buffer{}: {:.1f} GB/s (median of 7; best {:.1f}) [{}]\n",
        omp_get_max_threads(), mb, huge ? "" : " in 4 KB pages", median, best,
        sink > 0 ? "ok" : "?");
  }
  return 0;
}
