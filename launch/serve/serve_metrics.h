// Prometheus metrics of dpep serve (text exposition format, GET /metrics). Names follow vLLM's
// with a dpep: prefix; per-rank gauges carry a rank label. docs/serving.md lists them all.
// Thread safety: every method locks; observers are called from the engine thread and the
// HTTP threads, render() from an HTTP thread.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/request_source.h"

namespace dpep {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // upper bounds, ascending (+Inf is implied)
  void observe(double v);
  // # HELP / # TYPE lines, _bucket{le=...} (cumulative), _sum, _count.
  void render(std::string& out, const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Point-in-time values the metrics read from the source.
struct ServeGauges {
  int running = 0, queued = 0;
  std::vector<RankStatus> ranks;
};

class ServeMetrics {
 public:
  ServeMetrics();
  void on_first_token(double ttft_s);
  void on_tokens(int n, double gap_s);  // gap_s < 0: the first tokens (no inter-token gap)
  void on_finish(FinishReason reason, int prompt_tokens, double e2e_s);
  void on_step(const std::vector<RankStatus>& ranks);
  void on_http(int status);
  void reset();  // forget what was observed (after the warm-up request)
  std::string render(const ServeGauges& g) const;

 private:
  mutable std::mutex mu_;
  Histogram ttft_, itl_, e2e_, step_;
  uint64_t prompt_tokens_ = 0, generation_tokens_ = 0;
  std::map<std::string, uint64_t> finished_;  // by finish reason
  std::map<int, uint64_t> http_;              // by status
};

}  // namespace dpep
