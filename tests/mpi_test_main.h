// Shared main() for tests/mpi_test_*.cpp (GoogleTest under mpirun, no gtest_main).
// Every rank runs every test in the same order; rank 0 prints the usual gtest output, other
// ranks print only their failed assertions, prefixed "[rank N]". After each test all ranks
// agree whether it failed anywhere (rank 0 names the ranks), and the exit code is the maximum
// over ranks, so every rank exits non-zero if any rank failed.
#pragma once
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace dpep::testing_mpi {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_,
                 r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
  }

 private:
  int rank_;
};

// Collective at the end of each test: rank 0 reports failures that happened elsewhere.
class FailureAgreement : public ::testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const ::testing::TestInfo& info) override {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int failed = info.result()->Failed() ? 1 : 0;
    std::vector<int> all(size);
    MPI_Gather(&failed, 1, MPI_INT, all.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank != 0) return;
    std::string ranks;
    for (int r = 0; r < size; ++r)
      if (all[r]) ranks.append(1, ' ').append(std::to_string(r));
    if (!ranks.empty())
      std::fprintf(stderr, "[  FAILED  ] %s.%s failed on rank(s)%s\n", info.test_suite_name(),
                   info.name(), ranks.c_str());
  }
};

inline int run_all_tests_under_mpi(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  listeners.Append(new FailureAgreement);
  const int rc = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  // Every rank got here with its result: rank 0 records the agreed one for
  // tests/lib/mpi_gtest.sh (which tells a test failure from Open MPI's own exit bookkeeping).
  if (const char* path = std::getenv("DPEP_MPI_TEST_RESULT"); path && rank == 0) {
    if (std::FILE* f = std::fopen(path, "w")) {
      std::fprintf(f, "%d\n", worst);
      std::fclose(f);
    }
  }
  return worst;
}

}  // namespace dpep::testing_mpi

#define DPEP_MPI_TEST_MAIN                                         \
  int main(int argc, char** argv) {                                \
    return dpep::testing_mpi::run_all_tests_under_mpi(argc, argv); \
  }
