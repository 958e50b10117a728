// Chunked-prefill budget by expected step time (rank 0; SGLang/vLLM chunked prefill, sized by
// time rather than a fixed token count). In the lock-step loop a step lasts as long as its
// slowest rank, so one rank prefilling thousands of tokens stalls every decoding sequence on
// every rank. Rank 0 models a step as base + per_token x (largest prefill on any rank), learns
// base from decode-only steps and per_token from steps with prefill (exponential averages), and
// while any sequence decodes it lets each rank prefill at most (factor - 1) x base / per_token
// tokens in the next step: a step with prefill then lasts about factor x a decode step.
#pragma once

namespace dpep {

class PrefillBudget {
 public:
  static constexpr int kMinChunk = 32;  // never starve prefill below this many tokens per step
  // factor <= 1: off (the budget is always max_tokens).
  PrefillBudget(double factor, int max_tokens) : factor_(factor), max_(max_tokens) {}
  // After a busy step: the slowest rank's forward time, the largest number of prefill rows on
  // one rank, and the decode rows over all ranks.
  void observe(double step_s, int max_prefill_rows, int decode_rows);
  // Prefill tokens per rank for the next step; `decoding`: some sequence decodes somewhere.
  int budget(bool decoding) const;
  double base_s() const { return base_; }
  double per_token_s() const { return per_token_; }

 private:
  double factor_;
  int max_;
  double base_ = 0, per_token_ = 0;  // 0 = not measured yet
};

}  // namespace dpep
