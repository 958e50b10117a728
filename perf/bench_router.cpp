// What batch-invariant router logits cost: y[T, E] = x[T, H] W[E, H]^T as OpenBLAS sgemm
// (blocking and kernels change with T) against matmul_xwt_fixed_order (one fixed summation
// order per element, model/ops/ops.h), one thread, at router shapes of the bench preset
// (64 x 1024) and of DeepSeek-V3 (256 x 7168). Prints microseconds per call (median) and the
// ratio; per token and layer the router is E x H MACs against ~37 G active for V3.
#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "model/ops/ops.h"

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
template <typename F>
double median_us(F&& f, int reps) {
  std::vector<double> t;
  f();
  for (int i = 0; i < reps; ++i) {
    const double t0 = now();
    f();
    t.push_back(now() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2] * 1e6;
}
}  // namespace

int main() {
  omp_set_num_threads(1);
  openblas_set_num_threads(1);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  fmt::print(
      "one thread; us per call, median\n| T | E | H | sgemm | fixed order | ratio |\n"
      "|---|---|---|---|---|---|\n");
  const int shapes[][2] = {{64, 1024}, {256, 7168}};
  for (auto& s : shapes) {
    const int E = s[0], H = s[1];
    std::vector<float> w(static_cast<size_t>(E) * H);
    for (auto& v : w) v = nd(rng);
    for (int T : {1, 32, 256, 1024}) {
      std::vector<float> x(static_cast<size_t>(T) * H), y(static_cast<size_t>(T) * E);
      for (auto& v : x) v = nd(rng);
      const int reps = std::max(5, static_cast<int>(2e8 / (2.0 * T * E * H)));
      const double a = median_us(
          [&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, E, H, 1.0f, x.data(), H,
                        w.data(), H, 0.0f, y.data(), E);
          },
          reps);
      const double b = median_us(
          [&] { dpep::matmul_xwt_fixed_order(x.data(), T, H, w.data(), E, y.data()); }, reps);
      fmt::print("| {} | {} | {} | {:.1f} | {:.1f} | {:.2f} |\n", T, E, H, a, b, b / a);
    }
  }
  return 0;
}
