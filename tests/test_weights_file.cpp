// WeightsWriter / WeightsReader: round trips per dtype, fp8 block scales with partial edge
// blocks, stacked hyperslab reads, config attributes, and clear errors on bad files.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <algorithm>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "model/io/weights_file.h"
#include "model/ops/dtypes.h"

namespace fs = std::filesystem;
using dpep::DType;
using dpep::ModelConfig;
using dpep::WeightsReader;
using dpep::WeightsWriter;

namespace {

std::string tmp_path(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("dpep_test_wf_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

ModelConfig tiny() {
  return ModelConfig::preset("tiny");
}

// Expects `f` to throw std::runtime_error whose message contains every string in `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

// fp8 [130, 260]: scale blocks [2, 3], the last row and column blocks partial.
struct Fp8Case {
  std::vector<uint8_t> q = std::vector<uint8_t>(130 * 260);
  std::vector<float> s = {0.5f, 0.125f, 2.0f, 0.25f, 1.0f, 3.0f};
  Fp8Case() {
    std::mt19937 rng(7);
    for (auto& v : q) v = static_cast<uint8_t>(rng() % 0x7e);  // no NaN codes
    q[0] = 0x38;                                               // 1.0 * 0.5
    q[5 * 260 + 200] = 0x7e;                                   // 448 * 0.125
    q[128 * 260 + 0] = 0xb8;                                   // -1.0 * 0.25
    q[129 * 260 + 259] = 0x40;                                 // 2.0 * 3
  }
};

}  // namespace

TEST(WeightsFile, RoundTripF32Bf16Fp8AndText) {
  const auto path = tmp_path("rt.h5");
  std::vector<float> f = {1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 7.0f};
  std::vector<uint16_t> b = {0x3f80, 0xc000, 0x3fc0,
                             0x0001, 0x7f80, 0x8000};  // 1, -2, 1.5, tiny, inf, -0
  Fp8Case c;
  {
    WeightsWriter w(path, tiny());
    w.write("a/f32", {2, 3}, DType::F32, f.data());
    w.write("a/bf16", {6}, DType::BF16, b.data());
    w.write("m/fp8", {130, 260}, DType::F8E4M3, c.q.data(), c.s.data());
    w.write_text("tokenizer/tokenizer.json", "{\"x\": \"héllo\"}");
    w.close();
  }
  WeightsReader r(path);
  EXPECT_EQ(r.read_f32("a/f32", {2, 3}), f);
  auto bf = r.read_f32("a/bf16", {6});
  EXPECT_EQ(bf[0], 1.0f);
  EXPECT_EQ(bf[1], -2.0f);
  EXPECT_EQ(bf[2], 1.5f);
  EXPECT_EQ(bf[3], std::ldexp(1.0f, -133));
  EXPECT_TRUE(std::isinf(bf[4]));
  EXPECT_TRUE(std::signbit(bf[5]));
  auto w8 = r.read_f32("m/fp8", {130, 260});
  EXPECT_EQ(w8[0], 0.5f);
  EXPECT_EQ(w8[5 * 260 + 200], 56.0f);
  EXPECT_EQ(w8[128 * 260 + 0], -0.25f);
  EXPECT_EQ(w8[129 * 260 + 259], 6.0f);
  for (int i = 0; i < 130; ++i)
    for (int j = 0; j < 260; ++j)
      ASSERT_EQ(w8[i * 260 + j],
                dpep::fp8_e4m3_to_f32(c.q[i * 260 + j]) * c.s[(i / 128) * 3 + j / 128]);
  auto info = r.info("m/fp8");
  EXPECT_EQ(info.dtype, DType::F8E4M3);
  EXPECT_TRUE(info.has_scale);
  EXPECT_EQ(info.shape, (std::vector<int64_t>{130, 260}));
  auto raw = r.read_raw("m/fp8", {130, 260});
  EXPECT_TRUE(std::ranges::equal(raw.data, c.q));
  EXPECT_EQ(raw.scale_inv, c.s);
  EXPECT_EQ(r.info("a/bf16").dtype, DType::BF16);
  EXPECT_EQ(r.read_text("tokenizer/tokenizer.json").value(), "{\"x\": \"héllo\"}");
  EXPECT_FALSE(r.read_text("tokenizer/none.json").has_value());
  EXPECT_TRUE(r.has("a/f32"));
  EXPECT_FALSE(r.has("a/nope"));
  EXPECT_FALSE(r.has("zzz/nope"));
}

TEST(WeightsFile, ConfigRoundTripsExactly) {
  auto cfg = ModelConfig::preset("bench");
  cfg.set_field("rms_norm_eps", "1.2345678901234567e-06");
  cfg.set_field("routed_scaling_factor", "2.5");
  cfg.set_field("norm_topk_prob", "false");
  cfg.set_field("q_lora_rank", "0");
  cfg.set_field("scoring_func", "softmax");
  cfg.set_field("tie_word_embeddings", "true");
  const auto path = tmp_path("cfg.h5");
  WeightsWriter(path, cfg).close();
  WeightsReader r(path);
  EXPECT_EQ(r.config().to_fields(), cfg.to_fields());
  EXPECT_EQ(r.config().rms_norm_eps, cfg.rms_norm_eps);
  EXPECT_FALSE(r.config().norm_topk_prob);
  EXPECT_EQ(r.config().scoring_func, dpep::ScoringFunc::Softmax);
}

TEST(WeightsFile, StackedItemsReadByHyperslab) {
  const auto path = tmp_path("stack.h5");
  const int E = 5, R = 130, C = 129;  // fp8 scales [5, 2, 2]
  std::vector<std::vector<uint8_t>> q(E, std::vector<uint8_t>(R * C));
  std::vector<std::vector<float>> s(E);
  {
    WeightsWriter w(path, tiny());
    w.create_stacked("e/f8", E, {R, C}, DType::F8E4M3);
    w.create_stacked("e/bf16", E, {3, 4}, DType::BF16);
    for (int e = E - 1; e >= 0; --e) {  // any order
      for (int i = 0; i < R * C; ++i) q[e][i] = static_cast<uint8_t>((i * 7 + e * 13) % 0x7e);
      s[e] = {1.0f + e, 0.5f * (e + 1), 0.25f, 4.0f - e};
      w.write_item("e/f8", e, q[e].data(), s[e].data());
      std::vector<uint16_t> b(12);
      for (int i = 0; i < 12; ++i) b[i] = dpep::f32_to_bf16(static_cast<float>(e * 10 + i));
      w.write_item("e/bf16", e, b.data());
    }
    w.close();
  }
  WeightsReader r(path);
  auto b = r.read_items_f32("e/bf16", 2, 2, {3, 4});
  ASSERT_EQ(b.size(), 24u);
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < 12; ++i) EXPECT_EQ(b[k * 12 + i], (2 + k) * 10 + i);
  auto f = r.read_items_f32("e/f8", 3, 2, {R, C});
  ASSERT_EQ(f.size(), size_t(2 * R * C));
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j)
        ASSERT_EQ(f[(k * R + i) * C + j],
                  dpep::fp8_e4m3_to_f32(q[3 + k][i * C + j]) * s[3 + k][(i / 128) * 2 + j / 128]);
  auto raw = r.read_items_raw("e/f8", 4, 1, {R, C});
  EXPECT_EQ(raw.shape, (std::vector<int64_t>{1, R, C}));
  EXPECT_EQ(raw.scale_inv, s[4]);
  EXPECT_THROW(r.read_items_f32("e/f8", 4, 2, {R, C}), std::out_of_range);
  expect_error(
      [&] {
        r.read_items_f32("e/f8", 0, 1, {R, C + 1});
      },
      {path, "e/f8", "[5, 130, 129]"});
}

