#include "comm/loopback_control_plane.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <thread>

namespace dpep::comm {

StepGlobal LoopbackControlPlane::agree(const StepLocal& mine) {
  return reduce_steps(std::span<const StepLocal>(&mine, 1));
}

Blob LoopbackControlPlane::scatter_blobs(const std::vector<Blob>& per_rank) {
  if (per_rank.size() != 1) throw std::invalid_argument("scatter_blobs: expected one blob");
  return per_rank[0];
}

std::vector<Blob> LoopbackControlPlane::gather_blobs(std::span<const uint8_t> mine) {
  return {Blob(mine.begin(), mine.end())};
}

IdleStats LoopbackControlPlane::idle_wait(const std::function<bool()>& root_ready) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  IdleStats stats;
  auto sleep = std::chrono::milliseconds(1);
  while (!root_ready()) {
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, std::chrono::milliseconds(20));
    ++stats.polls;
  }
  stats.waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0);
  return stats;
}

void LoopbackControlPlane::abort_job(const std::string& why) {
  std::fprintf(stderr, "dpep: %s\n", why.c_str());
  std::fflush(stderr);
  _exit(kAbortExitCode);
}

}  // namespace dpep::comm
