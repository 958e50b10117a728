#include "model/mlp.h"

#include <algorithm>
#include <cstring>

#include "model/ops/ops.h"

namespace dpep {

MlpWeights make_mlp(const float* gate, const float* up, const float* down, int inter, int hidden) {
  const size_t n = static_cast<size_t>(inter) * hidden;
  MlpWeights w;
  w.gate = Linear(std::vector<float>(gate, gate + n), inter, hidden);
  w.up = Linear(std::vector<float>(up, up + n), inter, hidden);
  w.down = Linear(std::vector<float>(down, down + n), hidden, inter);
  return w;
}

void MlpWeights::to_bf16(bool fuse) {
  gate.to_bf16();
  up.to_bf16();
  down.to_bf16();
  if (!fuse || fused() || gate.empty() || !gate.packed()) return;
  const int I = gate.out();
  const bool fp8 = gate.stored_dtype() == DType::F8E4M3;
  const int g = I % 128 == 0 ? 128 : (!fp8 && I % 16 == 0 ? 16 : 0);
  if (g == 0 || up.stored_dtype() != gate.stored_dtype()) return;
  gate_up = Linear(PackedWeight::interleave_rows(*gate.packed(), *up.packed(), g));
  gate_up.to_bf16();
  group = g;
  gate = Linear();
  up = Linear();
}

void silu_mul_blocks(float* gu, int group, int b0, int b1, float* h) {
  for (int b = b0; b < b1; ++b) {
    float* g = gu + static_cast<size_t>(2 * b) * group;
    silu_mul(g, g + group, group);
    std::memmove(h + static_cast<size_t>(b) * group, g, sizeof(float) * group);
  }
}

void mlp_forward(const MlpWeights& w, const float* x, int T, float* out,
                 std::vector<float>& scratch, GemmScratch* gemm) {
  if (T == 0) return;
  const int I = w.inter();
  scratch.resize(static_cast<size_t>(T) * 2 * I);
  if (w.fused()) {
    // [T, 2I] interleaved; each row's activations are compacted into its first I columns
    // (block b moves left to b g, past every block still to be read).
    w.gate_up.forward(x, T, scratch.data(), -1, 2 * I, gemm);
    for (int t = 0; t < T; ++t) {
      float* row = scratch.data() + static_cast<size_t>(t) * 2 * I;
      silu_mul_blocks(row, w.group, 0, I / w.group, row);
    }
    w.down.forward(scratch.data(), T, out, 2 * I, -1, gemm);
    return;
  }
  w.gate.forward(x, T, scratch.data(), -1, 2 * I, gemm);  // [T, 2I]: gate | up per row
  w.up.forward(x, T, scratch.data() + I, -1, 2 * I, gemm);
  for (int t = 0; t < T; ++t) {
    float* row = scratch.data() + static_cast<size_t>(t) * 2 * I;
    silu_mul(row, row + I, I);  // row[:I] = silu(gate) * up
  }
  w.down.forward(scratch.data(), T, out, 2 * I, -1, gemm);
}

}  // namespace dpep
