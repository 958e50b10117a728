// ExpertExchange over MPI: MPI_Alltoall of row counts + MPI_Alltoallv of rows (DeepEP normal
// mode on CPUs). Same contract as expert_exchange.h; see docs/comm.md for the wire format.
//
// dispatch, per call (all ranks, same order, 0 tokens allowed):
//   1. layout: token t goes once to each rank owning one of its experts; rows grouped by
//      destination rank, tokens ascending.
//   2. MPI_Alltoall of {rows, hidden, topk} per peer (hidden/topk checked equal everywhere).
//   3. MPI_Alltoallv of rows, one contiguous datatype per row (counts are rows).
//      Row = payload [hidden] f32 (or bf16) + meta {int32 src_token, int32 local_id[topk],
//      f32 weight[topk]}, packed in the row or sent in a second alltoallv (MetaTransport).
// combine: the reverse MPI_Alltoallv of y rows [num_slots, hidden] f32 (no count exchange:
// both sides know the counts from the handle), then weighted_sum_in_slot_order at home.
//
// Buffers: send/recv arenas live in the exchange and only grow; dispatch_into() also reuses
// the caller's DispatchResult vectors, so a warm layer loop allocates only the small handle.
// A handle is valid for combine on the exchange that made it, until that exchange is gone.
// Threading: not thread-safe; call from the MPI (engine) thread.
#pragma once
#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "comm/expert_exchange.h"

namespace dpep::comm {

class Watchdog;

enum class Payload { kF32, kBF16 };  // bf16 halves dispatch bytes but rounds x (not exact)
enum class MetaTransport { kPacked, kSeparate };

struct MpiExchangeOptions {
  Payload payload = Payload::kF32;
  MetaTransport meta = MetaTransport::kSeparate;
  Watchdog* watchdog = nullptr;  // optional, not owned: guards each collective
};

class MpiExchange final : public ExpertExchange {
 public:
  // Collective over comm (duplicated, so exchange traffic never mixes with other traffic).
  explicit MpiExchange(MPI_Comm comm, MpiExchangeOptions options = {});
  ~MpiExchange() override;
  MpiExchange(const MpiExchange&) = delete;
  MpiExchange& operator=(const MpiExchange&) = delete;

  int rank() const override { return rank_; }
  int num_ranks() const override { return size_; }

  DispatchResult dispatch(const float* x, int num_tokens, int hidden, const int* topk_idx,
                          const float* topk_weights, int topk,
                          const ExpertPlacement& placement) override;
  // As dispatch, writing into `out` and reusing its vectors' capacity (no page faults on
  // [num_recv, hidden] once warm; bench_dispatch measures the difference).
  void dispatch_into(DispatchResult& out, const float* x, int num_tokens, int hidden,
                     const int* topk_idx, const float* topk_weights, int topk,
                     const ExpertPlacement& placement) override;
  void combine(const float* y, DispatchHandle&& handle, float* out) override;

  // Bytes one dispatched row occupies on the wire (payload + meta), for benchmarks and logs.
  size_t dispatch_row_bytes(int hidden, int topk) const;
  // Bytes this rank sent in the last dispatch (rows + meta) and the last combine.
  size_t last_dispatch_bytes() const { return last_dispatch_bytes_; }
  size_t last_combine_bytes() const { return last_combine_bytes_; }

 private:
  struct Arena {  // grow-only byte buffer, never zeroed
    std::unique_ptr<std::byte[]> data;
    size_t capacity = 0;
    std::byte* get(size_t bytes);
  };
  struct RowTypes;  // MPI datatypes for one (hidden, topk) shape
  const RowTypes& row_types(int hidden, int topk);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  MpiExchangeOptions opt_;
  std::unique_ptr<RowTypes> types_;
  Arena send_pay_, send_meta_, recv_pay_, recv_meta_, combine_recv_;
  // Small per-call scratch, kept to avoid reallocation: [size_] counts and displacements.
  std::vector<int> hdr_send_, hdr_recv_, sdispl_, rdispl_, ccount_, cdispl_;
  std::vector<const float*> slot_rows_;  // [num_tokens, topk]
  DispatchLayout layout_;                // dispatch's layout, reused
  std::vector<uint16_t> bf16_row_;       // [hidden] conversion scratch
  size_t last_dispatch_bytes_ = 0, last_combine_bytes_ = 0;
};

}  // namespace dpep::comm
