#include "model/linear.h"

#include <stdexcept>

#include "model/ops/ops.h"

namespace dpep {

Linear::Linear(std::vector<float> w, int out, int in) : w_(std::move(w)), out_(out), in_(in) {
  if (w_.size() != static_cast<size_t>(out) * in)
    throw std::invalid_argument("Linear: size mismatch");
}

void Linear::forward(const float* x, int T, float* y, int ldx, int ldy) const {
  if (T == 0 || out_ == 0) return;
  if (bf16_)
    bf16_->forward(x, T, y, ldx < 0 ? in_ : ldx, ldy < 0 ? out_ : ldy);
  else
    matmul_xwt(x, T, in_, w_.data(), out_, y, ldx, ldy);
}

void Linear::to_bf16() {
  if (bf16_ || out_ == 0) return;
  bf16_ = std::make_shared<Bf16Matmul>(w_.data(), out_, in_);
  std::vector<float>().swap(w_);
}

size_t Linear::bytes() const {
  return bf16_ ? bf16_->bytes() : w_.size() * sizeof(float);
}

}  // namespace dpep
