#include "model/moe.h"

#include <chrono>
#include <cstring>

#include "comm/clock.h"
#include "model/ops/ops.h"

namespace dpep {

void moe_forward(const MoeWeights& w, const MoeOptions& opt, int hidden, const float* x, int T,
                 comm::ExpertExchange& ex, float* out, MoeStats* stats) {
  const int E = opt.router.num_experts, K = opt.router.top_k, H = hidden;
  double t0 = now_seconds();
  // Router in float32: logits [T, E] = x W_gate^T, each row's logits independent of the batch.
  std::vector<float> logits(static_cast<size_t>(T) * E);
  matmul_xwt_fixed_order(x, T, H, w.gate.data(), E, logits.data());
  std::vector<int> topk_idx(static_cast<size_t>(T) * K);
  std::vector<float> topk_w(static_cast<size_t>(T) * K);
  route(opt.router, logits.data(), w.bias.empty() ? nullptr : w.bias.data(), T, topk_idx.data(),
        topk_w.data());
  const comm::ExpertPlacement& placement = w.placement;
  if (placement.num_experts != E || placement.num_ranks != ex.num_ranks())
    throw std::logic_error("moe_forward: weights were loaded for another expert placement");
  if (opt.simulate_perfect_eplb) simulate_perfect_eplb(topk_idx.data(), T, K, placement);
  double t1 = now_seconds();

  // One result per engine thread, reused layer after layer: dispatch_into keeps its buffers.
  // (A reference, so that the expert threads below read the engine thread's result.)
  thread_local comm::DispatchResult engine_thread_result;
  comm::DispatchResult& r = engine_thread_result;
  ex.dispatch_into(r, x, T, H, topk_idx.data(), topk_w.data(), K, placement);
  double t2 = now_seconds();

  // y: one unweighted row per (received row, local slot), ordered by row then slot.
  const int nloc = static_cast<int>(w.local.size());
  std::vector<int> y_index(static_cast<size_t>(r.num_recv) * K, -1);
  std::vector<std::vector<std::pair<int, int>>> by_expert(nloc);  // (recv row, y row)
  int ny = 0;
  for (int i = 0; i < r.num_recv; ++i)
    for (int j = 0; j < K; ++j) {
      const int e = r.topk_local[static_cast<size_t>(i) * K + j];
      if (e < 0) continue;
      by_expert[e].emplace_back(i, ny);
      y_index[static_cast<size_t>(i) * K + j] = ny++;
    }
  std::vector<float> y(static_cast<size_t>(ny) * H);
#pragma omp parallel
  {
    std::vector<float> xs, ys, scratch;
#pragma omp for schedule(dynamic, 1)
    for (int e = 0; e < nloc; ++e) {
      const auto& rows = by_expert[e];
      const int n = static_cast<int>(rows.size());
      if (n == 0) continue;
      xs.resize(static_cast<size_t>(n) * H);
      ys.resize(static_cast<size_t>(n) * H);
      for (int k = 0; k < n; ++k)
        std::memcpy(&xs[static_cast<size_t>(k) * H], &r.x[static_cast<size_t>(rows[k].first) * H],
                    sizeof(float) * H);
      mlp_forward(w.local[e], xs.data(), n, ys.data(), scratch);
      for (int k = 0; k < n; ++k)
        std::memcpy(&y[static_cast<size_t>(rows[k].second) * H], &ys[static_cast<size_t>(k) * H],
                    sizeof(float) * H);
    }
  }
  double t3 = now_seconds();
  ex.combine(y.data(), std::move(r.handle), out);
  double t4 = now_seconds();
  if (w.has_shared && T > 0) {
    std::vector<float> shared(static_cast<size_t>(T) * H), scratch;
    mlp_forward(w.shared, x, T, shared.data(), scratch);
    for (size_t i = 0; i < shared.size(); ++i) out[i] += shared[i];
  }
  double t5 = now_seconds();
  if (stats) {
    stats->router_s += t1 - t0;
    stats->dispatch_s += t2 - t1;
    stats->experts_s += t3 - t2;
    stats->combine_s += t4 - t3;
    stats->shared_s += t5 - t4;
    if (stats->local_expert_tokens.size() != static_cast<size_t>(nloc))
      stats->local_expert_tokens.assign(nloc, 0);
    for (int e = 0; e < nloc; ++e) stats->local_expert_tokens[e] += by_expert[e].size();
    for (int v : topk_idx) stats->pairs_sent += v >= 0;
  }
}

}  // namespace dpep
