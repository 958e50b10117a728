// Lock-step DP control plane: model-free, typed primitives the runtime calls every step.
// Rank `root` (0) owns the request queue; every other rank follows. One engine step:
//
//   1. assignment: blob = cp.scatter_blobs(per_rank)     // root serialises work per rank
//   2. g = cp.agree(StepLocal{step, tokens, seqs, ...})  // one small all-reduce
//        g.any_error()         -> every rank exits non-zero naming g.first_error_rank
//        g.all_idle() && g.stop -> every rank leaves the loop, exits 0
//        g.all_idle()          -> cp.idle_wait(root_ready) (sleeps, no busy core), next step
//        otherwise             -> forward pass: every rank enters every MoE collective,
//                                 ranks with 0 tokens included
//   3. results = cp.gather_blobs(my_tokens)              // root collects sampled tokens
//
// Any branch that skips a collective must be decided from StepGlobal, never from local state.
// A failure after step 2 (other ranks may be inside a collective) must call abort_job().
// All calls are collective over the ranks and must be made in the same order.
//
// Implementations: MpiControlPlane (comm/mpi_control.h) and LoopbackControlPlane (one process,
// comm/loopback_control_plane.h). No MPI in this header.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace dpep::comm {

// Exit code of a rank that ends the job (mpirun usually exits with it).
inline constexpr int kAbortExitCode = 3;

using Blob = std::vector<uint8_t>;

// What one rank contributes to a step's agreement.
struct StepLocal {
  int64_t step = 0;        // this rank's step counter; agree() checks all ranks are equal
  int64_t num_tokens = 0;  // tokens this rank will run this step
  int64_t num_seqs = 0;    // sequences this rank holds
  bool has_work = false;   // this rank will run a non-idle forward
  bool error = false;      // this rank failed before the step (its message is printed locally)
  bool stop = false;       // this rank asks to stop (root: input exhausted / shutdown)
  uint32_t flags = 0;      // caller-defined bits, OR-ed over ranks (e.g. 1 = some prefill)
};

// What every rank learns; identical on all ranks.
struct StepGlobal {
  int64_t step = 0;
  int64_t total_tokens = 0, max_tokens = 0;
  int64_t total_seqs = 0, max_seqs = 0;
  int ranks_with_work = 0;
  int num_error_ranks = 0;
  int first_error_rank = -1;  // lowest rank with error set, -1 if none
  bool stop = false;          // any rank asked to stop
  uint32_t flags = 0;
  bool any_error() const { return num_error_ranks > 0; }
  bool all_idle() const { return ranks_with_work == 0; }
};

// Result of idle_wait, for logs.
struct IdleStats {
  std::chrono::milliseconds waited{0};
  int polls = 0;
};

// Combines ranks' StepLocal records the way agree() does (sums, maxima, lowest error rank).
// ranks[r] is rank r's record. Throws std::logic_error if the step counters differ.
StepGlobal reduce_steps(std::span<const StepLocal> ranks);

class ControlPlane {
 public:
  virtual ~ControlPlane() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int root() const = 0;
  bool is_root() const { return rank() == root(); }

  // Every rank's StepLocal combined; identical on all ranks. Throws std::logic_error on every
  // rank if the ranks' step counters differ (lock-step lost).
  virtual StepGlobal agree(const StepLocal& mine) = 0;
  // Root: per_rank has size() blobs, blob r goes to rank r; others pass {} (ignored).
  virtual Blob scatter_blobs(const std::vector<Blob>& per_rank) = 0;
  // Every rank contributes one blob; root gets all (index = rank), others get {}.
  virtual std::vector<Blob> gather_blobs(std::span<const uint8_t> mine) = 0;
  // Root's blob to every rank. Others' argument is ignored.
  virtual Blob broadcast_blob(const Blob& blob) = 0;
  // Call on every rank when agree() said all_idle(): sleeps (no busy core) until root_ready()
  // returns true on the root, then every rank returns.
  virtual IdleStats idle_wait(const std::function<bool()>& root_ready) = 0;
  // Brackets one engine step for the watchdog (no-ops without one): a step that has not reached
  // end_step() within the watchdog timeout ends the job. Idle waiting is outside any step.
  virtual void begin_step(int64_t /*step*/) {}
  virtual void end_step() {}
  // Ends the whole job from this rank, never a hang: prints why and stops every rank.
  [[noreturn]] virtual void abort_job(const std::string& why) = 0;
};

}  // namespace dpep::comm
