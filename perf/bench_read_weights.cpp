// Load speed of a dpep model file per stored dtype: read_f32 (with bf16 widening / fp8 block
// dequantisation) against read_raw (the bytes alone), median of 3 runs per tensor kind.
//   bench_read_weights FILE.h5
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "model/io/weights_file.h"
#include "model/io/weights_schema.h"

using namespace dpep;

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: bench_read_weights FILE.h5\n");
    return 2;
  }
  WeightsReader r(argv[1]);
  struct Acc {
    double bytes = 0, raw_s = 0, f32_s = 0;
  };
  std::map<std::string, Acc> by_dtype;
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  for (const auto& s : model_tensor_specs(r.config())) {
    if (s.slot == TensorSlot::EmbedTokens || s.slot == TensorSlot::LmHead)
      continue;  // keep the run short
    const auto info = r.info(s.name);
    std::vector<double> raw_t, f32_t;
    double bytes = 0;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = now();
      auto raw = r.read_raw(s.name, s.shape);
      auto t1 = now();
      auto f = r.read_f32(s.name, s.shape);
      auto t2 = now();
      bytes = static_cast<double>(raw.data.size());
      raw_t.push_back(secs(t0, t1));
      f32_t.push_back(secs(t1, t2));
    }
    std::sort(raw_t.begin(), raw_t.end());
    std::sort(f32_t.begin(), f32_t.end());
    auto& a = by_dtype[dtype_name(info.dtype)];
    a.bytes += bytes;
    a.raw_s += raw_t[1];
    a.f32_s += f32_t[1];
  }
  fmt::print("{:<8} {:>10} {:>14} {:>14} {:>10}\n", "dtype", "stored MB", "read_raw GB/s",
             "read_f32 GB/s", "f32/raw");
  for (const auto& [dt, a] : by_dtype)
    fmt::print("{:<8} {:>10.1f} {:>14.2f} {:>14.2f} {:>10.2f}\n", dt, a.bytes / 1e6,
               a.bytes / a.raw_s / 1e9, a.bytes / a.f32_s / 1e9, a.f32_s / a.raw_s);
  fmt::print("(GB/s of stored bytes, median of 3 reads, page cache warm after the first)\n");
  return 0;
}
