#include "comm/expert_exchange.h"

#include <cstring>
#include <stdexcept>

namespace dpep::comm {

DispatchLayout compute_layout(const int* topk_idx, int num_tokens, int topk,
                              const ExpertPlacement& placement) {
  DispatchLayout l;
  compute_layout(l, topk_idx, num_tokens, topk, placement);
  return l;
}

void compute_layout(DispatchLayout& l, const int* topk_idx, int num_tokens, int topk,
                    const ExpertPlacement& placement) {
  l.num_tokens = num_tokens;
  l.num_ranks = placement.num_ranks;
  l.tokens_per_rank.assign(placement.num_ranks, 0);
  l.tokens_per_expert.assign(placement.num_experts, 0);
  l.is_token_in_rank.assign(static_cast<size_t>(num_tokens) * placement.num_ranks, 0);
  for (int t = 0; t < num_tokens; ++t) {
    uint8_t* in_rank = &l.is_token_in_rank[static_cast<size_t>(t) * placement.num_ranks];
    for (int j = 0; j < topk; ++j) {
      int e = topk_idx[t * topk + j];
      if (e < 0) continue;
      if (e >= placement.num_experts) throw std::out_of_range("expert id out of range in topk_idx");
      l.tokens_per_expert[e]++;
      in_rank[placement.owner(e)] = 1;
    }
    for (int r = 0; r < placement.num_ranks; ++r) l.tokens_per_rank[r] += in_rank[r];
  }
}

int count_local_slots(const DispatchResult& r) {
  int n = 0;
  for (int v : r.topk_local) n += v >= 0;
  return n;
}

void weighted_sum_in_slot_order(const DispatchHandle& h, const std::vector<const float*>& slot_rows,
                                float* out) {
  const int H = h.hidden;
  for (int t = 0; t < h.num_tokens; ++t) {
    float* o = out + static_cast<size_t>(t) * H;
    std::memset(o, 0, sizeof(float) * H);
    for (int j = 0; j < h.topk; ++j) {
      const float* row = slot_rows[static_cast<size_t>(t) * h.topk + j];
      if (!row) continue;
      const float w = h.topk_weights[static_cast<size_t>(t) * h.topk + j];
      for (int c = 0; c < H; ++c) o[c] += w * row[c];
    }
  }
}

DispatchResult LoopbackExchange::dispatch(const float* x, int num_tokens, int hidden,
                                          const int* topk_idx, const float* topk_weights, int topk,
                                          const ExpertPlacement& placement) {
  DispatchResult r;
  dispatch_into(r, x, num_tokens, hidden, topk_idx, topk_weights, topk, placement);
  return r;
}

void LoopbackExchange::dispatch_into(DispatchResult& r, const float* x, int num_tokens, int hidden,
                                     const int* topk_idx, const float* topk_weights, int topk,
                                     const ExpertPlacement& placement) {
  if (placement.num_ranks != 1) throw std::invalid_argument("LoopbackExchange needs one rank");
  DispatchHandle& h = r.handle;
  h.num_tokens = num_tokens;
  h.hidden = hidden;
  h.topk = topk;
  h.placement = placement;
  const size_t nk = static_cast<size_t>(num_tokens) * topk;
  h.topk_idx.assign(topk_idx, topk_idx + nk);
  h.topk_weights.assign(topk_weights, topk_weights + nk);
  r.tokens_per_local_expert.assign(placement.num_experts, 0);
  h.send_token.clear();
  r.src_rank.clear();
  r.src_token.clear();
  r.x.clear();
  r.topk_local.clear();
  r.topk_weights.clear();
  // Every token with at least one valid slot is "sent" to rank 0.
  for (int t = 0; t < num_tokens; ++t) {
    bool any = false;
    for (int j = 0; j < topk; ++j) any |= topk_idx[t * topk + j] >= 0;
    if (!any) continue;
    h.send_token.push_back(t);
    r.src_rank.push_back(0);
    r.src_token.push_back(t);
    r.x.insert(r.x.end(), x + static_cast<size_t>(t) * hidden,
               x + static_cast<size_t>(t + 1) * hidden);
    for (int j = 0; j < topk; ++j) {
      int e = topk_idx[t * topk + j];
      r.topk_local.push_back(e);
      r.topk_weights.push_back(topk_weights[t * topk + j]);
      if (e >= 0) r.tokens_per_local_expert[e]++;
    }
  }
  r.num_recv = static_cast<int>(h.send_token.size());
  h.send_counts.assign(1, r.num_recv);
  h.recv_counts.assign(1, r.num_recv);
  h.recv_slot_counts.assign(1, count_local_slots(r));
}

void LoopbackExchange::combine(const float* y, DispatchHandle&& handle, float* out) {
  const DispatchHandle& h = handle;
  slot_rows_.assign(static_cast<size_t>(h.num_tokens) * h.topk, nullptr);
  size_t row = 0;
  for (int t : h.send_token)
    for (int j = 0; j < h.topk; ++j)
      if (h.topk_idx[static_cast<size_t>(t) * h.topk + j] >= 0)
        slot_rows_[static_cast<size_t>(t) * h.topk + j] = y + (row++) * h.hidden;
  weighted_sum_in_slot_order(h, slot_rows_, out);
}

}  // namespace dpep::comm
