// dpep plan: the per-rank memory plan of a model at N ranks, without loading any weight (the
// same arithmetic a run does before it reads the model: model/io/memory_plan.h).
#include <fmt/format.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "comm/mpi_context.h"
#include "launch/command.h"
#include "launch/memory_check.h"
#include "launch/run_options.h"
#include "model/io/plan_tensors.h"
#include "model/io/weights_file.h"
#include "runtime/host_memory.h"

namespace po = boost::program_options;

namespace dpep {
namespace {

nlohmann::json plan_json(const MemoryPlan& p, const PlanFlags& f, uint64_t available) {
  return {{"ranks", f.ranks},
          {"ranks_per_host", f.ranks_per_host},
          {"experts_on_rank", p.experts_on_rank},
          {"weights", p.weights()},
          {"weights_fp8", p.weights_fp8},
          {"fp8_scales", p.fp8_scales},
          {"weights_bf16", p.weights_bf16},
          {"weights_f32", p.weights_f32},
          {"replicated", p.replicated},
          {"experts", p.experts},
          {"kv_tokens", p.kv_tokens},
          {"kv_bytes_per_token", p.kv_bytes_per_token},
          {"kv_bytes", p.kv_bytes},
          {"max_prefill_tokens", p.max_prefill_tokens},
          {"activations", p.activations},
          {"overhead", p.overhead},
          {"largest_tensor", p.largest_tensor},
          {"peak", p.peak()},
          {"host_available", available}};
}

int run_plan(int argc, char** argv) {
  std::string model, hf, preset, dtype, matmul_dtype = "auto";
  std::vector<std::string> sets;
  RunArgs rargs;
  int ranks = 0, ranks_per_host = 1;
  bool json = false;
  const std::string usage =
      "usage: dpep plan (--model FILE.h5 | --hf DIR | --preset NAME [--set key=value ...] "
      "[--dtype bf16|fp32|fp8]) --ranks N [--ranks-per-host L] [--kv-cache-tokens T] ...";
  po::options_description d("plan options");
  d.add_options()("model", po::value(&model), "dpep model file (only its metadata is read)")(
      "hf", po::value(&hf),
      "Hugging Face folder (config.json, with or without safetensors shards), as `dpep convert "
      "--dtype` (keep, bf16, fp32) would store it")(
      "preset", po::value(&preset), "tiny, small, bench or v3, as `dpep init-model` stores it")(
      "set", po::value(&sets)->composing(), "override a preset field, e.g. num_hidden_layers=4")(
      "dtype", po::value(&dtype),
      "--preset: bf16 (default), fp32 or fp8; --hf: keep (default), bf16 or fp32")(
      "ranks", po::value(&ranks)->required(), "ranks in the job (mpirun -np)")(
      "ranks-per-host", po::value(&ranks_per_host)->default_value(ranks_per_host),
      "ranks sharing one host (for --cache-max-entry-count and the fit on this host)")(
      "matmul-dtype", po::value(&matmul_dtype)->default_value(matmul_dtype),
      "auto, bf16 or fp32, as for generate (bf16 keeps the latent cache in bf16)")(
      "max-batch-size", po::value(&rargs.max_batch_size)->default_value(rargs.max_batch_size),
      "running sequences per rank")(
      "max-prefill-tokens",
      po::value(&rargs.max_prefill_tokens)->default_value(rargs.max_prefill_tokens),
      "prefill tokens per step per rank (0: auto, as for generate)")(
      "kv-cache-tokens", po::value(&rargs.kv_cache_tokens)->default_value(rargs.kv_cache_tokens),
      "KV cache size per rank in tokens (0: --cache-max-entry-count of this host's memory)")(
      "cache-max-entry-count",
      po::value(&rargs.cache_max_entry_count)->default_value(rargs.cache_max_entry_count),
      "fraction of the host's free memory given to the KV caches of its ranks")(
      "page-size", po::value(&rargs.page_size)->default_value(rargs.page_size),
      "tokens per KV cache page")("threads", po::value(&rargs.threads)->default_value(0),
                                  "threads per rank (0: this host's cores / ranks per host)")(
      "json", po::bool_switch(&json), "print the plan as one JSON object (bytes)");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, d, vm, usage)) return 0;
  if ((!model.empty()) + (!hf.empty()) + (!preset.empty()) != 1)
    throw std::invalid_argument("give exactly one of --model, --hf and --preset");
  if (!sets.empty() && preset.empty()) throw std::invalid_argument("--set needs --preset");
  if (!dtype.empty() && !model.empty())
    throw std::invalid_argument("--dtype is for --preset and --hf (a model file has its own)");
  if (ranks < 1) throw std::invalid_argument("--ranks must be >= 1");
  if (ranks_per_host < 1 || ranks_per_host > ranks)
    throw std::invalid_argument("--ranks-per-host must be in [1, --ranks]");
  rargs.validate();
  resolve_matmul_dtype(matmul_dtype);  // throws on an unknown name

