// The model in bf16 mode (packed_gemm for every projection and expert): logits close to the
// float32 model's, and a sequence's logits bitwise the same alone, in a batch, and with 1 or 2
// threads (the GEMMs split output columns only; no kernel choice depends on the row count).
#include <gtest/gtest.h>
#include <omp.h>

#include "model/model.h"
#include "model/ops/packed_gemm.h"
#include "model_test_util.h"

using namespace dpep;
using namespace dpep::testing;

namespace {

std::vector<int> prompt(int n, int vocab, int seed) {
  std::mt19937 g(seed);
  std::vector<int> p(n);
  for (auto& t : p) t = g() % vocab;
  return p;
}

ModelConfig config() {
  ModelConfig c = ModelConfig::preset("tiny");
  c.hidden_size = 96;  // not a multiple of 32: partial k tiles everywhere
  return c;
}

std::unique_ptr<Model> model(MatmulDType dt) {
  const ModelConfig c = config();
  ModelOptions o;
  o.matmul_dtype = dt;
  return std::make_unique<Model>(c, random_weights(c, 21), ExpertShard{}, o);
}

std::vector<float> alone(const Model& m, const std::vector<int>& p) {
  comm::LoopbackExchange ex;
  SimpleCache cache(m.config(), 16, 16, m.kv_cache_bf16());
  std::vector<float> lg;
  m.forward(one_seq_batch(cache, cache.new_seq(), p, 0, {int(p.size()) - 1}), cache.view, ex, lg);
  return lg;
}

}  // namespace

TEST(Bf16Model, CloseToFloat32) {
  if (gemm_isa() == GemmIsa::None) GTEST_SKIP() << "no bf16 GEMM on this CPU";
  auto f = model(MatmulDType::F32), b = model(MatmulDType::BF16);
  const int V = config().vocab_size;
  for (int seed : {1, 2, 3}) {
    auto p = prompt(9, V, seed);
    auto lf = alone(*f, p), lb = alone(*b, p);
    double scale = 0, diff = 0;
    for (int v = 0; v < V; ++v) {
      scale = std::max(scale, double(std::fabs(lf[v])));
      diff = std::max(diff, double(std::fabs(lf[v] - lb[v])));
    }
    EXPECT_LT(diff / scale, 0.03) << "seed " << seed;  // bf16 activations: ~2^-8 per product
    EXPECT_GT(diff, 0.0) << "bf16 mode computed exactly the float32 logits?";
  }
}

TEST(Bf16Model, BatchedEqualsAloneBitwiseAcrossThreads) {
  if (gemm_isa() == GemmIsa::None) GTEST_SKIP() << "no bf16 GEMM on this CPU";
  auto m = model(MatmulDType::BF16);
  const ModelConfig& c = m->config();
  std::vector<std::vector<int>> prompts = {prompt(5, c.vocab_size, 1), prompt(12, c.vocab_size, 2),
                                           prompt(1, c.vocab_size, 3), prompt(7, c.vocab_size, 4)};
  omp_set_num_threads(1);
  std::vector<std::vector<float>> ref;
  for (auto& p : prompts) ref.push_back(alone(*m, p));
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    comm::LoopbackExchange ex;
    SimpleCache cache(c, 32, 16, m->kv_cache_bf16());
    ForwardBatch b = prompts_batch(cache, prompts);
    std::vector<float> lg;
    m->forward(b, cache.view, ex, lg);
    for (size_t i = 0; i < prompts.size(); ++i)
      for (int v = 0; v < c.vocab_size; ++v)
        ASSERT_EQ(lg[i * c.vocab_size + v], ref[i][v])
            << "seq " << i << " token " << v << " threads " << threads;
    // The same sequence alone with these threads.
    EXPECT_EQ(alone(*m, prompts[1]), ref[1]) << "threads " << threads;
  }
  omp_set_num_threads(1);
}
