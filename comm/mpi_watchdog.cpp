#include "comm/mpi_watchdog.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "comm/mpi_abort.h"
#include "comm/mpi_heartbeat.h"

namespace dpep::comm {

int64_t Watchdog::now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

Watchdog::Watchdog(std::chrono::milliseconds timeout, bool armed)
    : timeout_(timeout), armed_(armed) {
  if (enabled()) thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (hb_) hb_->say_goodbye();  // this rank ends normally: its silence is no fault
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::begin_step(int64_t step) {
  step_.store(step, std::memory_order_relaxed);
  step_begin_ms_.store(now_ms(), std::memory_order_release);
}

void Watchdog::end_step() {
  step_begin_ms_.store(-1, std::memory_order_release);
}

std::chrono::milliseconds Watchdog::step_age() const {
  const int64_t t0 = step_begin_ms_.load(std::memory_order_acquire);
  if (!enabled() || !armed_.load(std::memory_order_acquire) || t0 < 0)
    return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(std::max<int64_t>(0, now_ms() - t0));
}

void Watchdog::set_heartbeat(std::unique_ptr<Heartbeat> hb, std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> lock(mu_);
  hb_ = std::move(hb);
  grace_ = grace;
  beat(now_ms());  // the root hears from every rank at once, not only a period later
}

void Watchdog::set_on_trip(std::function<void(const std::string&)> f) {
  std::lock_guard<std::mutex> lock(mu_);
  on_trip_ = std::move(f);
}

void Watchdog::beat(int64_t now) {
  if (!hb_) return;
  hb_->receive();
  if (hb_->is_root()) return;
  Beat b;
  b.step = step_.load(std::memory_order_relaxed);
  const int64_t t0 = step_begin_ms_.load(std::memory_order_acquire);
  b.step_age_ms = t0 < 0 ? -1 : now - t0;
  if (const char* what = what_.load(std::memory_order_acquire)) {
    b.collective_age_ms = now - entered_ms_.load(std::memory_order_relaxed);
    std::strncpy(b.what, what, sizeof(b.what) - 1);
  }
  hb_->send(b);
}

std::string Watchdog::trip_message(int64_t now, int64_t step_ms, int64_t coll_ms,
                                   const char* what) {
  const int64_t step = step_.load(std::memory_order_relaxed);
  const double timeout_s = timeout_.count() / 1000.0;
  std::string msg;
  if (what)
    msg = fmt::format("watchdog: stuck in collective '{}' at step {} for {:.1f} s", what, step,
                      std::max(step_ms, coll_ms) / 1000.0);
  else
    msg = fmt::format("watchdog: step {} has run for {:.1f} s on this rank outside any collective",
                      step, step_ms / 1000.0);
  msg += fmt::format(" (--watchdog-timeout {:g} s)", timeout_s);
  if (hb_ && hb_->is_root()) {
    // Beats arrive every check period (<= 250 ms); two seconds without one mean silence.
    const std::string diag = hb_->diagnose(std::chrono::milliseconds(2000), step);
    if (!diag.empty())
      msg += ": " + diag;
    else if (what)
      msg +=
          ": every other rank still sends heartbeats and none is computing: a collective "
          "that never completes (network?)";
  } else if (hb_) {
    msg += ": rank 0 did not end the job first, so rank 0 itself may be the stuck one";
  }
  (void)now;
  return msg;
}

void Watchdog::run() {
  // Check a few times per timeout period, at least 4 times a second: shutdown is quick, and
  // heartbeats (sent and answered at this pace) show every rank the root within a second.
  const auto period = std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(250), std::max(timeout_ / 4, decltype(timeout_)(1)));
  std::unique_lock<std::mutex> lock(mu_);
  int64_t last_wake = now_ms();
  while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
    const int64_t now = now_ms();
    const int64_t gap = now - last_wake;
    last_wake = now;
    beat(now);
    if (!armed_.load(std::memory_order_acquire)) continue;
    // This thread slept far past its period: the whole process was stopped (SIGSTOP, then
    // SIGCONT from mpirun ending the job) or frozen. Say so instead of blaming the others.
    if (gap >= std::max<int64_t>(timeout_.count() / 2, 3 * period.count() + 4000)) {
      const std::string msg =
          fmt::format("watchdog: this rank was itself stopped or frozen for {:.1f} s (at step {})",
                      gap / 1000.0, step_.load());
      if (on_trip_) on_trip_(msg);
      abort_job(msg);
    }
    // A peer gone silent for the whole timeout, even between steps (an idle server whose
    // rank was stopped would otherwise hang the next request for the timeout).
    double quiet_s = 0;
    if (const int r = hb_ ? hb_->silent_peer(timeout_, quiet_s) : -1; r >= 0) {
      const int64_t t0 = step_begin_ms_.load(std::memory_order_acquire);
      const char* what = what_.load(std::memory_order_acquire);
      std::string here;
      if (what)
        here = fmt::format("waits in collective '{}' at step {} for {:.1f} s", what, step_.load(),
                           (now - entered_ms_.load()) / 1000.0);
      else if (t0 >= 0)
        here = fmt::format("is in step {} ({:.1f} s)", step_.load(), (now - t0) / 1000.0);
      else
        here = fmt::format("is between steps (last step {})", step_.load());
      const std::string msg = fmt::format(
          "watchdog: rank {} (host {}) sent no heartbeat for {:.1f} s (stopped, frozen or "
          "dead?); this rank {} (--watchdog-timeout {:g} s)",
          r, hb_->host(r), quiet_s, here, timeout_.count() / 1000.0);
      if (on_trip_) on_trip_(msg);
      abort_job(msg);
    }
    const char* what = what_.load(std::memory_order_acquire);
    const int64_t coll_ms = what ? now - entered_ms_.load(std::memory_order_relaxed) : 0;
    const int64_t t0 = step_begin_ms_.load(std::memory_order_acquire);
    const int64_t step_ms = t0 < 0 ? 0 : now - t0;
    const int64_t limit = timeout_.count() + (hb_ && !hb_->is_root() ? grace_.count() : 0);
    if (std::max(coll_ms, step_ms) < limit) continue;
    const std::string msg = trip_message(now, step_ms, coll_ms, what);
    if (on_trip_) on_trip_(msg);
    abort_job(msg);
  }
}

Watchdog::Scope::Scope(Watchdog* wd, const char* what) : wd_(wd && wd->enabled() ? wd : nullptr) {
  if (!wd_) return;
  wd_->entered_ms_.store(now_ms(), std::memory_order_relaxed);
  wd_->what_.store(what, std::memory_order_release);
}

Watchdog::Scope::~Scope() {
  if (wd_) wd_->what_.store(nullptr, std::memory_order_release);
}

}  // namespace dpep::comm
