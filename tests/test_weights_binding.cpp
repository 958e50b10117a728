// The loader and the schema agree: every tensor of model_tensor_specs() has exactly one field in
// ModelWeights, for every preset shape and the config variants the schema branches on; a load
// fills each field with its spec's shape, reads only the shard's experts, and a file missing a
// tensor (or holding one of the wrong shape) fails naming it.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <set>
#include <type_traits>
#include <utility>
#include <variant>

#include "model/io/mtp_schema.h"
#include "model/io/random_init.h"
#include "model/io/weights_file.h"
#include "model/weights_binding.h"

namespace fs = std::filesystem;
using namespace dpep;

namespace {

// A key per destination: the field's address, and for expert stacks which projection.
std::pair<const void*, int> key_of(const WeightField& f) {
  if (const auto* x = std::get_if<ExpertsField>(&f)) {
    const int proj = x->proj == &MlpWeights::gate ? 0 : x->proj == &MlpWeights::up ? 1 : 2;
    return {x->moe, proj};
  }
  return {std::visit(
              [](auto p) -> const void* {
                if constexpr (std::is_pointer_v<decltype(p)>) return p;
                return nullptr;
              },
              f),
          -1};
}

void expect_one_field_per_spec(const ModelConfig& c, const ExpertShard& shard) {
  ModelWeights w = model_weights_skeleton(c, shard);
  const auto specs = model_tensor_specs(c);
  std::set<std::pair<const void*, int>> seen;
  for (const auto& s : specs) {
    WeightField f;
    ASSERT_NO_THROW(f = weight_field(w, s)) << s.name;
    const auto k = key_of(f);
    EXPECT_NE(k.first, nullptr) << s.name;
    EXPECT_TRUE(seen.insert(k).second) << s.name << " shares its field with another tensor";
  }
  EXPECT_EQ(seen.size(), specs.size());
}

ModelConfig variant(const std::string& preset, const std::function<void(ModelConfig&)>& edit) {
  ModelConfig c = ModelConfig::preset(preset);
  edit(c);
  c.validate();
  return c;
}

fs::path tmp_dir() {
  auto d = fs::temp_directory_path() / ("dpep_test_binding_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

// A float32 model file of `c` written spec by spec; `edit` may change a spec's shape or return
// false to leave the tensor out.
std::string write_model(const ModelConfig& c, const std::string& name,
                        const std::function<bool(TensorSpec&)>& edit) {
  const std::string path = (tmp_dir() / name).string();
  WeightsWriter w(path, c);
  for (TensorSpec s : model_tensor_specs(c)) {
    if (!edit(s)) continue;
    if (s.kind == TensorKind::Experts) {
      w.create_stacked(s.name, s.shape[0], {s.shape[1], s.shape[2]}, DType::F32);
      for (int64_t e = 0; e < s.shape[0]; ++e)
        w.write_item(s.name, e, random_matrix(s, 1, e, DType::F32).bytes.data());
    } else {
      w.write(s.name, s.shape, DType::F32, random_matrix(s, 1, -1, DType::F32).bytes.data());
    }
  }
  w.close();
  return path;
}

std::string load_error(const std::string& path) {
  try {
    WeightsReader f(path);
    load_model_weights(f, {});
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

const TensorSpec& spec_of(const std::vector<TensorSpec>& specs, TensorSlot slot, int64_t layer) {
  for (const auto& s : specs)
    if (s.slot == slot && s.layer == layer) return s;
  throw std::logic_error("no such spec");
}

}  // namespace

TEST(WeightsBinding, EverySpecHasExactlyOneFieldInEveryPreset) {
  for (const char* p : {"tiny", "small", "bench", "v3"}) {
    SCOPED_TRACE(p);
    expect_one_field_per_spec(ModelConfig::preset(p), {});
    expect_one_field_per_spec(ModelConfig::preset(p), {1, 2});
  }
}

TEST(WeightsBinding, EverySpecHasExactlyOneFieldInEachSchemaBranch) {
  // no q LoRA (q_proj), no bias (greedy routing), no shared experts, all-MoE layers
  expect_one_field_per_spec(variant("v3", [](ModelConfig& c) { c.q_lora_rank = 0; }), {});
  expect_one_field_per_spec(
      variant("tiny", [](ModelConfig& c) { c.topk_method = TopkMethod::Greedy; }), {});
  expect_one_field_per_spec(variant("tiny", [](ModelConfig& c) { c.n_shared_experts = 0; }), {});
  expect_one_field_per_spec(variant("tiny", [](ModelConfig& c) { c.first_k_dense_replace = 0; }),
                            {});
}

TEST(WeightsBinding, MtpAndMisplacedTensorsHaveNoField) {
  const ModelConfig c = ModelConfig::preset("v3");
  ModelWeights w = model_weights_skeleton(c, {});
  for (const auto& s : mtp_layer_specs(c, 0)) {
    EXPECT_THROW(weight_field(w, s), std::logic_error) << s.name;
    EXPECT_EQ(s.layer, c.num_hidden_layers) << s.name;  // the converter picks MTP layers by it
  }
  // A dense layer's MLP tensor on a MoE layer and the reverse.
  const auto specs = model_tensor_specs(c);
  TensorSpec dense = spec_of(specs, TensorSlot::MlpGate, 0);
  dense.layer = 5;
  EXPECT_THROW(weight_field(w, dense), std::logic_error);
  TensorSpec router = spec_of(specs, TensorSlot::Router, 5);
  router.layer = 0;
  EXPECT_THROW(weight_field(w, router), std::logic_error);
}

TEST(WeightsBinding, LoadFillsEveryFieldWithItsSpecsShapeAndOnlyTheShardsExperts) {
  const ModelConfig c = ModelConfig::preset("tiny");
  const std::string path = write_model(c, "full.h5", [](TensorSpec&) { return true; });
  WeightsReader f(path);
  const ExpertShard shard{1, 2};
  ModelWeights w = load_model_weights(f, shard);
  const int per = static_cast<int>(c.n_routed_experts / 2);
  int checked_experts = 0;
  for (const auto& s : model_tensor_specs(c)) {
    SCOPED_TRACE(s.name);
    const WeightField field = weight_field(w, s);
    if (auto* v = std::get_if<std::vector<float>*>(&field)) {
      EXPECT_EQ(static_cast<int64_t>((*v)->size()),
                s.kind == TensorKind::Router ? s.shape[0] * s.shape[1] : s.shape[0]);
      EXPECT_EQ(**v, f.read_f32(s.name, s.shape));
    } else if (auto* l = std::get_if<Linear*>(&field)) {
      EXPECT_EQ((*l)->out(), s.shape[0]);
      EXPECT_EQ((*l)->in(), s.shape[1]);
    } else if (auto* e = std::get_if<Embedding*>(&field)) {
      EXPECT_EQ((*e)->rows, s.shape[0]);
      EXPECT_EQ((*e)->cols, s.shape[1]);
    } else {
      const ExpertsField& x = std::get<ExpertsField>(field);
      ASSERT_EQ(static_cast<int>(x.moe->local.size()), per);
      EXPECT_EQ(x.moe->first_local, per);
      for (int i = 0; i < per; ++i) {
        const Linear& lin = x.moe->local[i].*x.proj;
        ASSERT_EQ(lin.out(), s.shape[1]);
        const auto want = f.read_items_f32(s.name, per + i, 1, {s.shape[1], s.shape[2]});
        EXPECT_TRUE(std::equal(want.begin(), want.end(), lin.data())) << "expert " << per + i;
        ++checked_experts;
      }
    }
  }
  EXPECT_GT(checked_experts, 0);
}

TEST(WeightsBinding, AMissingTensorIsNamed) {
  const ModelConfig c = ModelConfig::preset("tiny");
  const auto specs = model_tensor_specs(c);
  for (TensorSlot slot :
       {TensorSlot::RouterBias, TensorSlot::ExpertsDown, TensorSlot::KvBProj, TensorSlot::LmHead}) {
    const TensorSpec& gone = spec_of(specs, slot, slot == TensorSlot::LmHead ? -1 : 1);
    SCOPED_TRACE(gone.name);
    const std::string err = load_error(
        write_model(c, "missing.h5", [&](TensorSpec& s) { return s.name != gone.name; }));
    EXPECT_NE(err.find("'" + gone.name + "'"), std::string::npos) << err;
    EXPECT_NE(err.find("missing"), std::string::npos) << err;
  }
}

TEST(WeightsBinding, ATensorOfTheWrongShapeIsNamed) {
  const ModelConfig c = ModelConfig::preset("tiny");
  const auto specs = model_tensor_specs(c);
  const TensorSpec& o = spec_of(specs, TensorSlot::OProj, 2);
  const std::string err = load_error(write_model(c, "shape.h5", [&](TensorSpec& s) {
    if (s.name == o.name) s.shape[1] += 1;
    return true;
  }));
  EXPECT_NE(err.find("'" + o.name + "'"), std::string::npos) << err;
  EXPECT_NE(err.find(fmt::format("[{}, {}]", o.shape[0], o.shape[1] + 1)), std::string::npos)
      << err;
}
