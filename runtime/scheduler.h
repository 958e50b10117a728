// Continuous batching: which tokens of which sequences run in the next step. Tensor-free.
// Each step every running sequence gets its uncomputed tokens (decode: 1), prefill chunks are
// bounded by the token budget, new requests join at step boundaries while pages and the batch
// size allow, and when a page runs out the newest running sequence is preempted (its pages
// freed, recomputed later from its tokens).
// With prefix caching, an admitted sequence starts after the longest cached run of its full
// pages (at least its last token is computed, for the logits); a waiting sequence whose next
// uncached page is being computed by a running one waits a step to reuse it (SGLang's in-batch
// prefix deferral); computed full pages are committed to the cache every step.
#pragma once
#include <deque>
#include <memory>
#include <vector>

#include "runtime/block_manager.h"
#include "runtime/request.h"

namespace dpep {

struct SchedulerConfig {
  int max_batch_size = 256;       // running sequences
  int max_prefill_tokens = 8192;  // tokens per step beyond the decode rows
  int max_model_len = 0;          // positions a sequence may reach (0 = no limit)
  bool prefix_caching = true;     // reuse committed pages of equal prefixes
};

// Prefix-cache counters since the start (tokens of admitted sequences, tokens found cached).
struct PrefixCacheStats {
  int64_t query_tokens = 0, hit_tokens = 0, deferred = 0;
};

struct ScheduledChunk {
  Sequence* seq = nullptr;
  int start = 0;        // first position computed this step
  int len = 0;          // tokens computed this step
  bool sample = false;  // the chunk reaches the last token: sample the next one
};

class Scheduler {
 public:
  Scheduler(SchedulerConfig cfg, BlockManager& blocks);

  // Takes ownership. Returns false (and marks the sequence finished with an error) if it can
  // never fit in the cache or the model's context.
  bool add(std::unique_ptr<Sequence> seq);
  std::vector<ScheduledChunk> schedule() {
    std::vector<ScheduledChunk> out;
    schedule(out);
    return out;
  }
  // The same into `out` (cleared first; its capacity is reused step after step).
  void schedule(std::vector<ScheduledChunk>& out);
  // After the step: chunks' tokens are computed; finished sequences release their pages and
  // are handed back.
  std::vector<std::unique_ptr<Sequence>> postprocess(const std::vector<ScheduledChunk>& chunks);
  // Removes a request wherever it is (cancellation); returns it finished with Abort, or null.
  std::unique_ptr<Sequence> abort(int64_t id);

  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }
  int64_t num_preemptions() const { return preemptions_; }
  const PrefixCacheStats& prefix_stats() const { return prefix_stats_; }
  // Prefill tokens allowed from the next schedule() on (also capped by max_prefill_tokens).
  void set_prefill_budget(int tokens) { prefill_budget_ = tokens; }
  // Sequences rejected by add(), to be reported once.
  std::vector<std::unique_ptr<Sequence>> take_rejected();

 private:
  void preempt(Sequence* s);
  void commit_pages(Sequence* s);
  SchedulerConfig cfg_;
  BlockManager& blocks_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // admission order
  std::vector<std::unique_ptr<Sequence>> rejected_;
  int64_t preemptions_ = 0;
  PrefixCacheStats prefix_stats_;
  int prefill_budget_ = 1 << 30;
};

}  // namespace dpep
