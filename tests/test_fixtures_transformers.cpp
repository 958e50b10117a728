// The transformers fixtures (tests/data/hf-tiny-*): converted by dpep convert, run by the
// engine, compared with what transformers computed: greedy tokens exactly, logits and
// log-probabilities to tolerance, and prefill top-5 at every position.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/io/converter.h"
#include "model/ops/ops.h"
#include "model/io/weights_file.h"
#include "model_test_util.h"
#include "runtime/engine.h"

using namespace dpep;
using nlohmann::json;

namespace {

struct Loaded {
  json ref;
  std::unique_ptr<Model> model;
};

Loaded load_fixture(const std::string& name, const std::string& dtype) {
  const std::string dir = std::string(DPEP_TEST_DATA) + "/" + name;
  const auto out = std::filesystem::temp_directory_path() /
                   ("dpep-fixture-" + name + "-" + dtype + "-" + std::to_string(::getpid()) + ".h5");
  ConvertOptions opt;
  opt.hf_dir = dir;
  opt.out_path = out.string();
  opt.dtype = convert_dtype_from_name(dtype);
  opt.progress = false;
  convert_checkpoint(opt);
  Loaded l;
  {
    WeightsReader f(out.string());
    l.model = std::make_unique<Model>(f.config(), load_model_weights(f, {}), ExpertShard{});
  }
  std::filesystem::remove(out);
  std::ifstream rf(dir + "/reference.json");
  l.ref = json::parse(rf);
  return l;
}

class Fixture : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(Fixture, GreedyTokensAndLogitsMatchTransformers) {
  auto [name, dtype] = GetParam();
  Loaded l = load_fixture(name, dtype);
  const Model& m = *l.model;
  const int V = m.config().vocab_size;
  comm::LoopbackExchange ex;
  const auto& prompts = l.ref["prompts"];
  ASSERT_GT(prompts.size(), 0u);
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int> p = prompts[i].get<std::vector<int>>();
    auto greedy = l.ref["greedy"][i].get<std::vector<int>>();
    // Greedy through the engine, with top logprobs of every token.
    Engine e(m, ex, EngineConfig{4, 64, 16, 2048});
    Request r;
    r.id = 0;
    r.prompt = p;
    r.sampling.max_tokens = static_cast<int>(greedy.size());
    r.sampling.ignore_eos = true;
    r.sampling.top_logprobs = 5;
    e.add(r);
    std::vector<int> out;
    std::vector<TokenLogprobs> lps;
    while (e.has_work())
      for (auto& ev : e.step().events) {
        out.insert(out.end(), ev.new_tokens.begin(), ev.new_tokens.end());
        lps.insert(lps.end(), ev.new_logprobs.begin(), ev.new_logprobs.end());
      }
    EXPECT_EQ(out, greedy) << name << " prompt " << i;
    // First generated token: our log-probabilities against log_softmax(last_logits).
    auto last = l.ref["last_logits"][i].get<std::vector<float>>();
    ASSERT_EQ(int(last.size()), V);
    std::vector<float> ref_lp(V);
    log_softmax(last.data(), V, ref_lp.data());
    ASSERT_FALSE(lps.empty());
    for (auto [id, v] : lps[0].top) EXPECT_NEAR(v, ref_lp[id], 1e-3) << "token " << id;
    // Prefill logits at every position: full logits at the last, top-5 everywhere.
    dpep::testing::SimpleCache cache(m.config(), 64, 16);
    std::vector<int> rows(p.size());
    std::iota(rows.begin(), rows.end(), 0);
    std::vector<float> logits;
    m.forward(dpep::testing::one_seq_batch(cache, cache.new_seq(), p, 0, rows), cache.view, ex, logits);
    double scale = 0, diff = 0;
    for (int v = 0; v < V; ++v) {
      scale = std::max(scale, double(std::fabs(last[v])));
      diff = std::max(diff, double(std::fabs(logits[(p.size() - 1) * V + v] - last[v])));
    }
    EXPECT_LT(diff / scale, 1e-4) << "last logits, prompt " << i;
    const auto& topk = l.ref["prefill_logits_topk"][i];
    ASSERT_EQ(topk["indices"].size(), p.size());
    for (size_t t = 0; t < p.size(); ++t) {
      auto ids = topk["indices"][t].get<std::vector<int>>();
      auto vals = topk["values"][t].get<std::vector<float>>();
      for (size_t k = 0; k < ids.size(); ++k)
        EXPECT_NEAR(logits[t * V + ids[k]], vals[k], 1e-3 + 1e-4 * std::fabs(vals[k]))
            << "prompt " << i << " position " << t;
      // Our best token at this position is transformers' best (no near-ties in random weights).
      int best = std::max_element(logits.begin() + t * V, logits.begin() + (t + 1) * V) - (logits.begin() + t * V);
      EXPECT_EQ(best, ids[0]) << "prompt " << i << " position " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Transformers, Fixture,
                         ::testing::Values(std::make_tuple("hf-tiny-bf16", "keep"),
                                           std::make_tuple("hf-tiny-bf16", "fp32"),
                                           std::make_tuple("hf-tiny-fp8", "keep"),
                                           std::make_tuple("hf-tiny-fp8", "fp32")));

}  // namespace
