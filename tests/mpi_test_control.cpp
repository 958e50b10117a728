// Control plane under mpirun (np 1..4): context, step agreement, blobs, idle waiting.
#include <gtest/gtest.h>
#include <mpi.h>
#include <sys/resource.h>

#include <chrono>
#include <thread>

#include "comm/mpi_context.h"
#include "comm/mpi_control.h"
#include "comm/mpi_watchdog.h"
#include "tests/mpi_test_main.h"

using namespace dpep::comm;
using Clock = std::chrono::steady_clock;

namespace {
double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}
}  // namespace

TEST(MpiContext, RankHostAndThreads) {
  MpiContext ctx(nullptr, nullptr);  // MPI already initialised by main: does not finalize
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(ctx.rank(), rank);
  EXPECT_EQ(ctx.size(), size);
  EXPECT_FALSE(ctx.info().host.empty());
  EXPECT_LT(ctx.info().local_rank, ctx.info().local_size);
  // Node-local sizes add up to the world: each node's local rank 0 contributes its size.
  int contrib = ctx.info().local_rank == 0 ? ctx.info().local_size : 0, total = 0;
  MPI_Allreduce(&contrib, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(total, size);
  EXPECT_EQ(ctx.threads(), default_threads_per_rank(ctx.info().host_cpus, ctx.info().local_size));
  EXPECT_GE(ctx.threads(), 1);
  EXPECT_EQ(ctx.binding_warning().empty(), ctx.threads() <= ctx.info().bound_cpus);
  ctx.set_threads(3);
  EXPECT_EQ(ctx.threads(), 3);
}

TEST(ControlPlane, StepAgreementSumsMaximaAndErrors) {
  MpiControlPlane cp(MPI_COMM_WORLD);
  const int r = cp.rank(), R = cp.size();
  StepLocal mine{.step = 5,
                 .num_tokens = r + 1,
                 .num_seqs = 2 * r,
                 .has_work = r % 2 == 0,
                 .error = false,
                 .stop = r == R - 1,
                 .flags = 1u << r};
  StepGlobal g = cp.agree(mine);
  EXPECT_EQ(g.step, 5);
  EXPECT_EQ(g.total_tokens, R * (R + 1) / 2);
  EXPECT_EQ(g.max_tokens, R);
  EXPECT_EQ(g.total_seqs, R * (R - 1));
  EXPECT_EQ(g.max_seqs, 2 * (R - 1));
  EXPECT_EQ(g.ranks_with_work, (R + 1) / 2);
  EXPECT_FALSE(g.any_error());
  EXPECT_EQ(g.first_error_rank, -1);
  EXPECT_TRUE(g.stop);
  EXPECT_EQ(g.flags, (1u << R) - 1);

  // Errors on the upper half: everyone learns the lowest failing rank and the count.
  mine = StepLocal{.step = 6, .error = r >= R / 2};
  g = cp.agree(mine);
  EXPECT_TRUE(g.any_error());
  EXPECT_EQ(g.first_error_rank, R / 2);
  EXPECT_EQ(g.num_error_ranks, R - R / 2);
  EXPECT_TRUE(g.all_idle());
  EXPECT_FALSE(g.stop);
}

TEST(ControlPlane, LockStepLossThrowsOnAllRanks) {
  MpiControlPlane cp(MPI_COMM_WORLD);
  if (cp.size() == 1) GTEST_SKIP() << "needs two ranks";
  EXPECT_THROW(cp.agree(StepLocal{.step = cp.rank() == 0 ? 1 : 2}), std::logic_error);
  EXPECT_NO_THROW(cp.agree(StepLocal{.step = 3}));
}

TEST(ControlPlane, BlobScatterGatherBroadcastRoundTrip) {
  MpiControlPlane cp(MPI_COMM_WORLD);
  const int R = cp.size();
  for (int round = 0; round < 3; ++round) {
    std::vector<Blob> work;
    if (cp.is_root())
      for (int r = 0; r < R; ++r) {  // rank r gets (r + round) * 3 bytes, rank 0 may get none
        Blob b((r + round) * 3);
        for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(r * 31 + i + round);
        work.push_back(b);
      }
    Blob mine = cp.scatter_blobs(work);
    ASSERT_EQ(mine.size(), static_cast<size_t>((cp.rank() + round) * 3));
    for (size_t i = 0; i < mine.size(); ++i)
      EXPECT_EQ(mine[i], static_cast<uint8_t>(cp.rank() * 31 + i + round));
    Blob reply = mine;  // result = input + 1, plus one trailer byte naming the rank
    for (uint8_t& v : reply) ++v;
    reply.push_back(static_cast<uint8_t>(cp.rank()));
    std::vector<Blob> all = cp.gather_blobs(reply);
    if (cp.is_root()) {
      ASSERT_EQ(all.size(), static_cast<size_t>(R));
      for (int r = 0; r < R; ++r) {
        Blob expect = work[r];
        for (uint8_t& v : expect) ++v;
        expect.push_back(static_cast<uint8_t>(r));
        EXPECT_EQ(all[r], expect) << "rank " << r;
      }
    } else {
      EXPECT_TRUE(all.empty());
    }
    Blob cmd =
        cp.broadcast_blob(cp.is_root() ? Blob{9, 8, 7, static_cast<uint8_t>(round)} : Blob{});
    EXPECT_EQ(cmd, (Blob{9, 8, 7, static_cast<uint8_t>(round)}));
  }
}

// All ranks idle: followers sleep (little CPU) until root says go ~150 ms later, and wake
// promptly (well under a second).
TEST(ControlPlane, IdleWaitSleepsAndWakesPromptly) {
  MpiControlPlane cp(MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  const auto t0 = Clock::now();
  const double cpu0 = cpu_seconds();
  int root_polls = 0;
  IdleStats s = cp.idle_wait([&] {
    ++root_polls;
    return Clock::now() - t0 > std::chrono::milliseconds(150);
  });
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  EXPECT_GE(wall, 0.14);
  EXPECT_LT(wall, 1.0);
  EXPECT_LT(cpu, 0.5 * wall) << "idle wait burned CPU";
  EXPECT_GE(s.waited.count(), 100);
  EXPECT_LT(s.polls, 60) << "back-off should reach 20 ms sleeps";
  if (cp.is_root()) {
    EXPECT_GT(root_polls, 1);
  }
  // The next collective works normally after the wait.
  StepGlobal g = cp.agree(StepLocal{.step = 1, .has_work = true});
  EXPECT_EQ(g.ranks_with_work, cp.size());
}

// A watchdog scope that ends in time never fires; a disabled watchdog starts no thread.
TEST(Watchdog, QuietWhenCollectivesFinishInTime) {
  Watchdog wd(std::chrono::milliseconds(400));
  MpiControlPlane cp(MPI_COMM_WORLD, 0, &wd);
  for (int step = 0; step < 5; ++step) {
    wd.set_step(step);
    cp.agree(StepLocal{.step = step});
    std::this_thread::sleep_for(std::chrono::milliseconds(150));  // outside a scope: not counted
  }
  Watchdog off(std::chrono::milliseconds(0));
  EXPECT_FALSE(off.enabled());
  Watchdog::Scope s(&off, "nothing");
}

DPEP_MPI_TEST_MAIN
