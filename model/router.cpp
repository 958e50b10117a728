#include "model/router.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace dpep {

RouterParams RouterParams::from_config(const ModelConfig& c) {
  RouterParams p;
  p.num_experts = static_cast<int>(c.n_routed_experts);
  p.top_k = static_cast<int>(c.num_experts_per_tok);
  p.n_group = static_cast<int>(c.n_group);
  p.topk_group = static_cast<int>(c.topk_group);
  p.use_sigmoid = c.scoring_func == ScoringFunc::Sigmoid;
  p.group_limited = c.topk_method != TopkMethod::Greedy;
  p.norm_topk_prob = c.norm_topk_prob;
  p.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
  return p;
}

void route(const RouterParams& p, const float* logits, const float* bias, int T, int* topk_idx,
           float* topk_w, RouteScratch& scratch) {
  const int E = p.num_experts, K = p.top_k, G = p.n_group, per_group = E / G;
  auto sized = [](auto& v, int n) -> auto& {
    if (static_cast<int>(v.size()) != n) v.resize(n);  // within capacity once warm
    return v;
  };
  std::vector<float>& s = sized(scratch.s, E);
  std::vector<float>& choice = sized(scratch.choice, E);
  std::vector<float>& group_score = sized(scratch.group_score, G);
  std::vector<int>& order = sized(scratch.order, E);
  std::vector<int>& gorder = sized(scratch.gorder, G);
  std::vector<char>& keep = sized(scratch.keep, G);
  for (int t = 0; t < T; ++t) {
    const float* l = logits + static_cast<size_t>(t) * E;
    // 1. scores
    if (p.use_sigmoid) {
      for (int e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-l[e]));
    } else {
      float m = *std::max_element(l, l + E), sum = 0;
      for (int e = 0; e < E; ++e) sum += (s[e] = std::exp(l[e] - m));
      for (int e = 0; e < E; ++e) s[e] /= sum;
    }
    // 2. biased choice scores
    for (int e = 0; e < E; ++e) choice[e] = s[e] + (bias ? bias[e] : 0.0f);
    // 3. group limit: keep topk_group groups by the sum of their best two; others become 0.0
    if (p.group_limited && G > 1) {
      for (int g = 0; g < G; ++g) {
        const float* c = &choice[g * per_group];
        float a = -INFINITY, b = -INFINITY;  // best two
        for (int i = 0; i < per_group; ++i) {
          if (c[i] > a) {
            b = a;
            a = c[i];
          } else if (c[i] > b)
            b = c[i];
        }
        group_score[g] = per_group >= 2 ? a + b : a;
      }
      // Groups by descending score, ties in group order (a stable insertion sort: the
      // groups are few, and std::stable_sort allocates its buffer).
      for (int g = 0; g < G; ++g) {
        int i = g;
        for (; i > 0 && group_score[gorder[i - 1]] < group_score[g]; --i) gorder[i] = gorder[i - 1];
        gorder[i] = g;
      }
      std::fill(keep.begin(), keep.end(), 0);
      for (int i = 0; i < p.topk_group; ++i) keep[gorder[i]] = 1;
      for (int e = 0; e < E; ++e)
        if (!keep[e / per_group]) choice[e] = 0.0f;  // zero, not -inf, as the reference
    }
    // 4. top-k by choice score, descending, ties to the lower id
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int x, int y) {
      return choice[x] > choice[y] || (choice[x] == choice[y] && x < y);
    });
    // 5. weights from the unbiased scores, normalised, scaled
    int* idx = topk_idx + static_cast<size_t>(t) * K;
    float* w = topk_w + static_cast<size_t>(t) * K;
    float sum = 0;
    for (int j = 0; j < K; ++j) {
      idx[j] = order[j];
      w[j] = s[order[j]];
      sum += w[j];
    }
    if (p.norm_topk_prob) {
      const float denom = sum + 1e-20f;
      for (int j = 0; j < K; ++j) w[j] /= denom;
    }
    for (int j = 0; j < K; ++j) w[j] *= p.routed_scaling_factor;
  }
}

void simulate_perfect_eplb(int* topk_idx, int T, int top_k,
                           const comm::ExpertPlacement& placement) {
  for (int i = 0; i < T * top_k; ++i) topk_idx[i] = placement.first_local(i % placement.num_ranks);
}

}  // namespace dpep
