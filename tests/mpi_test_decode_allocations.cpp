// Heap allocations of warm decode forwards with the MPI expert exchange (np 1..4): every rank
// decodes its own sequences through Model::forward and its run-state, the MoE layers exchanging
// rows with MpiExchange. Every allocation of the process is counted (tests/alloc_counter.h)
// except those made inside Open MPI itself (a frame in libmpi, libopen-pal, libopen-rte or one of
// its mca_* plugins): e.g. its ob1 layer buffers a fragment that arrives before the matching
// receive is posted (mca_allocator_bucket), and grows its free lists when more requests are
// outstanding, which depends on timing, not on dpep. Those are printed, not asserted. A counted
// allocation prints its stack.
#include <gtest/gtest.h>
#include <mpi.h>
#include <omp.h>

#include <cstdio>
#include <random>

#include "alloc_counter.h"
#include "comm/mpi_exchange.h"
#include "model/ops/packed_gemm.h"
#include "model_test_util.h"
#include "tests/mpi_test_main.h"

using namespace dpep;
using namespace dpep::testing;

namespace {

// Decode steps of nseq sequences on this rank (each step one row per sequence); returns the
// allocations of the counted steps, after warm-up steps.
long mpi_decode_allocations(MatmulDType dt, int nseq) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  ModelConfig c = ModelConfig::preset("tiny");
  c.n_routed_experts = 12;  // divisible by 1, 2, 3 and 4 ranks
  const ExpertShard shard{rank, size};
  ModelOptions opt;
  opt.matmul_dtype = dt;
  const Model m(c, random_weights(c, 9, shard), shard, opt);
  comm::MpiExchange ex(MPI_COMM_WORLD);
  SimpleCache cache(c, 64, 16, m.kv_cache_bf16());
  RunState rs = m.make_run_state(64, 8, 64 * 16);
  std::mt19937 g(100 + rank);
  std::vector<std::vector<int>> prompts(nseq);
  for (int s = 0; s < nseq; ++s)
    for (int i = 0; i < 7 + 3 * s + rank; ++i) prompts[s].push_back(2 + g() % (c.vocab_size - 2));
  m.forward(prompts_batch(cache, prompts), cache.view, ex, rs);
  std::vector<int> pos(nseq);
  for (int s = 0; s < nseq; ++s) {
    pos[s] = static_cast<int>(prompts[s].size());
    cache.ensure(s, pos[s] + 40);
  }
  ForwardBatch b;
  auto step = [&] {
    greedy_decode_batch(rs.logits.data(), c.vocab_size, cache, pos, b);
    m.forward(b, cache.view, ex, rs);
  };
  for (int i = 0; i < 3; ++i) step();
  long in_mpi = 0;
  const long n = count_allocations(
      [&] {
        for (int i = 0; i < 20; ++i) step();
      },
      "libmpi.so|libopen-pal.so|libopen-rte.so|/openmpi/", &in_mpi);
  if (in_mpi > 0)
    std::fprintf(stderr, "[rank %d] %ld allocations inside Open MPI (not counted)\n", rank, in_mpi);
  if (n > 0) {
    std::fprintf(stderr, "[rank %d] %ld counted allocations; the first stacks:\n", rank, n);
    print_counted_stacks(n);
  }
  return n;
}

TEST(MpiDecodeAllocations, ModelForwardF32) {
  for (int nseq : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << nseq << " sequences per rank");
    EXPECT_EQ(mpi_decode_allocations(MatmulDType::F32, nseq), 0);
  }
}

TEST(MpiDecodeAllocations, ModelForwardBf16) {
  if (gemm_isa() == GemmIsa::None) GTEST_SKIP() << "no AVX512-BF16 or AMX on this CPU";
  for (int nseq : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << nseq << " sequences per rank");
    EXPECT_EQ(mpi_decode_allocations(MatmulDType::BF16, nseq), 0);
  }
}

}  // namespace

DPEP_MPI_TEST_MAIN
