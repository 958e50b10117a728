// A linear layer y = x W^T with W [out, in]. The one place a GEMM backend is chosen:
// float32 OpenBLAS sgemm (exact against float32 references), or bf16 oneDNN after
// to_bf16() (activations rounded to bf16, float32 accumulation; AMX / AVX512-BF16).
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "model/ops/bf16_matmul.h"

namespace dpep {

enum class MatmulDType { F32, BF16 };

class Linear {
 public:
  Linear() = default;
  Linear(std::vector<float> w, int out, int in);

  // y[T, out] = x[T, in] W^T ; ldx/ldy are row strides (default in/out).
  void forward(const float* x, int T, float* y, int ldx = -1, int ldy = -1) const;

  // Packs W as bf16 for oneDNN and frees the float32 copy.
  void to_bf16();
  bool is_bf16() const { return bf16_ != nullptr; }

  int out() const { return out_; }
  int in() const { return in_; }
  const float* data() const { return w_.data(); }  // [out, in]; float32 only
  bool empty() const { return out_ == 0; }
  size_t bytes() const;

 private:
  std::vector<float> w_;
  std::shared_ptr<Bf16Matmul> bf16_;
  int out_ = 0, in_ = 0;
};

}  // namespace dpep
