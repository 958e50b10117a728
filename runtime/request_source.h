// What the DP loop exchanges with whatever feeds it requests (offline batches, the HTTP
// server): requests in, per-request events and per-rank status out. No MPI, no model: the
// serving library depends on this header alone.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/request.h"

namespace dpep {

// What one request got in one step.
struct RequestEvent {
  int64_t id = 0;
  std::vector<int> new_tokens;
  std::vector<TokenLogprobs> new_logprobs;
  FinishReason finish = FinishReason::None;
  std::string error;
  int num_prompt = 0;
};

enum class BalanceStrategy { RoundRobin, LeastTokens, MinExpectedLatency, CacheAware };
BalanceStrategy balance_strategy_from_name(const std::string& s);  // throws on unknown

// What rank 0 knows of every rank after each step.
struct RankStatus {
  int running = 0, waiting = 0, kv_used_pages = 0, kv_total_pages = 0, rows = 0;
  double forward_s = 0;
  int kv_cached_pages = 0;                                   // pages in the prefix cache
  int64_t prefix_query_tokens = 0, prefix_hit_tokens = 0;    // admitted / found cached, cumulative
  int64_t outstanding_requests = 0, outstanding_tokens = 0;  // assigned and not finished
};

// Rank 0 only: where requests come from and where their events go.
class RequestSource {
 public:
  virtual ~RequestSource() = default;
  // New requests and cancellations since the last call; must not block.
  virtual void poll(std::vector<Request>& requests, std::vector<int64_t>& aborts) = 0;
  virtual bool ready() = 0;      // poll() would return something (wakes idle ranks)
  virtual bool exhausted() = 0;  // no request will ever come again (then the loop ends when idle)
  virtual void on_event(const RequestEvent& e, int rank) = 0;
  virtual void on_step(const std::vector<RankStatus>&) {}
};

}  // namespace dpep
