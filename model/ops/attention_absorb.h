// The per-head products around absorbed MLA attention in bf16 mode: q_nope[h] x W_uk[h] into
// the latent query, and the latent output x W_uv[h]^T, for every head of every row in one call.
// Each head's matrix is a PackedWeight [out, in] and goes through packed_gemm (rows of x with the
// heads' stride), so a head's product over many rows gets the GEMM's register blocking, and a
// row's result does not depend on the other rows. Threads split the heads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/ops/packed_gemm.h"

namespace dpep {

struct HeadProjBf16 {
  int heads = 0, in = 0, out = 0;
  std::vector<PackedWeight> w;  // [heads] of [out, in]
  bool empty() const { return w.empty(); }
  size_t bytes() const;
};

// w(h, i, o): weight of input i to output o of head h.
template <typename F>
HeadProjBf16 pack_head_proj(int heads, int in, int out, F&& w);
// dense: [heads][in][out].
HeadProjBf16 pack_head_proj_from(int heads, int in, int out, const std::vector<float>& dense);

// y[t, h, o] = sum_i bf16(x[t, h, i]) w(h, i, o) for t < T: x rows of x_row floats with heads
// x_head floats apart, likewise y. `scratch`: the kernels' buffers of each OpenMP thread
// (omp_get_max_threads() of them), else thread_local ones.
void head_proj_bf16(const HeadProjBf16& p, const float* x, int T, size_t x_row, size_t x_head,
                    float* y, size_t y_row, size_t y_head, GemmScratch* scratch = nullptr);

template <typename F>
HeadProjBf16 pack_head_proj(int heads, int in, int out, F&& w) {
  std::vector<float> dense(static_cast<size_t>(heads) * in * out);
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < in; ++i)
      for (int o = 0; o < out; ++o) dense[(static_cast<size_t>(h) * in + i) * out + o] = w(h, i, o);
  return pack_head_proj_from(heads, in, out, dense);
}

}  // namespace dpep
