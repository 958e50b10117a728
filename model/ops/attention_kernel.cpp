#include "model/ops/attention_kernel.h"
#include "model/ops/simd_exp.h"

// GCC 12 reports _mm512_undefined_ps() inside its own intrinsics as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include <cmath>
#include "model/ops/dtypes.h"

namespace dpep {
namespace {

[[maybe_unused]] inline size_t at(int W, int d, int slot) {
  return (static_cast<size_t>(slot / 16) * W + d) * 16 + slot % 16;
}

#if defined(__AVX512F__)

// Horizontal max / sum through memory (GCC 12 warns falsely on _mm512_reduce_*).
inline float hmax(__m512 v) {
  alignas(64) float a[16];
  _mm512_store_ps(a, v);
  return *std::max_element(a, a + 16);
}
inline float hsum(__m512 v) {
  alignas(64) float a[16];
  _mm512_store_ps(a, v);
  float s = 0;
  for (float x : a) s += x;
  return s;
}

inline __mmask16 tail_mask(int n) {
  return n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1);
}

// S[h, k] for heads [0, HB) over keys [0, L): 16 keys per register, one load per (d, key block).
template <int HB>
void scores(const float* qc, int W, const float* const* pages, int ps, int L, float* S) {
  for (int p = 0; p * ps < L; ++p) {
    const float* page = pages[p];
    const int n = std::min(ps, L - p * ps);
    for (int kb = 0; kb < n; kb += 16) {
      const __mmask16 m = tail_mask(n - kb);
      __m512 acc[HB];
      for (int h = 0; h < HB; ++h) acc[h] = _mm512_setzero_ps();
      const float* block = page + static_cast<size_t>(kb) * W;  // [W, 16] of keys kb..kb+15
      for (int d = 0; d < W; ++d) {
        const __m512 kv = _mm512_maskz_loadu_ps(m, block + static_cast<size_t>(d) * 16);
        for (int h = 0; h < HB; ++h)
          acc[h] = _mm512_fmadd_ps(_mm512_set1_ps(qc[h * W + d]), kv, acc[h]);
      }
      for (int h = 0; h < HB; ++h)
        _mm512_mask_storeu_ps(S + static_cast<size_t>(h) * L + p * ps + kb, m, acc[h]);
    }
  }
}

// outT[d, h] = sum_k PT[k, h] * latent[k, d] for d < kv_lora: heads in lanes, 8 d per pass.
void values(const float* PT, int hb, int W, int kv_lora, const float* const* pages, int ps, int L,
            float* outT) {
  const __mmask16 hm = tail_mask(hb);
  int d = 0;
  for (; d + 8 <= kv_lora; d += 8) {
    __m512 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm512_setzero_ps();
    for (int p = 0; p * ps < L; ++p) {
      const float* page = pages[p];
      const int n = std::min(ps, L - p * ps);
      for (int s = 0; s < n; ++s) {
        const __m512 pt = _mm512_maskz_loadu_ps(hm, PT + static_cast<size_t>(p * ps + s) * 16);
        for (int i = 0; i < 8; ++i)
          acc[i] = _mm512_fmadd_ps(
              _mm512_set1_ps(page[(static_cast<size_t>(s / 16) * W + d + i) * 16 + s % 16]), pt,
              acc[i]);
      }
    }
    for (int i = 0; i < 8; ++i) _mm512_storeu_ps(outT + static_cast<size_t>(d + i) * 16, acc[i]);
  }
  for (; d < kv_lora; ++d) {
    __m512 acc = _mm512_setzero_ps();
    for (int k = 0; k < L; ++k) {
      const int s = k % ps;
      const float v = pages[k / ps][(static_cast<size_t>(s / 16) * W + d) * 16 + s % 16];
      acc = _mm512_fmadd_ps(_mm512_set1_ps(v),
                            _mm512_maskz_loadu_ps(hm, PT + static_cast<size_t>(k) * 16), acc);
    }
    _mm512_storeu_ps(outT + static_cast<size_t>(d) * 16, acc);
  }
}

// Runs a register-blocked kernel for a head count: f(integral_constant<N>, first head) once with
// N = hb when hb is 16, 8, 4 or 2, else once per head with N = 1.
template <typename F>
void by_head_block(int hb, F&& f) {
  switch (hb) {
    case 16:
      return f(std::integral_constant<int, 16>{}, 0);
    case 8:
      return f(std::integral_constant<int, 8>{}, 0);
    case 4:
      return f(std::integral_constant<int, 4>{}, 0);
    case 2:
      return f(std::integral_constant<int, 2>{}, 0);
    default:
      for (int h = 0; h < hb; ++h) f(std::integral_constant<int, 1>{}, h);
  }
}
#endif

}  // namespace

