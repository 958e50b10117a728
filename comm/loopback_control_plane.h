// The control plane of a single process (one rank, no MPI): the DP loop, the serve source and
// the scheduler run in one test binary through it, as the model runs through LoopbackExchange.
#pragma once
#include "comm/control_plane.h"

namespace dpep::comm {

class LoopbackControlPlane final : public ControlPlane {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int root() const override { return 0; }
  StepGlobal agree(const StepLocal& mine) override;
  Blob scatter_blobs(const std::vector<Blob>& per_rank) override;
  std::vector<Blob> gather_blobs(std::span<const uint8_t> mine) override;
  Blob broadcast_blob(const Blob& blob) override { return blob; }
  // Polls root_ready() with the same 1 -> 20 ms backoff as the MPI plane.
  IdleStats idle_wait(const std::function<bool()>& root_ready) override;
  // Prints "dpep: why" to stderr and _exit(kAbortExitCode): the process is the whole job.
  [[noreturn]] void abort_job(const std::string& why) override;
};

}  // namespace dpep::comm
