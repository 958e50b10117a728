#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/ops/ops.h"

namespace dpep {
namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

double uniform_from(uint64_t seed, uint64_t step) {
  const uint64_t r = splitmix64(splitmix64(seed) ^ (step * 0xd1b54a32d192ed03ull + 1));
  return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);
}

SampleResult sample_token(const float* logits, int vocab, const SamplingParams& p, uint64_t seed,
                          int step, SamplerScratch& scratch) {
  SampleResult out;
  if (p.temperature <= 0.0f) {
    int best = 0;
    for (int v = 1; v < vocab; ++v)
      if (logits[v] > logits[best]) best = v;
    out.token = best;
  } else {
    // Candidates sorted by logit, descending (ties: lower id first).
    std::vector<int>& ids = scratch.ids;
    ids.resize(vocab);  // within capacity once warm
    std::iota(ids.begin(), ids.end(), 0);
    int n = vocab;
    if (p.top_k > 0 && p.top_k < vocab) {
      n = p.top_k;
      std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int a, int b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
      });
    } else {
      std::sort(ids.begin(), ids.end(), [&](int a, int b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
      });
    }
    std::vector<double>& prob = scratch.prob;
    prob.resize(n);
    const double m = logits[ids[0]] / p.temperature;
    double z = 0;
    for (int i = 0; i < n; ++i) z += (prob[i] = std::exp(logits[ids[i]] / p.temperature - m));
    for (auto& q : prob) q /= z;
    if (p.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
      double cum = 0;
      int keep = n;
      for (int i = 0; i < n; ++i) {
        cum += prob[i];
        if (cum >= p.top_p) {
          keep = i + 1;
          break;
        }
      }
      n = keep;
    }
    if (p.min_p > 0.0f) {
      const double floor = p.min_p * prob[0];
      int keep = 1;
      while (keep < n && prob[keep] >= floor) ++keep;
      n = keep;
    }
    double mass = 0;
    for (int i = 0; i < n; ++i) mass += prob[i];
    const double u = uniform_from(seed, static_cast<uint64_t>(step)) * mass;
    double cum = 0;
    out.token = ids[n - 1];
    for (int i = 0; i < n; ++i) {
      cum += prob[i];
      if (u < cum) {
        out.token = ids[i];
        break;
      }
    }
  }
  if (p.logprobs || p.top_logprobs > 0) {
    std::vector<float>& lp = scratch.lp;
    lp.resize(vocab);
    log_softmax(logits, vocab, lp.data());
    out.logprobs.logprob = lp[out.token];
    const int k = std::min(p.top_logprobs, vocab);
    if (k > 0) {
      std::vector<int>& ids = scratch.ids;
      ids.resize(vocab);
      std::iota(ids.begin(), ids.end(), 0);
      std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                        [&](int a, int b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
      for (int i = 0; i < k; ++i) out.logprobs.top.emplace_back(ids[i], lp[ids[i]]);
    }
  }
  return out;
}

}  // namespace dpep
