#include "model/mlp.h"

#include <algorithm>

#include "model/ops/ops.h"

namespace dpep {

MlpWeights make_mlp(const float* gate, const float* up, const float* down, int inter, int hidden) {
  const size_t n = static_cast<size_t>(inter) * hidden;
  return MlpWeights{Linear(std::vector<float>(gate, gate + n), inter, hidden),
                    Linear(std::vector<float>(up, up + n), inter, hidden),
                    Linear(std::vector<float>(down, down + n), hidden, inter)};
}

void mlp_forward(const MlpWeights& w, const float* x, int T, float* out,
                 std::vector<float>& scratch, GemmScratch* gemm) {
  if (T == 0) return;
  const int I = w.inter();
  scratch.resize(static_cast<size_t>(T) * 2 * I);
  w.gate.forward(x, T, scratch.data(), -1, 2 * I, gemm);  // [T, 2I]: gate | up per row
  w.up.forward(x, T, scratch.data() + I, -1, 2 * I, gemm);
  for (int t = 0; t < T; ++t) {
    float* row = scratch.data() + static_cast<size_t>(t) * 2 * I;
    silu_mul(row, row + I, I);  // row[:I] = silu(gate) * up
  }
  w.down.forward(scratch.data(), T, out, 2 * I, -1, gemm);
}

}  // namespace dpep
