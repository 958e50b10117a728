// DeepEP-shaped exchange of MoE tokens between ranks. No MPI and no model knowledge here:
// the MPI implementation lives in mpi_exchange.{h,cpp}; LoopbackExchange serves one process.
//
// Protocol of one MoE layer (every rank calls both, in this order, even with 0 tokens):
//   r = ex.dispatch(x, T, H, topk_idx, topk_weights, K, placement);
//   for each local expert e: compute rows r.x[i] whose r.topk_local[i][j] == e  -> y rows
//   ex.combine(y, std::move(r.handle), out);
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace dpep::comm {

// Routed experts split into contiguous equal shards: rank r owns [r*E/R, (r+1)*E/R). The one
// statement of that rule: the loader (which experts a rank reads), the exchange (where a token
// goes) and the tests all ask this struct.
struct ExpertPlacement {
  int num_experts = 0;
  int num_ranks = 1;
  int experts_per_rank() const { return num_experts / num_ranks; }
  int owner(int expert) const { return expert / experts_per_rank(); }
  int first_local(int rank) const { return rank * experts_per_rank(); }
  int local_index(int expert) const { return expert % experts_per_rank(); }  // on its owner
};

// Counting step, separate from moving payload (DeepEP get_dispatch_layout).
struct DispatchLayout {
  int num_tokens = 0;
  int num_ranks = 0;
  std::vector<int> tokens_per_rank;       // [num_ranks] a token counts once per rank
  std::vector<int> tokens_per_expert;     // [num_experts]
  std::vector<uint8_t> is_token_in_rank;  // [num_tokens, num_ranks]
};
// topk_idx: [num_tokens, topk], -1 = unused slot.
DispatchLayout compute_layout(const int* topk_idx, int num_tokens, int topk,
                              const ExpertPlacement& placement);
// The same into `l`, reusing its vectors' capacity.
void compute_layout(DispatchLayout& l, const int* topk_idx, int num_tokens, int topk,
                    const ExpertPlacement& placement);

// Routing state of one dispatch; combine consumes it. Move-only.
struct DispatchHandle {
  int num_tokens = 0;  // tokens on this (home) rank
  int hidden = 0;
  int topk = 0;
  ExpertPlacement placement;  // the placement dispatch routed with (combine needs owners)
  // Home side: what went where.
  std::vector<int> send_counts;  // [num_ranks] rows sent to each rank
  std::vector<int> send_token;   // [sum send_counts] local token of each sent row (by rank, token)
  std::vector<int> topk_idx;     // [num_tokens, topk] copy of the routing, global expert ids
  std::vector<float> topk_weights;  // [num_tokens, topk]
  // Expert side: what came from where.
  std::vector<int> recv_counts;       // [num_ranks] rows received from each rank
  std::vector<int> recv_slot_counts;  // [num_ranks] local (row, slot) pairs per source rank
  DispatchHandle() = default;
  DispatchHandle(DispatchHandle&&) = default;
  DispatchHandle& operator=(DispatchHandle&&) = default;
  DispatchHandle(const DispatchHandle&) = delete;
  DispatchHandle& operator=(const DispatchHandle&) = delete;
};

struct DispatchResult {
  int num_recv = 0;                 // rows received (one per (source token, this rank))
  std::vector<float> x;             // [num_recv, hidden] by source rank ascending, token ascending
  std::vector<int> topk_local;      // [num_recv, topk] local expert id in [0, local) or -1
  std::vector<float> topk_weights;  // [num_recv, topk] router weights as sent
  std::vector<int> src_rank;        // [num_recv]
  std::vector<int> src_token;       // [num_recv] token index on its home rank
  std::vector<int> tokens_per_local_expert;  // [experts_per_rank]
  DispatchHandle handle;
};

class ExpertExchange {
 public:
  virtual ~ExpertExchange() = default;
  virtual int rank() const = 0;
  virtual int num_ranks() const = 0;

  // Collective. x: [num_tokens, hidden]; topk_idx/topk_weights: [num_tokens, topk].
  // Each token's row travels at most once to each rank owning one of its experts.
  virtual DispatchResult dispatch(const float* x, int num_tokens, int hidden, const int* topk_idx,
                                  const float* topk_weights, int topk,
                                  const ExpertPlacement& placement) = 0;

  // Same as dispatch, but writes into `out`, reusing the capacity of its vectors (a warm
  // layer loop then allocates only the small handle). Default: out = dispatch(...).
  virtual void dispatch_into(DispatchResult& out, const float* x, int num_tokens, int hidden,
                             const int* topk_idx, const float* topk_weights, int topk,
                             const ExpertPlacement& placement) {
    out = dispatch(x, num_tokens, hidden, topk_idx, topk_weights, topk, placement);
  }

  // Collective. y: one UNWEIGHTED expert output row per (received row r, slot j with
  // topk_local[r][j] >= 0), ordered by r then j: [num_slots, hidden]. Implementations only
  // read the handle (its vectors stay with the caller, to be reused by dispatch_into).
  // out: [num_tokens, hidden], overwritten with sum_j topk_weights[t][j] * y(t, j), summed at
  // the home rank in slot order j = 0..topk-1. The result is therefore bitwise independent of
  // the number of ranks, the placement and the order in which messages arrive.
  virtual void combine(const float* y, DispatchHandle&& handle, float* out) = 0;
};

// Number of y rows combine expects for a dispatch result.
int count_local_slots(const DispatchResult& r);

// Single-process exchange: every expert is local. Same contract, no copies beyond the API's.
class LoopbackExchange final : public ExpertExchange {
 public:
  int rank() const override { return 0; }
  int num_ranks() const override { return 1; }
  DispatchResult dispatch(const float* x, int num_tokens, int hidden, const int* topk_idx,
                          const float* topk_weights, int topk,
                          const ExpertPlacement& placement) override;
  // Reuses the capacity of out's vectors: a warm layer loop allocates nothing.
  void dispatch_into(DispatchResult& out, const float* x, int num_tokens, int hidden,
                     const int* topk_idx, const float* topk_weights, int topk,
                     const ExpertPlacement& placement) override;
  void combine(const float* y, DispatchHandle&& handle, float* out) override;

 private:
  std::vector<const float*> slot_rows_;  // combine scratch [num_tokens, topk]
};

// Shared by every implementation: the home-side weighted sum in slot order.
// slot_rows[t * topk + j] is the y row of token t, slot j (null for an unused slot);
// out[t] = sum over j = 0..topk-1, in that order, of topk_weights[t][j] * slot_rows[t * topk + j].
void weighted_sum_in_slot_order(const DispatchHandle& h, const std::vector<const float*>& slot_rows,
                                float* out);

}  // namespace dpep::comm