  ModelConfig cfg;
  std::vector<PlanTensor> tensors;
  std::string source;
  if (!model.empty()) {
    WeightsReader file(model);
    cfg = file.config();
    tensors = plan_tensors_from_file(file);
    source = model;
  } else if (!hf.empty()) {
    const std::string mode = dtype.empty() ? "keep" : dtype;
    const ConvertDType cmode = convert_dtype_from_name(mode);
    try {
      tensors = plan_tensors_from_hf(hf, cmode, cfg);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(fmt::format("{}: {}", hf, e.what()));
    }
    source = fmt::format("{} (as converted with --dtype {})", hf, mode);
  } else {
    cfg = ModelConfig::preset(preset);
    for (const auto& kv : sets) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0)
        throw std::invalid_argument("--set needs key=value, got '" + kv + "'");
      cfg.set_field(kv.substr(0, eq), kv.substr(eq + 1));
    }
    cfg.validate();
    const std::string dt = dtype.empty() ? "bf16" : dtype;
    tensors = plan_tensors_for_init(cfg, dtype_from_name(dt));
    source = fmt::format("preset {} ({})", preset, dt);
  }
  PlanFlags f;
  f.ranks = ranks;
  f.ranks_per_host = ranks_per_host;
  f.kv_cache_tokens = rargs.kv_cache_tokens;
  f.cache_fraction = rargs.cache_max_entry_count;
  f.page_size = rargs.page_size;
  f.max_batch_size = rargs.max_batch_size;
  f.max_prefill_tokens = rargs.max_prefill_tokens;
  f.threads = rargs.threads > 0
                  ? rargs.threads
                  : comm::default_threads_per_rank(static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)),
                                                   ranks_per_host);
  f.kv_bf16 = plan_kv_bf16(cfg, matmul_dtype);
  const HostMemory host = detect_host_memory();
  const bool auto_prefill = f.max_prefill_tokens == 0;
  if (auto_prefill) f.max_prefill_tokens = auto_max_prefill_tokens(cfg, tensors, f, host.available);
  const MemoryPlan p = make_memory_plan(cfg, tensors, f, host.available);
  if (json) {
    fmt::print("{}\n", plan_json(p, f, host.available).dump());
    return 0;
  }
  fmt::print(
      "model: {}: {} layers, hidden {}, {} routed experts per MoE layer{}\n", source,
      cfg.num_hidden_layers, cfg.hidden_size, cfg.n_routed_experts,
      cfg.num_nextn_predict_layers > 0
          ? fmt::format(" ({} MTP layer(s) not loaded, not counted)", cfg.num_nextn_predict_layers)
          : "");
  fmt::print("ranks: {} ({} per host), {} threads per rank\n", ranks, ranks_per_host, f.threads);
  if (auto_prefill)
    fmt::print(
        "--max-prefill-tokens auto: {} (activations within max(1.5 GB, 5% of the weights), the "
        "ranks within the host)\n",
        f.max_prefill_tokens);
  fmt::print("per rank:\n{}\n", format_memory_plan(p, f));
  const uint64_t host_need = p.peak() * ranks_per_host;
  fmt::print("per host: {} for {} rank(s); this host has {} ({})\n", format_bytes(host_need),
             ranks_per_host, format_bytes(host.available), host.describe());
  const std::string misfit = memory_misfit_message(cfg, tensors, f, p, host.available, "this host");
  if (!misfit.empty()) fmt::print("{}\n", misfit);
  return 0;
}

RegisterCommand reg("plan", "print the per-rank memory plan of a model without loading it",
                    run_plan);

}  // namespace
}  // namespace dpep
