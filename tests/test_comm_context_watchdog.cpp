// comm/mpi_context and comm/mpi_watchdog without MPI: thread defaults and a watchdog that
// must not fire on scopes and steps that end in time.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "comm/mpi_context.h"
#include "comm/mpi_watchdog.h"

using namespace dpep::comm;

TEST(CommContext, DefaultThreadsShareTheHost) {
  EXPECT_EQ(default_threads_per_rank(2, 1), 2);
  EXPECT_EQ(default_threads_per_rank(2, 4), 1);
  EXPECT_EQ(default_threads_per_rank(64, 8), 8);
  EXPECT_EQ(default_threads_per_rank(10, 3), 3);
  EXPECT_EQ(default_threads_per_rank(1, 0), 1);
}

TEST(CommWatchdog, ScopesThatEndInTimeDoNotFire) {
  // A trip would abort the process; the hook runs first and records it, so the test can say so.
  std::atomic<int> trips{0};
  Watchdog wd(std::chrono::milliseconds(2000));
  wd.set_on_trip([&](const std::string&) { trips++; });
  for (int i = 0; i < 4; ++i) {
    wd.set_step(i);
    Watchdog::Scope s(&wd, "short collective");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Time between steps never counts, however long.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(wd.step_age().count(), 0);
  wd.begin_step(9);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GT(wd.step_age().count(), 0);  // inside a step its age grows
  wd.end_step();
  EXPECT_EQ(wd.step_age().count(), 0);
  EXPECT_EQ(trips.load(), 0);
  Watchdog::Scope none(nullptr, "null watchdog is allowed");
}
