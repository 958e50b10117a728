// Writes one .safetensors file whose tensors are all declared up front (so the header can be
// written first) and then filled one at a time, in any order: a whole checkpoint never has to
// be in memory. Used by init-model --hf-out (synthetic checkpoints) and by tests.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/io/safetensors.h"

namespace dpep {

struct StDecl {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
};

class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::string& path, const std::vector<StDecl>& tensors,
                    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Writes the tensor's nbytes (numel * dtype bytes) from data.
  void write(const std::string& name, const void* data);
  // Throws if a declared tensor was never written.
  void close();
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t data_start_ = 0, data_bytes_ = 0;
  std::map<std::string, StTensor> tensors_;
  std::map<std::string, bool> written_;
};

}  // namespace dpep
