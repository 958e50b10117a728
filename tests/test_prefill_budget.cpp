// The time-based chunked-prefill budget (rank 0), from fake step times.
#include <gtest/gtest.h>

#include "runtime/prefill_budget.h"
#include "runtime/scheduler.h"

using namespace dpep;

TEST(PrefillBudget, CutsPrefillSoAStepLastsAboutFactorDecodeSteps) {
  PrefillBudget b(2.0, 8192);
  EXPECT_EQ(b.budget(true), 8192);  // nothing measured yet
  // A prefill burst before any decoding: all of the step is charged to the prefill.
  b.observe(0.80, 2048, 0);
  EXPECT_NEAR(b.per_token_s(), 0.80 / 2048, 1e-12);
  EXPECT_EQ(b.budget(false), 8192);  // nobody decodes: no cut
  EXPECT_EQ(b.budget(true), 8192);   // no decode-only step seen yet
  for (int i = 0; i < 50; ++i) b.observe(0.06, 0, 16);
  EXPECT_NEAR(b.base_s(), 0.06, 1e-9);
  const int first = b.budget(true);  // (2 - 1) x 0.06 / (0.8 / 2048) = 153.6
  EXPECT_EQ(first, 153);
  // Steps with prefill that cost base + 0.5 ms per token move the estimate towards 120 tokens.
  for (int i = 0; i < 100; ++i) b.observe(0.06 + 0.0005 * 100, 100, 16);
  EXPECT_NEAR(b.per_token_s(), 0.0005, 1e-6);
  EXPECT_EQ(b.budget(true), 120);
  EXPECT_EQ(b.budget(false), 8192);
  // Very expensive prefill never starves below the minimum chunk.
  for (int i = 0; i < 100; ++i) b.observe(10.0, 10, 16);
  EXPECT_EQ(b.budget(true), PrefillBudget::kMinChunk);
  // Off: always the configured maximum.
  PrefillBudget off(0.0, 4096);
  off.observe(0.06, 0, 16);
  off.observe(1.0, 1000, 16);
  EXPECT_EQ(off.budget(true), 4096);
}

TEST(PrefillBudget, SchedulerHonoursTheBudgetAndKeepsDecoding) {
  BlockManager bm(64, 16);
  Scheduler sch(SchedulerConfig{8, 1000, 0, false}, bm);
  auto seq = [](int64_t id, int n) {
    auto s = std::make_unique<Sequence>();
    s->req.id = id;
    s->req.sampling.max_tokens = 4;
    for (int i = 0; i < n; ++i) s->tokens.push_back(2 + i);
    s->req.prompt = s->tokens;
    s->num_prompt = n;
    return s;
  };
  sch.add(seq(1, 10));
  auto c = sch.schedule();
  for (auto& x : c) x.seq->tokens.push_back(3);
  sch.postprocess(c);  // seq 1 now decodes
  sch.add(seq(2, 100));
  sch.set_prefill_budget(40);
  int prefill_steps = 0;
  for (int step = 0; step < 10; ++step) {
    c = sch.schedule();
    int prefill = 0;
    bool decoded = false;
    for (auto& x : c) {
      if (x.seq->req.id == 1) decoded = x.len == 1;
      if (x.seq->req.id == 2 && x.start < x.seq->num_prompt) prefill += x.len;
      if (x.sample) x.seq->tokens.push_back(3);
    }
    EXPECT_TRUE(decoded);  // seq 1 decodes in every step
    EXPECT_LE(prefill, 40);
    prefill_steps += prefill > 0;
    sch.postprocess(c);
  }
  EXPECT_EQ(prefill_steps, 3);  // 40 + 40 + 20, then seq 2 decodes too
}
