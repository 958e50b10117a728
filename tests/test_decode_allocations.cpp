// A warm decode step makes no heap allocation (issue 13, item 6): every buffer of the forward
// pass lives in the engine's run-state (model/run_state.h). Allocations are counted by a malloc
// replacement (tests/alloc_counter.h), whichever library makes them and on whichever thread.
#include <gtest/gtest.h>
#include <omp.h>

#include <random>

#include "alloc_counter.h"
#include "model/ops/packed_gemm.h"
#include "model_test_util.h"
#include "runtime/engine.h"

using namespace dpep;
using namespace dpep::testing;

namespace {

bool bf16_available() {
  return gemm_isa() != GemmIsa::None;
}

// The hook itself: a vector's growth is seen (else a 0 below would prove nothing).
TEST(DecodeAllocations, HookCountsAllocations) {
  std::vector<float> v;
  EXPECT_GE(count_allocations([&] { v.resize(1000); }), 1);
  EXPECT_EQ(count_allocations([&] { v.resize(500); }), 0);
  void* p = nullptr;
  EXPECT_EQ(count_allocations([&] { p = std::malloc(64); }), 1);
  std::free(p);
}

// Exclusion by library: an allocation made inside libstdc++ (operator new) is set apart when any
// of the '|'-separated strings names it, and counted (with its stack kept) when none does.
TEST(DecodeAllocations, HookSetsApartAllocationsOfExcludedLibraries) {
  std::vector<float> v;
  long excluded = 0;
  EXPECT_EQ(count_allocations([&] { v.resize(1000); }, "no-such-lib|libstdc++", &excluded), 0);
  EXPECT_GE(excluded, 1);
  std::vector<float> w;
  const long n = count_allocations([&] { w.resize(1000); }, "no-such-lib|libfoo", &excluded);
  EXPECT_GE(n, 1);
  EXPECT_EQ(excluded, 0);
  EXPECT_GT(dpep_alloc_counter::g_stack_depth[0], 0);
}

ModelOptions options(MatmulDType dt) {
  ModelOptions o;
  o.matmul_dtype = dt;
  return o;
}

// What the decode runs: the tiny preset, or (long) a wider attention (16 heads, kv_lora 512)
// decoding from position 100 to 400, where one row's attention is worth threads: with 2 threads
// the bf16 kernel splits the keys into 128-position splits, more of them as the context grows.
struct Run {
  bool long_context = false;
  int prompt() const { return long_context ? 100 : 9; }
  int steps() const { return long_context ? 300 : 30; }
};

// Model::forward with a run-state: prefill, warm-up decode steps, then counted decode steps
// over nseq sequences (each step one row per sequence, positions crossing pages).
long forward_decode_allocations(MatmulDType dt, int nseq, int threads, Run run = {}) {
  ModelConfig c = ModelConfig::preset("tiny");
  if (run.long_context) {
    c.num_attention_heads = 16;
    c.kv_lora_rank = 512;
  }
  const Model m(c, random_weights(c, 5), {}, options(dt));
  comm::LoopbackExchange ex;
  SimpleCache cache(c, 256, 16, m.kv_cache_bf16());
  RunState rs = m.make_run_state(64, 8, 64 * 16);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  std::mt19937 g(3);
  std::vector<std::vector<int>> prompts(nseq);
  for (int s = 0; s < nseq; ++s)
    for (int i = 0; i < run.prompt() + 4 * s; ++i)
      prompts[s].push_back(2 + g() % (c.vocab_size - 2));
  ForwardBatch pre = prompts_batch(cache, prompts);
  m.forward(pre, cache.view, ex, rs);
  std::vector<int> pos(nseq);
  for (int s = 0; s < nseq; ++s) pos[s] = static_cast<int>(prompts[s].size());
  // One decode batch, rebuilt in place each step (its vectors keep their capacity).
  ForwardBatch b;
  auto decode_step = [&] {
    greedy_decode_batch(rs.logits.data(), c.vocab_size, cache, pos, b);
    m.forward(b, cache.view, ex, rs);
  };
  // The cache pages of the whole run, handed out before counting (the runtime's job).
  for (int s = 0; s < nseq; ++s) cache.ensure(s, pos[s] + run.steps() + 10);
  for (int i = 0; i < 3; ++i) decode_step();  // warm-up: buffers reach the decode shape
  const long n = count_allocations([&] {
    for (int i = 0; i < run.steps(); ++i) decode_step();
  });
  omp_set_num_threads(saved);
  return n;
}

TEST(DecodeAllocations, ModelForwardF32) {
  for (int threads : {1, 2})
    for (int nseq : {1, 2, 3}) {
      SCOPED_TRACE(::testing::Message() << nseq << " sequences, " << threads << " threads");
      EXPECT_EQ(forward_decode_allocations(MatmulDType::F32, nseq, threads), 0);
    }
}

// A long decode: the float32 per-row attention scratch and the bf16 key-split partials are
// reserved for the run-state's max context, so the growing context never grows them.
TEST(DecodeAllocations, LongContext) {
  for (MatmulDType dt : {MatmulDType::F32, MatmulDType::BF16}) {
    if (dt == MatmulDType::BF16 && !bf16_available()) continue;
    SCOPED_TRACE(dt == MatmulDType::BF16 ? "bf16" : "fp32");
    EXPECT_EQ(forward_decode_allocations(dt, 1, 2, {true}), 0);
  }
}

TEST(DecodeAllocations, ModelForwardBf16) {
  if (!bf16_available()) GTEST_SKIP() << "no AVX512-BF16 or AMX on this CPU";
  for (int threads : {1, 2})
    for (int nseq : {1, 2, 3}) {
      SCOPED_TRACE(::testing::Message() << nseq << " sequences, " << threads << " threads");
      EXPECT_EQ(forward_decode_allocations(MatmulDType::BF16, nseq, threads), 0);
    }
}

// The whole engine step (scheduler, forward through the loopback expert exchange, sampler,
// events, prefix caching on): requests are admitted and prefilled, decode warms up, then 40
// decode steps are counted; with 16-slot pages they fill and commit pages to the prefix cache.
// Still allocating, and so outside the counted steps: admission (the sequence, its reserved
// vectors), a finished or preempted sequence (the prefix cache's LRU list), top log-probabilities
// (returned in new vectors), and a step's first cache events (64 reserved).
long engine_decode_allocations(MatmulDType dt, int nreq, int threads) {
  const ModelConfig c = ModelConfig::preset("tiny");
  const Model m(c, random_weights(c, 7), {}, options(dt));
  comm::LoopbackExchange ex;
  Engine e(m, ex, EngineConfig{8, 64, 16, 1024});
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  std::mt19937 g(11);
  for (int i = 0; i < nreq; ++i) {
    Request r;
    r.id = i;
    for (int k = 0; k < 6 + 5 * i; ++k) r.prompt.push_back(2 + g() % (c.vocab_size - 2));
    r.sampling.max_tokens = 200;
    r.sampling.ignore_eos = true;
    if (i % 2) {  // odd requests sample (temperature, top-k, top-p); even ones are greedy
      r.sampling.temperature = 0.8f;
      r.sampling.top_k = 20;
      r.sampling.top_p = 0.9f;
    }
    e.add(r);
  }
  StepReport rep;                           // reused, as the step loop reuses it
  for (int i = 0; i < 4; ++i) e.step(rep);  // prefill, then decode warms up
  EXPECT_EQ(e.num_running(), nreq);
  long n = 0;
  size_t cache_events = 0;
  for (int i = 0; i < 40; ++i) {
    n += count_allocations([&] { e.step(rep); });
    EXPECT_EQ(rep.decode_rows, nreq);
    EXPECT_EQ(rep.events.size(), static_cast<size_t>(nreq));
    cache_events += rep.cache_events.size();
  }
  EXPECT_GE(cache_events, static_cast<size_t>(2 * nreq));  // pages were committed meanwhile
  omp_set_num_threads(saved);
  return n;
}

TEST(DecodeAllocations, EngineStepF32) {
  for (int threads : {1, 2})
    for (int nreq : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << nreq << " requests, " << threads << " threads");
      EXPECT_EQ(engine_decode_allocations(MatmulDType::F32, nreq, threads), 0);
    }
}

TEST(DecodeAllocations, EngineStepBf16) {
  if (!bf16_available()) GTEST_SKIP() << "no AVX512-BF16 or AMX on this CPU";
  for (int threads : {1, 2})
    for (int nreq : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << nreq << " requests, " << threads << " threads");
      EXPECT_EQ(engine_decode_allocations(MatmulDType::BF16, nreq, threads), 0);
    }
}

}  // namespace
