#include "comm/mpi_exchange.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

#include "comm/mpi_watchdog.h"

namespace dpep::comm {
namespace {

// bf16 = upper 16 bits of f32, rounded to nearest even; NaN stays a (quiet) NaN.
uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float bf16_to_f32(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

size_t align4(size_t n) {
  return (n + 3) & ~size_t{3};
}

// Rows are a contiguous byte type; payload and meta are trivially copyable host data and all
// ranks share one architecture (no MPI type conversion needed).
MPI_Datatype contiguous_bytes(size_t n) {
  MPI_Datatype t;
  MPI_Type_contiguous(static_cast<int>(n), MPI_BYTE, &t);
  MPI_Type_commit(&t);
  return t;
}

// v.resize(n) for a buffer whose contents are about to be overwritten: when it must move to
// grow, the old block is freed first and nothing is copied, and the new one has a quarter more
// room, so that slightly larger steps in a row do not move it each time.
template <class T>
void resize_scratch(std::vector<T>& v, size_t n) {
  if (v.capacity() < n) {
    std::vector<T>().swap(v);
    v.reserve(n + n / 4);
  }
  v.resize(n);
}

void exclusive_prefix(const int* counts, int n, std::vector<int>& displs) {
  displs.resize(n);
  int acc = 0;
  for (int i = 0; i < n; ++i) {
    displs[i] = acc;
    acc += counts[i];
  }
}

}  // namespace

// Wire shapes for one (hidden, topk). Meta record: {int32 src_token, int32 local[topk],
// f32 weight[topk]}. Packed row = payload padded to 4 bytes, then meta.
struct MpiExchange::RowTypes {
  int hidden = -1, topk = -1;
  size_t pay_bytes = 0, meta_bytes = 0, packed_bytes = 0;
  MPI_Datatype pay = MPI_DATATYPE_NULL, meta = MPI_DATATYPE_NULL, packed = MPI_DATATYPE_NULL;
  MPI_Datatype y_row = MPI_DATATYPE_NULL;  // [hidden] f32, combine
  void free() {
    for (MPI_Datatype* t : {&pay, &meta, &packed, &y_row})
      if (*t != MPI_DATATYPE_NULL) MPI_Type_free(t);
  }
};

std::byte* MpiExchange::Arena::get(size_t bytes) {
  if (bytes > capacity) {  // the old block goes first; a quarter more room than asked
    data.reset();
    capacity = bytes + bytes / 4;
    data = std::make_unique_for_overwrite<std::byte[]>(capacity);
  }
  return data.get();
}

MpiExchange::MpiExchange(MPI_Comm comm, MpiExchangeOptions options) : opt_(options) {
  MPI_Comm_dup(comm, &comm_);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  types_ = std::make_unique<RowTypes>();
}

MpiExchange::~MpiExchange() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  types_->free();
  MPI_Comm_free(&comm_);
}

size_t MpiExchange::dispatch_row_bytes(int hidden, int topk) const {
  const size_t pay = static_cast<size_t>(hidden) * (opt_.payload == Payload::kBF16 ? 2 : 4);
  const size_t meta = 4 * (1 + 2 * static_cast<size_t>(topk));
  return opt_.meta == MetaTransport::kPacked ? align4(pay) + meta : pay + meta;
}

const MpiExchange::RowTypes& MpiExchange::row_types(int hidden, int topk) {
  RowTypes& t = *types_;
  if (t.hidden == hidden && t.topk == topk) return t;
  t.free();
  t.hidden = hidden;
  t.topk = topk;
  t.pay_bytes = static_cast<size_t>(hidden) * (opt_.payload == Payload::kBF16 ? 2 : 4);
  t.meta_bytes = 4 * (1 + 2 * static_cast<size_t>(topk));
  t.packed_bytes = align4(t.pay_bytes) + t.meta_bytes;
  t.pay = contiguous_bytes(t.pay_bytes);
  t.meta = contiguous_bytes(t.meta_bytes);
  t.packed = contiguous_bytes(t.packed_bytes);
  MPI_Type_contiguous(hidden, MPI_FLOAT, &t.y_row);
  MPI_Type_commit(&t.y_row);
  return t;
}

DispatchResult MpiExchange::dispatch(const float* x, int num_tokens, int hidden,
                                     const int* topk_idx, const float* topk_weights, int topk,
                                     const ExpertPlacement& placement) {
  DispatchResult r;
  dispatch_into(r, x, num_tokens, hidden, topk_idx, topk_weights, topk, placement);
  return r;
}

void MpiExchange::dispatch_into(DispatchResult& r, const float* x, int num_tokens, int hidden,
                                const int* topk_idx, const float* topk_weights, int topk,
                                const ExpertPlacement& placement) {
  const int R = size_;
  if (placement.num_ranks != R || placement.num_experts <= 0 || placement.num_experts % R != 0)
    throw std::invalid_argument(
        fmt::format("MpiExchange: {} experts cannot be split evenly "
                    "over {} ranks (placement says {} ranks)",
                    placement.num_experts, R, placement.num_ranks));
  if (num_tokens < 0 || hidden <= 0 || topk <= 0)
    throw std::invalid_argument("MpiExchange: bad dispatch shape");
  const RowTypes& ty = row_types(hidden, topk);
  const bool packed = opt_.meta == MetaTransport::kPacked;
  const bool bf16 = opt_.payload == Payload::kBF16;
  const size_t H = hidden, K = topk;

  // 1. Layout: which token goes to which rank (once per rank).
  DispatchLayout& layout = layout_;  // reused: its vectors keep their capacity
  compute_layout(layout, topk_idx, num_tokens, topk, placement);
  DispatchHandle& h = r.handle;
  h.num_tokens = num_tokens;
  h.hidden = hidden;
  h.topk = topk;
  h.placement = placement;
  h.topk_idx.assign(topk_idx, topk_idx + num_tokens * K);
  h.topk_weights.assign(topk_weights, topk_weights + num_tokens * K);
  h.send_counts.assign(layout.tokens_per_rank.begin(), layout.tokens_per_rank.end());
  h.send_token.clear();
  for (int dst = 0; dst < R; ++dst)
    for (int t = 0; t < num_tokens; ++t)
      if (layout.is_token_in_rank[static_cast<size_t>(t) * R + dst]) h.send_token.push_back(t);
  const size_t num_send = h.send_token.size();

  // 2. Counts: {rows, hidden, topk} to every peer.
  hdr_send_.resize(3 * R);
  hdr_recv_.resize(3 * R);
  for (int p = 0; p < R; ++p) {
    hdr_send_[3 * p] = h.send_counts[p];
    hdr_send_[3 * p + 1] = hidden;
    hdr_send_[3 * p + 2] = topk;
  }
  {
    Watchdog::Scope guard(opt_.watchdog, "dispatch counts alltoall");
    MPI_Alltoall(hdr_send_.data(), 3, MPI_INT, hdr_recv_.data(), 3, MPI_INT, comm_);
  }
  h.recv_counts.resize(R);
  for (int p = 0; p < R; ++p) {
    // Every rank sees every rank's shape, so a mismatch throws on all ranks alike.
    if (hdr_recv_[3 * p + 1] != hidden || hdr_recv_[3 * p + 2] != topk)
      throw std::invalid_argument(fmt::format(
          "MpiExchange: rank {} dispatches hidden {} topk {}, rank {} hidden {} topk {}", p,
          hdr_recv_[3 * p + 1], hdr_recv_[3 * p + 2], rank_, hidden, topk));
    h.recv_counts[p] = hdr_recv_[3 * p];
  }
  int num_recv = 0;
  for (int c : h.recv_counts) num_recv += c;

  // 3. Pack rows grouped by destination. Packed: one arena of [rows, packed_bytes];
  //    separate: payload arena [rows, pay_bytes] and meta arena [rows, meta_bytes].
  const size_t pay_stride = packed ? ty.packed_bytes : ty.pay_bytes;
  const size_t meta_stride = packed ? ty.packed_bytes : ty.meta_bytes;
  std::byte* spay = send_pay_.get(num_send * pay_stride);
  std::byte* smeta = packed ? spay + align4(ty.pay_bytes) : send_meta_.get(num_send * meta_stride);
  const int per_rank = placement.experts_per_rank();
  if (bf16) bf16_row_.resize(H);
  for (size_t i = 0, dst = 0, seg_end = 0; i < num_send; ++i) {
    while (i >= seg_end) seg_end += h.send_counts[dst++];
    const int owner = static_cast<int>(dst) - 1;
    const int t = h.send_token[i];
    const float* xr = x + t * H;
    std::byte* pay = spay + i * pay_stride;
    if (bf16) {  // convert into a row scratch (vectorises), then one copy
      for (size_t c = 0; c < H; ++c) bf16_row_[c] = f32_to_bf16(xr[c]);
      std::memcpy(pay, bf16_row_.data(), ty.pay_bytes);
    } else {
      std::memcpy(pay, xr, ty.pay_bytes);
    }
    std::byte* meta = smeta + i * meta_stride;  // {src_token, local[K], weight[K]}
    std::memcpy(meta, &t, 4);
    for (size_t j = 0; j < K; ++j) {
      const int e = topk_idx[t * K + j];
      const int local = (e >= 0 && placement.owner(e) == owner) ? placement.local_index(e) : -1;
      std::memcpy(meta + 4 * (1 + j), &local, 4);
    }
    std::memcpy(meta + 4 * (1 + K), topk_weights + t * K, 4 * K);
  }
  last_dispatch_bytes_ = num_send * dispatch_row_bytes(hidden, topk);

  // 4. Payload (and meta) all-to-all; counts are rows. Unpacked f32 payload lands in r.x.
  exclusive_prefix(h.send_counts.data(), R, sdispl_);
  exclusive_prefix(h.recv_counts.data(), R, rdispl_);
  r.num_recv = num_recv;
  resize_scratch(r.x, num_recv * H);
  std::byte* rpay;
  std::byte* rmeta;
  if (packed) {
    rpay = recv_pay_.get(num_recv * ty.packed_bytes);
    rmeta = rpay + align4(ty.pay_bytes);
    Watchdog::Scope guard(opt_.watchdog, "dispatch alltoallv");
    MPI_Alltoallv(spay, h.send_counts.data(), sdispl_.data(), ty.packed, rpay, h.recv_counts.data(),
                  rdispl_.data(), ty.packed, comm_);
  } else {
    rpay = bf16 ? recv_pay_.get(num_recv * ty.pay_bytes) : reinterpret_cast<std::byte*>(r.x.data());
    rmeta = recv_meta_.get(num_recv * ty.meta_bytes);
    Watchdog::Scope guard(opt_.watchdog, "dispatch alltoallv");
    MPI_Alltoallv(spay, h.send_counts.data(), sdispl_.data(), ty.pay, rpay, h.recv_counts.data(),
                  rdispl_.data(), ty.pay, comm_);
    MPI_Alltoallv(smeta, h.send_counts.data(), sdispl_.data(), ty.meta, rmeta, h.recv_counts.data(),
                  rdispl_.data(), ty.meta, comm_);
  }

  // 5. Unpack: rows by source rank ascending, then source token ascending.
  r.topk_local.resize(num_recv * K);
  r.topk_weights.resize(num_recv * K);
  r.src_rank.resize(num_recv);
  r.src_token.resize(num_recv);
  r.tokens_per_local_expert.assign(per_rank, 0);
  h.recv_slot_counts.assign(R, 0);
  for (int i = 0, src = 0, seg_end = 0; i < num_recv; ++i) {
    while (i >= seg_end) seg_end += h.recv_counts[src++];
    const std::byte* pay = rpay + i * pay_stride;
    float* xr = r.x.data() + i * H;
    if (bf16) {
      std::memcpy(bf16_row_.data(), pay, ty.pay_bytes);
      for (size_t c = 0; c < H; ++c) xr[c] = bf16_to_f32(bf16_row_[c]);
    } else if (packed) {
      std::memcpy(xr, pay, ty.pay_bytes);
    }
    const std::byte* meta = rmeta + i * meta_stride;
    r.src_rank[i] = src - 1;
    std::memcpy(&r.src_token[i], meta, 4);
    std::memcpy(&r.topk_local[i * K], meta + 4, 4 * K);
    std::memcpy(&r.topk_weights[i * K], meta + 4 * (1 + K), 4 * K);
    for (size_t j = 0; j < K; ++j) {
      const int local = r.topk_local[i * K + j];
      if (local < -1 || local >= per_rank)
        throw std::runtime_error(fmt::format("MpiExchange: corrupt local expert id {}", local));
      if (local < 0) continue;
      r.tokens_per_local_expert[local]++;
      h.recv_slot_counts[src - 1]++;
    }
  }
}

void MpiExchange::combine(const float* y, DispatchHandle&& handle, float* out) {
  const DispatchHandle& h = handle;  // read only: its vectors stay with the caller for reuse
  const int R = size_;
  if (h.placement.num_ranks != R) throw std::invalid_argument("MpiExchange: foreign handle");
  const RowTypes& ty = row_types(h.hidden, h.topk);
  const size_t H = h.hidden, K = h.topk;

  // Home side: slot rows expected back from rank r = slots of rows sent to r that r owns.
  ccount_.assign(R, 0);
  for (int r = 0, i = 0; r < R; ++r)
    for (int n = 0; n < h.send_counts[r]; ++n, ++i)
      for (size_t j = 0; j < K; ++j) {
        const int e = h.topk_idx[h.send_token[i] * K + j];
        ccount_[r] += e >= 0 && h.placement.owner(e) == r;
      }
  int num_back = 0;
  for (int c : ccount_) num_back += c;
  exclusive_prefix(ccount_.data(), R, cdispl_);
  // Expert side: y is already grouped by source rank (rows were received in that order).
  exclusive_prefix(h.recv_slot_counts.data(), R, sdispl_);
  float* back = reinterpret_cast<float*>(combine_recv_.get(num_back * H * sizeof(float)));
  size_t sent_slots = 0;
  for (int c : h.recv_slot_counts) sent_slots += c;
  last_combine_bytes_ = sent_slots * H * sizeof(float);
  {
    Watchdog::Scope guard(opt_.watchdog, "combine alltoallv");
    MPI_Alltoallv(y, h.recv_slot_counts.data(), sdispl_.data(), ty.y_row, back, ccount_.data(),
                  cdispl_.data(), ty.y_row, comm_);
  }

  // Point each (token, slot) at its returned row, then sum in slot order.
  slot_rows_.assign(static_cast<size_t>(h.num_tokens) * K, nullptr);
  const float* row = back;
  for (int r = 0, i = 0; r < R; ++r)
    for (int n = 0; n < h.send_counts[r]; ++n, ++i) {
      const size_t t = h.send_token[i];
      for (size_t j = 0; j < K; ++j) {
        const int e = h.topk_idx[t * K + j];
        if (e < 0 || h.placement.owner(e) != r) continue;
        slot_rows_[t * K + j] = row;
        row += H;
      }
    }
  weighted_sum_in_slot_order(h, slot_rows_, out);
}

}  // namespace dpep::comm
