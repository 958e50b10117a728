#include "model/ops/ops.h"
#include "model/ops/simd_exp.h"

#include <cblas.h>
#include <immintrin.h>

// GCC 12 reports _mm512_undefined_ps() inside its own intrinsics as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cmath>

namespace dpep {

#if defined(__AVX512F__)
#endif

void matmul_xwt(const float* x, int T, int in, const float* W, int out, float* y, int ldx,
                int ldy) {
  if (T == 0 || out == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1.0f, x, ldx < 0 ? in : ldx, W,
              in, 0.0f, y, ldy < 0 ? out : ldy);
}

namespace {
// dot(a, b) over n floats: lane j sums elements j, j+16, j+32, ... in order, then the 16 lanes
// are added pairwise (8 + 4 + 2 + 1). The compiler vectorizes the lanes; the order is fixed.
float dot_fixed_order(const float* a, const float* b, int n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[k + j] * b[k + j];
  for (int j = 0; k + j < n; ++j) acc[j] += a[k + j] * b[k + j];
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}
}  // namespace

void matmul_xwt_fixed_order(const float* x, int T, int in, const float* W, int out, float* y) {
  if (T <= 0 || out <= 0) return;
    // Every (row, out) element is computed whole by one thread: threads split the work only.
#pragma omp parallel for schedule(static) if (static_cast <long long>(T) * out * in > (1 << 20))
  for (int e = 0; e < out; ++e) {
    const float* w = W + static_cast<size_t>(e) * in;
    for (int t = 0; t < T; ++t)
      y[static_cast<size_t>(t) * out + e] = dot_fixed_order(x + static_cast<size_t>(t) * in, w, in);
  }
}

void rmsnorm_rows(float* x, int rows, int n, const float* w, float eps, int ld) {
  if (ld < 0) ld = n;
  for (int r = 0; r < rows; ++r) {
    float* v = x + static_cast<size_t>(r) * ld;
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(v[i]) * v[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / n) + eps);
    for (int i = 0; i < n; ++i) v[i] = w[i] * (v[i] * inv);
  }
}

void rmsnorm_rows_to(const float* x, float* out, int rows, int n, const float* w, float eps) {
  std::copy(x, x + static_cast<size_t>(rows) * n, out);
  rmsnorm_rows(out, rows, n, w, eps);
}

void silu_mul(float* gate, const float* up, size_t n) {
  size_t i = 0;
#if defined(__AVX512F__)
  // silu(g) * u = g * u / (1 + exp(-g)), 16 lanes at a time with a vectorised exp.
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    _mm512_storeu_ps(gate + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
  }
#endif
  for (; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax_inplace(float* x, int n) {
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = std::max(m, x[i]);
  float s = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  const float inv = 1.0f / s;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void log_softmax(const float* logits, int n, float* out) {
  double m = -INFINITY;
  for (int i = 0; i < n; ++i) m = std::max(m, static_cast<double>(logits[i]));
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(static_cast<double>(logits[i]) - m);
  const double lse = m + std::log(s);
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - lse);
}

}  // namespace dpep
