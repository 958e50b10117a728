// The per-head products around absorbed MLA attention in bf16 mode: q_nope[h] x W_uk[h] into
// the latent query, and the latent output x W_uv[h]^T, for every head of every row in one call.
// Weights are packed once in pairs of input dimensions (AVX512-BF16 dot products); inputs are
// rounded to bf16, sums are float32. A row's result does not depend on the other rows (no
// choice by row count), and there is no per-call library overhead (32 oneDNN calls per layer
// before, most of a decode step's attention time at one sequence).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dpep {

struct HeadProjBf16 {
  int heads = 0, in = 0, out = 0;
  int in2 = 0, outp = 0;    // in rounded up to even, out to 16
  std::vector<uint16_t> w;  // [heads][in2 / 2][outp][2]
  bool empty() const { return w.empty(); }
};

// w(h, i, o): weight of input i to output o of head h.
template <typename F>
HeadProjBf16 pack_head_proj(int heads, int in, int out, F&& w);
HeadProjBf16 pack_head_proj_from(int heads, int in, int out, const std::vector<float>& dense);

// y[t, h, o] = sum_i x[t, h, i] w(h, i, o) for t < T: x rows of x_row floats with heads x_head
// floats apart, likewise y. Threads split rows and heads.
void head_proj_bf16(const HeadProjBf16& p, const float* x, int T, size_t x_row, size_t x_head,
                    float* y, size_t y_row, size_t y_head);

template <typename F>
HeadProjBf16 pack_head_proj(int heads, int in, int out, F&& w) {
  std::vector<float> dense(static_cast<size_t>(heads) * in * out);
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < in; ++i)
      for (int o = 0; o < out; ++o) dense[(static_cast<size_t>(h) * in + i) * out + o] = w(h, i, o);
  return pack_head_proj_from(heads, in, out, dense);
}

}  // namespace dpep
