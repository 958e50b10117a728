// Flags shared by the run subcommands (generate, offline, serve), each declared once with its
// default and help; launch/ builds these structs and hands them to the runtime by const ref.
#pragma once
#include <boost/program_options.hpp>
#include <cstdint>
#include <string>

#include "model/linear.h"
#include "runtime/engine_config.h"

namespace dpep {

struct ModelArgs {
  std::string model;             // dpep .h5 file; empty = built-in preset
  std::string preset = "small";  // used when no --model is given
  uint64_t preset_seed = 0;
  bool simulate_perfect_eplb = false;
  std::string matmul_dtype = "auto";  // auto, bf16 (fast) or fp32 (exact)
  void add_to(boost::program_options::options_description& d);
};

struct RunArgs {
  // Engine knobs: defaults from EngineConfig (runtime/engine_config.h), stated there once.
  int max_batch_size = EngineConfig{}.max_batch_size;
  int max_prefill_tokens = 0;  // 0: auto, the memory plan picks it (auto_max_prefill_tokens)
  long long kv_cache_tokens = EngineConfig{}.kv_cache_tokens;
  double cache_max_entry_count = EngineConfig{}.cache_max_entry_count;
  int page_size = EngineConfig{}.page_size;
  bool disable_prefix_caching = !EngineConfig{}.prefix_caching;
  double prefill_step_factor = EngineConfig{}.prefill_step_factor;
  int threads = 0;  // 0 = host cores / ranks on the host
  std::string log_dir = "./logs";
  std::string log_level = "info";
  int log_every = 50;
  std::string trace_dir;  // empty: no trace
  // Seconds a step or collective may take before the job is ended (0 = off). The default is
  // far above the longest legal step (a full --max-prefill-tokens prefill): docs/serving.md.
  double watchdog_timeout = 600;
  void add_to(boost::program_options::options_description& d);
  void validate() const;  // throws std::invalid_argument naming the flag
};

// --matmul-dtype: "fp32" -> F32, "bf16" -> BF16 (the model then checks the CPU), "auto" -> BF16
// where the CPU has AVX512-BF16 or AMX, else F32. Anything else: std::invalid_argument.
MatmulDType resolve_matmul_dtype(const std::string& flag);

// Parses argv (argv[0] = subcommand) into `vm`; prints help and returns false on --help.
// `hidden` options are accepted but left out of the help.
bool parse_command_line(int argc, char** argv, const boost::program_options::options_description& d,
                        boost::program_options::variables_map& vm, const std::string& usage,
                        const boost::program_options::options_description* hidden = nullptr);

}  // namespace dpep
