#include "model/io/random_init.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "comm/clock.h"
#include "model/io/fp8_block.h"
#include "model/io/hf_checkpoint.h"
#include "model/io/weights_file.h"

namespace dpep {
namespace {

uint64_t mix64(uint64_t z) {  // splitmix64 finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {  // FNV-1a
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Standard deviation and mean of each tensor's values.
void distribution(const TensorSpec& spec, int64_t hidden, float& mean, float& stddev) {
  mean = 0.0f;
  stddev = 0.02f;
  if (spec.kind == TensorKind::Vector) {
    if (spec.slot == TensorSlot::RouterBias) {
      stddev = 0.01f;
    } else {  // RMSNorm weights
      mean = 1.0f;
      stddev = 0.01f;
    }
  } else if (spec.slot == TensorSlot::LmHead) {
    stddev = 1.0f / std::sqrt(static_cast<float>(hidden));
  }
}

}  // namespace

void random_row(const TensorSpec& spec, uint64_t seed, int64_t expert, int64_t row, float* out,
                int64_t cols) {
  float mean, stddev;
  const int64_t hidden = spec.slot == TensorSlot::LmHead ? spec.shape.back() : 0;
  distribution(spec, hidden, mean, stddev);
  uint64_t state = mix64(seed ^ mix64(hash_name(spec.name) + 0x9e3779b97f4a7c15ull * (expert + 2)) ^
                         mix64(static_cast<uint64_t>(row) + 0x632be59bd9b4e019ull));
  // Irwin-Hall: four 16-bit uniforms per 64-bit draw, sum has mean 131070 and std 65536/sqrt(3).
  constexpr float kScale = 1.7320508f / 65536.0f;
  for (int64_t j = 0; j < cols; ++j) {
    state += 0x9e3779b97f4a7c15ull;
    const uint64_t r = mix64(state);
    const int64_t sum =
        static_cast<int64_t>(r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
    out[j] = mean + stddev * (static_cast<float>(sum - 131070) * kScale);
  }
}

DType init_dtype(const TensorSpec& spec, DType dtype) {
  if (dtype != DType::F8E4M3) return dtype;
  if (spec.fp8_allowed()) return DType::F8E4M3;
  return spec.kind == TensorKind::Vector ? DType::F32 : DType::BF16;
}

EncodedMatrix random_rows(const TensorSpec& spec, uint64_t seed, int64_t expert, int64_t row0,
                          int64_t nrows, DType dtype) {
  const int64_t cols = spec.shape.back();  // a vector [n] is one row of n
  EncodedMatrix m;
  m.bytes.resize(nrows * cols * dtype_bytes(dtype));
  if (dtype == DType::F8E4M3) {
    // 128-row strips: float32 only for one strip at a time.
    const int64_t sc = fp8_blocks(cols);
    m.scale_inv.resize(fp8_blocks(nrows) * sc);
    std::vector<float> strip(kFp8Block * cols);
    for (int64_t r = 0; r < nrows; r += kFp8Block) {
      const int64_t n = std::min(kFp8Block, nrows - r);
      for (int64_t i = 0; i < n; ++i)
        random_row(spec, seed, expert, row0 + r + i, &strip[i * cols], cols);
      fp8_block_quantize(strip.data(), n, cols, m.bytes.data() + r * cols,
                         m.scale_inv.data() + (r / kFp8Block) * sc);
    }
    return m;
  }
  std::vector<float> row(cols);
  for (int64_t i = 0; i < nrows; ++i) {
    random_row(spec, seed, expert, row0 + i, row.data(), cols);
    if (dtype == DType::F32) {
      std::memcpy(m.bytes.data() + i * cols * 4, row.data(), cols * 4);
    } else {
      auto* o = reinterpret_cast<uint16_t*>(m.bytes.data()) + i * cols;
      for (int64_t j = 0; j < cols; ++j) o[j] = f32_to_bf16(row[j]);
    }
  }
  return m;
}

EncodedMatrix random_matrix(const TensorSpec& spec, uint64_t seed, int64_t expert, DType dtype) {
  const bool stacked = spec.kind == TensorKind::Experts;
  const int64_t rows = spec.shape.size() - stacked >= 2 ? spec.shape[spec.shape.size() - 2] : 1;
  return random_rows(spec, seed, expert, 0, rows, dtype);
}

void write_random_model(const ModelConfig& cfg, const InitOptions& opt, const std::string& out_path,
                        const std::string& tokenizer_dir) {
  cfg.validate();
  const Stopwatch t0;
  const auto specs = model_tensor_specs(cfg);
  try {
    WeightsWriter w(out_path, cfg);
    for (size_t i = 0; i < specs.size(); ++i) {
      const auto& spec = specs[i];
      const DType dt = init_dtype(spec, opt.dtype);
      const float* no_scale = nullptr;
      if (spec.kind == TensorKind::Experts) {
        std::vector<int64_t> item(spec.shape.begin() + 1, spec.shape.end());
        w.create_stacked(spec.name, spec.shape[0], item, dt);
        for (int64_t e = 0; e < spec.shape[0]; ++e) {
          auto m = random_matrix(spec, opt.seed, e, dt);
          w.write_item(spec.name, e, m.bytes.data(),
                       m.scale_inv.empty() ? no_scale : m.scale_inv.data());
        }
      } else if (spec.shape.size() == 1) {
        auto m = random_matrix(spec, opt.seed, -1, dt);
        w.write(spec.name, spec.shape, dt, m.bytes.data());
      } else {  // slabs of 128-row blocks of ~64 MiB: the embedding is never whole in memory
        const int64_t rows = spec.shape[0], row_bytes = spec.shape[1] * dtype_bytes(dt);
        const int64_t slab = std::max<int64_t>(1, (64 << 20) / row_bytes / kFp8Block) * kFp8Block;
        w.create_rows(spec.name, spec.shape, dt);
        for (int64_t r0 = 0; r0 < rows; r0 += slab) {
          const int64_t n = std::min(slab, rows - r0);
          auto m = random_rows(spec, opt.seed, -1, r0, n, dt);
          w.write_rows(spec.name, r0, n, m.bytes.data(),
                       m.scale_inv.empty() ? no_scale : m.scale_inv.data());
        }
      }
      if (opt.progress)
        fmt::print(stderr, "[{:>4}/{}] {:<40} {:<8} {:6.1f} s\n", i + 1, specs.size(), spec.name,
                   dtype_name(dt), t0.seconds());
    }
    if (!tokenizer_dir.empty()) {
      int copied = 0;
      for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
        const auto p = std::filesystem::path(tokenizer_dir) / f;
        if (!std::filesystem::exists(p)) continue;
        w.write_text(std::string("tokenizer/") + f, read_text_file(p.string()));
        ++copied;
      }
      if (copied == 0)
        throw std::runtime_error(tokenizer_dir + ": no tokenizer.json or tokenizer_config.json");
    }
    w.close();
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(out_path, ec);
    throw;
  }
}

}  // namespace dpep
