// The control plane over MPI: the step agreement is one MPI_Allreduce with a custom op, blobs
// travel with Scatterv/Gatherv/Bcast, the idle wait polls an MPI_Ibarrier. Protocol:
// comm/control_plane.h.
#pragma once
#include <mpi.h>

#include "comm/control_plane.h"

namespace dpep::comm {

class Watchdog;

class MpiControlPlane final : public ControlPlane {
 public:
  // Collective over comm (duplicates it so control traffic never mixes with other traffic).
  // watchdog (optional, not owned) guards agree() and the blob collectives.
  explicit MpiControlPlane(MPI_Comm comm, int root = 0, Watchdog* watchdog = nullptr);
  ~MpiControlPlane() override;
  MpiControlPlane(const MpiControlPlane&) = delete;
  MpiControlPlane& operator=(const MpiControlPlane&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int root() const override { return root_; }

  // One MPI_Allreduce of an 11-int64 record with a custom op (sums, maxima, min error rank).
  // Throws std::logic_error on every rank if the ranks' step counters differ (lock-step lost).
  StepGlobal agree(const StepLocal& mine) override;

  // Root: per_rank has size() blobs, blob r goes to rank r; others pass {} (ignored).
  // Returns this rank's blob. MPI_Scatter of sizes + MPI_Scatterv of bytes.
  Blob scatter_blobs(const std::vector<Blob>& per_rank) override;
  // Every rank contributes one blob; root gets all (index = rank), others get {}.
  std::vector<Blob> gather_blobs(std::span<const uint8_t> mine) override;
  // Root's blob to every rank (size first, then bytes). Others' argument is ignored.
  Blob broadcast_blob(const Blob& blob) override;

  // Call on every rank when agree() said all_idle(). Non-roots post MPI_Ibarrier and poll it
  // with MPI_Test, sleeping 1 ms growing to 20 ms between polls. Root calls root_ready() at the
  // same pace until it returns true, then enters the barrier, which wakes everyone.
  IdleStats idle_wait(const std::function<bool()>& root_ready) override;

  void begin_step(int64_t step) override;
  void end_step() override;

  // MPI_Abort on MPI_COMM_WORLD (comm/mpi_abort.h).
  [[noreturn]] void abort_job(const std::string& why) override;

  MPI_Comm comm() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Datatype step_type_ = MPI_DATATYPE_NULL;
  MPI_Op step_op_ = MPI_OP_NULL;
  int rank_ = 0, size_ = 1, root_ = 0;
  Watchdog* watchdog_ = nullptr;
};

}  // namespace dpep::comm
