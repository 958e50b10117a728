// Everything one rank needs before its loop: MPI, the control plane, the expert exchange, the
// model shard, the engine and the rank's log. Errors during setup (a bad file, a bad flag, a
// rank count that does not divide the experts) are agreed on by all ranks, so every rank exits
// non-zero with the failing rank named, and none hangs.
#pragma once
#include <memory>
#include <string>

#include "comm/expert_exchange.h"
#include "comm/mpi_context.h"
#include "comm/mpi_control.h"
#include "comm/mpi_watchdog.h"
#include "launch/run_options.h"
#include "model/model.h"
#include "runtime/dp_loop.h"
#include "runtime/engine.h"
#include "runtime/rank_log.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/trace_writer.h"

namespace dpep {

struct RankRuntime {
  std::unique_ptr<comm::MpiContext> mpi;
  std::unique_ptr<comm::Watchdog> watchdog;  // --watchdog-timeout; armed once setup is done
  std::unique_ptr<comm::ControlPlane> cp;
  std::unique_ptr<comm::ExpertExchange> ex;
  std::unique_ptr<Model> model;
  std::unique_ptr<Engine> engine;
  std::shared_ptr<spdlog::logger> log;
  std::unique_ptr<TraceWriter> trace;  // --trace-dir, else null
  RankIdentity id;
  std::string model_path;
  std::string tokenizer_json, tokenizer_config_json;  // empty when the file has none
  std::shared_ptr<text::Tokenizer> tokenizer;         // rank 0, when the file has one
  std::shared_ptr<text::ChatTemplate> chat;           // rank 0, when it has a chat template
  double load_s = 0;
  bool is_root() const { return id.rank == 0; }
};

// Collective. Throws (on every rank, with the same message naming the failing rank) if any
// rank failed.
// root_before_load runs on rank 0 before any weight is read (e.g. checks an output path); if it
// throws, every rank fails at once.
RankRuntime setup_rank(int* argc, char*** argv, const ModelArgs& margs, const RunArgs& rargs,
                       const std::function<void()>& root_before_load = {});

// The DP loop's options for this rank (strategy, log period, trace, host).
inline DpLoopOptions loop_options(const RankRuntime& rt, BalanceStrategy strategy,
                                  const RunArgs& rargs) {
  return DpLoopOptions{strategy, rargs.log_every, rt.trace.get(), rt.id.host};
}

// Collective: agrees on whether any rank failed in `body`; rethrows on every rank if so.
void agree_or_throw(comm::ControlPlane& cp, const std::function<void()>& body,
                    const std::string& what);

// Path of the built-in preset's model file on this host, created on first use.
std::string ensure_preset_file(const std::string& preset, uint64_t seed);

}  // namespace dpep
