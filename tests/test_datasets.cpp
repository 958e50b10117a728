// The datasets of dpep bench and offline: generated-shared-prefix and sharegpt (random has
// its own checks in the e2e tests).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "launch/dataset_options.h"
#include "runtime/tokenizer/preset_tokenizer.h"

using namespace dpep;

TEST(Datasets, SharedPrefixGroupsShareExactlyTheirSystemPrompt) {
  SharedPrefixDatasetArgs a;
  a.num_groups = 5;
  a.prompts_per_group = 4;
  a.system_prompt_len = 30;
  a.question_len = 7;
  a.output_len = 3;
  a.seed = 9;
  const auto reqs = make_shared_prefix_dataset(a, 500, {0, 1});
  ASSERT_EQ(reqs.size(), 20u);
  std::map<std::vector<int>, int> groups;
  std::set<std::vector<int>> questions;
  bool shuffled = false;
  std::vector<int> prev_sys;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& r = reqs[i];
    EXPECT_EQ(r.id, static_cast<int64_t>(i));
    ASSERT_EQ(r.prompt.size(), 37u);
    EXPECT_EQ(r.sampling.max_tokens, 3);
    EXPECT_TRUE(r.sampling.ignore_eos);
    for (int t : r.prompt) EXPECT_TRUE(t >= 2 && t < 500);
    std::vector<int> sys(r.prompt.begin(), r.prompt.begin() + 30);
    groups[sys]++;
    questions.insert(std::vector<int>(r.prompt.begin() + 30, r.prompt.end()));
    if (i > 0 && i % 4 != 0 && sys != prev_sys) shuffled = true;  // not in group order
    prev_sys = sys;
  }
  EXPECT_EQ(groups.size(), 5u);
  for (auto& [sys, n] : groups) EXPECT_EQ(n, 4);
  EXPECT_EQ(questions.size(), 20u);
  EXPECT_TRUE(shuffled);
  // Same seed, same dataset; another seed, another one.
  const auto again = make_shared_prefix_dataset(a, 500, {0, 1});
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(again[i].prompt, reqs[i].prompt);
  a.seed = 10;
  EXPECT_NE(make_shared_prefix_dataset(a, 500, {0, 1})[0].prompt, reqs[0].prompt);
  a.num_groups = 0;
  EXPECT_THROW(make_shared_prefix_dataset(a, 500, {0, 1}), std::invalid_argument);
}

namespace {
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    path = (std::filesystem::temp_directory_path() / ("dpep_sharegpt_" + std::to_string(getpid()) +
                                                      "_" + std::to_string(counter++) + ".json"))
               .string();
    std::ofstream(path) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
  static inline int counter = 0;
};
}  // namespace

TEST(Datasets, ShareGptTakesFirstTurnsAndFiltersByTokenLengths) {
  const auto tok = text::Tokenizer::from_json(text::build_preset_tokenizer_json(512),
                                              text::build_preset_tokenizer_config_json());
  const std::string long_prompt(400, 'x');
  TempFile f(R"([
    {"id": "a", "conversations": [{"from": "human", "value": "hello there, how are you"},
                                  {"from": "gpt", "value": "fine thanks, and you?"},
                                  {"from": "human", "value": "ignored third turn"}]},
    {"id": "b", "conversations": [{"from": "human", "value": "only one turn"}]},
    {"id": "c", "conversation": [{"from": "human", "value": "the other field name works too"},
                                 {"from": "gpt", "value": "so it does, it seems"}]},
    {"id": "d", "conversations": [{"from": "human", "value": ""},
                                  {"from": "gpt", "value": "an empty prompt is too short"}]},
    {"id": "e", "conversations": [{"from": "human", "value": ")" +
             long_prompt + R"("},
                                  {"from": "gpt", "value": "too long with a context limit"}]}
  ])");
  ShareGptDatasetArgs a;
  a.path = f.path;
  a.num_prompts = 10;
  auto reqs = make_sharegpt_dataset(a, &tok);
  // b has one turn; d's prompt is BOS alone (1 token): 3 remain.
  ASSERT_EQ(reqs.size(), 3u);
  std::set<size_t> prompt_lens;
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(reqs[i].id, static_cast<int64_t>(i));
    EXPECT_TRUE(reqs[i].sampling.ignore_eos);
    EXPECT_GE(reqs[i].prompt.size(), 2u);
    prompt_lens.insert(reqs[i].prompt.size());
  }
  const auto expect_len = [&](const std::string& s) { return tok.encode(s, true).size(); };
  EXPECT_TRUE(prompt_lens.count(expect_len("hello there, how are you")));
  EXPECT_TRUE(prompt_lens.count(expect_len("the other field name works too")));
  for (const auto& r : reqs) {
    if (r.prompt.size() == expect_len("hello there, how are you")) {
      EXPECT_EQ(r.sampling.max_tokens, static_cast<int>(expect_len("fine thanks, and you?")));
    }
  }
  // A context limit drops the long one; a fixed output length applies to all; fewer prompts.
  a.context_len = static_cast<int>(expect_len(long_prompt)) - 5;
  a.output_len = 4;
  reqs = make_sharegpt_dataset(a, &tok);
  EXPECT_EQ(reqs.size(), 2u);
  for (const auto& r : reqs) EXPECT_EQ(r.sampling.max_tokens, 4);
  a.num_prompts = 1;
  EXPECT_EQ(make_sharegpt_dataset(a, &tok).size(), 1u);
  // Same seed, same order.
  a.num_prompts = 10;
  a.context_len = 0;
  const auto x = make_sharegpt_dataset(a, &tok), y = make_sharegpt_dataset(a, &tok);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i].prompt, y[i].prompt);
}

TEST(Datasets, ShareGptRefusesWithoutTokenizerAndBadFilesClearly) {
  const auto tok = text::Tokenizer::from_json(text::build_preset_tokenizer_json(512),
                                              text::build_preset_tokenizer_config_json());
  TempFile good(R"([{"conversations": [{"value": "a b c d"}, {"value": "e f g h"}]}])");
  ShareGptDatasetArgs a;
  a.path = good.path;
  auto message = [&](const text::Tokenizer* t) {
    try {
      make_sharegpt_dataset(a, t);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(nullptr).find("needs a tokenizer"), std::string::npos);
  EXPECT_EQ(message(&tok), "no error");
  TempFile bad("{not json");
  a.path = bad.path;
  EXPECT_NE(message(&tok).find("not valid JSON"), std::string::npos);
  TempFile obj(R"({"conversations": []})");
  a.path = obj.path;
  EXPECT_NE(message(&tok).find("JSON array"), std::string::npos);
  TempFile none(R"([{"conversations": [{"value": "x"}]}])");
  a.path = none.path;
  EXPECT_NE(message(&tok).find("no conversation"), std::string::npos);
  a.path = "/nonexistent/sharegpt.json";
  EXPECT_NE(message(&tok).find("cannot read"), std::string::npos);
  // Through the shared options: unknown names and a missing path are refused.
  DatasetOptions o;
  o.name = "sharegpt";
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o.name = "nope";
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o.name = "generated-shared-prefix";
  o.gsp.num_groups = 2;
  o.gsp.prompts_per_group = 3;
  o.gsp.system_prompt_len = 5;
  o.gsp.question_len = 2;
  EXPECT_EQ(o.make(100, {0, 1}, nullptr).size(), 6u);
}
