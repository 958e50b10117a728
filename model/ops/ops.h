// Elementwise and small dense ops on float32 rows. Shapes use the config's names.
#pragma once
#include <cstddef>

namespace dpep {

// y[T, out] = x[T, in] * W[out, in]^T  (OpenBLAS sgemm; ldx/ldy default to in/out).
void matmul_xwt(const float* x, int T, int in, const float* W, int out, float* y, int ldx = -1,
                int ldy = -1);

// y[T, out] = x[T, in] * W[out, in]^T in float32 with a fixed summation order per (row, out):
// 16 strided partial sums over `in`, added pairwise. Unlike an sgemm, whose blocking and kernels
// change with T and the thread count, each y element is bitwise the same whatever T, the other
// rows or the threads (the router relies on it for batch-invariant expert choice and weights).
void matmul_xwt_fixed_order(const float* x, int T, int in, const float* W, int out, float* y);

// In place over `rows` rows of width n: x = w * x / sqrt(mean(x^2) + eps). ld = row stride.
void rmsnorm_rows(float* x, int rows, int n, const float* w, float eps, int ld = -1);
// out[rows, n] = rmsnorm(x) without modifying x.
void rmsnorm_rows_to(const float* x, float* out, int rows, int n, const float* w, float eps);

// gate[i] = silu(gate[i]) * up[i] for n elements.
void silu_mul(float* gate, const float* up, size_t n);

// Numerically stable softmax over n values in place (max-subtracted, float accumulate).
void softmax_inplace(float* x, int n);

// log_softmax of n logits into out.
void log_softmax(const float* logits, int n, float* out);

}  // namespace dpep
