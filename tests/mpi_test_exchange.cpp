// MpiExchange under mpirun (np 1..4): layout, stamped dispatch, exact combine property.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "comm/mpi_exchange.h"
#include "tests/mpi_test_main.h"

using namespace dpep::comm;

namespace {

int world_rank() {
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int s;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// One rank's inputs, reproducible on every rank from (seed, rank): any rank can recompute
// what every other rank sends.
struct Routing {
  int tokens = 0, hidden = 0, topk = 0;
  std::vector<float> x;  // [tokens, hidden]; x[t][0] = rank, x[t][1] = t (stamps)
  std::vector<int> idx;  // [tokens, topk], -1 = unused slot
  std::vector<float> w;  // [tokens, topk]
};

Routing make_routing(uint64_t seed, int rank, int hidden, int topk, int experts, int max_tokens,
                     bool some_empty_ranks) {
  std::mt19937_64 g(seed * 1000003u + rank);
  Routing r;
  r.hidden = hidden;
  r.topk = topk;
  r.tokens = (some_empty_ranks && rank % 3 == 1)
                 ? 0
                 : std::uniform_int_distribution<int>(1, max_tokens)(g);
  std::uniform_real_distribution<float> val(-1.f, 1.f), wt(0.f, 1.f), coin(0.f, 1.f);
  r.x.resize(static_cast<size_t>(r.tokens) * hidden);
  for (int t = 0; t < r.tokens; ++t)
    for (int c = 0; c < hidden; ++c)
      r.x[t * hidden + c] = c == 0 ? float(rank) : c == 1 ? float(t) : val(g);
  std::vector<int> perm(experts);
  std::iota(perm.begin(), perm.end(), 0);
  for (int t = 0; t < r.tokens; ++t) {
    std::shuffle(perm.begin(), perm.end(), g);  // distinct experts per token
    const bool all_unused = coin(g) < 0.05f;
    for (int j = 0; j < topk; ++j) {
      const bool unused = all_unused || coin(g) < 0.15f;
      r.idx.push_back(unused ? -1 : perm[j % experts]);
      r.w.push_back(wt(g));
    }
  }
  return r;
}

// Expert e's output for input row x: x * (1 + e/4), or x itself for identity experts.
float expert_scale(int global_expert, bool identity) {
  return identity ? 1.f : 1.f + 0.25f * float(global_expert);
}

// y rows [num_slots, hidden] for a dispatch result, ordered by row then slot.
std::vector<float> run_experts(const DispatchResult& d, int hidden, int topk, int first_expert,
                               bool identity) {
  std::vector<float> y;
  for (int i = 0; i < d.num_recv; ++i)
    for (int j = 0; j < topk; ++j) {
      const int local = d.topk_local[i * topk + j];
      if (local < 0) continue;
      const float s = expert_scale(first_expert + local, identity);
      for (int c = 0; c < hidden; ++c) y.push_back(d.x[static_cast<size_t>(i) * hidden + c] * s);
    }
  return y;
}

std::vector<float> combine_reference(const Routing& r, int experts, bool identity) {
  LoopbackExchange lb;
  ExpertPlacement one{experts, 1};
  DispatchResult d =
      lb.dispatch(r.x.data(), r.tokens, r.hidden, r.idx.data(), r.w.data(), r.topk, one);
  std::vector<float> y = run_experts(d, r.hidden, r.topk, 0, identity);
  std::vector<float> out(r.x.size(), -7.f);
  lb.combine(y.data(), std::move(d.handle), out.data());
  return out;
}

void random_delay(std::mt19937& g) {
  std::this_thread::sleep_for(
      std::chrono::microseconds(std::uniform_int_distribution<int>(0, 15000)(g)));
}

std::vector<float> combine_mpi(MpiExchange& ex, const Routing& r, int experts, bool identity,
                               std::mt19937* delays) {
  ExpertPlacement p{experts, ex.num_ranks()};
  if (delays) random_delay(*delays);
  DispatchResult d =
      ex.dispatch(r.x.data(), r.tokens, r.hidden, r.idx.data(), r.w.data(), r.topk, p);
  std::vector<float> y = run_experts(d, r.hidden, r.topk, p.first_local(ex.rank()), identity);
  if (delays) random_delay(*delays);
  std::vector<float> out(r.x.size(), -7.f);
  ex.combine(y.data(), std::move(d.handle), out.data());
  return out;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(MpiExchange, LayoutCountsMatchHandRecount) {
  const int R = world_size(), E = 8 * R, K = 4;
  Routing r = make_routing(11, world_rank(), 2, K, E, 50, false);
  ExpertPlacement p{E, R};
  DispatchLayout l = compute_layout(r.idx.data(), r.tokens, K, p);
  std::vector<int> per_rank(R, 0), per_expert(E, 0);
  for (int t = 0; t < r.tokens; ++t) {
    std::set<int> ranks;
    for (int j = 0; j < K; ++j)
      if (int e = r.idx[t * K + j]; e >= 0) {
        per_expert[e]++;
        ranks.insert(e / (E / R));
      }
    for (int dst : ranks) per_rank[dst]++;
    for (int dst = 0; dst < R; ++dst)
      EXPECT_EQ(l.is_token_in_rank[t * R + dst], ranks.count(dst)) << "token " << t;
  }
  EXPECT_EQ(l.tokens_per_rank, per_rank);
  EXPECT_EQ(l.tokens_per_expert, per_expert);

  // Globally: experts' received counts equal the all-reduced per-expert counts.
  MpiExchange ex(MPI_COMM_WORLD);
  DispatchResult d = ex.dispatch(r.x.data(), r.tokens, r.hidden, r.idx.data(), r.w.data(), K, p);
  std::vector<int> global(E);
  MPI_Allreduce(per_expert.data(), global.data(), E, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  const int first = p.first_local(world_rank());
  EXPECT_EQ(d.tokens_per_local_expert,
            std::vector<int>(global.begin() + first, global.begin() + first + E / R));
  std::vector<int> sent_to(R);
  MPI_Allreduce(per_rank.data(), sent_to.data(), R, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(d.num_recv, sent_to[world_rank()]);
  std::vector<float> y(static_cast<size_t>(count_local_slots(d)) * r.hidden, 0.f), out(r.x.size());
  ex.combine(y.data(), std::move(d.handle), out.data());
}

// DeepEP-style stamps: every received row proves its source rank and token; local ids,
// weights, order and per-expert counts equal a recomputation of every rank's routing.
TEST(MpiExchange, StampedRowsArriveWhereTheyShould) {
  const int R = world_size(), me = world_rank(), E = 4 * R, K = 3, H = 5;
  const int per = E / R;
  for (uint64_t seed : {1u, 2u, 3u}) {
    Routing mine = make_routing(seed, me, H, K, E, 30, true);
    MpiExchange ex(MPI_COMM_WORLD);
    ExpertPlacement p{E, R};
    DispatchResult d =
        ex.dispatch(mine.x.data(), mine.tokens, H, mine.idx.data(), mine.w.data(), K, p);
    int i = 0;
    std::vector<int> per_expert(per, 0);
    for (int src = 0; src < R; ++src) {
      Routing s = make_routing(seed, src, H, K, E, 30, true);
      for (int t = 0; t < s.tokens; ++t) {
        std::vector<int> local(K, -1);
        bool any = false;
        for (int j = 0; j < K; ++j)
          if (int e = s.idx[t * K + j]; e >= 0 && p.owner(e) == me) {
            local[j] = p.local_index(e);
            per_expert[local[j]]++;
            any = true;
          }
        if (!any) continue;
        ASSERT_LT(i, d.num_recv) << "too few rows, seed " << seed;
        EXPECT_EQ(d.src_rank[i], src);
        EXPECT_EQ(d.src_token[i], t);
        EXPECT_EQ(d.x[i * H + 0], float(src));
        EXPECT_EQ(d.x[i * H + 1], float(t));
        EXPECT_TRUE(
            std::equal(d.x.begin() + i * H, d.x.begin() + (i + 1) * H, s.x.begin() + t * H));
        EXPECT_EQ(
            std::vector<int>(d.topk_local.begin() + i * K, d.topk_local.begin() + (i + 1) * K),
            local);
        EXPECT_TRUE(std::equal(d.topk_weights.begin() + i * K, d.topk_weights.begin() + (i + 1) * K,
                               s.w.begin() + t * K));
        ++i;
      }
    }
    EXPECT_EQ(i, d.num_recv);
    EXPECT_EQ(d.tokens_per_local_expert, per_expert);
    std::vector<float> y(static_cast<size_t>(count_local_slots(d)) * H), out(mine.x.size());
    ex.combine(y.data(), std::move(d.handle), out.data());
  }
}

// combine(experts(dispatch(x))) is bitwise equal to the single-process loopback result, for
// identity experts and expert-dependent scaling, with empty ranks, -1 slots, many shapes.
TEST(MpiExchange, CombineOfDispatchEqualsLoopbackBitwise) {
  const int R = world_size();
  struct Shape {
    int hidden, topk, experts_per_rank, max_tokens;
  };
  for (MetaTransport meta : {MetaTransport::kSeparate, MetaTransport::kPacked}) {
    MpiExchange ex(MPI_COMM_WORLD, {.meta = meta});
    for (Shape s :
         {Shape{1, 1, 1, 5}, Shape{7, 2, 3, 20}, Shape{64, 8, 64 / R, 40}, Shape{33, 8, 2, 60}}) {
      for (uint64_t seed = 0; seed < 4; ++seed)
        for (bool identity : {true, false}) {
          const int E = s.experts_per_rank * R;
          Routing r =
              make_routing(100 + seed, world_rank(), s.hidden, s.topk, E, s.max_tokens, true);
          std::vector<float> got = combine_mpi(ex, r, E, identity, nullptr);
          EXPECT_TRUE(bitwise_equal(got, combine_reference(r, E, identity)))
              << "hidden " << s.hidden << " topk " << s.topk << " seed " << seed << " identity "
              << identity << " packed " << (meta == MetaTransport::kPacked);
        }
    }
  }
}

// Random per-rank sleeps before each collective perturb arrival order; results do not move.
TEST(MpiExchange, ResultsIndependentOfArrivalOrder) {
  const int R = world_size(), E = 8 * R;
  MpiExchange ex(MPI_COMM_WORLD);
  std::mt19937 delays(977 + world_rank());
  for (uint64_t seed = 0; seed < 3; ++seed) {
    Routing r = make_routing(500 + seed, world_rank(), 16, 8, E, 40, true);
    std::vector<float> calm = combine_mpi(ex, r, E, false, nullptr);
    std::vector<float> jittered = combine_mpi(ex, r, E, false, &delays);
    EXPECT_TRUE(bitwise_equal(calm, jittered)) << "seed " << seed;
    EXPECT_TRUE(bitwise_equal(calm, combine_reference(r, E, false))) << "seed " << seed;
  }
}

// bf16 payload: equal to loopback fed with bf16-rounded x (rounding is the only change).
TEST(MpiExchange, Bf16PayloadEqualsLoopbackOnRoundedInput) {
  const int R = world_size(), E = 4 * R;
  MpiExchange ex(MPI_COMM_WORLD, {.payload = Payload::kBF16});
  Routing r = make_routing(42, world_rank(), 24, 4, E, 30, true);
  std::vector<float> got = combine_mpi(ex, r, E, false, nullptr);
  Routing rounded = r;
  for (float& v : rounded.x) {  // round to nearest even at bit 16 (no NaNs here)
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    std::memcpy(&v, &u, 4);
  }
  EXPECT_TRUE(bitwise_equal(got, combine_reference(rounded, E, false)));
  const bool routed = std::any_of(r.idx.begin(), r.idx.end(), [](int e) { return e >= 0; });
  if (routed) {
    EXPECT_FALSE(bitwise_equal(got, combine_reference(r, E, false))) << "not rounded?";
  }
}

// dispatch_into reuses a result across calls of different sizes and matches fresh dispatch.
TEST(MpiExchange, DispatchIntoReusesResult) {
  const int R = world_size(), E = 2 * R, K = 2, H = 9;
  MpiExchange ex(MPI_COMM_WORLD);
  ExpertPlacement p{E, R};
  DispatchResult reused;
  for (int max_tokens : {40, 3, 25}) {
    Routing r = make_routing(7 + max_tokens, world_rank(), H, K, E, max_tokens, true);
    ex.dispatch_into(reused, r.x.data(), r.tokens, H, r.idx.data(), r.w.data(), K, p);
    DispatchResult fresh = ex.dispatch(r.x.data(), r.tokens, H, r.idx.data(), r.w.data(), K, p);
    EXPECT_EQ(reused.num_recv, fresh.num_recv);
    EXPECT_EQ(reused.x, fresh.x);
    EXPECT_EQ(reused.topk_local, fresh.topk_local);
    EXPECT_EQ(reused.src_token, fresh.src_token);
    std::vector<float> y = run_experts(reused, H, K, 0, true), out(r.x.size());
    ex.combine(y.data(), std::move(reused.handle), out.data());
    std::vector<float> y2 = run_experts(fresh, H, K, 0, true), out2(r.x.size());
    ex.combine(y2.data(), std::move(fresh.handle), out2.data());
    EXPECT_TRUE(bitwise_equal(out, out2));
  }
}

// A shape mismatch on one rank is detected by every rank (no rank proceeds into alltoallv).
TEST(MpiExchange, HiddenMismatchThrowsOnAllRanks) {
  const int R = world_size();
  if (R == 1) GTEST_SKIP() << "needs two ranks";
  MpiExchange ex(MPI_COMM_WORLD);
  const int H = world_rank() == 0 ? 8 : 16;
  std::vector<float> x(H, 1.f), w(1, 1.f);
  std::vector<int> idx(1, 0);
  EXPECT_THROW(ex.dispatch(x.data(), 1, H, idx.data(), w.data(), 1, {R, R}), std::invalid_argument);
}

TEST(MpiExchange, UnevenPlacementThrows) {
  const int R = world_size();
  if (R == 1) GTEST_SKIP() << "any expert count divides over one rank";
  MpiExchange ex(MPI_COMM_WORLD);
  std::vector<float> x(4, 1.f);
  EXPECT_THROW(ex.dispatch(x.data(), 0, 4, nullptr, nullptr, 1, {R + 1, R}), std::invalid_argument);
}

DPEP_MPI_TEST_MAIN
