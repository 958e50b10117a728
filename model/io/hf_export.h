// Writes a random model in the Hugging Face layout (config.json, safetensors shards with
// per-expert tensors, model.safetensors.index.json), with the same values as
// write_random_model for the same seed. Used to make large checkpoints for convert tests and
// perf/convert_rss.sh without Python.
#pragma once
#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/io/random_init.h"

namespace dpep {

// config.json text that ModelConfig::from_hf_json reads back to `cfg`.
std::string hf_config_json(const ModelConfig& cfg, DType dtype);

// dtype BF16 / F32 write BF16 / F32 tensors; F8E4M3 writes fp8 linear weights with float32
// `<name>_scale_inv`, like the DeepSeek-V3 release. Shards hold at most shard_bytes (a larger
// tensor gets a shard of its own).
void write_random_hf_checkpoint(const ModelConfig& cfg, const InitOptions& opt,
                                const std::string& dir, uint64_t shard_bytes = 2ull << 30);

}  // namespace dpep
