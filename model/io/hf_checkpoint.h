// A Hugging Face checkpoint folder: config.json, model.safetensors.index.json (weight_map from
// tensor name to shard) or a single model.safetensors. Only shard headers are read on open.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/io/safetensors.h"

namespace dpep {

class HfCheckpoint {
 public:
  // Throws std::runtime_error naming the folder or file on anything missing or malformed:
  // no config.json, no index and no model.safetensors, an index naming a missing shard or a
  // tensor its shard does not hold.
  explicit HfCheckpoint(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const std::string& config_json() const { return config_json_; }
  bool has(const std::string& name) const { return where_.count(name) > 0; }
  // The shard holding `name`; throws "<dir>: checkpoint has no tensor 'name'".
  const SafetensorsFile& shard_of(const std::string& name) const;
  const StTensor& tensor(const std::string& name) const { return shard_of(name).get(name); }
  std::vector<std::string> tensor_names() const;  // sorted

 private:
  std::string dir_, config_json_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t> where_;  // tensor name -> index into shards_
};

// Reads a whole (small) text file; throws naming it.
std::string read_text_file(const std::string& path);

}  // namespace dpep
