#include "comm/mpi_control.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <optional>
#include <stdexcept>
#include <thread>

#include "comm/mpi_abort.h"
#include "comm/mpi_watchdog.h"

namespace dpep::comm {
namespace {

// Wire record of the step agreement: [kFields] int64, reduced field by field.
enum Field : int {
  kStepMin,
  kStepMax,
  kTokensSum,
  kTokensMax,
  kSeqsSum,
  kSeqsMax,
  kWorkRanks,
  kErrorRankMin,
  kErrorRanks,
  kStop,
  kFlagsOr,
  kFields
};

void reduce_step(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const int64_t*>(in);
  auto* b = static_cast<int64_t*>(inout);
  for (int i = 0; i < *len; ++i, a += kFields, b += kFields) {
    b[kStepMin] = std::min(a[kStepMin], b[kStepMin]);
    b[kStepMax] = std::max(a[kStepMax], b[kStepMax]);
    b[kTokensSum] += a[kTokensSum];
    b[kTokensMax] = std::max(a[kTokensMax], b[kTokensMax]);
    b[kSeqsSum] += a[kSeqsSum];
    b[kSeqsMax] = std::max(a[kSeqsMax], b[kSeqsMax]);
    b[kWorkRanks] += a[kWorkRanks];
    b[kErrorRankMin] = std::min(a[kErrorRankMin], b[kErrorRankMin]);
    b[kErrorRanks] += a[kErrorRanks];
    b[kStop] += a[kStop];
    b[kFlagsOr] |= a[kFlagsOr];
  }
}

int checked_int(size_t n, const char* what) {
  if (n > static_cast<size_t>(INT_MAX))
    abort_job(fmt::format("{}: {} bytes exceed INT_MAX", what, n));
  return static_cast<int>(n);
}

}  // namespace

MpiControlPlane::MpiControlPlane(MPI_Comm comm, int root, Watchdog* watchdog)
    : root_(root), watchdog_(watchdog) {
  MPI_Comm_dup(comm, &comm_);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  if (root_ < 0 || root_ >= size_)
    throw std::invalid_argument("MpiControlPlane: root out of range");
  MPI_Type_contiguous(kFields, MPI_INT64_T, &step_type_);
  MPI_Type_commit(&step_type_);
  MPI_Op_create(&reduce_step, /*commute=*/1, &step_op_);
}

MpiControlPlane::~MpiControlPlane() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  MPI_Op_free(&step_op_);
  MPI_Type_free(&step_type_);
  MPI_Comm_free(&comm_);
}

StepGlobal MpiControlPlane::agree(const StepLocal& mine) {
  int64_t rec[kFields];
  rec[kStepMin] = rec[kStepMax] = mine.step;
  rec[kTokensSum] = rec[kTokensMax] = mine.num_tokens;
  rec[kSeqsSum] = rec[kSeqsMax] = mine.num_seqs;
  rec[kWorkRanks] = mine.has_work ? 1 : 0;
  rec[kErrorRankMin] = mine.error ? rank_ : INT64_MAX;
  rec[kErrorRanks] = mine.error ? 1 : 0;
  rec[kStop] = mine.stop ? 1 : 0;
  rec[kFlagsOr] = mine.flags;
  {
    Watchdog::Scope guard(watchdog_, "step agreement allreduce");
    MPI_Allreduce(MPI_IN_PLACE, rec, 1, step_type_, step_op_, comm_);
  }
  if (rec[kStepMin] != rec[kStepMax])
    throw std::logic_error(
        fmt::format("lock-step lost: ranks are at steps {}..{}", rec[kStepMin], rec[kStepMax]));
  StepGlobal g;
  g.step = rec[kStepMin];
  g.total_tokens = rec[kTokensSum];
  g.max_tokens = rec[kTokensMax];
  g.total_seqs = rec[kSeqsSum];
  g.max_seqs = rec[kSeqsMax];
  g.ranks_with_work = static_cast<int>(rec[kWorkRanks]);
  g.num_error_ranks = static_cast<int>(rec[kErrorRanks]);
  g.first_error_rank = g.num_error_ranks ? static_cast<int>(rec[kErrorRankMin]) : -1;
  g.stop = rec[kStop] > 0;
  g.flags = static_cast<uint32_t>(rec[kFlagsOr]);
  return g;
}

