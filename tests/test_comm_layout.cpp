// comm pieces that need no mpirun: layout counting, loopback contract, thread defaults.
#include <gtest/gtest.h>

#include <atomic>

#include <chrono>
#include <thread>

#include "comm/expert_exchange.h"
#include "comm/mpi_context.h"
#include "comm/mpi_watchdog.h"

using namespace dpep::comm;

// 3 tokens, top-3, 8 experts over 4 ranks (2 each). Token 1 hits rank 1 twice: counted once.
TEST(CommLayout, CountsTokensOncePerRankAndSkipsUnusedSlots) {
  const int idx[] = {0,  7,  -1,  //
                     2,  3,  6,   //
                     -1, -1, -1};
  DispatchLayout l = compute_layout(idx, 3, 3, ExpertPlacement{8, 4});
  EXPECT_EQ(l.tokens_per_rank, (std::vector<int>{1, 1, 0, 2}));
  EXPECT_EQ(l.tokens_per_expert, (std::vector<int>{1, 0, 1, 1, 0, 0, 1, 1}));
  EXPECT_EQ(l.is_token_in_rank, (std::vector<uint8_t>{1, 0, 0, 1,  //
                                                      0, 1, 0, 1,  //
                                                      0, 0, 0, 0}));
}

TEST(CommLayout, RejectsExpertIdOutOfRange) {
  const int idx[] = {8};
  EXPECT_THROW(compute_layout(idx, 1, 1, ExpertPlacement{8, 2}), std::out_of_range);
}

// Loopback: rows with no valid slot are not sent; out = sum_j w_j * y(t, j) in slot order.
TEST(CommLoopback, WeightedSumInSlotOrder) {
  LoopbackExchange ex;
  const float x[] = {1, 2, 3, 4, 5, 6};  // [3 tokens, hidden 2]
  const int idx[] = {1, -1, -1, -1, 0, 1};
  const float w[] = {0.5f, 9.f, 9.f, 9.f, 0.25f, 2.f};
  DispatchResult d = ex.dispatch(x, 3, 2, idx, w, 2, ExpertPlacement{2, 1});
  ASSERT_EQ(d.num_recv, 2);
  EXPECT_EQ(d.src_token, (std::vector<int>{0, 2}));
  EXPECT_EQ(d.tokens_per_local_expert, (std::vector<int>{1, 2}));
  ASSERT_EQ(count_local_slots(d), 3);
  const float y[] = {10, 20, 30, 40, 50, 60};  // (t0,j0) (t2,j0) (t2,j1)
  float out[6] = {-1, -1, -1, -1, -1, -1};
  ex.combine(y, std::move(d.handle), out);
  EXPECT_EQ(std::vector<float>(out, out + 6),
            (std::vector<float>{5, 10, 0, 0, 0.25f * 30 + 2 * 50, 0.25f * 40 + 2 * 60}));
}

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
