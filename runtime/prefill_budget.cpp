#include "runtime/prefill_budget.h"

#include <algorithm>

namespace dpep {
namespace {
constexpr double kAlpha = 0.2;  // weight of the newest sample in the averages
double ema(double avg, double x) {
  return avg == 0 ? x : avg + kAlpha * (x - avg);
}
}  // namespace

void PrefillBudget::observe(double step_s, int max_prefill_rows, int decode_rows) {
  if (step_s <= 0) return;
  if (max_prefill_rows == 0) {
    if (decode_rows > 0) base_ = ema(base_, step_s);
    return;
  }
  // Before a decode-only step was seen, charge the whole step to the prefill (an overestimate,
  // so the first budget errs small).
  const double extra = std::max(step_s - base_, 0.05 * step_s);
  per_token_ = ema(per_token_, extra / max_prefill_rows);
}

int PrefillBudget::budget(bool decoding) const {
  if (factor_ <= 1 || !decoding || base_ == 0 || per_token_ == 0) return max_;
  const double tokens = (factor_ - 1) * base_ / per_token_;
  return static_cast<int>(std::clamp<double>(tokens, std::min(kMinChunk, max_), max_));
}

}  // namespace dpep
