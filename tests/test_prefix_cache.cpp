// Prefix caching without a model: the block manager's cache (hits, LRU eviction, reference
// counts, collisions) and the scheduler's use of it (admission after cached pages, in-flight
// deferral, commits), with fake token ids.
#include <gtest/gtest.h>

#include <memory>

#include "runtime/block_manager.h"
#include "runtime/scheduler.h"
#include "scheduler_test_util.h"

using namespace dpep;
using namespace dpep::testing;

namespace {

constexpr int kPs = 4;

// Allocates pages for `t` and commits every full page, as the scheduler does after a step.
std::vector<int> compute_and_commit(BlockManager& bm, const std::vector<int>& t) {
  std::vector<int> table;
  std::vector<PageHash> h;
  extend_page_hashes(h, t, kPs);
  std::vector<int> hit = bm.match(h, t, static_cast<int>(h.size()));
  bm.acquire(table, hit);
  bm.grow(table, static_cast<int>(t.size()));
  PageRef parent = hit.empty() ? PageRef{} : bm.ref_of(hit.back());
  for (size_t i = hit.size(); i < h.size(); ++i)
    parent = bm.commit(table[i], h[i], t.data() + i * kPs, parent);
  return table;
}

std::vector<int> match_of(const BlockManager& bm, const std::vector<int>& t) {
  std::vector<PageHash> h;
  extend_page_hashes(h, t, kPs);
  return bm.match(h, t, static_cast<int>(h.size()));
}

}  // namespace

TEST(PrefixCache, FullPagesOfAPrefixHitAndShareReferences) {
  BlockManager bm(16, kPs);
  const auto a = concat(toks(100, 8), toks(500, 3));  // 2 full pages + 3 tokens
  auto ta = compute_and_commit(bm, a);
  EXPECT_EQ(bm.num_cached(), 2);
  // Another prompt with the same first 8 tokens hits both full pages, the very same ids.
  const auto b = concat(toks(100, 8), toks(900, 6));
  auto hit = match_of(bm, b);
  ASSERT_EQ(hit.size(), 2u);
  EXPECT_EQ(hit[0], ta[0]);
  EXPECT_EQ(hit[1], ta[1]);
  // Only the first page of a prompt that diverges inside page 2.
  auto c = toks(100, 8);
  c[5] = 42;
  EXPECT_EQ(match_of(bm, c).size(), 1u);
  // A different first page: nothing.
  EXPECT_TRUE(match_of(bm, toks(101, 8)).empty());
  // Shared pages are referenced twice; releasing one user keeps them, releasing both parks
  // them on the LRU (still free for allocation, still cached).
  std::vector<int> tb;
  bm.acquire(tb, hit);
  const int free_before = bm.num_free();
  bm.release(ta);
  EXPECT_EQ(bm.num_free(), free_before + 1);  // only the private third page came back
  EXPECT_EQ(bm.num_evictable(), 0);
  bm.release(tb);
  EXPECT_EQ(bm.num_evictable(), 2);
  EXPECT_EQ(bm.num_free(), 16);
  EXPECT_EQ(match_of(bm, b).size(), 2u);
  EXPECT_THROW(bm.release(ta = {hit[0]}), std::logic_error);  // freed twice
}

TEST(PrefixCache, UnreferencedPagesAreEvictedLeastRecentlyReleasedFirst) {
  BlockManager bm(6, kPs);
  auto t1 = compute_and_commit(bm, toks(10, 8));  // pages 0, 1
  auto t2 = compute_and_commit(bm, toks(20, 8));  // pages 2, 3
  auto t3 = compute_and_commit(bm, toks(30, 8));  // pages 4, 5
  bm.release(t2);                                 // LRU: 3, 2 (a tail leaves before its prefix)
  bm.release(t1);                                 // LRU: 3, 2, 1, 0
  EXPECT_EQ(bm.num_free(), 4);
  std::vector<int> fresh;
  bm.grow(fresh, kPs);  // evicts page 3: prompt 2 keeps only its first page
  EXPECT_EQ(fresh, std::vector<int>{3});
  EXPECT_EQ(match_of(bm, toks(20, 8)).size(), 1u);
  EXPECT_EQ(match_of(bm, toks(10, 8)).size(), 2u);
  // Using prompt 1 again takes it off the LRU, so the next evictions hit prompt 2 only.
  std::vector<int> again;
  bm.acquire(again, match_of(bm, toks(10, 8)));
  bm.grow(fresh, 2 * kPs);  // evicts page 2
  EXPECT_EQ(fresh.back(), 2);
  EXPECT_TRUE(match_of(bm, toks(20, 8)).empty());
  EXPECT_EQ(match_of(bm, toks(10, 8)).size(), 2u);
  EXPECT_EQ(bm.num_evictions(), 2);
  EXPECT_FALSE(bm.can_grow(fresh, 3 * kPs));  // the rest is referenced
  auto ev = bm.take_events();
  int added = 0, evicted = 0;
  for (auto& e : ev) (e.added ? added : evicted)++;
  EXPECT_EQ(added, 6);
  EXPECT_EQ(evicted, 2);
  EXPECT_TRUE(bm.take_events().empty());
  (void)t3;
}

