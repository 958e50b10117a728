#include "model/ops/ops.h"
#include "model/ops/parallel.h"
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
// Each y element: lane j of a 16-lane float32 accumulator sums x[k] * w[k] for k = j, j + 16,
// j + 32, ... in order (fused multiply-add; the last partial block masked, so its zeros add
// nothing), then the 16 lanes are added as 8 + 4 + 2 + 1 pairs. Blocking rows and outputs into
// RT x RE tiles only reuses loads: every element sees the same operations in the same order.
#if defined(__AVX512F__)
template <int RT, int RE>
void xwt_tile(const float* x, int ldx, const float* w, int in, float* y, int ldy) {
  __m512 acc[RT][RE];
  for (int r = 0; r < RT; ++r)
    for (int e = 0; e < RE; ++e) acc[r][e] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= in; k += 16) {
    __m512 wv[RE];
    for (int e = 0; e < RE; ++e) wv[e] = _mm512_loadu_ps(w + static_cast<size_t>(e) * in + k);
    for (int r = 0; r < RT; ++r) {
      const __m512 xv = _mm512_loadu_ps(x + static_cast<size_t>(r) * ldx + k);
      for (int e = 0; e < RE; ++e) acc[r][e] = _mm512_fmadd_ps(xv, wv[e], acc[r][e]);
    }
  }
  if (k < in) {  // the same operations on a masked block: the zeros add nothing
    const __mmask16 m = static_cast<__mmask16>((1u << (in - k)) - 1);
    __m512 wv[RE];
    for (int e = 0; e < RE; ++e)
      wv[e] = _mm512_maskz_loadu_ps(m, w + static_cast<size_t>(e) * in + k);
    for (int r = 0; r < RT; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + static_cast<size_t>(r) * ldx + k);
      for (int e = 0; e < RE; ++e) acc[r][e] = _mm512_fmadd_ps(xv, wv[e], acc[r][e]);
    }
  }
  for (int r = 0; r < RT; ++r)
    for (int e = 0; e < RE; ++e) {
      alignas(64) float l[16];
      _mm512_store_ps(l, acc[r][e]);
      for (int h = 8; h > 0; h /= 2)
        for (int j = 0; j < h; ++j) l[j] += l[j + h];
      y[static_cast<size_t>(r) * ldy + e] = l[0];
    }
}
#else
template <int RT, int RE>
void xwt_tile(const float* x, int ldx, const float* w, int in, float* y, int ldy) {
  for (int r = 0; r < RT; ++r)
    for (int e = 0; e < RE; ++e) {
      float l[16] = {};
      for (int k = 0; k < in; ++k)
        l[k % 16] = std::fma(x[static_cast<size_t>(r) * ldx + k],
                             w[static_cast<size_t>(e) * in + k], l[k % 16]);
      for (int h = 8; h > 0; h /= 2)
        for (int j = 0; j < h; ++j) l[j] += l[j + h];
      y[static_cast<size_t>(r) * ldy + e] = l[0];
    }
}
#endif
}  // namespace

void matmul_xwt_fixed_order(const float* x, int T, int in, const float* W, int out, float* y) {
  if (T <= 0 || out <= 0) return;
  constexpr int RT = 4, RE = 4;
  const int eblocks = (out + RE - 1) / RE;
  // Threads take blocks of outputs; each element is computed whole by one thread.
  const bool worth_threads = static_cast<long long>(T) * out * in > (1 << 20);
  parallel_ranges(eblocks, worth_threads, [&](int eb0, int eb1, int) {
    for (int eb = eb0; eb < eb1; ++eb) {
      const int e0 = eb * RE, ne = std::min(RE, out - e0);
      const float* w = W + static_cast<size_t>(e0) * in;
      int t = 0;
      for (; ne == RE && t + RT <= T; t += RT)
        xwt_tile<RT, RE>(x + static_cast<size_t>(t) * in, in, w, in,
                         y + static_cast<size_t>(t) * out + e0, out);
      for (; t < T; ++t)
        for (int e = 0; e < ne; ++e)
          xwt_tile<1, 1>(x + static_cast<size_t>(t) * in, in, w + static_cast<size_t>(e) * in, in,
                         y + static_cast<size_t>(t) * out + e0 + e, out);
    }
  });
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
