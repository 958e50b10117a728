// The result block of SGLang's bench_serving ("Serving Benchmark Result"), computed the same
// way, for dpep offline and dpep bench. See ../shared/docs/bench-clients.md for definitions.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dpep {

// One request as the client (or rank 0) saw it; times in seconds from its send.
struct RequestTiming {
  bool success = false;
  long long input_tokens = 0, output_tokens = 0;
  double ttft = 0, e2e = 0;
  std::vector<double> itl;  // gaps between consecutive chunk arrivals
};

struct BenchReport {
  std::string backend = "dpep";
  std::string request_rate = "inf";
  std::string max_concurrency = "not set";
  double duration = 0;
  std::vector<RequestTiming> requests;
  nlohmann::json extra;  // printed below the block as "Key: value" lines and stored in the JSON

  nlohmann::json to_json() const;  // bench_serving field names
  std::string to_text() const;     // the block, labels padded to column 42
};

// numpy's default percentile (linear interpolation between order statistics); 0 if empty.
double percentile(std::vector<double> v, double q);

}  // namespace dpep
