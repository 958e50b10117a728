// The load generator of dpep bench: sends streaming requests with token-id prompts to an
// OpenAI-compatible /v1/completions (or SGLang's /generate) and times every chunk the way
// SGLang's bench_serving does (TTFT, ITL per chunk, E2E), for BenchReport.
// Needs nothing dpep-specific from the server besides the widespread ignore_eos.
#pragma once
#include <limits>
#include <string>
#include <vector>

#include "launch/serve/bench_report.h"
#include "runtime/request.h"

namespace dpep {

struct BenchClientOptions {
  std::string base_url;            // http://host:port
  std::string backend = "openai";  // openai: /v1/completions; sglang: /generate
  std::string model;               // empty: not sent
  std::string api_key;             // sent as Authorization: Bearer
  double request_rate = std::numeric_limits<double>::infinity();  // req/s, Poisson arrivals
  int max_concurrency = 0;                                        // 0: no limit
  uint64_t seed = 1;                                              // arrival times
  double timeout_s = 600;                                         // per request
};

// Splits SSE bytes into the payloads of `data:` lines (across arbitrary chunk boundaries).
class SseParser {
 public:
  // Appends complete payloads to `out`.
  void feed(const char* data, size_t n, std::vector<std::string>& out);

 private:
  std::string buf_;
};

// Result of one request as the client saw it.
struct ClientResult {
  RequestTiming timing;
  std::string error;  // empty on success
};

// Sends one streaming request and times it; never throws (errors go to ClientResult::error).
ClientResult send_one(const BenchClientOptions& o, const Request& r);

// Runs all requests with the options' arrival process and concurrency; returns per-request
// results in input order and the benchmark duration (first send to last finish).
std::vector<ClientResult> run_bench(const BenchClientOptions& o, const std::vector<Request>& reqs,
                                    double& duration_s);

// /v1/models: the first model id and, from dpep servers, the vocabulary size (0 if absent).
// Throws std::runtime_error when the server cannot be reached.
void query_models(const BenchClientOptions& o, std::string& model, int& vocab_size);

}  // namespace dpep
