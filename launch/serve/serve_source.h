// The RequestSource of dpep serve: the hand-over point between HTTP handler threads and rank
// 0's engine (MPI) thread.
//
//   HTTP thread:   ch = source.submit(req)        // id assigned; 429 if the queue is full,
//                                                 // 503 once shutdown began
//                  while (ch->wait(events, 100ms)) ...   // token events of this request
//                  source.cancel(id)              // client went away: the owning rank frees it
//   engine thread: DpLoop calls poll/ready/exhausted/on_event/on_step (never blocks long).
//
// Shutdown: begin_shutdown(why) (any thread) refuses new requests; in-flight ones run on; after
// the drain timeout they are aborted; once nothing is pending exhausted() is true and the loop
// ends on every rank when the last request finished.
// Thread safety: every public method may be called from any thread (one mutex inside).
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime/request_source.h"

namespace dpep {

class ServeMetrics;

// One request's events, from the engine thread to the HTTP thread waiting on them.
class RequestChannel {
 public:
  explicit RequestChannel(int64_t id) : id_(id) {}
  int64_t id() const { return id_; }
  void push(RequestEvent e);
  // Waits up to `timeout` for events and appends them to `out`; false if none came.
  bool wait(std::vector<RequestEvent>& out, std::chrono::milliseconds timeout);
  bool finished() const;  // an event with a finish reason was pushed

 private:
  const int64_t id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RequestEvent> events_;
  bool finished_ = false;
};

struct ServeSourceOptions {
  int max_queued_requests = 0;  // requests without a first token yet; 0 = no limit
  std::chrono::milliseconds drain_timeout{30000};
};

class ServeSource final : public RequestSource {
 public:
  explicit ServeSource(ServeSourceOptions opt, ServeMetrics* metrics = nullptr);

  // HTTP side.
  std::shared_ptr<RequestChannel> submit(Request r);  // throws ApiError(429 / 503)
  void cancel(int64_t id);                            // unknown or finished ids are ignored
  // `why` (a signal, a watchdog message) is added to the 503 of late requests and of /health;
  // the first call's reason stays.
  void begin_shutdown(const std::string& why = "");
  bool shutting_down() const;
  std::string shutdown_message() const;  // "the server is shutting down[: why]"
  int num_queued() const;                // submitted, no token yet (proxy queue + ranks' waiting)
  int num_in_flight() const;             // submitted, not finished
  std::vector<RankStatus> rank_status() const;  // as of the last busy step
  // After the loop: finishes any request still open with an error (none should be).
  void fail_all(const std::string& why);

  // Engine thread (RequestSource).
  void poll(std::vector<Request>& requests, std::vector<int64_t>& aborts) override;
  bool ready() override;
  bool exhausted() override;
  void on_event(const RequestEvent& e, int rank) override;
  void on_step(const std::vector<RankStatus>& ranks) override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Live {
    std::shared_ptr<RequestChannel> ch;
    Clock::time_point submitted, last_tokens;
    int prompt_tokens = 0, generated = 0;
    bool started = false;  // got its first token (or finished)
  };
  bool drain_expired_locked() const;
  std::string shutdown_message_locked() const;
  void mark_started_locked(Live& l);

  const ServeSourceOptions opt_;
  ServeMetrics* metrics_;
  mutable std::mutex mu_;
  std::deque<Request> pending_;  // submitted, not yet handed to the loop
  std::vector<int64_t> aborts_;
  std::unordered_map<int64_t, Live> live_;
  int queued_ = 0;
  int64_t next_id_ = 0;
  bool stopping_ = false, aborted_all_ = false;
  std::string stop_reason_;
  Clock::time_point deadline_;
  std::vector<RankStatus> ranks_;
};

}  // namespace dpep
