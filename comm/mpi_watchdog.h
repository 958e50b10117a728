// Watchdog for steps and collectives: if a step, or one collective, has not finished after the
// timeout, print what is stuck and abort the job (every rank exits non-zero).
//
//   Watchdog wd(std::chrono::seconds(60));   // 0 = disabled, no thread is started
//   wd.set_step(step);                       // engine thread, once per step
//   { Watchdog::Scope s(&wd, "dispatch alltoallv"); MPI_Alltoallv(...); }
//   wd.begin_step(step); ... wd.end_step();  // a whole step (the control plane does this)
//
// Only time inside a step or a scope counts; idle waiting between steps never trips it.
// The label must be a string literal (its pointer is kept).
//
// With heartbeats (set_heartbeat), non-root ranks report to the root 4 times a second and
// trip only `grace` after the root would, so the root, which can name the stuck rank from the
// beats, speaks first; if the root itself is stuck the others still end the job.
// A watchdog built disarmed ignores scopes until arm() (start-up collectives may legitimately
// wait for a slow rank loading its weights).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace dpep::comm {

class Heartbeat;

class Watchdog {
 public:
  explicit Watchdog(std::chrono::milliseconds timeout, bool armed = true);
  ~Watchdog();  // stops the thread
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  bool enabled() const { return timeout_.count() > 0; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  void arm() { armed_.store(true, std::memory_order_release); }
  void set_step(int64_t step) { step_.store(step, std::memory_order_relaxed); }
  // A step runs from begin_step to end_step (engine thread).
  void begin_step(int64_t step);
  void end_step();
  // How long the current step has run (0 between steps, when disabled or not armed); any thread.
  std::chrono::milliseconds step_age() const;

  // Before the first step (not thread safe afterwards). hb: this rank's heartbeat channel;
  // grace: how much later than the root the non-root ranks trip.
  void set_heartbeat(std::unique_ptr<Heartbeat> hb, std::chrono::milliseconds grace);
  // Called on the watchdog thread with the message just before it aborts the job (e.g. to
  // answer HTTP clients); it should return within a second or two.
  void set_on_trip(std::function<void(const std::string&)> f);

  class Scope {
   public:
    // wd may be null or disabled: then the scope does nothing.
    Scope(Watchdog* wd, const char* what);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Watchdog* wd_;
  };

 private:
  void run();
  void beat(int64_t now);
  std::string trip_message(int64_t now, int64_t step_ms, int64_t coll_ms, const char* what);
  static int64_t now_ms();

  std::chrono::milliseconds timeout_;
  std::atomic<bool> armed_{true};
  std::atomic<const char*> what_{nullptr};  // nullptr = not inside a collective
  std::atomic<int64_t> entered_ms_{0};
  std::atomic<int64_t> step_begin_ms_{-1};  // -1 = between steps
  std::atomic<int64_t> step_{-1};
  std::unique_ptr<Heartbeat> hb_;
  std::chrono::milliseconds grace_{0};
  std::function<void(const std::string&)> on_trip_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace dpep::comm