void softmax_fast(float* x, int n) {
#if defined(__AVX512F__)
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int i = 0; i < n; i += 16)
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail_mask(n - i), x + i));
  const __m512 m = _mm512_set1_ps(hmax(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m));
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
    _mm512_mask_storeu_ps(x + i, k, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / hsum(sum));
  for (int i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), inv));
  }
#else
  float m = -INFINITY, s = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, x[i]);
  for (int i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - m));
  for (int i = 0; i < n; ++i) x[i] /= s;
#endif
}

void mla_attend_row(const float* qc, int heads, int W, int kv_lora, const float* const* pages,
                    int page_size, int L, float* out_lat, float* scratch) {
  float* S = scratch;                                 // [16, L] scores, then probabilities
  float* PT = scratch + static_cast<size_t>(16) * L;  // [L, 16] probabilities, heads in lanes
  float* outT = PT + static_cast<size_t>(16) * L;     // [kv_lora, 16]
  for (int h0 = 0; h0 < heads; h0 += 16) {
    const int hb = std::min(16, heads - h0);
#if defined(__AVX512F__)
    by_head_block(hb, [&](auto n, int h) {
      scores<decltype(n)::value>(qc + static_cast<size_t>(h0 + h) * W, W, pages, page_size, L,
                                 S + static_cast<size_t>(h) * L);
    });
    for (int h = 0; h < hb; ++h) softmax_fast(S + static_cast<size_t>(h) * L, L);
    for (int k = 0; k < L; ++k)
      for (int h = 0; h < 16; ++h)
        PT[static_cast<size_t>(k) * 16 + h] = h < hb ? S[static_cast<size_t>(h) * L + k] : 0.0f;
    values(PT, hb, W, kv_lora, pages, page_size, L, outT);
#else
    for (int h = 0; h < hb; ++h)
      for (int k = 0; k < L; ++k) {
        float s = 0;
        for (int d = 0; d < W; ++d)
          s += qc[static_cast<size_t>(h0 + h) * W + d] *
               pages[k / page_size][at(W, d, k % page_size)];
        S[static_cast<size_t>(h) * L + k] = s;
      }
    for (int h = 0; h < hb; ++h) softmax_fast(S + static_cast<size_t>(h) * L, L);
    for (int d = 0; d < kv_lora; ++d)
      for (int h = 0; h < hb; ++h) {
        float s = 0;
        for (int k = 0; k < L; ++k)
          s += S[static_cast<size_t>(h) * L + k] * pages[k / page_size][at(W, d, k % page_size)];
        outT[static_cast<size_t>(d) * 16 + h] = s;
      }
#endif
    for (int h = 0; h < hb; ++h)
      for (int d = 0; d < kv_lora; ++d)
        out_lat[static_cast<size_t>(h0 + h) * kv_lora + d] = outT[static_cast<size_t>(d) * 16 + h];
  }
}

bool mla_bf16_cache_supported() {
#if defined(__AVX512BF16__)
  return true;
#else
  return false;
#endif
}

}  // namespace dpep
