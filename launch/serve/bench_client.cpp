#include "launch/serve/bench_client.h"

#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

namespace dpep {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

void SseParser::feed(const char* data, size_t n, std::vector<std::string>& out) {
  buf_.append(data, n);
  size_t start = 0;
  for (;;) {
    const size_t nl = buf_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(buf_.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.rfind("data:", 0) == 0) {
      line.remove_prefix(5);
      if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      out.emplace_back(line);
    }
    start = nl + 1;
  }
  buf_.erase(0, start);
}

namespace {

httplib::Headers auth_headers(const BenchClientOptions& o) {
  httplib::Headers h;
  if (!o.api_key.empty()) h.emplace("Authorization", "Bearer " + o.api_key);
  return h;
}

std::string request_body(const BenchClientOptions& o, const Request& r) {
  json j;
  if (o.backend == "sglang") {
    j["input_ids"] = r.prompt;
    j["sampling_params"] = {
        {"max_new_tokens", r.sampling.max_tokens}, {"temperature", 0.0}, {"ignore_eos", true}};
    j["stream"] = true;
  } else {
    if (!o.model.empty()) j["model"] = o.model;
    j["prompt"] = r.prompt;
    j["max_tokens"] = r.sampling.max_tokens;
    j["temperature"] = 0.0;
    j["best_of"] = 1;
    j["ignore_eos"] = true;
    j["stream"] = true;
    j["stream_options"] = {{"include_usage", true}};
  }
  return j.dump();
}

// Tokens and usage one chunk carries: returns true when the chunk carries output.
struct ChunkState {
  long long usage_tokens = -1;  // from usage / meta_info
  long long counted = 0;        // from token ids in the chunks
  size_t sglang_ids = 0, sglang_text = 0;
  bool done = false;
  std::string error;
};

bool read_chunk(const BenchClientOptions& o, const std::string& payload, ChunkState& st) {
  if (payload == "[DONE]") {
    st.done = true;
    return false;
  }
  json j = json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    st.error = "a stream chunk is not JSON: " + payload.substr(0, 200);
    return false;
  }
  if (j.contains("error")) {
    st.error =
        j["error"].is_object() ? j["error"].value("message", j["error"].dump()) : j["error"].dump();
    return false;
  }
  if (o.backend == "sglang") {
    const size_t ids = j.contains("output_ids") ? j["output_ids"].size() : 0;
    const size_t text = j.value("text", std::string()).size();
    if (j.contains("meta_info") && j["meta_info"].contains("completion_tokens"))
      st.usage_tokens = j["meta_info"]["completion_tokens"].get<long long>();
    const bool grew = ids > st.sglang_ids || text > st.sglang_text;
    st.counted = static_cast<long long>(ids);
    st.sglang_ids = ids;
    st.sglang_text = text;
    return grew;
  }
  if (j.contains("usage") && j["usage"].is_object() && j["usage"].contains("completion_tokens"))
    st.usage_tokens = j["usage"]["completion_tokens"].get<long long>();
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return false;
  const json& c = j["choices"][0];
  size_t ids = 0;
  if (c.contains("token_ids") && c["token_ids"].is_array()) ids = c["token_ids"].size();
  st.counted += static_cast<long long>(ids);
  const bool text =
      c.contains("text") && c["text"].is_string() && !c["text"].get<std::string>().empty();
  return text || ids > 0;
}

}  // namespace

struct BenchConnection::Impl {
  std::unique_ptr<httplib::Client> cli;
  Clock::time_point last_used;
};
BenchConnection::BenchConnection() : impl(std::make_unique<Impl>()) {}
BenchConnection::~BenchConnection() = default;

namespace {

std::unique_ptr<httplib::Client> new_client(const BenchClientOptions& o) {
  auto cli = std::make_unique<httplib::Client>(o.base_url);
  cli->set_keep_alive(true);
  cli->set_connection_timeout(10);
  cli->set_read_timeout(static_cast<time_t>(o.timeout_s));
  cli->set_write_timeout(60);
  return cli;
}

}  // namespace

