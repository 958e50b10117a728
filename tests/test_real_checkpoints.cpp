// Real DeepSeek releases as shipped: the config.json of V3 and R1 (tests/data/configs, the
// published values) parse to the v3 preset with FP8 128x128 quantization, and the MTP ("nextn")
// layer after the last decoder layer is kept by convert under mtp/ (not loaded), left out with a
// note when incomplete, and absent when config.json declares none.
#include <gtest/gtest.h>
#include <unistd.h>
#include <algorithm>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/io/converter.h"
#include "model/io/hf_checkpoint.h"
#include "model/io/hf_export.h"
#include "model/io/mtp_schema.h"
#include "model/io/plan_tensors.h"
#include "model/io/random_init.h"
#include "model/io/safetensors_writer.h"
#include "model/io/weights_file.h"

namespace fs = std::filesystem;
using namespace dpep;

namespace {

const std::string kConfigs = std::string(DPEP_TEST_DATA) + "/configs/";

fs::path tmp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("dpep_test_real_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

ModelConfig tiny_with_mtp(int64_t nextn) {
  ModelConfig c = ModelConfig::preset("tiny");
  c.num_nextn_predict_layers = nextn;
  return c;
}

// A tiny random fp8 HF checkpoint with `nextn` MTP layers written after the last layer.
fs::path hf_checkpoint(const std::string& name, int64_t nextn, uint64_t seed = 7) {
  const auto d = tmp_dir(name);
  InitOptions o;
  o.seed = seed;
  o.dtype = DType::F8E4M3;
  write_random_hf_checkpoint(tiny_with_mtp(nextn), o, (d / "hf").string(), 1 << 20);
  return d;
}

void edit_json(const fs::path& p, const std::function<void(nlohmann::json&)>& f) {
  auto j = nlohmann::json::parse(read_text_file(p.string()));
  f(j);
  std::ofstream(p) << j.dump(2);
}

ConvertStats convert(const fs::path& hf, const fs::path& out) {
  ConvertOptions o;
  o.hf_dir = hf.string();
  o.out_path = out.string();
  o.progress = false;
  return convert_checkpoint(o);
}

}  // namespace

TEST(RealConfigs, V3AndR1ParseToTheV3Preset) {
  for (const char* f : {"deepseek-v3-config.json", "deepseek-r1-config.json"}) {
    const std::string text = read_text_file(kConfigs + f);
    const ModelConfig c = ModelConfig::from_hf_json(text);
    EXPECT_EQ(c.to_fields(), ModelConfig::preset("v3").to_fields()) << f;
    EXPECT_EQ(c.num_nextn_predict_layers, 1) << f;
    EXPECT_EQ(c.rope_scaling.type, RopeType::Yarn) << f;
    EXPECT_EQ(c.rope_scaling.factor, 40) << f;
    EXPECT_TRUE(hf_quantization_from_config(text).fp8) << f;
  }
}

TEST(RealConfigs, QuantizationConfigIsChecked) {
  auto with = [](const std::string& q) {
    return R"({"vocab_size": 8, "quantization_config": )" + q + "}";
  };
  EXPECT_FALSE(hf_quantization_from_config(R"({"vocab_size": 8})").fp8);
  EXPECT_FALSE(hf_quantization_from_config(with("null")).fp8);
  EXPECT_TRUE(hf_quantization_from_config(with(R"({"quant_method": "fp8"})")).fp8);
  for (const char* bad :
       {R"({"quant_method": "fp8", "weight_block_size": [64, 64]})",
        R"({"quant_method": "fp8", "weight_block_size": [128]})",
        R"({"quant_method": "fp8", "fmt": "e5m2"})", R"({"quant_method": "awq"})", "[1]"}) {
    try {
      hf_quantization_from_config(with(bad));
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("quantization_config"), std::string::npos) << e.what();
    }
  }
}

TEST(RealConfigs, PlanFromConfigOnlyFolderCountsFp8LikeTheRelease) {
  const auto d = tmp_dir("cfg_only");
  fs::copy(kConfigs + "deepseek-v3-config.json", d / "config.json");
  ModelConfig c;
  const auto t = plan_tensors_from_hf(d.string(), ConvertDType::Keep, c);
  const auto expect = plan_tensors_for_init(ModelConfig::preset("v3"), DType::F8E4M3);
  ASSERT_EQ(t.size(), expect.size());
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(t[i].spec.name, expect[i].spec.name);
    if (t[i].spec.kind != TensorKind::Vector) {  // vectors count as float32 either way
      EXPECT_EQ(t[i].dtype, expect[i].dtype) << t[i].spec.name;
    }
  }
  // --dtype bf16 would store everything bf16.
  for (const auto& p : plan_tensors_from_hf(d.string(), ConvertDType::BF16, c))
    EXPECT_EQ(p.dtype, DType::BF16) << p.spec.name;
}

TEST(Mtp, SpecsFollowTheRelease) {
  const ModelConfig v3 = ModelConfig::preset("v3");
  const auto specs = mtp_tensor_specs(v3);
  auto find = [&](const std::string& name) -> const TensorSpec* {
    for (const auto& s : specs)
      if (s.name == name) return &s;
    return nullptr;
  };
  const TensorSpec* eh = find("mtp/0/eh_proj");
  ASSERT_NE(eh, nullptr);
  EXPECT_EQ(eh->hf_name, "model.layers.61.eh_proj.weight");
  EXPECT_EQ(eh->shape, (std::vector<int64_t>{7168, 14336}));
  for (const char* n : {"mtp/0/enorm", "mtp/0/hnorm", "mtp/0/shared_head/norm",
                        "mtp/0/shared_head/head", "mtp/0/embed_tokens", "mtp/0/attn/q_a_proj",
                        "mtp/0/moe/experts/down_proj", "mtp/0/moe/shared/up_proj"})
    EXPECT_NE(find(n), nullptr) << n;
  EXPECT_EQ(find("mtp/0/moe/experts/gate_proj")->hf_name,
            "model.layers.61.mlp.experts.{e}.gate_proj.weight");
  EXPECT_TRUE(mtp_spec_optional(*find("mtp/0/embed_tokens")));
  EXPECT_FALSE(mtp_spec_optional(*eh));
  EXPECT_TRUE(mtp_tensor_specs(tiny_with_mtp(0)).empty());
}

