#include "launch/memory_check.h"

#include <fmt/format.h>

#include <cstdio>

#include "launch/rank_setup.h"
#include "model/io/mtp_schema.h"
#include "model/io/plan_tensors.h"
#include "model/io/weights_file.h"
#include "model/ops/attention_kernel.h"
#include "runtime/host_memory.h"

namespace dpep {

bool plan_kv_bf16(const ModelConfig& c, const std::string& matmul_dtype) {
  return resolve_matmul_dtype(matmul_dtype) == MatmulDType::BF16 && mla_bf16_cache_supported() &&
         (c.kv_lora_rank + c.qk_rope_head_dim) % 2 == 0;
}

// The MTP layers a converted file keeps under mtp/ are not loaded (nor counted): say so.
static void log_mtp_layers(const WeightsReader& file, spdlog::logger& log) {
  const int64_t declared = file.config().num_nextn_predict_layers;
  auto has_mtp_layer = [&](int64_t i) {  // a kept MTP layer holds its eh_proj
    for (const auto& s : mtp_layer_specs(file.config(), i))
      if (s.slot == TensorSlot::MtpEhProj) return file.has(s.name);
    return false;
  };
  int64_t kept = 0;
  while (kept < declared && has_mtp_layer(kept)) ++kept;
  if (kept > 0)
    log.info(
        "the model file holds {} MTP (multi-token prediction) layer(s) under mtp/: not loaded "
        "(kept for a later speculative decoder)",
        kept);
}

MemoryPlan check_memory_plan(const comm::MpiContext& mpi, comm::ControlPlane& cp,
                             spdlog::logger& log, const std::string& model_path,
                             const ModelArgs& margs, const RunArgs& rargs, int threads) {
  const auto& info = mpi.info();
  ModelConfig cfg;
  std::vector<PlanTensor> tensors;
  HostMemory host;
  PlanFlags f;
  // 1. Local: the file's metadata (no weight is read) and this host's memory.
  agree_or_throw(
      cp,
      [&] {
        WeightsReader file(model_path);
        cfg = file.config();
        if (cfg.n_routed_experts % info.size != 0)
          throw std::invalid_argument(fmt::format(
              "{} ranks do not divide the {} routed experts of {}: use -np that divides {}",
              info.size, cfg.n_routed_experts, model_path, cfg.n_routed_experts));
        tensors = plan_tensors_from_file(file);
        log_mtp_layers(file, log);
        if (info.local_rank == 0) host = detect_host_memory();
        f.ranks = info.size;
        f.ranks_per_host = info.local_size;
        f.kv_cache_tokens = rargs.kv_cache_tokens;
        f.cache_fraction = rargs.cache_max_entry_count;
        f.page_size = rargs.page_size;
        f.max_batch_size = rargs.max_batch_size;
        f.max_prefill_tokens = rargs.max_prefill_tokens;
        f.threads = threads;
        f.kv_bf16 = plan_kv_bf16(cfg, margs.matmul_dtype);
      },
      "memory plan");
  // 2. The host's figure as its first rank saw it, so that its ranks decide alike.
  uint64_t avail = host.available;
  MPI_Bcast(&avail, 1, MPI_UINT64_T, 0, mpi.node());
  MemoryPlan plan;
  agree_or_throw(
      cp,
      [&] {
        if (f.max_prefill_tokens == 0) {
          f.max_prefill_tokens = auto_max_prefill_tokens(cfg, tensors, f, avail);
          log.info(
              "--max-prefill-tokens auto: {} (activations within max(1.5 GB, 5% of the weights), "
              "the ranks within the host)",
              f.max_prefill_tokens);
        }
        plan = make_memory_plan(cfg, tensors, f, avail);
      },
      "memory plan");
  log.info("memory plan of this rank (stored dtypes; the MTP layers are not loaded):\n{}",
           format_memory_plan(plan, f));
  // 3. The host's total.
  uint64_t mine = plan.peak(), host_total = 0;
  MPI_Allreduce(&mine, &host_total, 1, MPI_UINT64_T, MPI_SUM, mpi.node());
  if (info.local_rank == 0)
    log.info("host {}: {} ranks need {} of {} ({})", info.host, info.local_size,
             format_bytes(host_total), format_bytes(avail), host.describe());
  else
    log.info("host {}: {} ranks need {} of {}", info.host, info.local_size,
             format_bytes(host_total), format_bytes(avail));
  agree_or_throw(
      cp,
      [&] {
        if (host_total <= avail) return;
        // The ranks of a host have the same plan (same experts per rank, same flags).
        std::string msg = memory_misfit_message(cfg, tensors, f, plan, avail, "host " + info.host);
        if (msg.empty())  // ranks of one host disagree (cannot happen with equal shards)
          msg = fmt::format("not enough memory on host {}: {} needed, {} available", info.host,
                            format_bytes(host_total), format_bytes(avail));
        // The numbers once per host, printed before the ranks agree to stop (so before any of
        // them exits and mpirun kills the others); every rank's own error is one short line.
        log.error("{}", msg);
        if (info.local_rank == 0) {
          fmt::print(stderr, "dpep: {}\n", msg);
          std::fflush(stderr);
        }
        throw std::runtime_error(fmt::format(
            "not enough memory on host {} for its {} rank(s): {} needed, {} available (the plan "
            "and what would fit are above and in each rank's log)",
            info.host, info.local_size, format_bytes(host_total), format_bytes(avail)));
      },
      "memory plan");
  return plan;
}

}  // namespace dpep
