#include "launch/serve/serve_source.h"

#include <fmt/format.h>

#include <algorithm>

#include "launch/serve/serve_errors.h"
#include "launch/serve/serve_metrics.h"

namespace dpep {

void RequestChannel::push(RequestEvent e) {
  {
    std::lock_guard lk(mu_);
    if (finished_) return;  // e.g. an abort after a local stop-string finish
    if (e.finish != FinishReason::None) finished_ = true;
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

bool RequestChannel::wait(std::vector<RequestEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return false;
  for (auto& e : events_) out.push_back(std::move(e));
  events_.clear();
  return true;
}

bool RequestChannel::finished() const {
  std::lock_guard lk(mu_);
  return finished_;
}

ServeSource::ServeSource(ServeSourceOptions opt, ServeMetrics* metrics)
    : opt_(opt), metrics_(metrics) {}

std::shared_ptr<RequestChannel> ServeSource::submit(Request r) {
  std::lock_guard lk(mu_);
  if (stopping_) throw ApiError(503, shutdown_message_locked());
  if (opt_.max_queued_requests > 0 && queued_ >= opt_.max_queued_requests)
    throw ApiError(
        429, fmt::format("the server is busy: {} requests are queued (--max-queued-requests {})",
                         queued_, opt_.max_queued_requests));
  r.id = next_id_++;
  if (r.external_id.empty()) r.external_id = std::to_string(r.id);
  auto ch = std::make_shared<RequestChannel>(r.id);
  Live l;
  l.ch = ch;
  l.submitted = l.last_tokens = Clock::now();
  l.prompt_tokens = static_cast<int>(r.prompt.size());
  live_.emplace(r.id, std::move(l));
  queued_++;
  pending_.push_back(std::move(r));
  return ch;
}

void ServeSource::mark_started_locked(Live& l) {
  if (l.started) return;
  l.started = true;
  queued_--;
}

void ServeSource::cancel(int64_t id) {
  std::shared_ptr<RequestChannel> ch;
  int prompt = 0;
  {
    std::lock_guard lk(mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return;
    auto p = std::find_if(pending_.begin(), pending_.end(),
                          [&](const Request& r) { return r.id == id; });
    if (p == pending_.end()) {  // with a rank: it frees the pages and reports the abort
      if (std::find(aborts_.begin(), aborts_.end(), id) == aborts_.end()) aborts_.push_back(id);
      return;
    }
    pending_.erase(p);  // never left rank 0
    ch = it->second.ch;
    prompt = it->second.prompt_tokens;
    mark_started_locked(it->second);
    live_.erase(it);
  }
  if (metrics_) metrics_->on_finish(FinishReason::Abort, prompt, 0);
  ch->push(RequestEvent{id, {}, {}, FinishReason::Abort, "", prompt});
}

void ServeSource::begin_shutdown(const std::string& why) {
  std::lock_guard lk(mu_);
  if (stopping_) return;
  stopping_ = true;
  stop_reason_ = why;
  deadline_ = Clock::now() + opt_.drain_timeout;
}

bool ServeSource::shutting_down() const {
  std::lock_guard lk(mu_);
  return stopping_;
}

std::string ServeSource::shutdown_message_locked() const {
  std::string m = "the server is shutting down";
  if (!stop_reason_.empty()) m += ": " + stop_reason_;
  return m;
}

std::string ServeSource::shutdown_message() const {
  std::lock_guard lk(mu_);
  return shutdown_message_locked();
}

int ServeSource::num_queued() const {
  std::lock_guard lk(mu_);
  return queued_;
}

int ServeSource::num_in_flight() const {
  std::lock_guard lk(mu_);
  return static_cast<int>(live_.size());
}

std::vector<RankStatus> ServeSource::rank_status() const {
  std::lock_guard lk(mu_);
  return ranks_;
}

void ServeSource::fail_all(const std::string& why) {
  std::unordered_map<int64_t, Live> left;
  {
    std::lock_guard lk(mu_);
    left.swap(live_);
    pending_.clear();
    queued_ = 0;
  }
  for (auto& [id, l] : left)
    l.ch->push(RequestEvent{id, {}, {}, FinishReason::Error, why, l.prompt_tokens});
}

bool ServeSource::drain_expired_locked() const {
  return stopping_ && !aborted_all_ && !live_.empty() && Clock::now() >= deadline_;
}

void ServeSource::poll(std::vector<Request>& requests, std::vector<int64_t>& aborts) {
  std::lock_guard lk(mu_);
  while (!pending_.empty()) {
    requests.push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
  if (drain_expired_locked()) {  // drain timeout: abort whatever is still running
    aborted_all_ = true;
    aborts_.clear();
    for (const auto& [id, l] : live_) aborts_.push_back(id);
  }
  aborts.insert(aborts.end(), aborts_.begin(), aborts_.end());
  aborts_.clear();
}

bool ServeSource::ready() {
  std::lock_guard lk(mu_);
  return !pending_.empty() || !aborts_.empty() || drain_expired_locked();
}

bool ServeSource::exhausted() {
  std::lock_guard lk(mu_);
  return stopping_ && pending_.empty() && aborts_.empty();
}

void ServeSource::on_event(const RequestEvent& e, int) {
  const auto now = Clock::now();
  std::shared_ptr<RequestChannel> ch;
  double ttft = -1, gap = -1, e2e = 0;
  int prompt = 0;
  {
    std::lock_guard lk(mu_);
    auto it = live_.find(e.id);
    if (it == live_.end()) return;  // cancelled before it left rank 0
    Live& l = it->second;
    ch = l.ch;
    if (!e.new_tokens.empty()) {
      if (!l.started)
        ttft = std::chrono::duration<double>(now - l.submitted).count();
      else
        gap = std::chrono::duration<double>(now - l.last_tokens).count();
      l.last_tokens = now;
      l.generated += static_cast<int>(e.new_tokens.size());
      mark_started_locked(l);
    }
    if (e.finish != FinishReason::None) {
      mark_started_locked(l);
      e2e = std::chrono::duration<double>(now - l.submitted).count();
      prompt = l.prompt_tokens;
      live_.erase(it);
    }
  }
  if (metrics_) {
    if (ttft >= 0) metrics_->on_first_token(ttft);
    if (!e.new_tokens.empty()) metrics_->on_tokens(static_cast<int>(e.new_tokens.size()), gap);
    if (e.finish != FinishReason::None) metrics_->on_finish(e.finish, prompt, e2e);
  }
  ch->push(e);
}

void ServeSource::on_step(const std::vector<RankStatus>& ranks) {
  {
    std::lock_guard lk(mu_);
    ranks_ = ranks;
  }
  if (metrics_) metrics_->on_step(ranks);
}

}  // namespace dpep
