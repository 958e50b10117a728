// Reader for one .safetensors file: 8-byte little-endian header length, a JSON header mapping
// tensor names to {dtype, shape, data_offsets} (plus optional "__metadata__"), then the data.
// The header is validated completely on open; tensors are read one at a time with pread, so a
// shard is never loaded whole. Errors are std::runtime_error naming the file (and tensor).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dpep {

enum class StDType {
  BOOL,
  U8,
  I8,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  I64,
  U64,
  F64,
  F8_E4M3,
  F8_E5M2
};

const char* st_dtype_name(StDType t);
int st_dtype_bytes(StDType t);

struct StTensor {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, StTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  const StTensor& get(const std::string& name) const;  // throws naming file and tensor

  // Copies the tensor's raw bytes (nbytes()) into dst.
  void read(const std::string& name, void* dst) const;
  std::vector<uint8_t> read_bytes(const std::string& name) const;
  // Copies bytes [offset, offset + n) of the tensor's data into dst (a slice of a fused tensor).
  void read_range(const std::string& name, uint64_t offset, uint64_t n, void* dst) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t data_start_ = 0;
  std::map<std::string, StTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace dpep
