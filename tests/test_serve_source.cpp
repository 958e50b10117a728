// ServeSource: the hand-over between HTTP threads and the engine thread, without MPI or a
// model. The test plays the DpLoop's part (poll / on_event) itself.
#include <gtest/gtest.h>

#include <httplib.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "launch/serve/bench_client.h"
#include "launch/serve/serve_errors.h"
#include "launch/serve/serve_metrics.h"
#include "launch/serve/serve_session.h"
#include "launch/serve/serve_source.h"

using namespace dpep;
using namespace std::chrono_literals;

namespace {
Request req(int n_prompt, int max_tokens) {
  Request r;
  r.prompt.assign(n_prompt, 3);
  r.sampling.max_tokens = max_tokens;
  return r;
}
RequestEvent tokens(int64_t id, std::vector<int> t, FinishReason f = FinishReason::None) {
  RequestEvent e;
  e.id = id;
  e.new_tokens = std::move(t);
  e.finish = f;
  return e;
}
}  // namespace

TEST(ServeSource, RequestsFlowToThePollAndEventsBack) {
  ServeMetrics metrics;
  ServeSource src({}, &metrics);
  EXPECT_FALSE(src.ready());
  auto a = src.submit(req(4, 2));
  auto b = src.submit(req(5, 2));
  EXPECT_NE(a->id(), b->id());
  EXPECT_TRUE(src.ready());
  EXPECT_EQ(src.num_queued(), 2);
  std::vector<Request> got;
  std::vector<int64_t> aborts;
  src.poll(got, aborts);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, a->id());
  EXPECT_EQ(got[1].prompt.size(), 5u);
  EXPECT_TRUE(aborts.empty());
  EXPECT_FALSE(src.ready());

  src.on_event(tokens(a->id(), {10}), 0);
  EXPECT_EQ(src.num_queued(), 1);  // a has its first token
  std::vector<RequestEvent> ev;
  ASSERT_TRUE(a->wait(ev, 1s));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].new_tokens, std::vector<int>{10});
  EXPECT_FALSE(a->finished());
  src.on_event(tokens(a->id(), {11}, FinishReason::Length), 0);
  EXPECT_TRUE(a->finished());
  EXPECT_EQ(src.num_in_flight(), 1);
  ev.clear();
  EXPECT_FALSE(b->wait(ev, 10ms));  // nothing for b yet
  const std::string text = metrics.render({});
  EXPECT_NE(text.find("dpep:generation_tokens_total 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dpep:prompt_tokens_total 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dpep:request_finished_total{finished_reason=\"length\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("dpep:time_to_first_token_seconds_count 1\n"), std::string::npos);
}

TEST(ServeSource, CancelBeforeAndAfterThePoll) {
  ServeSource src({});
  auto a = src.submit(req(2, 4));
  src.cancel(a->id());  // still at rank 0: finished at once, never polled
  EXPECT_TRUE(a->finished());
  std::vector<Request> got;
  std::vector<int64_t> aborts;
  src.poll(got, aborts);
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(aborts.empty());

  auto b = src.submit(req(2, 4));
  src.poll(got, aborts);
  ASSERT_EQ(got.size(), 1u);
  src.cancel(b->id());
  src.cancel(b->id());  // twice: one abort
  EXPECT_TRUE(src.ready());
  src.poll(got, aborts);
  EXPECT_EQ(aborts, std::vector<int64_t>{b->id()});
  EXPECT_FALSE(b->finished());  // until the rank reports the abort
  src.on_event(tokens(b->id(), {}, FinishReason::Abort), 1);
  EXPECT_TRUE(b->finished());
  EXPECT_EQ(src.num_in_flight(), 0);
}

TEST(ServeSource, QueueLimitGives429) {
  ServeSourceOptions o;
  o.max_queued_requests = 2;
  ServeSource src(o);
  auto a = src.submit(req(1, 1));
  auto b = src.submit(req(1, 1));
  try {
    src.submit(req(1, 1));
    FAIL() << "expected 429";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 429);
  }
  std::vector<Request> got;
  std::vector<int64_t> aborts;
  src.poll(got, aborts);
  src.on_event(tokens(a->id(), {5}), 0);  // a runs: one place frees up
  EXPECT_NO_THROW(src.submit(req(1, 1)));
}

TEST(ServeSource, ShutdownRefusesDrainsThenIsExhausted) {
  ServeSourceOptions o;
  o.drain_timeout = 50ms;
  ServeSource src(o);
  auto a = src.submit(req(1, 100));
  auto b = src.submit(req(1, 100));
  std::vector<Request> got;
  std::vector<int64_t> aborts;
  src.poll(got, aborts);
  src.begin_shutdown("signal 15 (Terminated)");
  src.begin_shutdown("a later reason");  // the first one stays
  EXPECT_TRUE(src.shutting_down());
  try {
    src.submit(req(1, 1));
    FAIL() << "expected 503";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 503);
    EXPECT_STREQ(e.what(), "the server is shutting down: signal 15 (Terminated)");
  }
  EXPECT_TRUE(src.exhausted());  // nothing pending; the loop ends once a and b finish
  src.on_event(tokens(a->id(), {1}, FinishReason::Length), 0);
  EXPECT_FALSE(src.ready());
  std::this_thread::sleep_for(60ms);  // past the drain timeout: b is aborted
  EXPECT_TRUE(src.ready());
  src.poll(got, aborts);
  EXPECT_EQ(aborts, std::vector<int64_t>{b->id()});
  EXPECT_FALSE(src.ready());  // once
}

