// dpep init-model: a model file with random weights for a preset (plus --set overrides).
#include <fmt/format.h>

#include <boost/program_options.hpp>

#include "launch/command.h"
#include "launch/run_options.h"
#include "model/config.h"
#include "model/io/hf_export.h"
#include "model/io/random_init.h"

namespace po = boost::program_options;

namespace {

int run_init_model(int argc, char** argv) {
  std::string preset, out, dtype = "bf16", tokenizer, hf_out;
  std::vector<std::string> sets;
  uint64_t seed = 0, shard_mb = 2048;
  bool quiet = false;
  const std::string usage =
      "usage: dpep init-model --preset tiny|small|bench|v3 [--set key=value ...] [--seed N] "
      "[--dtype bf16|fp32|fp8] --out FILE.h5";
  po::options_description desc("options");
  desc.add_options()("preset", po::value(&preset)->required(), "tiny, small, bench or v3")(
      "set", po::value(&sets)->composing(), "override a config field, e.g. num_hidden_layers=4")(
      "seed", po::value(&seed)->default_value(seed), "random seed (same seed, same weights)")(
      "dtype", po::value(&dtype)->default_value("bf16"),
      "bf16, fp32, or fp8 (linear weights e4m3 with 128x128 block scales)")(
      "out", po::value(&out), "output dpep model file (.h5)")(
      "tokenizer", po::value(&tokenizer),
      "folder whose tokenizer.json / tokenizer_config.json are stored in the file")(
      "quiet", po::bool_switch(&quiet), "no per-tensor progress lines");
  po::options_description hidden;
  hidden.add_options()("hf-out", po::value(&hf_out),
                       "write a Hugging Face checkpoint folder instead (for convert tests)")(
      "shard-mb", po::value(&shard_mb), "shard size of --hf-out in MB");
  po::variables_map vm;
  if (!dpep::parse_command_line(argc, argv, desc, vm, usage, &hidden)) return 0;
  if (out.empty() == hf_out.empty()) throw std::invalid_argument("give --out FILE.h5");

  dpep::ModelConfig cfg = dpep::ModelConfig::preset(preset);
  for (const auto& kv : sets) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument("--set needs key=value, got '" + kv + "'");
    cfg.set_field(kv.substr(0, eq), kv.substr(eq + 1));
  }
  cfg.validate();
  dpep::InitOptions opt;
  opt.seed = seed;
  opt.dtype = dpep::dtype_from_name(dtype);
  opt.progress = !quiet;
  if (!hf_out.empty()) {
    dpep::write_random_hf_checkpoint(cfg, opt, hf_out, shard_mb << 20);
    fmt::print(stderr, "wrote Hugging Face checkpoint {}\n", hf_out);
  } else {
    dpep::write_random_model(cfg, opt, out, tokenizer);
    fmt::print(stderr, "wrote {} (preset {}, seed {}, {})\n", out, preset, seed, dtype);
  }
  return 0;
}

dpep::RegisterCommand reg("init-model", "write a model file with random weights for a preset",
                          run_init_model);

}  // namespace
