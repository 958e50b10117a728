// comm/expert_exchange without mpirun: layout counting and the loopback contract.
#include <gtest/gtest.h>

#include "comm/expert_exchange.h"

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
