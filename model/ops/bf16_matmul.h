// y[T, out] = x[T, in] W^T with W packed once as bf16 for oneDNN (AMX or AVX512-BF16 kernels,
// whichever the CPU has); x is rounded to bf16 per call, y accumulates in float32.
// Primitives for each row count T come from oneDNN's primitive cache.
#pragma once
#include <memory>
#include <vector>

namespace dpep {

class Bf16Matmul {
 public:
  // w: [out, in] float32 (rounded to bf16 here).
  Bf16Matmul(const float* w, int out, int in);
  ~Bf16Matmul();
  Bf16Matmul(Bf16Matmul&&) noexcept;
  Bf16Matmul& operator=(Bf16Matmul&&) noexcept;

  void forward(const float* x, int T, float* y, int ldx, int ldy) const;
  size_t bytes() const;

  // Whether oneDNN offers a bf16 matmul on this CPU (AMX or AVX512-BF16).
  static bool supported();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpep
