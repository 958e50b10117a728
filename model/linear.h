// A linear layer y = x W^T with W [out, in], holding W in its stored dtype: float32, or bf16 /
// FP8 e4m3 with 128x128 block scales prepacked for packed_gemm. The one place a GEMM path is
// chosen:
// - float32 mode (exact against float32 references): OpenBLAS sgemm; bf16 and FP8 weights are
//   dequantised a block of rows at a time into a small buffer, never whole;
// - bf16 mode (after to_bf16()): packed_gemm, activations rounded to bf16, float32 accumulation;
//   float32 weights are rounded to bf16 once, FP8 stays FP8 and is converted in the kernel.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "model/ops/dtypes.h"
#include "model/ops/packed_gemm.h"

namespace dpep {

enum class MatmulDType { F32, BF16 };

class Linear {
 public:
  Linear() = default;
  Linear(std::vector<float> w, int out, int in);  // float32 weights [out, in]
  explicit Linear(PackedWeight w);                // bf16 or FP8 weights

  // y[T, out] = x[T, in] W^T ; ldx/ldy are row strides (default in/out). Kernel buffers come
  // from `scratch` (the caller's run-state), else from a thread_local one.
  void forward(const float* x, int T, float* y, int ldx = -1, int ldy = -1,
               GemmScratch* scratch = nullptr) const;
  // Grows `scratch` to what forward() on up to M rows needs, for `threads` kernel workers.
  void reserve(GemmScratch& scratch, int M, int threads) const;

  // Switches to the bf16 kernel; float32 weights are packed as bf16 and their copy freed.
  void to_bf16();
  bool is_bf16() const { return bf16_compute_; }
  DType stored_dtype() const { return packed_ ? packed_->dtype() : DType::F32; }

  int out() const { return out_; }
  int in() const { return in_; }
  const float* data() const;  // [out, in]; float32 weights only (throws otherwise)
  // Rows [r0, r0 + nr) as exact float32 [nr, in]: a pointer into the float32 weights, or the
  // dequantised rows written to buf.
  const float* rows_f32(int r0, int nr, std::vector<float>& buf) const;
  bool empty() const { return out_ == 0; }
  const PackedWeight* packed() const { return packed_.get(); }  // bf16/FP8 weights, else null
  // bf16 mode only: the output columns of tile pairs [pair_begin, pair_end) (packed_gemm_columns).
  void forward_columns(const float* x, int T, int pair_begin, int pair_end, float* y, int ldx,
                       int ldy, GemmScratch* scratch) const;
  size_t bytes() const;

 private:
  int dequant_rows() const;  // float32 mode on bf16/FP8 weights: rows dequantised at a time
  std::vector<float> w_;
  std::shared_ptr<const PackedWeight> packed_;
  bool bf16_compute_ = false;
  int out_ = 0, in_ = 0;
};

}  // namespace dpep
