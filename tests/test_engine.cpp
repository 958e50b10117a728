// Continuous batching, paging, preemption and sampling through the engine, on a tiny random model.
#include <gtest/gtest.h>

#include <map>

#include "model_test_util.h"
#include "runtime/engine.h"
#include "runtime/sampler.h"

using namespace dpep;
using namespace dpep::testing;

namespace {

struct Fixture {
  ModelConfig c = ModelConfig::preset("tiny");
  Model model{c, random_weights(c, 21), {}};
  comm::LoopbackExchange ex;
};

Request make_req(int64_t id, int len, int max_tokens, int seed, const ModelConfig& c) {
  std::mt19937 g(seed);
  Request r;
  r.id = id;
  for (int i = 0; i < len; ++i) r.prompt.push_back(2 + g() % (c.vocab_size - 2));
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

// Runs the engine until idle; returns each request's output tokens and finish reason.
std::map<int64_t, std::pair<std::vector<int>, FinishReason>> run_all(Engine& e,
                                                                     int max_steps = 100000) {
  std::map<int64_t, std::pair<std::vector<int>, FinishReason>> out;
  for (int s = 0; s < max_steps && e.has_work(); ++s) {
    for (auto& ev : e.step().events) {
      auto& o = out[ev.id];
      o.first.insert(o.first.end(), ev.new_tokens.begin(), ev.new_tokens.end());
      if (ev.finish != FinishReason::None) o.second = ev.finish;
    }
  }
  return out;
}

}  // namespace

TEST(Engine, ContinuousBatchingEqualsEachRequestAlone) {
  Fixture f;
  std::vector<Request> reqs;
  for (int i = 0; i < 12; ++i)
    reqs.push_back(make_req(i, 1 + (i * 7) % 23, 3 + (i * 5) % 11, 100 + i, f.c));
  std::map<int64_t, std::vector<int>> alone;
  for (auto& r : reqs) {
    Engine e(f.model, f.ex, EngineConfig{1, 64, 16, 512});
    e.add(r);
    alone[r.id] = run_all(e)[r.id].first;
    EXPECT_EQ(int(alone[r.id].size()), r.sampling.max_tokens);
  }
  // Small prefill budget (chunked prefill) and staggered arrivals.
  EngineConfig cfg{5, 8, 16, 4096};
  Engine e(f.model, f.ex, cfg);
  std::map<int64_t, std::vector<int>> got;
  size_t next = 0;
  for (int step = 0; step < 10000 && (e.has_work() || next < reqs.size()); ++step) {
    if (next < reqs.size() && step % 3 == 0) e.add(reqs[next++]);
    for (auto& ev : e.step().events)
      got[ev.id].insert(got[ev.id].end(), ev.new_tokens.begin(), ev.new_tokens.end());
  }
  EXPECT_EQ(got, alone);
  EXPECT_EQ(e.blocks().num_free(), e.blocks().num_pages());
}

TEST(Engine, PreemptionUnderATightCacheKeepsOutputs) {
  Fixture f;
  std::vector<Request> reqs;
  for (int i = 0; i < 6; ++i) reqs.push_back(make_req(i, 10, 12, 300 + i, f.c));
  std::map<int64_t, std::vector<int>> alone;
  for (auto& r : reqs) {
    Engine e(f.model, f.ex, EngineConfig{1, 64, 16, 512});
    e.add(r);
    alone[r.id] = run_all(e)[r.id].first;
  }
  Engine e(f.model, f.ex, EngineConfig{6, 64, 16, 64});  // 4 pages: two requests at a time at most
  for (auto& r : reqs) e.add(r);
  auto got = run_all(e);
  EXPECT_GT(e.preemptions(), 0);
  for (auto& r : reqs) {
    EXPECT_EQ(got[r.id].first, alone[r.id]) << r.id;
    EXPECT_EQ(got[r.id].second, FinishReason::Length);
  }
  EXPECT_EQ(e.blocks().num_free(), e.blocks().num_pages());
}

TEST(Engine, RequestLargerThanTheCacheFailsCleanly) {
  Fixture f;
  Engine e(f.model, f.ex, EngineConfig{4, 64, 16, 32});
  e.add(make_req(1, 30, 10, 1, f.c));
  e.add(make_req(2, 5, 3, 2, f.c));
  auto got = run_all(e, 1000);
  EXPECT_EQ(got[1].second, FinishReason::Error);
  EXPECT_TRUE(got[1].first.empty());
  EXPECT_EQ(got[2].second, FinishReason::Length);
  EXPECT_EQ(got[2].first.size(), 3u);
  EXPECT_FALSE(e.has_work());
}

TEST(Engine, SeededSamplingIsReproducibleAcrossBatchCompositions) {
  Fixture f;
  Request r = make_req(42, 9, 20, 5, f.c);
  r.sampling.temperature = 0.9f;
  r.sampling.top_p = 0.9f;
  r.sampling.top_k = 50;
  r.sampling.seed = 1234;
  Engine alone(f.model, f.ex, EngineConfig{4, 64, 16, 1024});
  alone.add(r);
  auto a = run_all(alone)[42].first;
  Engine mixed(f.model, f.ex, EngineConfig{8, 16, 16, 1024});
  for (int i = 0; i < 5; ++i) {
    Request o = make_req(i, 3 + i, 7, 50 + i, f.c);
    o.sampling.temperature = 1.0f;
    mixed.add(o);
  }
  Request r2 = r;
  r2.id = 99;  // a different id: the seed alone decides
  mixed.add(r2);
  auto b = run_all(mixed)[99].first;
  EXPECT_EQ(a, b);
  // A different seed gives a different continuation (20 tokens at temperature 0.9).
  Request r3 = r;
  r3.sampling.seed = 4321;
  Engine other(f.model, f.ex, EngineConfig{4, 64, 16, 1024});
  other.add(r3);
  EXPECT_NE(run_all(other)[42].first, a);
}

TEST(Engine, StopsOnStopTokenAndEos) {
  Fixture f;
  Request r = make_req(1, 6, 50, 9, f.c);
  Engine e(f.model, f.ex, EngineConfig{4, 64, 16, 1024});
  e.add(r);
  auto full = run_all(e)[1].first;
  ASSERT_EQ(full.size(), 50u);
  Request s = r;
  s.sampling.stop_token_ids = {full[4]};
  Engine e2(f.model, f.ex, EngineConfig{4, 64, 16, 1024});
  e2.add(s);
  auto got = run_all(e2)[1];
  EXPECT_EQ(got.second, FinishReason::Stop);
  auto first = std::find(full.begin(), full.end(), full[4]) - full.begin();
  EXPECT_EQ(got.first.size(), size_t(first + 1));
}

TEST(Sampler, GreedyTopKTopPMinP) {
  std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  SamplingParams p;
  EXPECT_EQ(sample_token(logits.data(), 5, p, 0, 0).token, 1);  // tie -> lower id
  p.temperature = 1.0f;
  p.top_k = 1;
  for (int s = 0; s < 20; ++s) EXPECT_EQ(sample_token(logits.data(), 5, p, s, s).token, 1);
  p.top_k = 0;
  p.min_p =
      0.5f;  // keeps ids whose prob >= 0.5 * max: 1, 3 (e^3) and 2 (e^2 / e^3 = 0.37 < 0.5: no)
  for (int s = 0; s < 50; ++s) {
    int t = sample_token(logits.data(), 5, p, s, 0).token;
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
  p.min_p = 0;
  p.top_p = 0.5f;  // the two e^3 tokens hold 0.73 of the mass; the first alone 0.36 < 0.5
  for (int s = 0; s < 50; ++s) {
    int t = sample_token(logits.data(), 5, p, s, 0).token;
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
  p.top_logprobs = 2;
  auto r = sample_token(logits.data(), 5, p, 3, 0);
  ASSERT_EQ(r.logprobs.top.size(), 2u);
  EXPECT_EQ(r.logprobs.top[0].first, 1);
  EXPECT_EQ(r.logprobs.top[1].first, 3);
  double z = std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0) + std::exp(-1.0);
  EXPECT_NEAR(r.logprobs.top[0].second, 3.0 - std::log(z), 1e-5);
}

TEST(Sampler, FrequenciesFollowTheDistribution) {
  std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 0.25, 0.75
  SamplingParams p;
  p.temperature = 1.0f;
  int ones = 0;
  for (int s = 0; s < 4000; ++s) ones += sample_token(logits.data(), 2, p, 77, s).token;
  EXPECT_NEAR(ones / 4000.0, 0.75, 0.03);
}

TEST(Engine, PrefixCachingKeepsGreedyOutputs) {
  Fixture f;
  // Groups sharing a 40-token system prompt (2.5 pages of 16), plus a repeated prompt.
  std::vector<Request> reqs;
  for (int i = 0; i < 10; ++i) {
    Request sys = make_req(0, 40, 1, 900 + i % 3, f.c);
    Request q = make_req(i, 3 + i % 5, 6, 700 + i, f.c);
    q.prompt.insert(q.prompt.begin(), sys.prompt.begin(), sys.prompt.end());
    reqs.push_back(q);
  }
  reqs.push_back(reqs[4]);
  reqs.back().id = 10;
  auto run = [&](bool caching, int64_t* hits) {
    EngineConfig cfg{4, 24, 16, 4096};
    cfg.prefix_caching = caching;
    Engine e(f.model, f.ex, cfg);
    std::map<int64_t, std::vector<int>> got;
    size_t next = 0;
    for (int step = 0; step < 10000 && (e.has_work() || next < reqs.size()); ++step) {
      if (next < reqs.size()) e.add(reqs[next++]);
      if (next < reqs.size() && step % 2) e.add(reqs[next++]);
      for (auto& ev : e.step().events)
        got[ev.id].insert(got[ev.id].end(), ev.new_tokens.begin(), ev.new_tokens.end());
    }
    EXPECT_EQ(e.blocks().num_free(), e.blocks().num_pages());
    *hits = e.prefix_stats().hit_tokens;
    return got;
  };
  int64_t hits_on = 0, hits_off = 0;
  const auto off = run(false, &hits_off);
  const auto on = run(true, &hits_on);
  EXPECT_EQ(on, off);
  EXPECT_EQ(off.size(), reqs.size());
  EXPECT_EQ(hits_off, 0);
  EXPECT_GE(hits_on, 8 * 32);  // most requests reuse both full system-prompt pages
}