TEST(WeightsFile, UnwrittenStackItemIsAnErrorAtClose) {
  const auto path = tmp_path("unwritten.h5");
  WeightsWriter w(path, tiny());
  w.create_stacked("e/x", 3, {2, 2}, DType::F32);
  float v[4] = {1, 2, 3, 4};
  w.write_item("e/x", 0, v);
  w.write_item("e/x", 2, v);
  expect_error([&] { w.close(); }, {path, "e/x", "1 of 3"});
}

// Corrupting one expert's chunk breaks reads of that expert only: the stack is chunked one
// expert per chunk and a hyperslab read touches only the experts it asks for.
TEST(WeightsFile, CorruptChunkFailsOnlyItsExpert) {
  const auto path = tmp_path("chunks.h5");
  {
    WeightsWriter w(path, tiny());
    w.create_stacked("moe/experts", 4, {64, 32}, DType::F32);
    std::vector<float> v(64 * 32);
    for (int e = 0; e < 4; ++e) {
      std::fill(v.begin(), v.end(), static_cast<float>(e));
      w.write_item("moe/experts", e, v.data());
    }
    w.close();
  }
  haddr_t addr = 0;
  hsize_t size = 0;
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "moe/experts", H5P_DEFAULT);
    hsize_t off[3] = {1, 0, 0};
    unsigned mask = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size), 0);
    H5Dclose(d);
    H5Fclose(f);
  }
  ASSERT_EQ(size, 64u * 32 * 4 + 4);  // data + fletcher32
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(addr + 100));
    char byte = 0x5a;
    io.write(&byte, 1);
  }
  WeightsReader r(path);
  auto ok = r.read_items_f32("moe/experts", 2, 2, {64, 32});
  EXPECT_EQ(ok.front(), 2.0f);
  EXPECT_EQ(ok.back(), 3.0f);
  EXPECT_EQ(r.read_items_f32("moe/experts", 0, 1, {64, 32}).front(), 0.0f);
  expect_error([&] { r.read_items_f32("moe/experts", 1, 1, {64, 32}); }, {path, "moe/experts"});
  expect_error([&] { r.read_f32("moe/experts", {4, 64, 32}); }, {path, "moe/experts"});
}

