// dpep's HDF5 model file (docs/model-format.md): config fields as root attributes, one dataset
// per tensor named by model_tensor_specs(), routed experts stacked [E, out, in] and chunked one
// expert per chunk so that a rank reads only its own experts by hyperslab.
// Every error is a std::runtime_error naming the file and the dataset.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/ops/dtypes.h"
#include "model/ops/large_alloc.h"

namespace dpep {

// A tensor as stored, undecoded: raw little-endian elements of `dtype`, row-major.
struct RawTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;    // shape of what was read (items: [count, item...])
  LargeBytes data;               // prod(shape) * dtype_bytes(dtype) bytes
  std::vector<float> scale_inv;  // f8e4m3 only: [lead..., ceil(rows/128), ceil(cols/128)]
};

struct StoredTensor {
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  bool has_scale = false;  // f8e4m3: dataset "<name>_scale_inv" holds float32 block scales
};

class WeightsWriter {
 public:
  // Creates (truncates) path and writes the config as root attributes.
  WeightsWriter(const std::string& path, const ModelConfig& config);
  ~WeightsWriter();
  WeightsWriter(const WeightsWriter&) = delete;
  WeightsWriter& operator=(const WeightsWriter&) = delete;

  // Whole tensor of raw `dtype` elements, row-major. For F8E4M3, scale_inv is float32
  // [ceil(rows/128), ceil(cols/128)] over the last two dims (required).
  void write(const std::string& name, const std::vector<int64_t>& shape, DType dtype,
             const void* data, const float* scale_inv = nullptr);
  // Stacked tensors written one item at a time: create [count, item_shape...] then fill items.
  void create_stacked(const std::string& name, int64_t count,
                      const std::vector<int64_t>& item_shape, DType dtype);
  void write_item(const std::string& name, int64_t index, const void* data,
                  const float* scale_inv = nullptr);
  // A plain (not stacked) tensor written in slabs of rows along dim 0, so that it never has
  // to be in memory whole: create_rows, then write_rows covering every row once. For F8E4M3,
  // row0 and nrows are multiples of 128 (nrows may end at the last row) and scale_inv holds
  // the [ceil(nrows/128), ceil(cols/128)] block scales of those rows. Same file layout as write().
  void create_rows(const std::string& name, const std::vector<int64_t>& shape, DType dtype);
  void write_rows(const std::string& name, int64_t row0, int64_t nrows, const void* data,
                  const float* scale_inv = nullptr);
  // A UTF-8 text blob (e.g. "tokenizer/tokenizer.json").
  void write_text(const std::string& name, const std::string& text);
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Not thread-safe (the HDF5 library is built serial): one reader per thread, or serialise calls.
class WeightsReader {
 public:
  // Opens read-only, checks the format marker and reads the config (validated).
  explicit WeightsReader(const std::string& path);
  ~WeightsReader();
  WeightsReader(const WeightsReader&) = delete;
  WeightsReader& operator=(const WeightsReader&) = delete;

  const std::string& path() const;
  const ModelConfig& config() const;
  bool has(const std::string& name) const;
  StoredTensor info(const std::string& name) const;

  // Reads the whole tensor as float32 (bf16 widened, fp8 multiplied by its block scale);
  // throws if the stored shape is not `expect`.
  std::vector<float> read_f32(const std::string& name, const std::vector<int64_t>& expect) const;
  // Items [first, first + count) of a stacked tensor, by hyperslab: other items are not read.
  std::vector<float> read_items_f32(const std::string& name, int64_t first, int64_t count,
                                    const std::vector<int64_t>& expect_item) const;
  std::optional<std::string> read_text(const std::string& name) const;

  // The same reads without decoding, for kernels that consume bf16/fp8 directly.
  RawTensor read_raw(const std::string& name, const std::vector<int64_t>& expect) const;
  RawTensor read_items_raw(const std::string& name, int64_t first, int64_t count,
                           const std::vector<int64_t>& expect_item) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpep
