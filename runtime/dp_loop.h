// The lock-step data-parallel loop every rank runs. Rank 0 takes requests from a
// RequestSource, assigns each to a rank, and gets every rank's events back each step.
// Per step (all ranks, same order): scatter work -> agree -> forward (possibly empty) ->
// gather events. When every rank is idle they sleep together in the control plane's idle wait.
#pragma once
#include <spdlog/logger.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/control_plane.h"
#include "runtime/cache_router.h"
#include "runtime/engine.h"
#include "runtime/prefill_budget.h"
#include "runtime/request_source.h"
#include "runtime/run_summary.h"

namespace dpep {

class TraceWriter;

struct DpLoopOptions {
  BalanceStrategy strategy = BalanceStrategy::CacheAware;
  int log_every = 50;            // info-level step summary every N busy steps (debug: every step)
  TraceWriter* trace = nullptr;  // --trace-dir: steps, phases and waits, flushed every step
  std::string host;              // for the run summary
};

// Totals over the run, per rank, for the summary.
struct DpLoopTotals {
  int64_t steps = 0, busy_steps = 0, rows = 0;
  double forward_s = 0, sample_s = 0, idle_s = 0, comm_s = 0, schedule_s = 0, wall_s = 0;
  // Busy steps in which this rank had no tokens of its own (it ran an empty forward only to
  // take part in the other ranks' MoE exchanges), and the engine time they took.
  int64_t empty_steps = 0;
  double empty_step_s = 0;
};

class DpLoop {
 public:
  DpLoop(comm::ControlPlane& cp, Engine& engine, std::shared_ptr<spdlog::logger> log,
         DpLoopOptions opt);
  // Runs until rank 0's source is exhausted and every rank is idle. source: rank 0 only.
  void run(RequestSource* source);
  const DpLoopTotals& totals() const { return totals_; }
  // Collective, after run(): rank 0 gets one line per rank (host, steps, tokens, time split,
  // routed expert pairs computed) and the expert-load balance (max / mean pairs per rank);
  // other ranks get an empty string.
  std::string summary(const std::string& host);
  // This rank's run so far (also logged as "run summary {json}" when run() ends).
  RankRunSummary run_summary() const;
  // Collective, after run(): rank 0 gets every rank's run_summary (by rank); others get {}.
  std::vector<RankRunSummary> gather_run_summaries();

 private:
  void run_impl(RequestSource* source);
  std::vector<comm::Blob> assign(RequestSource& source);
  int pick_rank(const Request& r);
  void log_step(const StepReport& rep, bool force);
  void log_run_summary(bool complete);
  void trace_step(int64_t step, const StepReport& rep, double t_begin, double t_gather,
                  double t_end);

  comm::ControlPlane& cp_;
  Engine& engine_;
  std::shared_ptr<spdlog::logger> log_;
  DpLoopOptions opt_;
  DpLoopTotals totals_;
  double loop_start_s_ = 0;
  // rank 0 bookkeeping
  std::vector<RankStatus> ranks_;
  std::map<int64_t, std::pair<int, int64_t>> owner_;  // request id -> (rank, tokens counted)
  int rr_next_ = 0;
  CacheAwareRouter router_;  // --strategy cache_aware: every rank's prefix cache
  PrefillBudget prefill_budget_;
  bool decoding_ = false;  // some rank held running sequences after the last step
  // for periodic logs
  ForwardStats last_stats_;
  DpLoopTotals last_totals_;
};

}  // namespace dpep
