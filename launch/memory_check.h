// The memory plan at the start of a run, before any weight is read: every rank works out what
// it will hold (model/io/memory_plan.h) from the model file's metadata and the flags and logs
// it; the ranks of each host add theirs up and compare with what the host has
// (runtime/host_memory.h). If it does not fit, every rank stops with the same message (numbers
// and the flags that would make it fit) instead of being killed by the kernel later.
#pragma once
#include <spdlog/spdlog.h>

#include <string>

#include "comm/control_plane.h"
#include "comm/mpi_context.h"
#include "launch/run_options.h"
#include "model/io/memory_plan.h"

namespace dpep {

// Collective over the world. Throws on every rank (the ranks of a host that does not fit with
// the message, the others naming the first failing rank). The returned plan's kv_tokens is the
// KV cache size the engine must use: the plan is what was checked.
MemoryPlan check_memory_plan(const comm::MpiContext& mpi, comm::ControlPlane& cp,
                             spdlog::logger& log, const std::string& model_path,
                             const ModelArgs& margs, const RunArgs& rargs, int threads);

// Whether the run keeps its latent cache in bf16 (as Model::kv_cache_bf16() will decide).
bool plan_kv_bf16(const ModelConfig& c, const std::string& matmul_dtype);

}  // namespace dpep
