// The DeepSeek-V3 router (noaux_tc): sigmoid scores, correction bias used only to choose,
// group-limited top-k (a group scores the sum of its best two), weights from the unbiased
// scores, normalised and scaled. Mirrors the reference step for step.
#pragma once
#include <vector>

#include "comm/expert_exchange.h"
#include "model/config.h"

namespace dpep {

struct RouterParams {
  int num_experts = 0, top_k = 0, n_group = 1, topk_group = 1;
  bool use_sigmoid = true;    // scoring_func
  bool group_limited = true;  // noaux_tc / group_limited_greedy
  bool norm_topk_prob = true;
  float routed_scaling_factor = 1.0f;
  static RouterParams from_config(const ModelConfig& c);
};

// The router's per-call buffers, kept by the caller (grow-only: a warm call allocates nothing).
struct RouteScratch {
  std::vector<float> s, choice, group_score;
  std::vector<int> order, gorder;
  std::vector<char> keep;
};

// logits: [T, E] router logits (float32). bias: [E] or nullptr.
// topk_idx/topk_w: [T, top_k], slots ordered by descending selection score (ties: lower id).
void route(const RouterParams& p, const float* logits, const float* bias, int T, int* topk_idx,
           float* topk_w, RouteScratch& scratch);
inline void route(const RouterParams& p, const float* logits, const float* bias, int T,
                  int* topk_idx, float* topk_w) {
  RouteScratch scratch;
  route(p, logits, bias, T, topk_idx, topk_w, scratch);
}

// --simulate-perfect-eplb: idx[t][j] = ((t*k + j) mod R) * (E / R); the weights stay.
void simulate_perfect_eplb(int* topk_idx, int T, int top_k, const comm::ExpertPlacement& placement);

}  // namespace dpep
