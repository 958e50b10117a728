// Broken FP8 weights give clear errors, in dpep convert (safetensors checkpoint) and when a
// model file is loaded (HDF5): a missing weight_scale_inv, a scale of the wrong shape, a
// truncated FP8 block. Each error names the file and the tensor.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/io/converter.h"
#include "model/io/hf_checkpoint.h"
#include "model/io/safetensors_writer.h"
#include "model/io/weights_file.h"
#include "model/model.h"

namespace fs = std::filesystem;
using namespace dpep;

namespace {

const std::string kFixture = std::string(DPEP_TEST_DATA) + "/hf-tiny-fp8";
const std::string kName = "model.layers.0.mlp.gate_proj.weight";  // [320, 192]: scales [3, 2]

fs::path tmp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("dpep_test_fp8bad_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void convert(const std::string& hf, const std::string& out) {
  ConvertOptions o;
  o.hf_dir = hf;
  o.out_path = out;
  o.dtype = ConvertDType::Keep;
  o.progress = false;
  convert_checkpoint(o);
}

// A copy of the FP8 fixture whose index can be edited.
struct Copy {
  fs::path dir;
  nlohmann::json index;
  explicit Copy(const std::string& name) : dir(tmp_dir(name)) {
    for (const auto& f : fs::directory_iterator(kFixture))
      fs::copy(f.path(), dir / f.path().filename());
    index = nlohmann::json::parse(read_text_file((dir / "model.safetensors.index.json").string()));
  }
  void save() { std::ofstream(dir / "model.safetensors.index.json") << index.dump(1); }
  std::string error() {
    const auto out = (dir / "out.h5").string();
    try {
      convert(dir.string(), out);
    } catch (const std::runtime_error& e) {
      EXPECT_FALSE(fs::exists(out)) << "partial output left behind";
      return e.what();
    }
    return "";
  }
};

void expect_has(const std::string& err, std::initializer_list<std::string> parts) {
  EXPECT_FALSE(err.empty()) << "no error";
  for (const auto& p : parts)
    EXPECT_NE(err.find(p), std::string::npos) << "'" << p << "' in: " << err;
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

// Converted fixture, edited with the raw HDF5 API.
std::string edited_model(const std::string& name, const std::function<void(hid_t)>& fn) {
  const auto dir = tmp_dir(name);
  const auto path = (dir / "m.h5").string();
  convert(kFixture, path);
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  fn(f);
  H5Fclose(f);
  return path;
}

}  // namespace

TEST(Fp8BadInput, ConvertMissingScaleInv) {
  Copy c("missing");
  c.index["weight_map"].erase(kName + "_scale_inv");
  c.save();
  expect_has(c.error(), {kName, kName + "_scale_inv"});
}

TEST(Fp8BadInput, ConvertScaleOfWrongShape) {
  Copy c("shape");
  // A shard holding a [2, 2] scale where [3, 2] is due; the index points at it.
  const std::string sname = kName + "_scale_inv";
  SafetensorsWriter w((c.dir / "extra.safetensors").string(), {{sname, StDType::F32, {2, 2}}});
  std::vector<float> v(4, 1.0f);
  w.write(sname, v.data());
  w.close();
  c.index["weight_map"][sname] = "extra.safetensors";
  c.save();
  expect_has(c.error(), {sname, "[2, 2]", "[3, 2]"});
}

TEST(Fp8BadInput, ConvertTruncatedFp8Block) {
  Copy c("trunc");
  const std::string shard = c.index["weight_map"][kName];
  const fs::path path = c.dir / shard;
  uint64_t cut = 0;
  {
    SafetensorsFile f(path.string());
    const StTensor& t = f.get(kName);
    std::ifstream in(path, std::ios::binary);
    uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    cut = 8 + n + t.begin + t.nbytes() / 2;  // mid-way through the FP8 tensor's blocks
  }
  fs::resize_file(path, cut);
  expect_has(c.error(), {shard});
}

TEST(Fp8BadInput, LoadMissingScaleInv) {
  const auto path = edited_model("load_missing", [](hid_t f) {
    ASSERT_GE(H5Ldelete(f, "layers/0/mlp/gate_proj_scale_inv", H5P_DEFAULT), 0);
  });
  expect_has(load_error(path), {path, "layers/0/mlp/gate_proj_scale_inv", "missing"});
}

TEST(Fp8BadInput, LoadScaleOfWrongShape) {
  const auto path = edited_model("load_shape", [](hid_t f) {
    const char* name = "layers/2/moe/experts/down_proj_scale_inv";  // [8, 2, 1] is due
    ASSERT_GE(H5Ldelete(f, name, H5P_DEFAULT), 0);
    hsize_t dims[3] = {8, 1, 1};
    hid_t s = H5Screate_simple(3, dims, nullptr);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<float> v(8, 1.0f);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 3);
    hid_t as = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(d, "dtype", t, as, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, "f32");
    H5Aclose(a);
    H5Sclose(as);
    H5Tclose(t);
    H5Dclose(d);
    H5Sclose(s);
  });
  expect_has(load_error(path),
             {path, "layers/2/moe/experts/down_proj_scale_inv", "[8, 1, 1]", "[8, 2, 1]"});
}

TEST(Fp8BadInput, LoadTruncatedFile) {
  const auto dir = tmp_dir("load_trunc");
  const auto path = (dir / "m.h5").string();
  convert(kFixture, path);
  const auto size = fs::file_size(path);
  for (double frac : {0.8, 0.5}) {
    const auto t = (dir / "t.h5").string();
    fs::copy_file(path, t, fs::copy_options::overwrite_existing);
    fs::resize_file(t, static_cast<uintmax_t>(size * frac));
    expect_has(load_error(t), {t});
  }
}
