#include "model/linear.h"

#include <algorithm>
#include <stdexcept>

#include "model/ops/ops.h"

namespace dpep {

Linear::Linear(std::vector<float> w, int out, int in) : w_(std::move(w)), out_(out), in_(in) {
  if (w_.size() != static_cast<size_t>(out) * in)
    throw std::invalid_argument("Linear: size mismatch");
}

Linear::Linear(PackedWeight w)
    : packed_(std::make_shared<const PackedWeight>(std::move(w))),
      out_(packed_->n()),
      in_(packed_->k()) {}

void Linear::forward(const float* x, int T, float* y, int ldx, int ldy,
                     GemmScratch* scratch) const {
  if (T == 0 || out_ == 0) return;
  if (ldx < 0) ldx = in_;
  if (ldy < 0) ldy = out_;
  if (bf16_compute_) {
    packed_gemm(x, T, ldx, *packed_, y, ldy, scratch);
  } else if (!packed_) {
    matmul_xwt(x, T, in_, w_.data(), out_, y, ldx, ldy);
  } else {
    // Exact mode on bf16/FP8 weights: about 4 MB of float32 rows at a time (whole 16-row
    // tiles), each block one sgemm.
    auto own = []() -> std::vector<float>& {  // touched only without a run-state
      thread_local std::vector<float> v;
      return v;
    };
    std::vector<float>& buf = scratch ? scratch->dequant : own();
    const int rows = dequant_rows();
    for (int r0 = 0; r0 < out_; r0 += rows) {
      const int nr = std::min(rows, out_ - r0);
      const float* w = rows_f32(r0, nr, buf);
      matmul_xwt(x, T, in_, w, nr, y + r0, ldx, ldy);
    }
  }
}

void Linear::forward_columns(const float* x, int T, int pair_begin, int pair_end, float* y, int ldx,
                             int ldy, GemmScratch* scratch) const {
  if (!bf16_compute_) throw std::logic_error("Linear::forward_columns: bf16 mode only");
  packed_gemm_columns(x, T, ldx, *packed_, pair_begin, pair_end, y, ldy, scratch);
}

int Linear::dequant_rows() const {
  return std::max(16, (1 << 20) / std::max(in_, 1) / 16 * 16);
}

void Linear::reserve(GemmScratch& scratch, int M, int threads) const {
  if (out_ == 0) return;
  if (bf16_compute_) {
    scratch.reserve(*packed_, M, threads);
  } else if (packed_) {
    const size_t n = static_cast<size_t>(std::min(dequant_rows(), out_)) * in_;
    if (scratch.dequant.size() < n) scratch.dequant.resize(n);
  }
}

void Linear::to_bf16() {
  if (bf16_compute_ || out_ == 0) return;
  if (!packed_) {
    packed_ = std::make_shared<const PackedWeight>(PackedWeight::from_f32(w_.data(), out_, in_));
    std::vector<float>().swap(w_);
  }
  bf16_compute_ = true;
}

const float* Linear::data() const {
  if (packed_) throw std::logic_error("Linear::data(): weights are not held as float32");
  return w_.data();
}

const float* Linear::rows_f32(int r0, int nr, std::vector<float>& buf) const {
  if (!packed_) return w_.data() + static_cast<size_t>(r0) * in_;
  buf.resize(static_cast<size_t>(nr) * in_);
  packed_->rows_f32(r0, nr, buf.data());
  return buf.data();
}

size_t Linear::bytes() const {
  return packed_ ? packed_->bytes() : w_.size() * sizeof(float);
}

}  // namespace dpep
