// Shared by the model file writer and reader (weights_file.cpp, weights_reader.cpp): the
// format marker and how each DType maps to an HDF5 element type and fp8 scale shape.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/io/fp8_block.h"
#include "model/ops/dtypes.h"

namespace dpep::layout {

constexpr const char* kFormat = "dpep-deepseek-v3";
constexpr int64_t kFormatVersion = 1;

inline hid_t file_type(DType t) {
  return t == DType::F32 ? H5T_IEEE_F32LE : t == DType::BF16 ? H5T_STD_U16LE : H5T_STD_U8LE;
}
inline hid_t mem_type(DType t) {
  return t == DType::F32    ? H5T_NATIVE_FLOAT
         : t == DType::BF16 ? H5T_NATIVE_UINT16
                            : H5T_NATIVE_UINT8;
}
inline int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}
inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}
// Scales of an fp8 tensor [lead..., rows, cols]: [lead..., ceil(rows/128), ceil(cols/128)].
inline std::vector<int64_t> scale_shape(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s = shape;
  s[s.size() - 2] = fp8_blocks(s[s.size() - 2]);
  s.back() = fp8_blocks(s.back());
  return s;
}

}  // namespace dpep::layout
