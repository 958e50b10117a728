// runtime/scheduler without a model (nano-vllm style): chunked prefill under the token budget,
// one decode row per running sequence, the batch-size limit, preemption of the newest sequence
// when pages run out, and requests that can never fit. The "model" appends token 7.
#include <gtest/gtest.h>

#include <memory>

#include "runtime/block_manager.h"
#include "runtime/scheduler.h"
#include "scheduler_test_util.h"

using namespace dpep;
using namespace dpep::testing;

namespace {

constexpr int kPs = 16;

// A prompt of prompt_len distinct ids (they differ between ids).
std::unique_ptr<Sequence> seq(int64_t id, int prompt_len, int max_tokens) {
  return dpep::testing::seq(id, toks(100 * static_cast<int>(id), prompt_len), max_tokens);
}

int rows(const std::vector<ScheduledChunk>& chunks) {
  int n = 0;
  for (const auto& c : chunks) n += c.len;
  return n;
}

}  // namespace

TEST(Scheduler, PrefillIsChunkedByTheTokenBudgetThenDecodesOneRow) {
  BlockManager bm(64, kPs);
  Scheduler sch(SchedulerConfig{4, 40, 0, false}, bm);
  ASSERT_TRUE(sch.add(seq(1, 100, 3)));
  std::vector<ScheduledChunk> c;
  fake_step(sch, &c);  // 40 of 100
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].start, 0);
  EXPECT_EQ(c[0].len, 40);
  EXPECT_FALSE(c[0].sample);
  fake_step(sch, &c);  // 40 more
  EXPECT_EQ(c[0].start, 40);
  EXPECT_EQ(c[0].len, 40);
  fake_step(sch, &c);  // the last 20 reach the end: sampled
  EXPECT_EQ(c[0].len, 20);
  EXPECT_TRUE(c[0].sample);
  fake_step(sch, &c);  // decode: one row
  EXPECT_EQ(c[0].start, 100);
  EXPECT_EQ(c[0].len, 1);
  auto done = fake_step(sch, &c);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0]->num_generated(), 3);
  EXPECT_FALSE(sch.has_work());
  EXPECT_EQ(bm.num_free(), 64);  // every page back
}

TEST(Scheduler, DecodeRowsComeFirstAndPrefillFillsTheRestOfTheBudget) {
  BlockManager bm(64, kPs);
  Scheduler sch(SchedulerConfig{8, 32, 0, false}, bm);
  sch.add(seq(1, 10, 50));
  fake_step(sch);  // seq 1 prefilled, now decoding
  sch.add(seq(2, 100, 5));
  std::vector<ScheduledChunk> c;
  fake_step(sch, &c);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].seq->req.id, 1);  // the running sequence keeps its decode row
  EXPECT_EQ(c[0].len, 1);
  EXPECT_EQ(c[1].seq->req.id, 2);
  EXPECT_LE(rows(c), 1 + 32);
  EXPECT_GT(c[1].len, 0);
}

TEST(Scheduler, BatchSizeLimitsRunningSequences) {
  BlockManager bm(256, kPs);
  Scheduler sch(SchedulerConfig{2, 4096, 0, false}, bm);
  for (int i = 1; i <= 5; ++i) sch.add(seq(i, 8, 4));
  fake_step(sch);
  EXPECT_EQ(sch.num_running(), 2);
  EXPECT_EQ(sch.num_waiting(), 3);
  int finished = 0;
  for (int step = 0; step < 100 && sch.has_work(); ++step) {
    finished += static_cast<int>(fake_step(sch).size());
    EXPECT_LE(sch.num_running(), 2);
  }
  EXPECT_EQ(finished, 5);
  EXPECT_EQ(bm.num_free(), 256);
}

TEST(Scheduler, NewestSequenceIsPreemptedWhenPagesRunOutAndStillFinishes) {
  // 4 pages of 16: two sequences of 16 prompt tokens fit, but not both growing to 48.
  BlockManager bm(4, kPs);
  Scheduler sch(SchedulerConfig{4, 4096, 0, false}, bm);
  sch.add(seq(1, 16, 30));
  sch.add(seq(2, 16, 30));
  std::vector<std::unique_ptr<Sequence>> done;
  for (int step = 0; step < 500 && sch.has_work(); ++step)
    for (auto& s : fake_step(sch)) done.push_back(std::move(s));
  ASSERT_EQ(done.size(), 2u);
  EXPECT_GT(sch.num_preemptions(), 0);
  for (const auto& s : done) EXPECT_EQ(s->num_generated(), 30);
  // The first admitted sequence never lost its pages: the newer one was preempted.
  const Sequence* first = done[0]->req.id == 1 ? done[0].get() : done[1].get();
  const Sequence* second = done[0]->req.id == 2 ? done[0].get() : done[1].get();
  EXPECT_EQ(first->num_preemptions, 0);
  EXPECT_GT(second->num_preemptions, 0);
  EXPECT_EQ(bm.num_free(), 4);
}

TEST(Scheduler, RequestsThatCanNeverFitAreRejected) {
  BlockManager bm(4, kPs);  // 64 positions
  Scheduler sch(SchedulerConfig{4, 4096, 100, false}, bm);
  EXPECT_FALSE(sch.add(seq(1, 60, 10)));  // 70 positions > 64 pages' worth
  EXPECT_FALSE(sch.add(seq(2, 95, 10)));  // over max_model_len 100
  EXPECT_TRUE(sch.add(seq(3, 40, 10)));
  auto rejected = sch.take_rejected();
  ASSERT_EQ(rejected.size(), 2u);
  for (const auto& s : rejected) {
    EXPECT_EQ(s->finish, FinishReason::Error);
    EXPECT_FALSE(s->error.empty());
  }
}
