// init-model: deterministic per seed, config round trip, value distributions, fp8 block
// scales, and the Hugging Face export converting back to the very same model file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "model/io/converter.h"
#include "model/io/fp8_block.h"
#include "model/io/hf_export.h"
#include "model/io/random_init.h"
#include "model/io/weights_file.h"
#include "model/io/weights_schema.h"

namespace fs = std::filesystem;
using namespace dpep;

namespace {

fs::path tmp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("dpep_test_init_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string init(const ModelConfig& cfg, uint64_t seed, DType dt, const std::string& path) {
  InitOptions o;
  o.seed = seed;
  o.dtype = dt;
  write_random_model(cfg, o, path);
  return path;
}

std::vector<float> read_all(const WeightsReader& r, const TensorSpec& s) {
  return r.read_f32(s.name, s.shape);
}

void stats(const std::vector<float>& v, double& mean, double& sd) {
  mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  double ss = 0;
  for (float x : v) ss += (x - mean) * (x - mean);
  sd = std::sqrt(ss / v.size());
}

}  // namespace

TEST(InitModel, DeterministicPerSeedAndConfigRoundTrips) {
  auto cfg = ModelConfig::preset("tiny");
  cfg.set_field("num_hidden_layers", "2");
  cfg.set_field("n_routed_experts", "4");
  cfg.set_field("routed_scaling_factor", "2.25");
  const auto d = tmp_dir("det");
  WeightsReader a(init(cfg, 7, DType::BF16, (d / "a.h5").string()));
  WeightsReader b(init(cfg, 7, DType::BF16, (d / "b.h5").string()));
  WeightsReader c(init(cfg, 8, DType::BF16, (d / "c.h5").string()));
  EXPECT_EQ(a.config().to_fields(), cfg.to_fields());
  int differing = 0;
  for (const auto& s : model_tensor_specs(cfg)) {
    ASSERT_EQ(read_all(a, s), read_all(b, s)) << s.name;
    differing += read_all(a, s) != read_all(c, s);
  }
  EXPECT_EQ(differing, static_cast<int>(model_tensor_specs(cfg).size()));
}

TEST(InitModel, DistributionsAreAsDocumented) {
  const auto cfg = ModelConfig::preset("small");
  const auto path = init(cfg, 1, DType::F32, (tmp_dir("dist") / "m.h5").string());
  WeightsReader r(path);
  double m, sd;
  stats(r.read_f32("layers/1/attn/q_b_proj",
                   {cfg.num_attention_heads * cfg.qk_head_dim(), cfg.q_lora_rank}),
        m, sd);
  EXPECT_NEAR(m, 0.0, 1e-3);
  EXPECT_NEAR(sd, 0.02, 0.0005);
  stats(r.read_f32("layers/0/input_layernorm", {cfg.hidden_size}), m, sd);
  EXPECT_NEAR(m, 1.0, 0.003);
  EXPECT_NEAR(sd, 0.01, 0.002);
  stats(r.read_f32("lm_head", {cfg.vocab_size, cfg.hidden_size}), m, sd);
  EXPECT_NEAR(sd, 1.0 / std::sqrt(cfg.hidden_size), 0.001);
  stats(r.read_f32("layers/1/moe/e_score_correction_bias", {cfg.n_routed_experts}), m, sd);
  EXPECT_GT(sd, 0.004);
  EXPECT_LT(sd, 0.02);
  // Experts differ from each other (each has its own stream).
  auto e = r.read_items_f32("layers/1/moe/experts/up_proj", 0, 2,
                            {cfg.moe_intermediate_size, cfg.hidden_size});
  EXPECT_NE(e[0], e[cfg.moe_intermediate_size * cfg.hidden_size]);
}

TEST(InitModel, Fp8BlocksUseTheirFullRange) {
  auto cfg = ModelConfig::preset("tiny");
  cfg.set_field("hidden_size", "192");  // partial 128-blocks
  WeightsReader r(init(cfg, 3, DType::F8E4M3, (tmp_dir("fp8") / "m.h5").string()));
  const std::vector<int64_t> shape{cfg.intermediate_size, cfg.hidden_size};  // [128, 192]
  auto raw = r.read_raw("layers/0/mlp/gate_proj", shape);
  ASSERT_EQ(raw.dtype, DType::F8E4M3);
  ASSERT_EQ(raw.scale_inv.size(), 2u);
  for (int bj = 0; bj < 2; ++bj) {  // every block holds +-448 (code 0x7e) at its largest element
    int max_code = 0;
    for (int64_t i = 0; i < shape[0]; ++i)
      for (int64_t j = bj * 128; j < std::min<int64_t>(shape[1], bj * 128 + 128); ++j)
        max_code = std::max(max_code, raw.data[i * shape[1] + j] & 0x7f);
    EXPECT_EQ(max_code, 0x7e);
    EXPECT_NEAR(raw.scale_inv[bj] * 448.0f, 0.02f * 3.3f,
                0.02f * 0.5f);  // max of ~25k draws ~ 3.3 sigma
  }
  EXPECT_EQ(r.info("embed_tokens").dtype, DType::BF16);
  EXPECT_EQ(r.info("layers/1/moe/gate").dtype, DType::BF16);
  EXPECT_EQ(r.info("norm").dtype, DType::F32);
  EXPECT_EQ(r.info("layers/1/moe/experts/down_proj").dtype, DType::F8E4M3);
  // Dequantised weights stay close to the bf16 model of the same seed.
  WeightsReader b(init(cfg, 3, DType::F32, (tmp_dir("fp8ref") / "m.h5").string()));
  auto q = r.read_f32("layers/0/mlp/gate_proj", shape),
       f = b.read_f32("layers/0/mlp/gate_proj", shape);
  for (size_t i = 0; i < q.size(); ++i) ASSERT_NEAR(q[i], f[i], std::fabs(f[i]) / 16 + 1e-4) << i;
}

// init-model --hf-out then convert gives exactly the file init-model writes directly.
TEST(InitModel, HfExportConvertsToTheSameModel) {
  auto cfg = ModelConfig::preset("tiny");
  cfg.set_field("hidden_size", "160");
  for (DType dt : {DType::BF16, DType::F8E4M3, DType::F32}) {
    const auto d = tmp_dir(std::string("hf_") + dtype_name(dt));
    InitOptions o;
    o.seed = 11;
    o.dtype = dt;
    write_random_hf_checkpoint(cfg, o, (d / "hf").string(), 64 << 10);  // 64 KiB: many shards
    int shards = 0;
    for (const auto& f : fs::directory_iterator(d / "hf"))
      shards += f.path().extension() == ".safetensors";
    EXPECT_GE(shards, 3);
    ConvertOptions co;
    co.hf_dir = (d / "hf").string();
    co.out_path = (d / "conv.h5").string();
    co.progress = false;
    convert_checkpoint(co);
    WeightsReader a(init(cfg, 11, dt, (d / "direct.h5").string())), b(co.out_path);
    EXPECT_EQ(a.config().to_fields(), b.config().to_fields());
    for (const auto& s : model_tensor_specs(cfg)) {
      ASSERT_EQ(a.info(s.name).dtype, b.info(s.name).dtype) << s.name;
      ASSERT_EQ(read_all(a, s), read_all(b, s)) << s.name << " " << dtype_name(dt);
    }
  }
}
