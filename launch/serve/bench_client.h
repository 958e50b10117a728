// The load generator of dpep bench: sends streaming requests with token-id prompts to an
// OpenAI-compatible /v1/completions (or SGLang's /generate) and times every chunk the way
// SGLang's bench_serving does (TTFT, ITL per chunk, E2E), for BenchReport.
// Needs nothing dpep-specific from the server besides the widespread ignore_eos.
#pragma once
#include <limits>
#include <memory>
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
  std::string error;            // empty on success
  bool reconnected = false;     // the worker's kept-alive connection was stale: sent on a new one
  bool new_connection = false;  // sent on a connection it opened (not a kept-alive one)
};

// One worker's HTTP/1.1 keep-alive connection, reused request after request. A connection idle
// for over a second is reopened before use (servers close idle ones: dpep after 2 s).
class BenchConnection {
 public:
  BenchConnection();
  ~BenchConnection();
  BenchConnection(const BenchConnection&) = delete;
  BenchConnection& operator=(const BenchConnection&) = delete;
  struct Impl;
  std::unique_ptr<Impl> impl;
};

// Sends one streaming request and times it; never throws (errors go to ClientResult::error).
// conn: a worker's connection (null: a connection of its own). When a reused connection turns
// out to be stale (the request could not be written, or the connection closed before any
// response byte: the server never took the request), it is sent once more on a new connection;
// a request the server may have seen is never sent twice.
ClientResult send_one(const BenchClientOptions& o, const Request& r,
                      BenchConnection* conn = nullptr);

// Runs all requests with the options' arrival process and concurrency; returns per-request
// results in input order and the benchmark duration (first send to last finish).
std::vector<ClientResult> run_bench(const BenchClientOptions& o, const std::vector<Request>& reqs,
                                    double& duration_s);

// /v1/models: the first model id and, from dpep servers, the vocabulary size (0 if absent).
// Throws std::runtime_error when the server cannot be reached.
void query_models(const BenchClientOptions& o, std::string& model, int& vocab_size);

}  // namespace dpep
