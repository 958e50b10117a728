#include "launch/run_options.h"

#include <fmt/format.h>

#include <iostream>
#include <stdexcept>

namespace po = boost::program_options;

namespace dpep {

void ModelArgs::add_to(po::options_description& d) {
  d.add_options()("model", po::value(&model),
                  "dpep model file (.h5); without it a built-in preset is used")(
      "preset", po::value(&preset)->default_value(preset),
      "preset when no --model: tiny, small, bench")(
      "preset-seed", po::value(&preset_seed)->default_value(preset_seed),
      "seed of the preset's random weights")(
      "simulate-perfect-eplb", po::bool_switch(&simulate_perfect_eplb),
      "replace the router's expert choice by a perfectly balanced one (lmdeploy recipe)")(
      "matmul-dtype", po::value(&matmul_dtype)->default_value(matmul_dtype),
      "auto: bf16 where the CPU has AVX512-BF16 or AMX, else fp32; bf16: activations rounded to "
      "bf16, float32 accumulation, weights kept as stored (FP8, bf16); fp32: float32 GEMMs, "
      "exact against transformers");
}

void RunArgs::add_to(po::options_description& d) {
  d.add_options()("max-batch-size", po::value(&max_batch_size)->default_value(max_batch_size),
                  "running sequences per rank")(
      "max-prefill-tokens", po::value(&max_prefill_tokens)->default_value(max_prefill_tokens),
      "prefill tokens per step per rank (chunked prefill); 0: auto, the largest of 8192, 4096, "
      "..., 256 whose activations stay within max(1.5 GB, 5% of the weights) and for which "
      "the host's ranks fit")("kv-cache-tokens",
                              po::value(&kv_cache_tokens)->default_value(kv_cache_tokens),
                              "KV cache size per rank in tokens (0: use --cache-max-entry-count)")(
      "cache-max-entry-count",
      po::value(&cache_max_entry_count)->default_value(cache_max_entry_count),
      "fraction of free memory given to the KV cache of each rank")(
      "page-size", po::value(&page_size)->default_value(page_size), "tokens per KV cache page")(
      "disable-prefix-caching", po::bool_switch(&disable_prefix_caching),
      "do not reuse the KV pages of earlier requests with the same prefix")(
      "prefill-step-factor", po::value(&prefill_step_factor)->default_value(prefill_step_factor),
      "while sequences decode, prefill per step is cut so a step lasts about this many decode "
      "steps (chunked prefill by time; <= 1: off, only --max-prefill-tokens)")(
      "threads", po::value(&threads)->default_value(threads),
      "threads per rank (0: host cores / ranks on host)")(
      "log-dir", po::value(&log_dir)->default_value(log_dir), "directory of the per-rank logs")(
      "log-level", po::value(&log_level)->default_value(log_level),
      "trace, debug, info, warn, error, off")("log-every",
                                              po::value(&log_every)->default_value(log_every),
                                              "info-level step summary every N steps")(
      "trace-dir", po::value(&trace_dir),
      "write a Chrome trace-event file per rank, DIR/rank-NNNN.json (opens in Perfetto UI)")(
      "watchdog-timeout", po::value(&watchdog_timeout)->default_value(watchdog_timeout),
      "seconds a step or collective may run before every rank is stopped with a message naming "
      "the stuck rank (0: off)");
}

void RunArgs::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw std::invalid_argument(msg);
  };
  need(max_batch_size >= 1, "--max-batch-size must be >= 1");
  need(max_prefill_tokens >= 0, "--max-prefill-tokens must be >= 0 (0: auto)");
  need(kv_cache_tokens >= 0, "--kv-cache-tokens must be >= 0");
  need(cache_max_entry_count > 0 && cache_max_entry_count <= 0.95,
       "--cache-max-entry-count must be in (0, 0.95]");
  need(page_size >= 16 && page_size <= 4096 && page_size % 16 == 0,
       "--page-size must be a multiple of 16 in [16, 4096]");
  need(threads >= 0 && threads <= 1024, "--threads must be in [0, 1024]");
  need(log_every >= 0, "--log-every must be >= 0");
  need(watchdog_timeout >= 0 && watchdog_timeout <= 86400,
       "--watchdog-timeout must be in [0, 86400] seconds (0: off)");
  need(prefill_step_factor >= 0 && prefill_step_factor <= 1000,
       "--prefill-step-factor must be in [0, 1000]");
}

MatmulDType resolve_matmul_dtype(const std::string& flag) {
  if (flag == "fp32") return MatmulDType::F32;
  if (flag == "bf16") return MatmulDType::BF16;
  if (flag == "auto") return gemm_isa() != GemmIsa::None ? MatmulDType::BF16 : MatmulDType::F32;
  throw std::invalid_argument(fmt::format("unknown --matmul-dtype '{}' (auto, bf16, fp32)", flag));
}

bool parse_command_line(int argc, char** argv, const po::options_description& d,
                        po::variables_map& vm, const std::string& usage,
                        const po::options_description* hidden) {
  po::options_description shown(d);
  shown.add_options()("help,h", "show this help");
  po::options_description all(shown);
  if (hidden) all.add(*hidden);
  try {
    po::store(po::command_line_parser(argc, argv).options(all).run(), vm);
    if (vm.count("help")) {
      std::cout << usage << "\n\n" << shown << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw std::invalid_argument(fmt::format("{} (see dpep {} --help)", e.what(), argv[0]));
  }
  return true;
}

}  // namespace dpep
