#include "runtime/batch_source.h"

#include <stdexcept>

namespace dpep {

BatchSource::BatchSource(std::vector<Request> requests) {
  for (size_t i = 0; i < requests.size(); ++i) {
    if (requests[i].id != static_cast<int64_t>(i))
      throw std::logic_error("BatchSource needs ids 0..n-1");
    RequestResult r;
    r.request = std::move(requests[i]);
    results_.push_back(std::move(r));
  }
}

void BatchSource::poll(std::vector<Request>& requests, std::vector<int64_t>&) {
  if (submitted_) return;
  submitted_ = true;
  for (const auto& r : results_) requests.push_back(r.request);
}

void BatchSource::on_event(const RequestEvent& e, int rank) {
  if (e.id < 0 || e.id >= static_cast<int64_t>(results_.size())) return;
  RequestResult& r = results_[e.id];
  const double t = elapsed();
  r.rank = rank;
  if (!e.new_tokens.empty()) {
    r.output.insert(r.output.end(), e.new_tokens.begin(), e.new_tokens.end());
    r.token_times.push_back(t);
  }
  r.logprobs.insert(r.logprobs.end(), e.new_logprobs.begin(), e.new_logprobs.end());
  if (e.finish != FinishReason::None) {
    r.finish = e.finish;
    r.error = e.error;
    r.end_time = t;
    finished_++;
    if (on_finished) on_finished(r);
  }
}

void BatchSource::on_step(const std::vector<RankStatus>&) {
  if (on_progress) on_progress(finished_, results_.size());
}

}  // namespace dpep
