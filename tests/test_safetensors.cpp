// safetensors parser: a file written byte by byte here, the fixture shards, and malformed
// headers that must each fail with a message naming the file (and the tensor).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/io/hf_checkpoint.h"
#include "model/io/safetensors.h"
#include "model/io/safetensors_writer.h"

namespace fs = std::filesystem;
using namespace dpep;

namespace {

std::string tmp(const std::string& name) {
  auto d = fs::temp_directory_path() / ("dpep_test_st_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return (d / name).string();
}

// Writes <u64 little-endian header length><header><data>.
std::string write_raw(const std::string& name, const std::string& header, const std::string& data,
                      int64_t len_override = -1) {
  const auto path = tmp(name);
  std::ofstream out(path, std::ios::binary);
  uint64_t n = len_override >= 0 ? static_cast<uint64_t>(len_override) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << header << data;
  return path;
}

std::string error_of(const std::string& path) {
  try {
    SafetensorsFile f(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

void expect_bad(const std::string& name, const std::string& header, const std::string& data,
                std::initializer_list<std::string> parts, int64_t len = -1) {
  const auto path = write_raw(name, header, data, len);
  const auto err = error_of(path);
  EXPECT_NE(err.find(path), std::string::npos) << name << ": " << err;
  for (const auto& p : parts) EXPECT_NE(err.find(p), std::string::npos) << name << ": " << err;
}

}  // namespace

TEST(Safetensors, HandWrittenFile) {
  // a: F32 [2] = {1, -2}; b: BF16 [1,2] = {1.5, 0}; c: F8_E4M3 [3] = {0x38, 0x7e, 0x01}
  std::string data;
  const float a[2] = {1.0f, -2.0f};
  data.append(reinterpret_cast<const char*>(a), 8);
  data += std::string("\xc0\x3f\x00\x00", 4);
  data += std::string("\x38\x7e\x01", 3);
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]},)"
      R"("c":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[12,15]},)"
      R"("empty":{"dtype":"F32","shape":[0,4],"data_offsets":[15,15]}})";
  const auto path = write_raw("ok.safetensors", header, data);
  SafetensorsFile f(path);
  EXPECT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.get("b").shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(f.get("b").dtype, StDType::BF16);
  float got[2];
  f.read("a", got);
  EXPECT_EQ(got[0], 1.0f);
  EXPECT_EQ(got[1], -2.0f);
  EXPECT_EQ(f.read_bytes("c"), (std::vector<uint8_t>{0x38, 0x7e, 0x01}));
  EXPECT_EQ(f.read_bytes("b"), (std::vector<uint8_t>{0xc0, 0x3f, 0, 0}));
  uint8_t two[2];
  f.read_range("c", 1, 2, two);
  EXPECT_EQ(two[0], 0x7e);
  EXPECT_THROW(f.read_range("c", 2, 2, two), std::out_of_range);
  EXPECT_TRUE(f.read_bytes("empty").empty());
  try {
    f.get("nope");
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
}

TEST(Safetensors, MalformedHeaders) {
  const std::string d8(8, '\0');
  const auto short_path = tmp("short");
  std::ofstream(short_path) << "abc";
  EXPECT_NE(error_of(short_path).find("shorter than the 8-byte length"), std::string::npos);
  expect_bad("zero_len", "", "", {"header length 0"}, 0);
  expect_bad("len_beyond", R"({})", "", {"header length 1000"}, 1000);
  expect_bad("not_json", R"({"a": )", "", {"not valid JSON"});
  expect_bad("not_object", R"([1,2])", "", {"not a JSON object"});
  expect_bad("unknown_dtype", R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", d8,
             {"'a'", "unknown dtype 'Q4'"});
  expect_bad("out_of_range", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", d8,
             {"'a'", "outside"});
  expect_bad("reversed", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", d8,
             {"'a'", "outside"});
  expect_bad("size_mismatch", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8,
             {"'a'", "need 12 bytes", "span 8"});
  expect_bad(
      "overlap",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}})",
      d8, {"'a'", "'b'", "overlap"});
  expect_bad("neg_shape", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8,
             {"'a'", "shape"});
  expect_bad("no_offsets", R"({"a":{"dtype":"F32","shape":[2]}})", d8, {"'a'", "data_offsets"});
  expect_bad("bad_meta", R"({"__metadata__":{"x":1}})", "", {"__metadata__"});
  EXPECT_NE(error_of(tmp("does_not_exist")).find("cannot open"), std::string::npos);
}

TEST(Safetensors, F64AndI64AreParsedButNamed) {
  std::string data(16, '\0');
  const auto path = write_raw(
      "wide.safetensors",
      R"({"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"i":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})",
      data);
  SafetensorsFile f(path);
  EXPECT_EQ(f.get("d").dtype, StDType::F64);
  EXPECT_EQ(f.get("i").dtype, StDType::I64);
  EXPECT_STREQ(st_dtype_name(f.get("i").dtype), "I64");
}

TEST(Safetensors, WriterRoundTrip) {
  const auto path = tmp("w.safetensors");
  const uint16_t b[6] = {1, 2, 3, 4, 5, 6};
  const float s[2] = {0.5f, 2.0f};
  {
    SafetensorsWriter w(path, {{"x", StDType::BF16, {2, 3}}, {"x_scale", StDType::F32, {2}}});
    w.write("x_scale", s);  // any order
    w.write("x", b);
    w.close();
  }
  SafetensorsFile f(path);
  EXPECT_EQ(f.get("x").shape, (std::vector<int64_t>{2, 3}));
  uint16_t rb[6];
  f.read("x", rb);
  EXPECT_EQ(std::memcmp(rb, b, sizeof b), 0);
  float rs[2];
  f.read("x_scale", rs);
  EXPECT_EQ(rs[1], 2.0f);
  SafetensorsWriter w2(tmp("w2.safetensors"), {{"y", StDType::F32, {1}}});
  EXPECT_THROW(w2.close(), std::runtime_error);  // declared, never written
}

TEST(Safetensors, FixtureShardsMatchTheirIndex) {
  for (const char* fx : {"hf-tiny-bf16", "hf-tiny-fp8"}) {
    const fs::path dir = fs::path(DPEP_TEST_DATA) / fx;
    auto index =
        nlohmann::json::parse(read_text_file((dir / "model.safetensors.index.json").string()));
    size_t total = 0;
    uint64_t bytes = 0;
    for (const char* shard :
         {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
      SafetensorsFile f((dir / shard).string());
      EXPECT_EQ(f.metadata().at("format"), "pt");
      for (const auto& [name, t] : f.tensors()) {
        EXPECT_EQ(index["weight_map"][name], shard) << name;
        bytes += t.nbytes();
      }
      total += f.tensors().size();
    }
    EXPECT_EQ(total, index["weight_map"].size());
    EXPECT_EQ(bytes, index["metadata"]["total_size"].get<uint64_t>()) << fx;
    HfCheckpoint ck(dir.string());
    EXPECT_EQ(ck.tensor("model.layers.0.mlp.gate_proj.weight").shape,
              (std::vector<int64_t>{320, 192}));
    const auto dt = ck.tensor("model.layers.0.mlp.gate_proj.weight").dtype;
    EXPECT_EQ(dt, std::string(fx) == "hf-tiny-fp8" ? StDType::F8_E4M3 : StDType::BF16);
  }
}
