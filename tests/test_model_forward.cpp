// The absorbed, cached forward against the naive reference; prefill against decode; batching.
#include <gtest/gtest.h>

#include "model/model.h"
#include "model_test_util.h"
#include "naive_reference.h"

using namespace dpep;
using namespace dpep::testing;

namespace {

ModelConfig tiny_config(bool q_lora = true) {
  ModelConfig c = ModelConfig::preset("tiny");
  c.num_hidden_layers = 3;
  if (!q_lora) c.q_lora_rank = 0;
  return c;
}

std::vector<int> prompt(int n, int vocab, int seed) {
  std::mt19937 g(seed);
  std::vector<int> p(n);
  for (auto& t : p) t = g() % vocab;
  return p;
}

double max_rel_diff(const float* a, const double* b, size_t n) {
  double scale = 0, diff = 0;
  for (size_t i = 0; i < n; ++i) {
    scale = std::max(scale, std::fabs(b[i]));
    diff = std::max(diff, std::fabs(a[i] - b[i]));
  }
  return diff / scale;
}

}  // namespace

class ForwardVsNaive : public ::testing::TestWithParam<bool> {};

TEST_P(ForwardVsNaive, PrefillLogitsMatchNaiveReference) {
  ModelConfig c = tiny_config(GetParam());
  ModelWeights w = random_weights(c, 7);
  const auto tokens = prompt(37, c.vocab_size, 3);
  Mat ref = naive_forward(c, w, tokens);
  Model m(c, std::move(w), {});
  SimpleCache cache(c, 16, 16);
  std::vector<int> rows(tokens.size());
  std::iota(rows.begin(), rows.end(), 0);
  auto b = one_seq_batch(cache, cache.new_seq(), tokens, 0, rows);
  comm::LoopbackExchange ex;
  std::vector<float> logits;
  m.forward(b, cache.view, ex, logits);
  ASSERT_EQ(logits.size(), ref.size());
  EXPECT_LT(max_rel_diff(logits.data(), ref.data(), ref.size()), 2e-5);
}
INSTANTIATE_TEST_SUITE_P(QLora, ForwardVsNaive, ::testing::Values(true, false));

TEST(Forward, DecodeAgreesWithPrefill) {
  ModelConfig c = tiny_config();
  Model m(c, random_weights(c, 11), {});
  const auto tokens = prompt(29, c.vocab_size, 5);
  comm::LoopbackExchange ex;
  SimpleCache full(c, 16, 16), inc(c, 16, 16);
  std::vector<int> rows(tokens.size());
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<float> ref, step;
  m.forward(one_seq_batch(full, full.new_seq(), tokens, 0, rows), full.view, ex, ref);
  // Prefill the first 10 in one chunk, then 7 in a second chunk, then one token at a time.
  int s = inc.new_seq(), pos = 0;
  auto run = [&](int n) {
    std::vector<int> chunk(tokens.begin() + pos, tokens.begin() + pos + n), lr(n);
    std::iota(lr.begin(), lr.end(), 0);
    m.forward(one_seq_batch(inc, s, chunk, pos, lr), inc.view, ex, step);
    for (int i = 0; i < n; ++i)
      for (int v = 0; v < c.vocab_size; ++v)
        ASSERT_NEAR(step[size_t(i) * c.vocab_size + v], ref[size_t(pos + i) * c.vocab_size + v],
                    2e-4)
            << "position " << pos + i;
    pos += n;
  };
  run(10);
  run(7);
  while (pos < int(tokens.size())) run(1);
}

TEST(Forward, BatchOfSequencesEqualsEachAlone) {
  ModelConfig c = tiny_config();
  Model m(c, random_weights(c, 13), {});
  comm::LoopbackExchange ex;
  std::vector<std::vector<int>> prompts = {prompt(5, c.vocab_size, 1), prompt(17, c.vocab_size, 2),
                                           prompt(1, c.vocab_size, 3)};
  std::vector<std::vector<float>> alone;
  for (auto& p : prompts) {
    SimpleCache cache(c, 16, 16);
    std::vector<float> lg;
    m.forward(one_seq_batch(cache, cache.new_seq(), p, 0, {int(p.size()) - 1}), cache.view, ex, lg);
    alone.push_back(lg);
  }
  SimpleCache cache(c, 32, 16);
  ForwardBatch b = prompts_batch(cache, prompts);
  std::vector<float> lg;
  m.forward(b, cache.view, ex, lg);
  for (size_t i = 0; i < prompts.size(); ++i)
    for (int v = 0; v < c.vocab_size; ++v)
      EXPECT_NEAR(lg[i * c.vocab_size + v], alone[i][v], 1e-4) << "seq " << i;
}

