// A RequestSource holding a fixed list of requests, all submitted at start (offline runs and
// generate --input-file). Collects every request's tokens, logprobs, finish reason and the
// time (at rank 0) each token arrived, for the result block.
#pragma once
#include <chrono>
#include <functional>
#include <vector>

#include "comm/clock.h"
#include "runtime/dp_loop.h"

namespace dpep {

struct RequestResult {
  Request request;
  std::vector<int> output;
  std::vector<TokenLogprobs> logprobs;
  FinishReason finish = FinishReason::None;
  std::string error;
  int rank = -1;
  std::vector<double> token_times;  // seconds since start, one per arrival of new tokens
  double end_time = 0;
};

class BatchSource final : public RequestSource {
 public:
  explicit BatchSource(std::vector<Request> requests);
  void poll(std::vector<Request>& requests, std::vector<int64_t>& aborts) override;
  bool ready() override { return !submitted_; }
  bool exhausted() override { return submitted_; }
  void on_event(const RequestEvent& e, int rank) override;
  void on_step(const std::vector<RankStatus>& ranks) override;

  void start_clock() { clock_.restart(); }
  double elapsed() const { return clock_.seconds(); }
  const std::vector<RequestResult>& results() const { return results_; }
  size_t num_finished() const { return finished_; }
  // Called after each step with (finished, total): progress display.
  std::function<void(size_t, size_t)> on_progress;
  // Called as soon as a request finishes (its result complete): streamed result files.
  std::function<void(const RequestResult&)> on_finished;

 private:
  std::vector<RequestResult> results_;  // index = request id
  bool submitted_ = false;
  size_t finished_ = 0;
  Stopwatch clock_;
};

}  // namespace dpep
