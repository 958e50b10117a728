// The MoE layer: router, dispatch to the ranks owning the chosen experts, expert compute
// grouped by expert, combine (weighted sum at home, in slot order), plus the shared experts.
#pragma once
#include <cstdint>
#include <vector>

#include "comm/expert_exchange.h"
#include "model/mlp.h"
#include "model/router.h"
#include "model/run_state.h"

namespace dpep {

struct MoeWeights {
  std::vector<float> gate;        // [E, H] router
  std::vector<float> bias;        // [E] e_score_correction_bias, empty if absent
  std::vector<MlpWeights> local;  // experts [first_local, first_local + local.size())
  int first_local = 0;
  comm::ExpertPlacement placement;  // the placement the weights were loaded for
  bool has_shared = false;
  MlpWeights shared;  // width I * n_shared
};

// Time (seconds) and load counters of MoE layers, accumulated over calls.
struct MoeStats {
  double router_s = 0, dispatch_s = 0, experts_s = 0, combine_s = 0, shared_s = 0;
  std::vector<int64_t> local_expert_tokens;  // [local experts] (row, slot) pairs computed
  int64_t pairs_sent = 0;                    // token-expert pairs routed from this rank
};

struct MoeOptions {
  RouterParams router;
  bool simulate_perfect_eplb = false;
};

// x: [T, H] post-attention-normed input; out: [T, H] = routed + shared. Every intermediate
// (router, dispatch result, expert rows) lives in `rs` (sized for the OpenMP team).
void moe_forward(const MoeWeights& w, const MoeOptions& opt, int hidden, const float* x, int T,
                 comm::ExpertExchange& ex, float* out, RunState::Moe& rs, MoeStats* stats);

}  // namespace dpep
