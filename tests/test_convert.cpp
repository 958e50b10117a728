// dpep convert on the two transformers fixtures: every dataset read back equals the
// checkpoint tensor decoded independently here (bf16 bit shift; fp8 q * scale_inv per
// 128x128 block), and broken checkpoints give errors naming the tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/io/converter.h"
#include "model/io/hf_checkpoint.h"
#include "model/io/safetensors_writer.h"
#include "model/io/weights_file.h"
#include "model/io/weights_schema.h"
#include "model/ops/dtypes.h"

namespace fs = std::filesystem;
using namespace dpep;

namespace {

const std::string kData = DPEP_TEST_DATA;

fs::path tmp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("dpep_test_conv_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string convert(const std::string& hf, const std::string& out,
                    ConvertDType dt = ConvertDType::Keep, uint64_t slab_bytes = 64ull << 20) {
  ConvertOptions o;
  o.slab_bytes = slab_bytes;
  o.hf_dir = hf;
  o.out_path = out;
  o.dtype = dt;
  o.progress = false;
  convert_checkpoint(o);
  return out;
}

// The checkpoint tensor as float32, decoded without dpep's conversion code.
std::vector<float> reference(const HfCheckpoint& ck, const std::string& name) {
  const StTensor& t = ck.tensor(name);
  auto raw = ck.shard_of(name).read_bytes(name);
  std::vector<float> out(t.numel());
  if (t.dtype == StDType::BF16) {
    for (size_t i = 0; i < out.size(); ++i) {
      uint32_t u = (uint32_t(raw[2 * i + 1]) << 24) | (uint32_t(raw[2 * i]) << 16);
      std::memcpy(&out[i], &u, 4);
    }
  } else if (t.dtype == StDType::F8_E4M3) {
    const std::string sn = name + "_scale_inv";
    const StTensor& s = ck.tensor(sn);
    EXPECT_EQ(s.dtype, StDType::F32);
    auto sraw = ck.shard_of(sn).read_bytes(sn);
    std::vector<float> scale(s.numel());
    std::memcpy(scale.data(), sraw.data(), sraw.size());
    const int64_t rows = t.shape[0], cols = t.shape[1], sc = s.shape[1];
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        out[i * cols + j] = fp8_e4m3_to_f32(raw[i * cols + j]) * scale[(i / 128) * sc + j / 128];
  } else {
    ADD_FAILURE() << name << " has unexpected dtype " << st_dtype_name(t.dtype);
  }
  return out;
}

// Compares every dataset of `file` with the checkpoint; `round` maps the reference value to
// what the chosen --dtype stores.
void expect_matches(const std::string& hf, const std::string& file, float (*round)(float)) {
  HfCheckpoint ck(hf);
  WeightsReader r(file);
  EXPECT_EQ(r.config().to_fields(), ModelConfig::from_hf_json(ck.config_json()).to_fields());
  int compared = 0;
  for (const auto& spec : model_tensor_specs(r.config())) {
    if (spec.kind == TensorKind::Experts) {
      std::vector<int64_t> item(spec.shape.begin() + 1, spec.shape.end());
      for (int64_t e = 0; e < spec.shape[0]; ++e) {
        std::string name = spec.hf_name;
        name.replace(name.find("{e}"), 3, std::to_string(e));
        auto want = reference(ck, name);
        auto got = r.read_items_f32(spec.name, e, 1, item);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_EQ(got[i], round(want[i])) << spec.name << " expert " << e << " at " << i;
        ++compared;
      }
    } else {
      auto want = reference(ck, spec.hf_name);
      auto got = r.read_f32(spec.name, spec.shape);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(got[i], round(want[i])) << spec.name << " at " << i;
      ++compared;
    }
  }
  EXPECT_GT(compared, 60);
}

float same(float x) {
  return x;
}
float to_bf16(float x) {
  return bf16_to_f32(f32_to_bf16(x));
}

}  // namespace

TEST(Convert, Bf16FixtureKeepIsBitwise) {
  const auto hf = kData + "/hf-tiny-bf16";
  auto out = convert(hf, (tmp_dir("bf16") / "m.h5").string());
  expect_matches(hf, out, same);
  WeightsReader r(out);
  EXPECT_EQ(r.info("layers/1/moe/experts/gate_proj").dtype, DType::BF16);
  EXPECT_EQ(r.info("layers/1/moe/experts/gate_proj").shape, (std::vector<int64_t>{8, 64, 192}));
  EXPECT_EQ(r.info("embed_tokens").dtype, DType::BF16);
  EXPECT_FALSE(r.read_text("tokenizer/tokenizer.json").has_value());
}

