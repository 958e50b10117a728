// Cache-aware routing on rank 0, without a model: decisions from reported cache events and
// assigned-but-unfinished prompts, and the load guard.
#include <gtest/gtest.h>

#include "runtime/cache_router.h"
#include "runtime/wire.h"
#include "scheduler_test_util.h"

using namespace dpep;
using namespace dpep::testing;

namespace {
constexpr int kPs = 4;

// The events a rank's block manager would send after computing `t` (full pages committed).
std::vector<CacheEvent> committed(const std::vector<int>& t, bool added = true) {
  std::vector<PageHash> h;
  extend_page_hashes(h, t, kPs);
  std::vector<CacheEvent> ev;
  for (auto& x : h) ev.push_back({x, added});
  return ev;
}
}  // namespace

TEST(CacheRouter, FollowsTheRankHoldingTheLongestPrefix) {
  CacheAwareRouter r(3, kPs);
  const auto sys_a = toks(100, 40), sys_b = toks(500, 40);
  r.apply(1, committed(sys_a));
  r.apply(2, committed(concat(sys_b, toks(900, 8))));
  r.apply(0, committed(toks(100, 8)));  // rank 0 holds only the first 2 pages of sys_a
  auto c = r.pick(concat(sys_a, toks(7000, 6)), 4, 0);
  EXPECT_EQ(c.rank, 1);
  EXPECT_EQ(c.matched_pages, 10);
  EXPECT_EQ(c.work, 46 - 40 + 4);
  c = r.pick(concat(sys_b, toks(8000, 6)), 4, 0);
  EXPECT_EQ(c.rank, 2);
  // No known prefix: the least loaded rank, ties rotating from `rotate`.
  EXPECT_EQ(r.pick(toks(3000, 20), 4, 1).rank, 1);
  EXPECT_EQ(r.pick(toks(3000, 20), 4, 2).rank, 2);
  // Evicted pages are forgotten: rank 1 now only has the first 3 pages.
  std::vector<PageHash> h;
  extend_page_hashes(h, sys_a, kPs);
  std::vector<CacheEvent> ev;
  for (size_t i = 3; i < h.size(); ++i) ev.push_back({h[i], false});
  r.apply(1, ev);
  EXPECT_EQ(r.matched_pages(1, h), 3);
  EXPECT_EQ(r.matched_pages(0, h), 2);
}

TEST(CacheRouter, AssignedPromptsCountBeforeTheirPagesAreReported) {
  CacheAwareRouter r(2, kPs);
  const auto sys = toks(100, 64);
  // First request of a group: nowhere cached, goes to rank 1 (rotation).
  auto first = r.pick(concat(sys, toks(1000, 8)), 8, 1);
  EXPECT_EQ(first.rank, 1);
  r.assign(1, concat(sys, toks(1000, 8)), first);
  EXPECT_EQ(r.work(1), 72 + 8);
  // Its group-mates follow it while it is still computing.
  for (int i = 0; i < 3; ++i) {
    auto c = r.pick(concat(sys, toks(2000 + 10 * i, 8)), 8, 0);
    EXPECT_EQ(c.rank, 1);
    EXPECT_EQ(c.matched_pages, 16);
    r.assign(10 + i, concat(sys, toks(2000 + 10 * i, 8)), c);
  }
  // Finishing forgets what was pending; the reported cache keeps the prefix known.
  for (int64_t id : {1, 10, 11, 12}) r.finish(id);
  EXPECT_EQ(r.work(1), 0);
  EXPECT_EQ(r.pick(concat(sys, toks(3000, 8)), 8, 0).matched_pages, 0);
  r.apply(1, committed(sys));
  EXPECT_EQ(r.pick(concat(sys, toks(3000, 8)), 8, 0).rank, 1);
}

TEST(CacheRouter, LoadGuardSendsAwayWhenTheBacklogOutweighsThePrefix) {
  CacheAwareRouter r(2, kPs);
  static_assert(CacheAwareRouter::kPrefixWeight == 4);
  const auto sys = toks(100, 32);  // 8 pages known on rank 0: worth (1 + 4) x 32 = 160 tokens
  r.apply(0, committed(sys));
  const auto req = concat(sys, toks(900, 4));
  // Rank 0 gets a backlog of 100 tokens of unrelated work: the prefix still wins.
  r.assign(99, toks(5000, 96), CacheAwareRouter::Choice{0, 0, 100});
  EXPECT_EQ(r.pick(req, 4, 1).rank, 0);
  // 159 more than rank 1: still rank 0 (rank 1: 0 + 40; rank 0: 159 + 8 - 4 x 32 = 39).
  r.assign(98, toks(6000, 23), CacheAwareRouter::Choice{0, 0, 59});
  EXPECT_EQ(r.pick(req, 4, 1).rank, 0);
  // 2 more tokens of backlog tip it over to rank 1.
  r.assign(97, toks(7000, 2), CacheAwareRouter::Choice{0, 0, 2});
  const auto c = r.pick(req, 4, 0);
  EXPECT_EQ(c.rank, 1);
  EXPECT_EQ(c.matched_pages, 0);
  EXPECT_EQ(c.work, 40);
  // Work finishing on rank 0 brings the request back.
  r.finish(99);
  EXPECT_EQ(r.pick(req, 4, 1).rank, 0);
}

TEST(CacheRouter, WithoutCachingOnlyTheBacklogCounts) {
  CacheAwareRouter r(2, kPs, false);
  const auto sys = toks(100, 64);
  auto first = r.pick(concat(sys, toks(1000, 8)), 8, 0);
  r.assign(1, concat(sys, toks(1000, 8)), first);
  const auto c = r.pick(concat(sys, toks(2000, 8)), 8, 0);
  EXPECT_NE(c.rank, first.rank);
  EXPECT_EQ(c.matched_pages, 0);
}

TEST(CacheRouter, CacheEventsRoundTripThroughTheControlMessage) {
  const auto ev = committed(toks(1, 12));
  std::vector<CacheEvent> in = ev;
  in[1].added = false;
  wire::StepStatus msg;
  msg.cache_events = in;
  const auto bytes = wire::encode(msg);
  const auto out = wire::decode<wire::StepStatus>(bytes).cache_events;
  ASSERT_EQ(out.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out[i].hash, in[i].hash);
    EXPECT_EQ(out[i].added, in[i].added);
  }
  auto cut = bytes;
  cut.resize(cut.size() - 1);
  EXPECT_THROW(wire::decode<wire::StepStatus>(cut), std::runtime_error);
}