TEST(Forward, EmptyBatchStillRuns) {
  ModelConfig c = tiny_config();
  Model m(c, random_weights(c, 17), {});
  comm::LoopbackExchange ex;
  SimpleCache cache(c, 4, 16);
  ForwardBatch b;
  std::vector<float> lg;
  m.forward(b, cache.view, ex, lg);
  EXPECT_TRUE(lg.empty());
}

TEST(Forward, TokenOutsideVocabularyIsAnError) {
  ModelConfig c = tiny_config();
  Model m(c, random_weights(c, 17), {});
  comm::LoopbackExchange ex;
  SimpleCache cache(c, 4, 16);
  EXPECT_THROW(
      {
        std::vector<float> lg;
        m.forward(one_seq_batch(cache, cache.new_seq(), {1, int(c.vocab_size)}, 0, {1}), cache.view,
                  ex, lg);
      },
      std::out_of_range);
}

#include "model/ops/attention_kernel.h"

namespace {
// `tokens` through model `ma` (float32 cache) and `mb` (bf16 cache): a prefill chunk of
// `prefill` rows, then one decode row at a time. Returns the largest |logit difference| of a
// call relative to that call's largest float32 logit; a non-finite bf16 logit fails the test.
double worst_logit_gap(const Model& ma, const Model& mb, const ModelConfig& c,
                       const std::vector<int>& tokens, int prefill) {
  comm::LoopbackExchange ex;
  SimpleCache f32(c, 8, 16), b16(c, 8, 16, true);
  const int sf = f32.new_seq(), sb = b16.new_seq();
  std::vector<float> lf, lb;
  double worst = 0;
  auto compare = [&](int start, int n) {
    std::vector<int> chunk(tokens.begin() + start, tokens.begin() + start + n), rows(n);
    std::iota(rows.begin(), rows.end(), 0);
    ma.forward(one_seq_batch(f32, sf, chunk, start, rows), f32.view, ex, lf);
    mb.forward(one_seq_batch(b16, sb, chunk, start, rows), b16.view, ex, lb);
    double scale = 0, diff = 0;
    for (size_t i = 0; i < lf.size(); ++i) {
      EXPECT_TRUE(std::isfinite(lb[i])) << "position " << start << " +" << i / c.vocab_size;
      scale = std::max(scale, double(std::fabs(lf[i])));
      diff = std::max(diff, double(std::fabs(lf[i] - lb[i])));
    }
    worst = std::max(worst, diff / scale);
  };
  compare(0, prefill);
  for (int p = prefill; p < int(tokens.size()); ++p) compare(p, 1);
  return worst;
}
}  // namespace

// The bf16 latent cache (bf16 matmul mode) against the float32 cache: same logits to bf16
// precision, for a prefill chunk and for decode rows (model/ops/attention_bf16.h), with odd
// key counts so that the last pair of keys is half empty (its other slot holds NaN).
TEST(Forward, Bf16CacheAgreesWithFloatCache) {
  if (!mla_bf16_cache_supported()) GTEST_SKIP() << "build without AVX512-BF16";
  ModelConfig c = tiny_config();
  Model m(c, random_weights(c, 23), {});
  // A prefill chunk of 20, then decode rows at L = 21..37 (odd and even).
  const double worst = worst_logit_gap(m, m, c, prompt(37, c.vocab_size, 9), 20);
  EXPECT_LT(worst, 3e-2);
  EXPECT_GT(worst, 0.0);  // it really ran in bf16
}

// The bf16 model (bf16 GEMMs, bf16 latent cache, bf16 attention) against the float32 model:
// logits of a 40-token prefill and 12 decode steps agree within 2% of the largest logit.
TEST(Forward, Bf16ModelWithinToleranceOfFloat32Model) {
  if (!mla_bf16_cache_supported()) GTEST_SKIP() << "build without AVX512-BF16";
  ModelConfig c = tiny_config();
  ModelOptions o16;
  o16.matmul_dtype = MatmulDType::BF16;
  Model m32(c, random_weights(c, 29), {}), m16(c, random_weights(c, 29), {}, o16);
  ASSERT_TRUE(m16.kv_cache_bf16());
  const double worst = worst_logit_gap(m32, m16, c, prompt(52, c.vocab_size, 3), 40);
  std::printf("bf16 model vs float32 model: max |logit difference| = %.4f of the largest logit\n",
              worst);
  EXPECT_LT(worst, 2e-2);  // measured 0.0045
  EXPECT_GT(worst, 0.0);
}