TEST(ServeSession, TokensArriveOnTheHttpThreadAndCancelOnDrop) {
  ServeSource src({});
  ApiRequest a;
  a.request = req(3, 3);
  int64_t id = -1;
  std::thread engine([&] {  // plays the loop
    std::vector<Request> got;
    std::vector<int64_t> aborts;
    while (got.empty()) {
      src.poll(got, aborts);
      std::this_thread::sleep_for(1ms);
    }
    id = got[0].id;
    src.on_event(tokens(id, {7}), 0);
    src.on_event(tokens(id, {8, 9}, FinishReason::Length), 0);
  });
  ServeLimits lim;
  GenerationSession s(src, a, lim, false);
  std::vector<int> all;
  FinishReason fin = FinishReason::None;
  SessionUpdate u;
  while (!s.finished())
    if (s.next(u, 1s)) {
      all.insert(all.end(), u.ids.begin(), u.ids.end());
      fin = u.finish;
    }
  engine.join();
  EXPECT_EQ(all, (std::vector<int>{7, 8, 9}));
  EXPECT_EQ(fin, FinishReason::Length);
  EXPECT_EQ(s.completion_tokens(), 3);

  std::vector<Request> got;
  std::vector<int64_t> aborts;
  int64_t dropped = -1;
  {
    GenerationSession t(src, a, lim, false);
    dropped = t.id();
    src.poll(got, aborts);
  }  // the client went away before the end
  src.poll(got, aborts);
  EXPECT_EQ(aborts, std::vector<int64_t>{dropped});
}

TEST(ServeBench, SseParserAcrossChunkBoundaries) {
  SseParser p;
  std::vector<std::string> out;
  const std::string s = "data: {\"a\":1}\n\ndata: [DO";
  p.feed(s.data(), s.size(), out);
  EXPECT_EQ(out, std::vector<std::string>{"{\"a\":1}"});
  const std::string t = "NE]\r\n\r\n: comment\n";
  p.feed(t.data(), t.size(), out);
  EXPECT_EQ(out, (std::vector<std::string>{"{\"a\":1}", "[DONE]"}));
}

namespace {

// A minimal OpenAI-style SSE server counting the requests it gets and the connections they came
// on. keep_alive_timeout 0: it closes a kept-alive connection as soon as it is idle, so the
// client keeps finding stale connections.
struct CountingServer {
  httplib::Server svr;
  std::thread thread;
  std::atomic<int> posts{0};
  std::mutex mu;
  std::set<int> client_ports;
  int port = 0;
  explicit CountingServer(time_t keep_alive_s) {
    svr.set_keep_alive_timeout(keep_alive_s);
    svr.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      posts++;
      {
        std::lock_guard lk(mu);
        client_ports.insert(req.remote_port);
      }
      res.set_content(
          "data: {\"choices\": [{\"text\": \"a\", \"token_ids\": [5]}]}\n\n"
          "data: {\"choices\": [], \"usage\": {\"completion_tokens\": 1}}\n\ndata: [DONE]\n\n",
          "text/event-stream");
    });
    port = svr.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { svr.listen_after_bind(); });
    while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~CountingServer() {
    svr.stop();
    thread.join();
  }
};

}  // namespace

// dpep bench keeps one connection per worker alive, and never sends a request twice, also when
// the server closes idle connections at once.
TEST(ServeBench, KeepAliveReusesConnectionsAndNeverSendsTwice) {
  for (const time_t keep_alive_s : {5, 0}) {
    CountingServer server(keep_alive_s);
    BenchClientOptions o;
    o.base_url = "http://127.0.0.1:" + std::to_string(server.port);
    Request r;
    r.prompt = {1, 2, 3};
    r.sampling.max_tokens = 1;
    BenchConnection conn;
    int opened = 0;
    for (int i = 0; i < 40; ++i) {
      const ClientResult res = send_one(o, r, &conn);
      EXPECT_TRUE(res.error.empty()) << res.error;
      EXPECT_EQ(res.timing.output_tokens, 1);
      opened += res.new_connection;
    }
    EXPECT_EQ(server.posts.load(), 40) << "keep-alive " << keep_alive_s;  // each exactly once
    if (keep_alive_s > 0) {
      // cpp-httplib's server closes a connection after 5 requests: 8 connections for 40 (more
      // only if this thread stalled over a second between two requests).
      EXPECT_EQ(static_cast<size_t>(opened), server.client_ports.size());
      EXPECT_GE(opened, 8);
      EXPECT_LE(opened, 20);
    }
  }
}