TEST(Mtp, ConvertKeepsTheMtpLayerAndTheMainModelIsUnchanged) {
  const auto d = hf_checkpoint("keep", 1);
  const auto st = convert(d / "hf", d / "m.h5");
  EXPECT_EQ(st.mtp_declared, 1);
  EXPECT_EQ(st.mtp_layers, 1);
  const ModelConfig c = tiny_with_mtp(1);
  EXPECT_EQ(st.mtp_tensors, static_cast<int64_t>(mtp_layer_specs(c, 0).size()));
  EXPECT_TRUE(st.mtp_note.empty()) << st.mtp_note;
  WeightsReader r((d / "m.h5").string());
  EXPECT_EQ(r.config().num_nextn_predict_layers, 1);
  // Every MTP dataset holds the checkpoint's values, fp8 kept as fp8.
  for (const auto& s : mtp_layer_specs(c, 0)) {
    ASSERT_TRUE(r.has(s.name)) << s.name;
    const DType dt = init_dtype(s, DType::F8E4M3);
    EXPECT_EQ(r.info(s.name).dtype, dt) << s.name;
    if (s.kind == TensorKind::Experts) {
      const std::vector<int64_t> item(s.shape.begin() + 1, s.shape.end());
      const auto raw = r.read_items_raw(s.name, 3, 1, item);
      EXPECT_TRUE(std::ranges::equal(raw.data, random_matrix(s, 7, 3, dt).bytes)) << s.name;
    } else {
      EXPECT_TRUE(
          std::ranges::equal(r.read_raw(s.name, s.shape).data, random_matrix(s, 7, -1, dt).bytes))
          << s.name;
    }
  }
  // The main model is the one init-model writes without MTP.
  InitOptions o;
  o.seed = 7;
  o.dtype = DType::F8E4M3;
  write_random_model(tiny_with_mtp(0), o, (d / "direct.h5").string());
  WeightsReader a((d / "direct.h5").string());
  for (const auto& s : model_tensor_specs(c))
    ASSERT_EQ(a.read_f32(s.name, s.shape), r.read_f32(s.name, s.shape)) << s.name;
  EXPECT_FALSE(a.has("mtp/0/eh_proj"));
}

TEST(Mtp, DeclaredButAbsentKeepsNone) {
  const auto d = hf_checkpoint("absent", 0);
  edit_json(d / "hf" / "config.json", [](auto& j) { j["num_nextn_predict_layers"] = 1; });
  const auto st = convert(d / "hf", d / "m.h5");
  EXPECT_EQ(st.mtp_declared, 1);
  EXPECT_EQ(st.mtp_layers, 0);
  WeightsReader r((d / "m.h5").string());
  EXPECT_EQ(r.config().num_nextn_predict_layers, 0);
  EXPECT_FALSE(r.has("mtp/0/eh_proj"));
}

TEST(Mtp, ShippedButNotDeclaredIsSkipped) {
  // E.g. a bf16 re-export that set num_nextn_predict_layers to 0 but kept layer 61's tensors.
  const auto d = hf_checkpoint("undeclared", 1);
  edit_json(d / "hf" / "config.json", [](auto& j) { j["num_nextn_predict_layers"] = 0; });
  const auto st = convert(d / "hf", d / "m.h5");
  EXPECT_EQ(st.mtp_layers, 0);
  WeightsReader r((d / "m.h5").string());
  EXPECT_FALSE(r.has("mtp/0/eh_proj"));
}

TEST(Mtp, IncompleteLayerIsLeftOutWithANote) {
  const auto d = hf_checkpoint("partial", 1);
  edit_json(d / "hf" / "model.safetensors.index.json",
            [](auto& j) { j["weight_map"].erase("model.layers.3.eh_proj.weight"); });
  const auto st = convert(d / "hf", d / "m.h5");
  EXPECT_EQ(st.mtp_layers, 0);
  EXPECT_NE(st.mtp_note.find("model.layers.3.eh_proj.weight"), std::string::npos) << st.mtp_note;
  WeightsReader r((d / "m.h5").string());
  EXPECT_EQ(r.config().num_nextn_predict_layers, 0);
  EXPECT_FALSE(r.has("mtp/0/enorm"));
  EXPECT_TRUE(r.has("layers/2/moe/experts/gate_proj"));
}

TEST(Mtp, UnknownTensorInsideAKeptMtpLayerIsAnError) {
  const auto d = hf_checkpoint("mystery", 1);
  {
    SafetensorsWriter w((d / "hf" / "extra.safetensors").string(),
                        {{"model.layers.3.mystery.weight", StDType::BF16, {4, 4}}});
    const std::vector<uint8_t> zeros(32, 0);
    w.write("model.layers.3.mystery.weight", zeros.data());
    w.close();
  }
  edit_json(d / "hf" / "model.safetensors.index.json", [](auto& j) {
    j["weight_map"]["model.layers.3.mystery.weight"] = "extra.safetensors";
  });
  try {
    convert(d / "hf", d / "m.h5");
    FAIL() << "converted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown tensor 'model.layers.3.mystery.weight'"),
              std::string::npos)
        << e.what();
  }
}
