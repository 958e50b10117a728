// GEMM roofline probe: float32 sgemm (OpenBLAS) and bf16 matmul (oneDNN, weights packed once)
// on square and on skinny expert-like shapes, one thread. Prints GFLOP/s (median of runs) and
// the bf16/fp32 ratio; the large-square sgemm figure is the "one-core sgemm peak", the float32
// roofline. `bench_matmul --bf16-peak` prints only the bf16 roofline: oneDNN's 2048^3 bf16
// matmul with every OpenMP thread (OMP_NUM_THREADS), the peak MFU is stated against in bf16.
#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <dnnl.hpp>
#include <random>
#include <string>
#include <vector>

using namespace dnnl;

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename F>
double median_seconds(F&& f, int reps) {
  std::vector<double> t;
  f();  // warm-up
  for (int i = 0; i < reps; ++i) {
    double t0 = now();
    f();
    t.push_back(now() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double sgemm_gflops(int M, int N, int K, int reps) {
  std::vector<float> a(size_t(M) * K, 0.5f), b(size_t(N) * K, 0.25f), c(size_t(M) * N);
  double s = median_seconds(
      [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a.data(), K, b.data(),
                    K, 0.0f, c.data(), N);
      },
      reps);
  return 2.0 * M * N * K / s / 1e9;
}

double dnnl_gflops(engine& eng, stream& st, int M, int N, int K, int reps,
                   memory::data_type src_dt) {
  memory::desc a_md({M, K}, src_dt, memory::format_tag::ab);
  memory::desc b_any({K, N}, memory::data_type::bf16, memory::format_tag::any);
  memory::desc c_md({M, N}, memory::data_type::f32, memory::format_tag::ab);
  matmul::primitive_desc pd(matmul::desc(a_md, b_any, c_md), eng);
  memory a(a_md, eng), b(pd.weights_desc(), eng), c(c_md, eng);
  memory b_plain({{K, N}, memory::data_type::bf16, memory::format_tag::ba}, eng);
  reorder(b_plain, b).execute(st, b_plain, b);
  matmul mm(pd);
  double s = median_seconds(
      [&] {
        mm.execute(st, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
        st.wait();
      },
      reps);
  return 2.0 * M * N * K / s / 1e9;
}
}  // namespace

int main(int argc, char** argv) {
  engine eng(engine::kind::cpu, 0);
  stream st(eng);
  if (argc > 1 && std::string(argv[1]) == "--bf16-peak") {
    const double peak = dnnl_gflops(eng, st, 2048, 2048, 2048, 7, memory::data_type::bf16);
    fmt::print("bf16 peak (oneDNN 2048^3, {} threads): {:.1f}\n", omp_get_max_threads(), peak);
    return 0;
  }
  openblas_set_num_threads(1);
  fmt::print("one thread; GFLOP/s, median of runs\n");
  const double peak = sgemm_gflops(2048, 2048, 2048, 5);
  fmt::print("sgemm 2048^3 (one-core sgemm peak): {:.1f}\n\n", peak);
  fmt::print(
      "| M | K | N | sgemm f32 | oneDNN bf16 | bf16/sgemm-peak |\n|---|---|---|---|---|---|\n");
  const int shapes[][3] = {{1, 1024, 512},     {8, 1024, 512},    {48, 1024, 512},
                           {48, 256, 1024},    {256, 1024, 1024}, {512, 1024, 2816},
                           {2048, 1024, 1024}, {256, 1024, 16384}};
  for (auto& s : shapes) {
    const int M = s[0], K = s[1], N = s[2];
    const int reps = std::max(5, int(2e9 / (2.0 * M * N * K)));
    const double f = sgemm_gflops(M, N, K, reps);
    const double b = dnnl_gflops(eng, st, M, N, K, reps, memory::data_type::bf16);
    fmt::print("| {} | {} | {} | {:.1f} | {:.1f} | {:.2f} |\n", M, K, N, f, b, b / peak);
  }
  return 0;
}
