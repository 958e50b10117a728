#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "model/config.h"

using dpep::ModelConfig;

static std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Config, ReadsFixtureConfigJson) {
  auto c =
      ModelConfig::from_hf_json(slurp(std::string(DPEP_TEST_DATA) + "/hf-tiny-bf16/config.json"));
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.hidden_size, 192);
  EXPECT_EQ(c.q_lora_rank, 64);
  EXPECT_EQ(c.rope_scaling.type, dpep::RopeType::Yarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 2.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 512);
  EXPECT_TRUE(c.is_moe_layer(1));
  EXPECT_FALSE(c.is_moe_layer(0));
}

TEST(Config, NullQLoraAndRopeParameters) {
  auto c = ModelConfig::from_hf_json(R"({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 4,
    "num_hidden_layers": 1, "num_attention_heads": 2, "q_lora_rank": null, "kv_lora_rank": 4,
    "qk_nope_head_dim": 2, "qk_rope_head_dim": 2, "v_head_dim": 2,
    "rope_parameters": {"rope_type": "yarn", "factor": 40, "rope_theta": 5000,
      "original_max_position_embeddings": 4096, "mscale_all_dim": 1}})");
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.rope_scaling.type, dpep::RopeType::Yarn);
  EXPECT_DOUBLE_EQ(c.rope_theta, 5000);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 40);
}

TEST(Config, SoftmaxScaleMatchesV3Spec) {
  auto c = ModelConfig::preset("v3");
  // m = 0.1*ln(40)+1 = 1.36888; scale = 192^-0.5 * m^2
  double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c.softmax_scale(), m * m / std::sqrt(192.0), 1e-12);
  EXPECT_NEAR(m * m, 1.874, 1e-3);
}

TEST(Config, SetFieldAndValidate) {
  auto c = ModelConfig::preset("v3");
  c.set_field("num_hidden_layers", "4");
  c.set_field("n_routed_experts", "16");
  c.set_field("n_group", "4");
  c.set_field("topk_group", "2");
  EXPECT_NO_THROW(c.validate());
  EXPECT_THROW(c.set_field("no_such_field", "1"), std::invalid_argument);
  EXPECT_THROW(c.set_field("hidden_size", "abc"), std::invalid_argument);
  c.set_field("n_group", "3");
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

TEST(Config, PresetsValidate) {
  for (auto name : {"tiny", "small", "bench", "v3"})
    EXPECT_NO_THROW(ModelConfig::preset(name).validate()) << name;
  EXPECT_THROW(ModelConfig::preset("huge"), std::invalid_argument);
  auto b = ModelConfig::preset("bench");
  EXPECT_EQ(b.vocab_size, 16384);
  EXPECT_EQ(b.n_routed_experts, 64);
  EXPECT_EQ(b.num_experts_per_tok, 6);
}

TEST(Config, BadJsonIsAClearError) {
  EXPECT_THROW(ModelConfig::from_hf_json("{not json"), std::invalid_argument);
  EXPECT_THROW(ModelConfig::from_hf_json(R"({"vocab_size": 10})"), std::invalid_argument);
}