TEST(WeightsFile, ClearErrors) {
  const auto path = tmp_path("err.h5");
  float v[6] = {1, 2, 3, 4, 5, 6};
  {
    WeightsWriter w(path, tiny());
    w.write("x/w", {2, 3}, DType::F32, v);
    w.close();
  }
  WeightsReader r(path);
  expect_error([&] { r.read_f32("x/missing", {2, 3}); }, {path, "x/missing", "missing"});
  expect_error([&] { r.read_f32("nogroup/missing", {2, 3}); }, {path, "nogroup/missing"});
  expect_error([&] { r.read_f32("x/w", {3, 2}); }, {path, "x/w", "[2, 3]", "[3, 2]"});
  expect_error([&] { WeightsReader("/nonexistent/dir/m.h5"); },
               {"/nonexistent/dir/m.h5", "no such"});
  const auto txt = tmp_path("not.h5");
  std::ofstream(txt) << "hello, I am not HDF5";
  expect_error([&] { WeightsReader x(txt); }, {txt, "not an HDF5"});
  EXPECT_THROW(WeightsWriter(tmp_path("bad.h5"), ModelConfig{}), std::invalid_argument);
}

// Files written with the raw HDF5 API: a foreign marker, a missing config field, a dtype
// attribute that contradicts the element type.
TEST(WeightsFile, ForeignOrDamagedMetadata) {
  const auto path = tmp_path("meta.h5");
  float v[2] = {1, 2};
  {
    WeightsWriter w(path, tiny());
    w.write("t", {2}, DType::F32, v);
    w.close();
  }
  auto edit = [&](const std::string& copy, auto&& fn) {
    fs::copy_file(path, copy, fs::copy_options::overwrite_existing);
    hid_t f = H5Fopen(copy.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    fn(f);
    H5Fclose(f);
  };
  const auto a = tmp_path("marker.h5");
  edit(a, [](hid_t f) { H5Adelete(f, "format"); });
  expect_error([&] { WeightsReader x(a); }, {a, "not a dpep model file"});
  const auto b = tmp_path("field.h5");
  edit(b, [](hid_t f) { H5Adelete(f, "kv_lora_rank"); });
  expect_error([&] { WeightsReader x(b); }, {b, "kv_lora_rank"});
  const auto c = tmp_path("dtype.h5");
  edit(c, [](hid_t f) {
    hid_t d = H5Dopen2(f, "t", H5P_DEFAULT);
    H5Adelete(d, "dtype");
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 5);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t at = H5Acreate2(d, "dtype", t, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(at, t, "bf16");
    H5Aclose(at);
    H5Sclose(s);
    H5Tclose(t);
    H5Dclose(d);
  });
  WeightsReader rc(c);
  expect_error([&] { rc.read_f32("t", {2}); }, {c, "'t'", "bf16"});
}

TEST(WeightsFile, TruncatedFileThrows) {
  const auto path = tmp_path("trunc.h5");
  std::vector<float> v(100000, 1.0f);
  {
    WeightsWriter w(path, tiny());
    w.write("big", {100, 1000}, DType::F32, v.data());
    w.close();
  }
  const auto size = fs::file_size(path);
  for (double frac : {0.9, 0.5, 0.1, 0.001}) {
    const auto t = tmp_path("trunc_part.h5");
    fs::copy_file(path, t, fs::copy_options::overwrite_existing);
    fs::resize_file(t, static_cast<uintmax_t>(size * frac));
    expect_error(
        [&] {
          WeightsReader r(t);
          r.read_f32("big", {100, 1000});
        },
        {t});
  }
}

// Any single flipped byte either leaves every value intact (padding) or raises a
// runtime_error: checksums cover all metadata and every chunk.
TEST(WeightsFile, FlippedBytesNeverGiveWrongValues) {
  const auto path = tmp_path("flip.h5");
  std::vector<float> v(3000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f;
  Fp8Case c;
  {
    WeightsWriter w(path, tiny());
    w.write("layers/0/w", {30, 100}, DType::F32, v.data());
    w.write("layers/0/q", {130, 260}, DType::F8E4M3, c.q.data(), c.s.data());
    w.close();
  }
  const auto want_q = WeightsReader(path).read_f32("layers/0/q", {130, 260});
  const auto size = fs::file_size(path);
  std::mt19937 rng(123);
  int thrown = 0, intact = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const auto t = tmp_path("flip_t.h5");
    fs::copy_file(path, t, fs::copy_options::overwrite_existing);
    {
      std::fstream io(t, std::ios::in | std::ios::out | std::ios::binary);
      const auto pos = static_cast<std::streamoff>(rng() % size);
      io.seekg(pos);
      char byte;
      io.read(&byte, 1);
      byte = static_cast<char>(byte ^ (1 << (rng() % 8)));
      io.seekp(pos);
      io.write(&byte, 1);
    }
    try {
      WeightsReader r(t);
      auto a = r.read_f32("layers/0/w", {30, 100});
      auto q = r.read_f32("layers/0/q", {130, 260});
      ASSERT_EQ(a, v) << "trial " << trial;
      ASSERT_EQ(std::memcmp(q.data(), want_q.data(), q.size() * 4), 0) << "trial " << trial;
      ++intact;
    } catch (const std::runtime_error&) {
      ++thrown;
    }
  }
  EXPECT_GT(thrown, 200);  // nearly all of the file is checksummed data or metadata
  SUCCEED() << intact << " flips hit padding";
}

// create_rows / write_rows: the same file contents as write(), in slabs of whole 128-row
// blocks for fp8 (the last one partial), and clear errors for misuse.
TEST(WeightsFile, RowSlabsEqualWholeWrite) {
  const auto path = tmp_path("rows.h5");
  Fp8Case c;  // [130, 260], scales [2, 3]
  std::vector<float> f(300 * 4);
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(i);
  {
    WeightsWriter w(path, tiny());
    w.create_rows("q", {130, 260}, DType::F8E4M3);
    EXPECT_THROW(w.write_rows("q", 64, 64, c.q.data(), c.s.data()), std::invalid_argument);
    w.write_rows("q", 128, 2, c.q.data() + 128 * 260, c.s.data() + 3);  // any order
    w.write_rows("q", 0, 128, c.q.data(), c.s.data());
    w.create_rows("f", {300, 4}, DType::F32);
    for (int r = 0; r < 300; r += 7) w.write_rows("f", r, std::min(7, 300 - r), f.data() + r * 4);
    EXPECT_THROW(w.write_rows("f", 299, 2, f.data()), std::out_of_range);
    EXPECT_THROW(w.write_item("f", 0, f.data()), std::invalid_argument);
    w.close();
  }
  WeightsReader r(path);
  auto raw = r.read_raw("q", {130, 260});
  EXPECT_TRUE(std::ranges::equal(raw.data, c.q));
  EXPECT_EQ(raw.scale_inv, c.s);
  EXPECT_EQ(r.read_f32("f", {300, 4}), f);
  const auto path2 = tmp_path("rows_missing.h5");
  WeightsWriter w(path2, tiny());
  w.create_rows("f", {300, 4}, DType::F32);
  w.write_rows("f", 0, 299, f.data());
  expect_error([&] { w.close(); }, {path2, "'f'", "1 of 300 rows"});
}