ClientResult send_one(const BenchClientOptions& o, const Request& r, BenchConnection* conn) {
  ClientResult res;
  RequestTiming& t = res.timing;
  t.input_tokens = static_cast<long long>(r.prompt.size());
  const auto t0 = Clock::now();
  auto since = [&](Clock::time_point x) { return std::chrono::duration<double>(x - t0).count(); };
  ChunkState st;
  bool first = true;
  Clock::time_point last = t0;
  BenchConnection own;
  BenchConnection::Impl& c = *(conn ? conn : &own)->impl;
  try {
    for (int attempt = 0;; ++attempt) {
      // Idle over a second: the server may be closing it right now; open a new one instead.
      if (c.cli && t0 - c.last_used > std::chrono::seconds(1)) c.cli.reset();
      const bool reused = c.cli && c.cli->is_socket_open();
      res.new_connection = !reused;
      if (!c.cli) c.cli = new_client(o);
      st = ChunkState{};
      SseParser sse;
      std::vector<std::string> payloads;
      httplib::Request req;
      req.method = "POST";
      req.path = o.backend == "sglang" ? "/generate" : "/v1/completions";
      req.headers = auth_headers(o);
      req.headers.emplace("Content-Type", "application/json");
      req.body = request_body(o, r);
      int status = 0;
      std::string error_body;
      req.response_handler = [&](const httplib::Response& resp) {
        status = resp.status;
        return true;
      };
      req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        if (status != 200) {
          error_body.append(data, n);
          return true;
        }
        payloads.clear();
        sse.feed(data, n, payloads);
        const auto now = Clock::now();
        for (const auto& p : payloads) {
          if (!read_chunk(o, p, st)) continue;
          if (first)
            t.ttft = since(now);
          else
            t.itl.push_back(std::chrono::duration<double>(now - last).count());
          first = false;
          last = now;  // one gap per chunk, as bench_serving records it
        }
        return st.error.empty();
      };
      httplib::Response resp;
      httplib::Error err = httplib::Error::Success;
      const bool ok = c.cli->send(req, resp, err);
      c.last_used = Clock::now();
      if (!ok) c.cli.reset();  // never reuse a connection after a failure
      // A stale kept-alive connection: nothing came back, so the server did not take the
      // request (it closes idle connections only between requests). Once, on a new one.
      const bool stale = !ok && status == 0 && reused && attempt == 0 &&
                         (err == httplib::Error::Write || err == httplib::Error::Read ||
                          err == httplib::Error::Connection);
      if (stale) {
        res.reconnected = true;
        continue;
      }
      if (status != 200 && status != 0) {
        json e = json::parse(error_body, nullptr, false);
        std::string msg = error_body.substr(0, 300);
        if (e.is_object() && e.contains("error") && e["error"].is_object())
          msg = e["error"].value("message", msg);
        res.error = fmt::format("HTTP {}: {}", status, msg);
      } else if (!st.error.empty()) {
        res.error = st.error;
      } else if (!ok) {
        res.error = "request failed: " + httplib::to_string(err);
      } else if (!st.done && o.backend != "sglang") {
        res.error = "the stream ended without data: [DONE]";
      }
      break;
    }
  } catch (const std::exception& e) {
    res.error = e.what();
    c.cli.reset();
  }
  t.e2e = since(Clock::now());
  t.output_tokens = st.usage_tokens >= 0 ? st.usage_tokens : st.counted;
  t.success = res.error.empty() && !first;
  if (res.error.empty() && first) res.error = "no output token received";
  return res;
}

std::vector<ClientResult> run_bench(const BenchClientOptions& o, const std::vector<Request>& reqs,
                                    double& duration_s) {
  // Arrival offsets: all at 0 for an infinite rate, else exponential gaps (Poisson process).
  std::vector<double> arrive(reqs.size(), 0.0);
  if (std::isfinite(o.request_rate) && o.request_rate > 0) {
    std::mt19937_64 rng(o.seed);
    std::exponential_distribution<double> gap(o.request_rate);
    double t = 0;
    for (auto& a : arrive) {
      a = t;
      t += gap(rng);
    }
  }
  std::vector<ClientResult> results(reqs.size());
  std::vector<double> end_s(reqs.size(), 0.0);
  const size_t workers =
      std::min<size_t>(reqs.size(), o.max_concurrency > 0 ? o.max_concurrency : 4096);
  std::atomic<size_t> next{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (size_t w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      BenchConnection conn;  // kept alive across this worker's requests
      for (size_t i; (i = next.fetch_add(1)) < reqs.size();) {
        std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(arrive[i])));
        results[i] = send_one(o, reqs[i], &conn);
        end_s[i] = std::chrono::duration<double>(Clock::now() - t0).count();
      }
    });
  for (auto& t : pool) t.join();
  duration_s = 0;
  for (double e : end_s) duration_s = std::max(duration_s, e);
  return results;
}

void query_models(const BenchClientOptions& o, std::string& model, int& vocab_size) {
  httplib::Client cli(o.base_url);
  cli.set_connection_timeout(10);
  auto r = cli.Get("/v1/models", auth_headers(o));
  if (!r)
    throw std::runtime_error(
        fmt::format("cannot reach {}: {}", o.base_url, httplib::to_string(r.error())));
  if (r->status != 200)
    throw std::runtime_error(fmt::format("GET /v1/models: HTTP {}: {}", r->status, r->body));
  json j = json::parse(r->body, nullptr, false);
  model.clear();
  vocab_size = 0;
  if (j.is_object() && j.contains("data") && j["data"].is_array() && !j["data"].empty()) {
    const json& m = j["data"][0];
    model = m.value("id", "");
    if (m.contains("vocab_size") && m["vocab_size"].is_number_integer())
      vocab_size = m["vocab_size"].get<int>();
  }
}

}  // namespace dpep
