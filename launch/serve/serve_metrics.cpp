#include "launch/serve/serve_metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace dpep {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i]++;
  sum_ += v;
  count_++;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cum);
  }
  cum += counts_.back();
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, cum);
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, sum_, name, count_);
}

namespace {
const std::vector<double> kLatencyBounds = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08,
                                            0.1,   0.25,  0.5,  0.75, 1.0,  2.5,  5.0,
                                            7.5,   10.0,  20.0, 40.0, 80.0};
const std::vector<double> kStepBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.075,  0.1,   0.25,   0.5,   1.0,  2.5};

void gauge_header(std::string& out, const std::string& name, const std::string& help,
                  const char* type) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}
}  // namespace

ServeMetrics::ServeMetrics()
    : ttft_(kLatencyBounds), itl_(kLatencyBounds), e2e_(kLatencyBounds), step_(kStepBounds) {}

void ServeMetrics::on_first_token(double ttft_s) {
  std::lock_guard lk(mu_);
  ttft_.observe(ttft_s);
}

void ServeMetrics::on_tokens(int n, double gap_s) {
  std::lock_guard lk(mu_);
  generation_tokens_ += n;
  if (gap_s >= 0) itl_.observe(gap_s);
}

void ServeMetrics::on_finish(FinishReason reason, int prompt_tokens, double e2e_s) {
  std::lock_guard lk(mu_);
  prompt_tokens_ += prompt_tokens;
  finished_[finish_reason_name(reason)]++;
  if (reason == FinishReason::Length || reason == FinishReason::Stop) e2e_.observe(e2e_s);
}

void ServeMetrics::on_step(const std::vector<RankStatus>& ranks) {
  double slowest = 0;
  for (const auto& r : ranks) slowest = std::max(slowest, r.forward_s);
  std::lock_guard lk(mu_);
  step_.observe(slowest);
}

void ServeMetrics::on_http(int status) {
  std::lock_guard lk(mu_);
  http_[status]++;
}

void ServeMetrics::reset() {
  std::lock_guard lk(mu_);
  ttft_ = Histogram(kLatencyBounds);
  itl_ = Histogram(kLatencyBounds);
  e2e_ = Histogram(kLatencyBounds);
  step_ = Histogram(kStepBounds);
  prompt_tokens_ = generation_tokens_ = 0;
  finished_.clear();
  http_.clear();
}

std::string ServeMetrics::render(const ServeGauges& g) const {
  std::string out;
  gauge_header(out, "dpep:num_requests_running",
               "Requests with at least one generated token, not finished.", "gauge");
  out += fmt::format("dpep:num_requests_running {}\n", g.running);
  gauge_header(
      out, "dpep:num_requests_waiting",
      "Requests accepted and waiting for their first token (proxy queue and ranks' queues).",
      "gauge");
  out += fmt::format("dpep:num_requests_waiting {}\n", g.queued);
  {
    std::lock_guard lk(mu_);
    gauge_header(out, "dpep:prompt_tokens_total", "Prompt tokens of finished requests.", "counter");
    out += fmt::format("dpep:prompt_tokens_total {}\n", prompt_tokens_);
    gauge_header(out, "dpep:generation_tokens_total", "Generated tokens.", "counter");
    out += fmt::format("dpep:generation_tokens_total {}\n", generation_tokens_);
    gauge_header(out, "dpep:request_finished_total", "Finished requests by finish reason.",
                 "counter");
    for (const char* r : {"length", "stop", "abort", "error"}) {
      auto it = finished_.find(r);
      out += fmt::format("dpep:request_finished_total{{finished_reason=\"{}\"}} {}\n", r,
                         it == finished_.end() ? 0 : it->second);
    }
    gauge_header(out, "dpep:http_responses_total", "HTTP responses by status code.", "counter");
    for (const auto& [code, n] : http_)
      out += fmt::format("dpep:http_responses_total{{code=\"{}\"}} {}\n", code, n);
    ttft_.render(out, "dpep:time_to_first_token_seconds",
                 "Time from arrival at rank 0 to the first token.");
    itl_.render(out, "dpep:inter_token_latency_seconds",
                "Gap between consecutive token arrivals of a request.");
    e2e_.render(out, "dpep:e2e_request_latency_seconds",
                "Arrival to last token of finished requests.");
    step_.render(out, "dpep:step_time_seconds", "Forward time of the slowest rank, per busy step.");
  }
  struct RankGauge {
    const char* name;
    const char* help;
    double (*get)(const RankStatus&);
    const char* type = "gauge";
  };
  static const RankGauge kRank[] = {
      {"dpep:rank_num_requests_running", "Running sequences on the rank.",
       [](const RankStatus& r) { return double(r.running); }},
      {"dpep:rank_num_requests_waiting", "Sequences waiting on the rank.",
       [](const RankStatus& r) { return double(r.waiting); }},
      {"dpep:rank_kv_pages_used", "KV cache pages in use on the rank.",
       [](const RankStatus& r) { return double(r.kv_used_pages); }},
      {"dpep:rank_kv_pages_total", "KV cache pages of the rank.",
       [](const RankStatus& r) { return double(r.kv_total_pages); }},
      {"dpep:rank_kv_cache_usage_perc", "Fraction of the rank's KV cache pages in use.",
       [](const RankStatus& r) {
         return r.kv_total_pages ? double(r.kv_used_pages) / r.kv_total_pages : 0.0;
       }},
      {"dpep:rank_last_step_seconds", "Forward time of the rank's last busy step.",
       [](const RankStatus& r) { return r.forward_s; }},
      {"dpep:rank_kv_pages_cached", "KV cache pages holding a cached prefix (in use or not).",
       [](const RankStatus& r) { return double(r.kv_cached_pages); }},
      {"dpep:rank_prefix_cache_queries_total", "Prompt tokens of sequences admitted on the rank.",
       [](const RankStatus& r) { return double(r.prefix_query_tokens); }, "counter"},
      {"dpep:rank_prefix_cache_hits_total",
       "Prompt tokens admitted on the rank whose KV pages were found in the prefix cache.",
       [](const RankStatus& r) { return double(r.prefix_hit_tokens); }, "counter"},
  };
  for (const auto& m : kRank) {
    gauge_header(out, m.name, m.help, m.type);
    for (size_t k = 0; k < g.ranks.size(); ++k)
      out += fmt::format("{}{{rank=\"{}\"}} {}\n", m.name, k, m.get(g.ranks[k]));
  }
  return out;
}

}  // namespace dpep
