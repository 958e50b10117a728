#include "model/moe.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "comm/clock.h"
#include "model/ops/ops.h"
#include "model/ops/parallel.h"

namespace dpep {
namespace {

// Fused experts (bf16 mode; every local expert fused with one group): the expert rows, sorted by
// expert, go through gate_up and then down as work items (expert, block of output columns) that
// threads take one at a time, so that one busy expert is split over the threads as well as many
// small ones. Each element is computed as one whole product computes it (packed_gemm_columns),
// whatever the split. Pair j's result lands in y row pairs[j].second.
void experts_fused(const MoeWeights& w, const comm::DispatchResult& r, const int* offset,
                   const std::pair<int, int>* pairs, int min_rows, int H, float* y,
                   RunState::Moe& rs) {
  const int nloc = static_cast<int>(w.local.size());
  const int ny = offset[nloc], I = w.local[0].inter(), g = w.local[0].group;
  const size_t cap = std::max(ny, min_rows);
  float* xs = fit(rs.xs, cap * H);  // rows in; after gate_up, the down products out
  float* gu = fit(rs.gu, cap * 2 * I);
  float* h = fit(rs.h, cap * I);
  float* ye = xs;
  for (int j = 0; j < ny; ++j)
    std::memcpy(xs + static_cast<size_t>(j) * H,
                r.x.data() + static_cast<size_t>(pairs[j].first) * H, sizeof(float) * H);
  int max_n = std::min(min_rows, 256);
  for (int e = 0; e < nloc; ++e) max_n = std::max(max_n, offset[e + 1] - offset[e]);
  for (RunState::Moe::Thread& th : rs.threads) {
    w.local[0].gate_up.reserve(th.gemm, max_n, 1);  // nested: one worker
    w.local[0].down.reserve(th.gemm, max_n, 1);
  }
  // Items of about 256 output columns: whole (gate, up) block pairs of gate_up; 8 tile pairs
  // of down.
  const int blocks = I / g, per_item = std::max(1, 128 / g);
  const int down_pairs = w.local[0].down.packed()->n_tiles() / 2;
  std::vector<RunState::Moe::Item>& items = rs.items;
  // Room for every expert busy in both products, so that no routing grows it inside a step.
  const int gu_items = (blocks + per_item - 1) / per_item, down_items = (down_pairs + 7) / 8;
  items.reserve(static_cast<size_t>(nloc) * std::max(gu_items, down_items));
  auto run = [&](auto&& body) {
    parallel_for_dynamic(static_cast<int>(items.size()), true, [&](int i) {
      RunState::Moe::Thread& th = rs.threads[omp_get_thread_num()];
      const RunState::Moe::Item& it = items[i];
      body(it, offset[it.expert], offset[it.expert + 1] - offset[it.expert], th.gemm);
    });
  };
  items.clear();
  for (int e = 0; e < nloc; ++e)
    if (offset[e + 1] > offset[e])
      for (int b = 0; b < blocks; b += per_item)
        items.push_back({e, b, std::min(blocks, b + per_item)});
  run([&](const RunState::Moe::Item& it, int row0, int n, GemmScratch& gemm) {
    const size_t r0 = static_cast<size_t>(row0);
    // Block b's gate and up are tile pairs [b g / 16, (b + 1) g / 16) of gate_up.
    w.local[it.expert].gate_up.forward_columns(xs + r0 * H, n, it.begin * g / 16, it.end * g / 16,
                                               gu + r0 * 2 * I, H, 2 * I, &gemm);
    for (int k = 0; k < n; ++k)
      silu_mul_blocks(gu + (r0 + k) * 2 * I, g, it.begin, it.end, h + (r0 + k) * I);
  });
  items.clear();
  for (int e = 0; e < nloc; ++e)
    if (offset[e + 1] > offset[e])
      for (int p = 0; p < down_pairs; p += 8) items.push_back({e, p, std::min(down_pairs, p + 8)});
  run([&](const RunState::Moe::Item& it, int row0, int n, GemmScratch& gemm) {
    const size_t r0 = static_cast<size_t>(row0);
    w.local[it.expert].down.forward_columns(h + r0 * I, n, it.begin, it.end, ye + r0 * H, I, H,
                                            &gemm);
  });
  for (int j = 0; j < ny; ++j)
    std::memcpy(y + static_cast<size_t>(pairs[j].second) * H, ye + static_cast<size_t>(j) * H,
                sizeof(float) * H);
}

// Float32 mode: one expert per item, gate and up as two products (mlp_forward).
void experts_unfused(const MoeWeights& w, const comm::DispatchResult& r, const int* offset,
                     const std::pair<int, int>* pairs, int min_rows, int H, float* y,
                     RunState::Moe& rs) {
  const int nloc = static_cast<int>(w.local.size());
  // Every thread's buffers fit the largest expert of this call, and small batches (decode) fit
  // all T rows, so that a routing change never grows them inside the loop.
  int max_n = min_rows;
  for (int e = 0; e < nloc; ++e) max_n = std::max(max_n, offset[e + 1] - offset[e]);
  for (RunState::Moe::Thread& th : rs.threads) {
    fit(th.xs, static_cast<size_t>(max_n) * H);
    fit(th.ys, static_cast<size_t>(max_n) * H);
    if (nloc > 0) w.local[0].reserve(th.scratch, th.gemm, max_n, 1);  // nested: one worker
  }
  parallel_for_dynamic(nloc, true, [&](int e) {
    RunState::Moe::Thread& th = rs.threads[omp_get_thread_num()];
    const std::pair<int, int>* rows = pairs + offset[e];
    const int n = offset[e + 1] - offset[e];
    if (n == 0) return;
    float* xs = th.xs.data();
    float* ys = th.ys.data();
    for (int k = 0; k < n; ++k)
      std::memcpy(&xs[static_cast<size_t>(k) * H], &r.x[static_cast<size_t>(rows[k].first) * H],
                  sizeof(float) * H);
    mlp_forward(w.local[e], xs, n, ys, th.scratch, &th.gemm);
    for (int k = 0; k < n; ++k)
      std::memcpy(&y[static_cast<size_t>(rows[k].second) * H], &ys[static_cast<size_t>(k) * H],
                  sizeof(float) * H);
  });
}

bool all_fused(const MoeWeights& w) {
  if (w.local.empty()) return false;
  for (const MlpWeights& m : w.local)
    if (!m.fused() || m.group != w.local[0].group || !m.down.is_bf16()) return false;
  return true;
}

}  // namespace

void moe_forward(const MoeWeights& w, const MoeOptions& opt, int hidden, const float* x, int T,
                 comm::ExpertExchange& ex, float* out, RunState::Moe& rs, MoeStats* stats) {
  const int E = opt.router.num_experts, K = opt.router.top_k, H = hidden;
  double t0 = now_seconds();
  // Router in float32: logits [T, E] = x W_gate^T, each row's logits independent of the batch.
  float* logits = fit(rs.router_logits, static_cast<size_t>(T) * E);
  matmul_xwt_fixed_order(x, T, H, w.gate.data(), E, logits);
  int* topk_idx = fit(rs.topk_idx, static_cast<size_t>(T) * K);
  float* topk_w = fit(rs.topk_w, static_cast<size_t>(T) * K);
  route(opt.router, logits, w.bias.empty() ? nullptr : w.bias.data(), T, topk_idx, topk_w,
        rs.route);
  const comm::ExpertPlacement& placement = w.placement;
  if (placement.num_experts != E || placement.num_ranks != ex.num_ranks())
    throw std::logic_error("moe_forward: weights were loaded for another expert placement");
  if (opt.simulate_perfect_eplb) simulate_perfect_eplb(topk_idx, T, K, placement);
  double t1 = now_seconds();

  // The run-state's result, reused layer after layer: dispatch_into keeps its buffers.
  comm::DispatchResult& r = rs.dispatch;
  ex.dispatch_into(r, x, T, H, topk_idx, topk_w, K, placement);
  double t2 = now_seconds();

  // y: one unweighted row per (received row, local slot), ordered by row then slot. The
  // (received row, y row) pairs of local expert e are pairs[offset[e] .. offset[e + 1]).
  const int nloc = static_cast<int>(w.local.size());
  const size_t nk = static_cast<size_t>(r.num_recv) * K;
  int* y_index = fit(rs.y_index, nk);
  int* count = fit(rs.count, nloc);
  int* offset = fit(rs.offset, static_cast<size_t>(nloc) + 1);
  std::fill_n(count, nloc, 0);
  int ny = 0;
  for (size_t i = 0; i < nk; ++i) {
    const int e = r.topk_local[i];
    y_index[i] = e < 0 ? -1 : ny++;
    if (e >= 0) ++count[e];
  }
  offset[0] = 0;
  for (int e = 0; e < nloc; ++e) offset[e + 1] = offset[e] + count[e];
  std::pair<int, int>* pairs = fit(rs.pairs, static_cast<size_t>(ny));
  std::fill_n(count, nloc, 0);
  for (int i = 0; i < r.num_recv; ++i)
    for (int j = 0; j < K; ++j) {
      const int e = r.topk_local[static_cast<size_t>(i) * K + j];
      if (e >= 0) pairs[offset[e] + count[e]++] = {i, y_index[static_cast<size_t>(i) * K + j]};
    }
  float* y = fit(rs.y, static_cast<size_t>(ny) * H);
  if (all_fused(w)) {
    experts_fused(w, r, offset, pairs, T * K, H, y, rs);
  } else {
    experts_unfused(w, r, offset, pairs, std::min(T, 256), H, y, rs);
  }
  double t3 = now_seconds();
  // combine reads the handle and leaves it in r, so its buffers serve the next layer.
  ex.combine(y, std::move(r.handle), out);
  double t4 = now_seconds();
  if (w.has_shared && T > 0) {
    const size_t n = static_cast<size_t>(T) * H;
    float* shared = fit(rs.shared, n);
    mlp_forward(w.shared, x, T, shared, rs.mlp_scratch, &rs.gemm);
    for (size_t i = 0; i < n; ++i) out[i] += shared[i];
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
    for (int e = 0; e < nloc; ++e) stats->local_expert_tokens[e] += offset[e + 1] - offset[e];
    for (size_t i = 0; i < static_cast<size_t>(T) * K; ++i) stats->pairs_sent += topk_idx[i] >= 0;
  }
}

}  // namespace dpep
