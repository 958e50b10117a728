// The HTTP front end of dpep serve on rank 0 (cpp-httplib, its own thread pool): routes,
// API-key check, JSON and SSE responses. It never calls MPI: requests go to the engine thread
// through the ServeSource. docs/serving.md lists the endpoints.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "launch/serve/serve_api.h"
#include "launch/serve/serve_metrics.h"
#include "launch/serve/serve_source.h"

namespace dpep {

struct ServeHttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;            // empty: no check
  int threads = 512;              // HTTP worker threads (one per open request)
  bool reasoning_parser = false;  // deepseek-r1: reasoning_content in chat responses
  // Non-empty text = the engine looks stuck (e.g. a step past half the watchdog timeout):
  // /health answers 503 with it. Called on HTTP threads.
  std::function<std::string()> health_problem;
};

class ServeHttp {
 public:
  // limits (and the tokenizer/template it points to) must outlive this object.
  ServeHttp(ServeHttpOptions opt, ServeSource& source, ServeMetrics& metrics,
            const ServeLimits& limits);
  ~ServeHttp();  // stops the server
  ServeHttp(const ServeHttp&) = delete;
  ServeHttp& operator=(const ServeHttp&) = delete;

  void bind();   // throws std::runtime_error if host:port cannot be bound
  void start();  // serves on its own thread (after bind)
  void stop();   // stops accepting, closes, joins; idempotent
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpep
