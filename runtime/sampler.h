// Turns one row of logits into a token: greedy, or temperature with top-k, top-p and min-p.
// Randomness is counter-based on (seed, step), so the same seed gives the same tokens whatever
// the batch around the request.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/request.h"

namespace dpep {

struct SampleResult {
  int token = 0;
  TokenLogprobs logprobs;  // filled when asked
};

// Buffers of sample_token, kept by the caller: a warm call allocates nothing (unless the request
// asks for top log-probabilities, which are returned in a new vector).
struct SamplerScratch {
  std::vector<int> ids;
  std::vector<double> prob;
  std::vector<float> lp;
};

// logits: [vocab]; step: index of the token being generated (0 for the first).
SampleResult sample_token(const float* logits, int vocab, const SamplingParams& p, uint64_t seed,
                          int step, SamplerScratch& scratch);
inline SampleResult sample_token(const float* logits, int vocab, const SamplingParams& p,
                                 uint64_t seed, int step) {
  SamplerScratch scratch;
  return sample_token(logits, vocab, p, seed, step, scratch);
}

// A uniform double in [0, 1) from (seed, step): splitmix64 of a mixed counter.
double uniform_from(uint64_t seed, uint64_t step);

}  // namespace dpep
