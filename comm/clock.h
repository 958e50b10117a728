// The one clock of dpep: monotonic seconds (std::chrono::steady_clock). Every layer times with
// it (comm is the lowest layer, so model, runtime and launch can all include it).
#pragma once
#include <chrono>

namespace dpep {

// Seconds since an arbitrary fixed point; only differences mean anything.
inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds since construction or the last restart().
class Stopwatch {
 public:
  Stopwatch() : t0_(now_seconds()) {}
  void restart() { t0_ = now_seconds(); }
  double seconds() const { return now_seconds() - t0_; }

 private:
  double t0_;
};

}  // namespace dpep
