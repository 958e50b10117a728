#include "model/ops/attention_absorb.h"

#include <omp.h>

#include "model/ops/parallel.h"

namespace dpep {

size_t HeadProjBf16::bytes() const {
  size_t b = 0;
  for (const PackedWeight& h : w) b += h.bytes();
  return b;
}

HeadProjBf16 pack_head_proj_from(int heads, int in, int out, const std::vector<float>& dense) {
  HeadProjBf16 p;
  p.heads = heads, p.in = in, p.out = out;
  std::vector<float> t(static_cast<size_t>(out) * in);  // one head as [out, in]
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < in; ++i)
      for (int o = 0; o < out; ++o)
        t[static_cast<size_t>(o) * in + i] = dense[(static_cast<size_t>(h) * in + i) * out + o];
    p.w.push_back(PackedWeight::from_f32(t.data(), out, in));
  }
  return p;
}

void head_proj_bf16(const HeadProjBf16& p, const float* x, int T, size_t x_row, size_t x_head,
                    float* y, size_t y_row, size_t y_head, GemmScratch* scratch) {
  if (T == 0) return;
  // Threads when the work outweighs a parallel region (~1 us while the team spins): a decode
  // row's 16 heads of the bench preset (0.5 MB of weights) take both cores. Each head's
  // product is computed the same way on whichever thread.
  const bool par = static_cast<double>(T) * p.heads * p.in * p.out > 1.5e5;
  parallel_for_dynamic(p.heads, par, [&](int h) {
    GemmScratch* s = scratch ? &scratch[omp_get_thread_num()] : nullptr;
    packed_gemm(x + h * x_head, T, static_cast<int>(x_row), p.w[h], y + h * y_head,
                static_cast<int>(y_row), s);
  });
}

}  // namespace dpep