TEST(PrefixCache, ACollidingKeyNeverReturnsAnotherPromptsPages) {
  BlockManager bm(8, kPs);
  const PageHash same{123, 456};  // force every page under one key
  const auto a = toks(10, kPs), b = toks(50, kPs);
  std::vector<int> ta;
  bm.grow(ta, kPs);
  EXPECT_EQ(bm.commit(ta[0], same, a.data(), {}).page, ta[0]);
  // Same key, other tokens: no hit, and committing the other prompt's page is refused.
  EXPECT_TRUE(bm.match({same}, b, 1).empty());
  std::vector<int> tb;
  bm.grow(tb, kPs);
  EXPECT_EQ(bm.commit(tb[0], same, b.data(), {}).page, -1);
  EXPECT_EQ(bm.match({same}, a, 1), ta);
  // Same key and tokens but a different parent (another prefix before it): no hit.
  const PageHash k2{7, 7};
  std::vector<int> tc;
  bm.grow(tc, kPs);
  bm.commit(tc[0], k2, a.data(), bm.ref_of(ta[0]));
  EXPECT_EQ(bm.match({same, k2}, concat(a, a), 2).size(), 2u);
  EXPECT_EQ(bm.match({k2}, a, 1).size(), 0u);  // as a first page its parent does not match
  // Parent evicted and its id reused: the child no longer matches through the new page.
  bm.release(ta);
  bm.release(tb);
  EXPECT_EQ(bm.match({same, k2}, concat(a, a), 2).size(), 2u);
}

TEST(PrefixCache, SchedulerStartsAfterCachedPagesAndKeepsTheLastToken) {
  BlockManager bm(32, kPs);
  Scheduler sch(SchedulerConfig{8, 1000, 0, true}, bm);
  const auto sys = toks(100, 12);  // 3 full pages
  sch.add(seq(1, concat(sys, toks(500, 2)), 2));
  while (sch.has_work()) fake_step(sch);
  EXPECT_EQ(bm.num_cached(), 3);  // 14 prompt + 1 output token computed: 3 full pages
  // Same system prompt, other question: the 3 pages are reused.
  sch.add(seq(2, concat(sys, toks(600, 3)), 1));
  std::vector<ScheduledChunk> chunks;
  fake_step(sch, &chunks);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].start, 12);
  EXPECT_EQ(chunks[0].len, 3);
  EXPECT_EQ(sch.prefix_stats().hit_tokens, 12);
  // A prompt that is entirely cached still computes its last token.
  sch.add(seq(3, sys, 1));
  fake_step(sch, &chunks);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].start, 8);
  EXPECT_EQ(chunks[0].len, 4);
  EXPECT_TRUE(chunks[0].sample);
  EXPECT_FALSE(sch.has_work());
  EXPECT_EQ(bm.num_free(), 32);
}

TEST(PrefixCache, InFlightDuplicatesComputeTheSharedPrefixOnce) {
  BlockManager bm(64, kPs);
  Scheduler sch(SchedulerConfig{8, 1000, 0, true}, bm);
  const auto sys = toks(100, 16);
  for (int i = 0; i < 4; ++i) sch.add(seq(i, concat(sys, toks(1000 + 10 * i, 3)), 1));
  std::vector<ScheduledChunk> chunks;
  fake_step(sch, &chunks);
  ASSERT_EQ(chunks.size(), 1u);  // the others wait for its pages
  EXPECT_EQ(chunks[0].len, 19);
  EXPECT_EQ(sch.prefix_stats().deferred, 3);
  fake_step(sch, &chunks);
  ASSERT_EQ(chunks.size(), 3u);
  for (auto& c : chunks) {
    EXPECT_EQ(c.start, 16);
    EXPECT_EQ(c.len, 3);
  }
  EXPECT_EQ(sch.prefix_stats().hit_tokens, 48);
  EXPECT_FALSE(sch.has_work());
  EXPECT_EQ(bm.num_free(), 64);
}

TEST(PrefixCache, DisabledCachesNothing) {
  BlockManager bm(64, kPs);
  Scheduler sch(SchedulerConfig{8, 1000, 0, false}, bm);
  const auto sys = toks(100, 16);
  for (int i = 0; i < 3; ++i) sch.add(seq(i, concat(sys, toks(1000 + 10 * i, 3)), 1));
  std::vector<ScheduledChunk> chunks;
  fake_step(sch, &chunks);
  EXPECT_EQ(chunks.size(), 3u);
  for (auto& c : chunks) EXPECT_EQ(c.start, 0);
  EXPECT_EQ(bm.num_cached(), 0);
  EXPECT_EQ(sch.prefix_stats().hit_tokens, 0);
}

TEST(PrefixCache, PreemptedSequenceResumesFromItsCachedPages) {
  BlockManager bm(5, kPs);
  Scheduler sch(SchedulerConfig{8, 1000, 0, true}, bm);
  sch.add(seq(1, toks(100, 8), 8));  // grows to 16 tokens: 4 pages
  sch.add(seq(2, toks(300, 3), 6));  // 9 tokens: 3 pages; the two cannot both finish
  int steps = 0;
  std::vector<std::unique_ptr<Sequence>> done;
  while (sch.has_work() && steps++ < 100)
    for (auto& d : fake_step(sch)) done.push_back(std::move(d));
  ASSERT_EQ(done.size(), 2u);
  EXPECT_GE(sch.num_preemptions(), 1);
  EXPECT_GT(sch.prefix_stats().hit_tokens, 0);  // the victim came back over its own pages
  for (auto& d : done) EXPECT_EQ(d->num_generated(), d->req.sampling.max_tokens);
  EXPECT_EQ(bm.num_free(), 5);
}
