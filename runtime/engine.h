// The per-rank engine loop body: schedule, run one forward (possibly empty, so every MoE
// exchange is entered), sample, and report what each request produced this step.
#pragma once
#include <chrono>
#include <memory>
#include <vector>

#include "comm/expert_exchange.h"
#include "model/model.h"
#include "runtime/engine_config.h"
#include "runtime/kv_cache.h"
#include "runtime/request_source.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"

namespace dpep {

struct StepReport {
  std::vector<RequestEvent> events;
  int rows = 0;  // tokens computed this step
  int decode_rows = 0;
  int prefill_rows = 0;
  int running = 0, waiting = 0;
  int kv_used_pages = 0, kv_total_pages = 0;
  int kv_cached_pages = 0;                                 // committed to the prefix cache
  int64_t prefix_query_tokens = 0, prefix_hit_tokens = 0;  // since the start
  std::vector<CacheEvent> cache_events;                    // this step, in order
  double forward_s = 0, sample_s = 0, schedule_s = 0;
  double start_s = 0;  // steady clock at the start; schedule, forward, sampling follow back to back
};

class Engine {
 public:
  Engine(const Model& model, comm::ExpertExchange& ex, const EngineConfig& cfg);

  void add(const Request& r);
  void abort(int64_t id);
  bool has_work() const { return sched_.has_work() || !pending_events_.empty(); }
  int num_running() const { return sched_.num_running(); }
  int num_waiting() const { return sched_.num_waiting(); }
  // Runs exactly one forward (empty if nothing is scheduled) and returns the events.
  StepReport step();
  // The same into `rep`, reusing its vectors: a warm decode step allocates nothing (see
  // tests/test_decode_allocations.cpp for what still does).
  void step(StepReport& rep);

  const BlockManager& blocks() const { return blocks_; }
  const EngineConfig& config() const { return cfg_; }
  void set_prefill_budget(int tokens) { sched_.set_prefill_budget(tokens); }
  ForwardStats& stats() { return stats_; }
  int64_t preemptions() const { return sched_.num_preemptions(); }
  const PrefixCacheStats& prefix_stats() const { return sched_.prefix_stats(); }

 private:
  const Model& model_;
  comm::ExpertExchange& ex_;
  EngineConfig cfg_;
  BlockManager blocks_;
  KvCache cache_;
  Scheduler sched_;
  ForwardStats stats_;
  // Reused step after step (a warm decode step allocates nothing for the forward).
  RunState run_state_;
  ForwardBatch batch_;
  std::vector<int> sample_chunk_;  // chunk index of each logits row
  std::vector<ScheduledChunk> chunks_;
  SamplerScratch sampler_;
  std::vector<RequestEvent> pending_events_;  // rejections and aborts, reported next step
};

}  // namespace dpep
