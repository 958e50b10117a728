// SwiGLU MLP: down(silu(gate(x)) * up(x)). Used for the dense layers, the shared experts and
// each routed expert. gate and up stay two matrices (FP8 block scales of [I, H] matrices do not
// concatenate when I is not a multiple of 128); both write one [T, 2I] buffer.
#pragma once
#include <vector>

#include "model/linear.h"

namespace dpep {

struct MlpWeights {
  Linear gate;  // [I, H]
  Linear up;    // [I, H]
  Linear down;  // [H, I]
  int inter() const { return down.in(); }
  size_t bytes() const { return gate.bytes() + up.bytes() + down.bytes(); }
  // Grows the buffers of mlp_forward on up to M rows.
  void reserve(std::vector<float>& scratch, GemmScratch& gemm, int M, int threads) const {
    if (scratch.capacity() < static_cast<size_t>(M) * 2 * inter())
      scratch.reserve(static_cast<size_t>(M) * 2 * inter());
    gate.reserve(gemm, M, threads);
    up.reserve(gemm, M, threads);
    down.reserve(gemm, M, threads);
  }
  void to_bf16() {
    gate.to_bf16();
    up.to_bf16();
    down.to_bf16();
  }
};

// MlpWeights from float32 gate [I, H], up [I, H] and down [H, I] (row-major).
MlpWeights make_mlp(const float* gate, const float* up, const float* down, int inter, int hidden);

// out[T, H] = MLP(x[T, H]); scratch is resized as needed; gemm: the kernels' buffers (else
// thread_local ones).
void mlp_forward(const MlpWeights& w, const float* x, int T, float* out,
                 std::vector<float>& scratch, GemmScratch* gemm = nullptr);

}  // namespace dpep
