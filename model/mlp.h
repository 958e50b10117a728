// SwiGLU MLP: down(silu(gate(x)) * up(x)). Used for the dense layers, the shared experts and
// each routed expert. In the bf16 mode gate and up become one matrix (gate_up) whose rows
// alternate blocks of `group` gate rows and `group` up rows: one product computes both, and any
// split of its columns on whole block pairs holds matching gate and up values, so SiLU times up
// is fused right after the product, on the same thread. Float32 mode (and I of no such group)
// keeps two matrices that write one [T, 2I] buffer.
#pragma once
#include <vector>

#include "model/linear.h"

namespace dpep {

struct MlpWeights {
  Linear gate;     // [I, H]; empty once fused into gate_up
  Linear up;       // [I, H]; empty once fused into gate_up
  Linear down;     // [H, I]
  Linear gate_up;  // [2I, H] (bf16 mode): gate rows [b g, (b+1) g) then up's, for b = 0, 1, ..
  int group = 0;   // g; 0 while gate and up are separate
  int inter() const { return down.in(); }
  bool fused() const { return group > 0; }
  size_t bytes() const { return gate.bytes() + up.bytes() + gate_up.bytes() + down.bytes(); }
  // Grows the buffers of mlp_forward on up to M rows.
  void reserve(std::vector<float>& scratch, GemmScratch& gemm, int M, int threads) const {
    if (scratch.capacity() < static_cast<size_t>(M) * 2 * inter())
      scratch.reserve(static_cast<size_t>(M) * 2 * inter());
    for (const Linear* l : {&gate, &up, &gate_up, &down}) l->reserve(gemm, M, threads);
  }
  // bf16 kernels; with `fuse`, gate and up become gate_up when I allows a group (128, or 16 for
  // bf16 weights). The model fuses the routed experts only: DeepSeek-V3's dense gate and up
  // (264 MB of FP8 together) would be held twice while being interleaved, 264 MB more peak
  // memory per rank, and one product instead of two gains little on matrices that large.
  void to_bf16(bool fuse = true);
};

// Fused layout, columns of block pairs [b0, b1) of one row: gu holds [gate block b | up block b]
// at columns [2 b g, 2 b g + 2 g); h[b g + i] = silu(gate) * up for i < g. gu's gate blocks are
// overwritten.
void silu_mul_blocks(float* gu, int group, int b0, int b1, float* h);

// MlpWeights from float32 gate [I, H], up [I, H] and down [H, I] (row-major).
MlpWeights make_mlp(const float* gate, const float* up, const float* down, int inter, int hidden);

// out[T, H] = MLP(x[T, H]); scratch is resized as needed; gemm: the kernels' buffers (else
// thread_local ones).
void mlp_forward(const MlpWeights& w, const float* x, int T, float* out,
                 std::vector<float>& scratch, GemmScratch* gemm = nullptr);

}  // namespace dpep
