#include "launch/serve/bench_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

namespace dpep {

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

namespace {
double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}
}  // namespace

nlohmann::json BenchReport::to_json() const {
  std::vector<double> ttft, tpot, itl, e2e;
  long long in = 0, out = 0, completed = 0;
  for (const auto& r : requests) {
    if (!r.success) continue;
    completed++;
    in += r.input_tokens;
    out += r.output_tokens;
    ttft.push_back(r.ttft * 1000);
    e2e.push_back(r.e2e * 1000);
    if (r.output_tokens > 1) tpot.push_back((r.e2e - r.ttft) / (r.output_tokens - 1) * 1000);
    for (double g : r.itl) itl.push_back(g * 1000);
  }
  const double d = duration > 0 ? duration : 1e-9;
  nlohmann::json j;
  j["backend"] = backend;
  j["request_rate"] = request_rate;
  j["max_concurrency"] = max_concurrency;
  j["duration"] = duration;
  j["completed"] = completed;
  j["failed"] = static_cast<long long>(requests.size()) - completed;
  j["total_input_tokens"] = in;
  j["total_output_tokens"] = out;
  j["request_throughput"] = completed / d;
  j["input_throughput"] = in / d;
  j["output_throughput"] = out / d;
  j["total_throughput"] = (in + out) / d;
  j["concurrency"] = std::accumulate(e2e.begin(), e2e.end(), 0.0) / 1000 / d;
  auto stats = [&](const char* name, const std::vector<double>& v, bool p95, bool max) {
    j[fmt::format("mean_{}_ms", name)] = mean(v);
    j[fmt::format("median_{}_ms", name)] = percentile(v, 50);
    if (p95) j[fmt::format("p95_{}_ms", name)] = percentile(v, 95);
    j[fmt::format("p99_{}_ms", name)] = percentile(v, 99);
    if (max)
      j[fmt::format("max_{}_ms", name)] = v.empty() ? 0 : *std::max_element(v.begin(), v.end());
  };
  stats("e2e_latency", e2e, false, false);
  stats("ttft", ttft, false, false);
  stats("tpot", tpot, false, false);
  stats("itl", itl, true, true);
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

std::string BenchReport::to_text() const {
  const nlohmann::json j = to_json();
  std::string s;
  auto line = [&](const std::string& label, const std::string& value) {
    s += fmt::format("{:<41}{}\n", label + ":", value);
  };
  auto num = [&](const char* k) { return fmt::format("{:.2f}", j[k].get<double>()); };
  auto head = [&](const std::string& t) {
    const int pad = 50 - static_cast<int>(t.size());
    s += std::string(pad / 2, '-') + t + std::string(pad - pad / 2, '-') + "\n";
  };
  s += "============ Serving Benchmark Result ============\n";
  line("Backend", backend);
  line("Traffic request rate", request_rate);
  line("Max request concurrency", max_concurrency);
  line("Successful requests", std::to_string(j["completed"].get<long long>()));
  if (j["failed"].get<long long>() > 0)
    line("Failed requests", std::to_string(j["failed"].get<long long>()));
  line("Benchmark duration (s)", num("duration"));
  line("Total input tokens", std::to_string(j["total_input_tokens"].get<long long>()));
  line("Total generated tokens", std::to_string(j["total_output_tokens"].get<long long>()));
  line("Request throughput (req/s)", num("request_throughput"));
  line("Input token throughput (tok/s)", num("input_throughput"));
  line("Output token throughput (tok/s)", num("output_throughput"));
  line("Total token throughput (tok/s)", num("total_throughput"));
  line("Concurrency", num("concurrency"));
  head("End-to-End Latency");
  line("Mean E2E Latency (ms)", num("mean_e2e_latency_ms"));
  line("Median E2E Latency (ms)", num("median_e2e_latency_ms"));
  line("P99 E2E Latency (ms)", num("p99_e2e_latency_ms"));
  head("Time to First Token");
  line("Mean TTFT (ms)", num("mean_ttft_ms"));
  line("Median TTFT (ms)", num("median_ttft_ms"));
  line("P99 TTFT (ms)", num("p99_ttft_ms"));
  head("Time per Output Token (excl. 1st token)");
  line("Mean TPOT (ms)", num("mean_tpot_ms"));
  line("Median TPOT (ms)", num("median_tpot_ms"));
  line("P99 TPOT (ms)", num("p99_tpot_ms"));
  head("Inter-Token Latency");
  line("Mean ITL (ms)", num("mean_itl_ms"));
  line("Median ITL (ms)", num("median_itl_ms"));
  line("P95 ITL (ms)", num("p95_itl_ms"));
  line("P99 ITL (ms)", num("p99_itl_ms"));
  line("Max ITL (ms)", num("max_itl_ms"));
  s += "==================================================\n";
  for (auto it = extra.begin(); it != extra.end(); ++it)
    line(it.key(), it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
  return s;
}

}  // namespace dpep
