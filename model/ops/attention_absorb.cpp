#include "model/ops/attention_absorb.h"

// GCC 12 reports _mm512_undefined_ps() inside its own intrinsics as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "model/ops/dtypes.h"
#include "model/ops/parallel.h"

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

namespace dpep {

HeadProjBf16 pack_head_proj_from(int heads, int in, int out, const std::vector<float>& dense) {
  HeadProjBf16 p;
  p.heads = heads, p.in = in, p.out = out;
  p.in2 = (in + 1) / 2 * 2, p.outp = (out + 15) / 16 * 16;
  p.w.assign(static_cast<size_t>(heads) * p.in2 * p.outp, 0);
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < in; ++i)
      for (int o = 0; o < out; ++o)
        p.w[((static_cast<size_t>(h) * (p.in2 / 2) + i / 2) * p.outp + o) * 2 + i % 2] =
            f32_to_bf16(dense[(static_cast<size_t>(h) * in + i) * out + o]);
  return p;
}

void head_proj_bf16(const HeadProjBf16& p, const float* x, int T, size_t x_row, size_t x_head,
                    float* y, size_t y_row, size_t y_head) {
#if defined(__AVX512BF16__)
  const int n2 = p.in2 / 2;
  if (n2 > 1024) throw std::logic_error("head_proj_bf16: more than 2048 inputs per head");
  // Threads when the work outweighs a parallel region (~1 us while the team spins): a decode
  // row's 16 heads of the bench preset (0.5 MB of weights) take both cores. Each (row, head) is
  // computed the same way either way.
  const bool par = static_cast<double>(T) * p.heads * n2 * p.outp > 1.5e5;
  parallel_ranges(T * p.heads, par, [&](int i_begin, int i_end, int) {
    uint32_t xp[1024];  // one (row, head) input as bf16 pairs (in <= 2048, checked)
    for (int th = i_begin; th < i_end; ++th) {
      {
        const int t = th / p.heads, h = th % p.heads;
        const float* xs = x + t * x_row + h * x_head;
        for (int i = 0; i < n2; ++i) {
          const uint32_t lo = f32_to_bf16(xs[2 * i]);
          const uint32_t hi = 2 * i + 1 < p.in ? f32_to_bf16(xs[2 * i + 1]) : 0;
          xp[i] = lo | hi << 16;
        }
        const uint16_t* w = p.w.data() + static_cast<size_t>(h) * n2 * p.outp * 2;
        float* ys = y + t * y_row + h * y_head;
        // Up to 8 chunks of 16 outputs at once: independent sums hide the dot-product latency.
        for (int o0 = 0; o0 < p.outp; o0 += 128) {
          const int nch = std::min(8, (p.outp - o0) / 16);
          __m512 acc[8];
          for (auto& a : acc) a = _mm512_setzero_ps();
          for (int i = 0; i < n2; ++i) {
            const __m512bh xb = (__m512bh)_mm512_set1_epi32(static_cast<int>(xp[i]));
            const uint16_t* wi = w + (static_cast<size_t>(i) * p.outp + o0) * 2;
            for (int c = 0; c < nch; ++c)
              acc[c] = _mm512_dpbf16_ps(acc[c], (__m512bh)_mm512_loadu_si512(wi + c * 32), xb);
          }
          for (int c = 0; c < nch; ++c) {
            const int o = o0 + 16 * c, n = std::min(16, p.out - o);
            _mm512_mask_storeu_ps(ys + o, static_cast<__mmask16>((1u << n) - 1), acc[c]);
          }
        }
      }
    }
  });
#else
  (void)p, (void)x, (void)T, (void)x_row, (void)x_head, (void)y, (void)y_row, (void)y_head;
  throw std::logic_error("this build has no AVX512-BF16 kernel");
#endif
}

}  // namespace dpep