Blob MpiControlPlane::scatter_blobs(const std::vector<Blob>& per_rank) {
  Watchdog::Scope guard(watchdog_, "blob scatterv");
  std::vector<int> sizes, displs;
  if (is_root()) {
    if (per_rank.size() != static_cast<size_t>(size_))
      abort_job(fmt::format("scatter_blobs: {} blobs for {} ranks", per_rank.size(), size_));
    sizes.resize(size_);
    displs.resize(size_);
    size_t total = 0;
    for (int r = 0; r < size_; ++r) {
      sizes[r] = checked_int(per_rank[r].size(), "scatter_blobs");
      displs[r] = checked_int(total, "scatter_blobs");
      total += per_rank[r].size();
    }
    checked_int(total, "scatter_blobs");
  }
  int my_size = 0;
  MPI_Scatter(sizes.data(), 1, MPI_INT, &my_size, 1, MPI_INT, root_, comm_);
  Blob packed;  // root: all blobs back to back, [sum sizes]
  if (is_root())
    for (const Blob& b : per_rank) packed.insert(packed.end(), b.begin(), b.end());
  Blob mine(my_size);
  MPI_Scatterv(packed.data(), sizes.data(), displs.data(), MPI_BYTE, mine.data(), my_size, MPI_BYTE,
               root_, comm_);
  return mine;
}

std::vector<Blob> MpiControlPlane::gather_blobs(std::span<const uint8_t> mine) {
  Watchdog::Scope guard(watchdog_, "blob gatherv");
  const int my_size = checked_int(mine.size(), "gather_blobs");
  std::vector<int> sizes(is_root() ? size_ : 0), displs(is_root() ? size_ : 0);
  MPI_Gather(&my_size, 1, MPI_INT, sizes.data(), 1, MPI_INT, root_, comm_);
  size_t total = 0;
  for (int r = 0; r < static_cast<int>(sizes.size()); ++r) {
    displs[r] = checked_int(total, "gather_blobs");
    total += sizes[r];
  }
  Blob packed(checked_int(total, "gather_blobs"));
  MPI_Gatherv(mine.data(), my_size, MPI_BYTE, packed.data(), sizes.data(), displs.data(), MPI_BYTE,
              root_, comm_);
  std::vector<Blob> out;
  if (!is_root()) return out;
  out.resize(size_);
  for (int r = 0; r < size_; ++r)
    out[r].assign(packed.begin() + displs[r], packed.begin() + displs[r] + sizes[r]);
  return out;
}

Blob MpiControlPlane::broadcast_blob(const Blob& blob) {
  Watchdog::Scope guard(watchdog_, "blob bcast");
  int n = is_root() ? checked_int(blob.size(), "broadcast_blob") : 0;
  MPI_Bcast(&n, 1, MPI_INT, root_, comm_);
  Blob out = is_root() ? blob : Blob(n);
  MPI_Bcast(out.data(), n, MPI_BYTE, root_, comm_);
  return out;
}

IdleStats MpiControlPlane::idle_wait(const std::function<bool()>& root_ready) {
  using clock = std::chrono::steady_clock;
  constexpr auto kFirstSleep = std::chrono::milliseconds(1);
  constexpr auto kMaxSleep = std::chrono::milliseconds(20);
  const auto t0 = clock::now();
  IdleStats stats;
  auto sleep = kFirstSleep;
  auto backoff = [&] {
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, kMaxSleep);
    ++stats.polls;
  };
  // Root: wait for its own input without MPI traffic, then release everyone.
  if (is_root())
    while (!root_ready()) backoff();
  // The root has work: everyone else must answer the barrier now.
  std::optional<Watchdog::Scope> guard;
  if (is_root()) guard.emplace(watchdog_, "idle wake-up barrier");
  MPI_Request req;
  MPI_Ibarrier(comm_, &req);
  int done = 0;
  MPI_Test(&req, &done, MPI_STATUS_IGNORE);
  while (!done) {
    backoff();
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
  }
  stats.waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0);
  return stats;
}

}  // namespace dpep::comm

namespace dpep::comm {
void MpiControlPlane::begin_step(int64_t step) {
  if (watchdog_) watchdog_->begin_step(step);
}
void MpiControlPlane::end_step() {
  if (watchdog_) watchdog_->end_step();
}
void MpiControlPlane::abort_job(const std::string& why) {
  comm::abort_job(why);
}
}  // namespace dpep::comm