TEST(Convert, Fp8FixtureKeepsFp8AndScales) {
  const auto hf = kData + "/hf-tiny-fp8";
  auto out = convert(hf, (tmp_dir("fp8") / "m.h5").string());
  expect_matches(hf, out, same);
  WeightsReader r(out);
  auto info = r.info("layers/0/mlp/gate_proj");  // [320, 192]: scales [3, 2], partial edges
  EXPECT_EQ(info.dtype, DType::F8E4M3);
  EXPECT_TRUE(info.has_scale);
  EXPECT_EQ(r.info("layers/0/mlp/gate_proj_scale_inv").shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(r.info("layers/2/moe/experts/down_proj_scale_inv").shape,
            (std::vector<int64_t>{8, 2, 1}));
  EXPECT_EQ(r.info("embed_tokens").dtype, DType::BF16);
  EXPECT_EQ(r.info("layers/1/moe/gate").dtype, DType::BF16);
}

TEST(Convert, Fp8FixtureToFp32AndBf16) {
  const auto hf = kData + "/hf-tiny-fp8";
  auto f32 = convert(hf, (tmp_dir("fp8_f32") / "m.h5").string(), ConvertDType::F32);
  expect_matches(hf, f32, same);
  EXPECT_EQ(WeightsReader(f32).info("layers/0/attn/q_b_proj").dtype, DType::F32);
  auto bf = convert(hf, (tmp_dir("fp8_bf16") / "m.h5").string(), ConvertDType::BF16);
  expect_matches(hf, bf, to_bf16);
  EXPECT_EQ(WeightsReader(bf).info("layers/0/attn/q_b_proj").dtype, DType::BF16);
}

// Slabs of a few rows: plain tensors are written in many pieces (fp8 in whole 128-row
// blocks, the last one partial) and the result is the same.
TEST(Convert, SmallSlabsGiveTheSameFile) {
  for (const char* fx : {"hf-tiny-bf16", "hf-tiny-fp8"}) {
    const auto hf = kData + "/" + fx;
    for (ConvertDType dt : {ConvertDType::Keep, ConvertDType::F32}) {
      auto out = convert(hf, (tmp_dir(std::string("slab_") + fx) / "m.h5").string(), dt, 1000);
      expect_matches(hf, out, same);
    }
  }
}

// ---- broken checkpoints: a copy of the bf16 fixture with an edited index or an extra shard.
namespace {

struct Copy {
  fs::path dir;
  nlohmann::json index;
  explicit Copy(const std::string& name) : dir(tmp_dir(name)) {
    for (const auto& f : fs::directory_iterator(kData + "/hf-tiny-bf16"))
      fs::copy(f.path(), dir / f.path().filename());
    index = nlohmann::json::parse(read_text_file((dir / "model.safetensors.index.json").string()));
  }
  void save() { std::ofstream(dir / "model.safetensors.index.json") << index.dump(1); }
  // Adds a shard holding one bf16 tensor and points the index at it.
  void add_tensor(const std::string& name, std::vector<int64_t> shape,
                  StDType dtype = StDType::BF16) {
    const std::string shard =
        "extra-" + std::to_string(index["weight_map"].size()) + ".safetensors";
    SafetensorsWriter w((dir / shard).string(), {{name, dtype, shape}});
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<uint8_t> v(n * st_dtype_bytes(dtype), 0);
    w.write(name, v.data());
    w.close();
    index["weight_map"][name] = shard;
    save();
  }
  std::string error(ConvertDType dt = ConvertDType::Keep) {
    const auto out = (dir / "out.h5").string();
    try {
      convert(dir.string(), out, dt);
    } catch (const std::runtime_error& e) {
      EXPECT_FALSE(fs::exists(out)) << "partial output left behind";
      return e.what();
    }
    return "";
  }
};

}  // namespace

TEST(Convert, MissingTensorNamesIt) {
  Copy c("missing");
  c.index["weight_map"].erase("model.layers.2.mlp.experts.5.up_proj.weight");
  c.save();
  auto err = c.error();
  EXPECT_NE(err.find("missing tensor 'model.layers.2.mlp.experts.5.up_proj.weight'"),
            std::string::npos)
      << err;
}

TEST(Convert, UnknownTensorNamesIt) {
  Copy c("unknown");
  c.add_tensor("model.layers.0.mlp.mystery.weight", {4, 4});
  auto err = c.error();
  EXPECT_NE(err.find("unknown tensor 'model.layers.0.mlp.mystery.weight'"), std::string::npos)
      << err;
}

TEST(Convert, WrongShapeNamesTensorAndShapes) {
  Copy c("shape");
  c.add_tensor("model.norm.weight", {191});  // replaces the real one in the index
  auto err = c.error();
  for (const char* part : {"model.norm.weight", "[191]", "[192]"})
    EXPECT_NE(err.find(part), std::string::npos) << err;
}

TEST(Convert, UnsupportedDtypeNamesTensorAndDtype) {
  Copy c("f64");
  c.add_tensor("model.norm.weight", {192}, StDType::F64);
  auto err = c.error();
  for (const char* part : {"model.norm.weight", "F64"})
    EXPECT_NE(err.find(part), std::string::npos) << err;
}

TEST(Convert, BadShardHeaderNamesShard) {
  Copy c("header");
  const auto shard = c.dir / "model-00002-of-00002.safetensors";
  {
    std::fstream io(shard, std::ios::in | std::ios::out | std::ios::binary);
    const unsigned char huge[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    io.write(reinterpret_cast<const char*>(huge), 8);
  }
  auto err = c.error();
  EXPECT_NE(err.find("model-00002-of-00002.safetensors"), std::string::npos) << err;
  EXPECT_NE(err.find("header length"), std::string::npos) << err;
}

TEST(Convert, SkipsMtpLayersAndRotaryAndCopiesTokenizer) {
  Copy c("mtp");
  c.add_tensor("model.layers.3.input_layernorm.weight", {192});
  c.add_tensor("model.layers.3.eh_proj.weight", {192, 384});
  c.add_tensor("model.layers.0.self_attn.rotary_emb.inv_freq", {4});
  fs::copy(kData + "/deepseek-v3-tokenizer/tokenizer_config.json", c.dir / "tokenizer_config.json");
  const auto out = (c.dir / "out.h5").string();
  convert(c.dir.string(), out);
  WeightsReader r(out);
  EXPECT_FALSE(r.has("layers/3/input_layernorm"));
  EXPECT_EQ(r.read_text("tokenizer/tokenizer_config.json").value(),
            read_text_file(kData + "/deepseek-v3-tokenizer/tokenizer_config.json"));
  EXPECT_FALSE(r.read_text("tokenizer/tokenizer.json").has_value());
}

// The same model as one model.safetensors with fused experts (gate_up_proj [E, 2I, H] with
// gate rows first, down_proj [E, H, I]) converts to the same file contents.
TEST(Convert, FusedExpertsSingleFile) {
  const auto src = kData + "/hf-tiny-bf16";
  HfCheckpoint ck(src);
  const auto cfg = ModelConfig::from_hf_json(ck.config_json());
  const auto dir = tmp_dir("fused");
  fs::copy(src + "/config.json", dir / "config.json");
  std::vector<StDecl> decls;
  std::map<std::string, std::vector<std::string>> fused;  // fused name -> per-expert parts in order
  const int64_t E = cfg.n_routed_experts;
  for (const auto& name : ck.tensor_names())
    if (name.find(".mlp.experts.") == std::string::npos)
      decls.push_back({name, ck.tensor(name).dtype, ck.tensor(name).shape});
  for (int64_t l = cfg.first_k_dense_replace; l < cfg.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".mlp.experts.";
    auto& gu = fused[p + "gate_up_proj"];
    auto& dn = fused[p + "down_proj"];
    for (int64_t e = 0; e < E; ++e) {
      gu.push_back(p + std::to_string(e) + ".gate_proj.weight");
      gu.push_back(p + std::to_string(e) + ".up_proj.weight");
      dn.push_back(p + std::to_string(e) + ".down_proj.weight");
    }
    decls.push_back(
        {p + "gate_up_proj", StDType::BF16, {E, 2 * cfg.moe_intermediate_size, cfg.hidden_size}});
    decls.push_back(
        {p + "down_proj", StDType::BF16, {E, cfg.hidden_size, cfg.moe_intermediate_size}});
  }
  {
    SafetensorsWriter w((dir / "model.safetensors").string(), decls);
    for (const auto& d : decls) {
      std::vector<uint8_t> bytes;
      if (fused.count(d.name)) {
        for (const auto& part : fused[d.name]) {
          auto b = ck.shard_of(part).read_bytes(part);
          bytes.insert(bytes.end(), b.begin(), b.end());
        }
      } else {
        bytes = ck.shard_of(d.name).read_bytes(d.name);
      }
      w.write(d.name, bytes.data());
    }
    w.close();
  }
  auto a = convert(src, (dir / "a.h5").string());
  auto b = convert(dir.string(), (dir / "b.h5").string());
  WeightsReader ra(a), rb(b);
  for (const auto& spec : model_tensor_specs(cfg))
    ASSERT_EQ(ra.read_f32(spec.name, spec.shape), rb.read_f32(spec.name, spec.shape)) << spec.name;
}
