#include "model/io/hf_checkpoint.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace dpep {

namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

HfCheckpoint::HfCheckpoint(const std::string& dir) : dir_(dir) {
  if (!fs::is_directory(dir)) throw std::runtime_error(dir + ": not a checkpoint folder");
  const fs::path d(dir);
  if (!fs::exists(d / "config.json")) throw std::runtime_error(dir + ": no config.json");
  config_json_ = read_text_file((d / "config.json").string());

  const fs::path index = d / "model.safetensors.index.json";
  if (fs::exists(index)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(index.string()));
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(fmt::format("{}: not valid JSON: {}", index.string(), e.what()));
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw std::runtime_error(index.string() + ": no 'weight_map' object");
    std::map<std::string, size_t> shard_index;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        throw std::runtime_error(
            fmt::format("{}: weight_map['{}'] is not a file name", index.string(), it.key()));
      const std::string file = it.value().get<std::string>();
      if (file.find('/') != std::string::npos || file == "." || file == "..")
        throw std::runtime_error(
            fmt::format("{}: shard name '{}' must be a plain file name", index.string(), file));
      auto [pos, fresh] = shard_index.try_emplace(file, shards_.size());
      if (fresh) {
        if (!fs::exists(d / file))
          throw std::runtime_error(fmt::format("{}: shard '{}' (holding '{}') does not exist",
                                               index.string(), file, it.key()));
        shards_.push_back(std::make_unique<SafetensorsFile>((d / file).string()));
      }
      if (!shards_[pos->second]->has(it.key()))
        throw std::runtime_error(
            fmt::format("{}: index puts tensor '{}' in this shard but its header lacks it",
                        shards_[pos->second]->path(), it.key()));
      where_[it.key()] = pos->second;
    }
  } else if (fs::exists(d / "model.safetensors")) {
    shards_.push_back(std::make_unique<SafetensorsFile>((d / "model.safetensors").string()));
    for (const auto& [name, _] : shards_[0]->tensors()) where_[name] = 0;
  } else {
    throw std::runtime_error(dir + ": neither model.safetensors.index.json nor model.safetensors");
  }
}

const SafetensorsFile& HfCheckpoint::shard_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end())
    throw std::runtime_error(fmt::format("{}: checkpoint has no tensor '{}'", dir_, name));
  return *shards_[it->second];
}

std::vector<std::string> HfCheckpoint::tensor_names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, _] : where_) out.push_back(name);
  return out;
}

}  // namespace dpep
