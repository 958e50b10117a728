#include "launch/rank_setup.h"

#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>

#include "comm/clock.h"
#include "comm/mpi_exchange.h"
#include "comm/mpi_heartbeat.h"
#include "launch/memory_check.h"
#include "launch/openblas_core.h"
#include "model/io/random_init.h"
#include "model/io/weights_file.h"
#include "runtime/tokenizer/preset_tokenizer.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace dpep {

// A directory holding a byte-level BPE tokenizer of the preset's vocabulary size (so the demo
// model speaks text) and the DeepSeek-V3 chat template.
static std::string preset_tokenizer_dir(const ModelConfig& c, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json")
      << text::build_preset_tokenizer_json(static_cast<int>(c.vocab_size));
  std::ofstream(dir / "tokenizer_config.json") << text::build_preset_tokenizer_config_json();
  return dir.string();
}

// Disarmed until setup is done: start-up collectives may wait for a rank loading its weights.
// Non-root ranks trip 5 s after the root, which names the stuck rank from the heartbeats.
static std::unique_ptr<comm::Watchdog> make_watchdog(double timeout_s) {
  const auto ms = std::chrono::milliseconds(
      static_cast<long long>((timeout_s >= 0 ? std::min(timeout_s, 86400.0) : 0.0) * 1000));
  auto wd = std::make_unique<comm::Watchdog>(ms, /*armed=*/false);
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (wd->enabled() && size > 1)
    wd->set_heartbeat(comm::Heartbeat::create(MPI_COMM_WORLD, 0), std::chrono::seconds(5));
  return wd;
}

void agree_or_throw(comm::ControlPlane& cp, const std::function<void()>& body,
                    const std::string& what) {
  std::string err;
  try {
    body();
  } catch (const std::exception& e) {
    err = e.what();
  }
  comm::StepLocal mine;
  mine.step = -1;
  mine.error = !err.empty();
  comm::StepGlobal g = cp.agree(mine);
  if (!g.any_error()) return;
  // Every rank learns the first failing rank's message: mpirun ends the job as soon as one rank
  // exits, and that rank may not be the failing one.
  const auto msgs = cp.gather_blobs(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(err.data()), err.size()));
  comm::Blob first;
  if (cp.is_root()) first = msgs.at(g.first_error_rank);
  first = cp.broadcast_blob(first);
  throw std::runtime_error(fmt::format("{} failed on rank {}: {}", what, g.first_error_rank,
                                       std::string(first.begin(), first.end())));
}

RankRuntime setup_rank(int* argc, char*** argv, const ModelArgs& margs, const RunArgs& rargs,
                       const std::function<void()>& root_before_load) {
  RankRuntime rt;
  rt.mpi = std::make_unique<comm::MpiContext>(argc, argv);
  rt.watchdog = make_watchdog(rargs.watchdog_timeout);
  rt.cp = std::make_unique<comm::MpiControlPlane>(MPI_COMM_WORLD, 0, rt.watchdog.get());
  const auto& info = rt.mpi->info();
  rt.id = RankIdentity{info.rank, info.size, info.local_rank, info.local_size, 1, info.host};
  agree_or_throw(
      *rt.cp,
      [&] {
        rargs.validate();
        if (rargs.threads > 0) rt.mpi->set_threads(rargs.threads);
        rt.id.threads = rt.mpi->threads();
        omp_set_num_threads(rt.id.threads);
        openblas_set_num_threads(rt.id.threads);
        rt.log = open_rank_log(rargs.log_dir, rt.id, rargs.log_level);
        rt.log->info("OpenBLAS core: {}", openblas_core_description());
        if (!rargs.trace_dir.empty())
          rt.trace = std::make_unique<TraceWriter>(rargs.trace_dir, rt.id.rank, rt.id.host);
        if (info.rank == 0 && root_before_load) root_before_load();
      },
      "setup");
  if (info.size > 1)
    rt.ex = std::make_unique<comm::MpiExchange>(
        MPI_COMM_WORLD, comm::MpiExchangeOptions{.watchdog = rt.watchdog.get()});
  else
    rt.ex = std::make_unique<comm::LoopbackExchange>();
  const Stopwatch t0;
  agree_or_throw(
      *rt.cp,
      [&] {
        rt.model_path =
            margs.model.empty() ? ensure_preset_file(margs.preset, margs.preset_seed) : margs.model;
      },
      "finding the model");
  // Before any weight is read: stops every rank if this host's ranks would not fit.
  const MemoryPlan plan =
      check_memory_plan(*rt.mpi, *rt.cp, *rt.log, rt.model_path, margs, rargs, rt.id.threads);
  agree_or_throw(
      *rt.cp,
      [&] {
        WeightsReader file(rt.model_path);
        const ModelConfig& c = file.config();
        // Checked before any weight is read.
        if (c.n_routed_experts % info.size != 0)
          throw std::invalid_argument(fmt::format(
              "{} ranks do not divide the {} routed experts of {}: use -np that divides {}",
              info.size, c.n_routed_experts, rt.model_path, c.n_routed_experts));
        ExpertShard shard{info.rank, info.size};
        ModelOptions mopt;
        mopt.simulate_perfect_eplb = margs.simulate_perfect_eplb;
        mopt.matmul_dtype = resolve_matmul_dtype(margs.matmul_dtype);
        rt.model = std::make_unique<Model>(c, load_model_weights(file, shard), shard, mopt);
        rt.tokenizer_json = file.read_text("tokenizer/tokenizer.json").value_or("");
        rt.tokenizer_config_json = file.read_text("tokenizer/tokenizer_config.json").value_or("");
        if (info.rank == 0 && !rt.tokenizer_json.empty()) {
          rt.tokenizer = std::make_shared<text::Tokenizer>(
              text::Tokenizer::from_json(rt.tokenizer_json, rt.tokenizer_config_json));
          if (auto t = text::ChatTemplate::from_tokenizer(*rt.tokenizer))
            rt.chat = std::make_shared<text::ChatTemplate>(*t);
        }
        EngineConfig ec;
        ec.max_batch_size = rargs.max_batch_size;
        ec.max_prefill_tokens = plan.max_prefill_tokens;  // auto resolved by the plan
        ec.page_size = rargs.page_size;
        ec.prefix_caching = !rargs.disable_prefix_caching;
        ec.prefill_step_factor = rargs.prefill_step_factor;
        ec.kv_cache_tokens = plan.kv_tokens;  // what the memory plan checked
        rt.engine = std::make_unique<Engine>(*rt.model, *rt.ex, ec);
      },
      "loading the model");
  rt.load_s = t0.seconds();
  // Every rank leaves the agreement above at about the same moment: the traces' common zero.
  if (rt.trace) rt.trace->set_origin(now_seconds());
  const auto& c = rt.model->config();
  rt.log->info(
      "model {}: {} layers, hidden {}, {} routed experts ({} on this rank from {}), "
      "{:.1f} MB of weights on this rank, loaded in {:.2f} s",
      rt.model_path, c.num_hidden_layers, c.hidden_size, c.n_routed_experts,
      rt.model->shard().placement(c.n_routed_experts).experts_per_rank(),
      rt.model->shard().placement(c.n_routed_experts).first_local(info.rank),
      rt.model->weight_bytes() / 1e6, rt.load_s);
  rt.log->info("matmul: {} (--matmul-dtype {}; bf16 kernel: {})",
               rt.model->matmul_dtype() == MatmulDType::BF16 ? "bf16" : "fp32", margs.matmul_dtype,
               gemm_isa_name(gemm_isa()));
  rt.log->info(
      "KV cache: {} pages of {} tokens ({:.1f} MB), prefix caching {}",
      rt.engine->blocks().num_pages(), rargs.page_size,
      rt.engine->blocks().num_pages() * double(rargs.page_size) *
          KvCache::bytes_per_token(c.num_hidden_layers, rt.model->kv_width(),
                                   rt.model->kv_cache_bf16(), static_cast<int>(c.kv_lora_rank)) /
          1e6,
      rargs.disable_prefix_caching ? "off" : "on");
  rt.watchdog->arm();
  return rt;
}

}  // namespace dpep

namespace dpep {

std::string ensure_preset_file(const std::string& preset, uint64_t seed) {
  namespace fs = std::filesystem;
  ModelConfig cfg = ModelConfig::preset(preset);  // throws on an unknown preset
  const char* env = std::getenv("DPEP_CACHE_DIR");
  const fs::path dir = env && *env ? fs::path(env) : fs::temp_directory_path() / "dpep-cache";
  fs::create_directories(dir);
  // Bump the version when the preset or the random initialisation changes.
  const fs::path path = dir / fmt::format("preset-{}-seed{}-v2.h5", preset, seed);
  if (fs::exists(path)) return path.string();
  // Every rank that misses it writes its own temporary file and renames it into place:
  // atomic, and the same seed gives the same bytes, so concurrent writers agree.
  const fs::path tmp = dir / fmt::format(".{}.{}.tmp", path.filename().string(), ::getpid());
  InitOptions opt;
  opt.seed = seed;
  opt.dtype = DType::BF16;
  const fs::path tok_dir = dir / fmt::format(".tokenizer.{}", ::getpid());
  write_random_model(cfg, opt, tmp.string(), preset_tokenizer_dir(cfg, tok_dir));
  fs::remove_all(tok_dir);
  fs::rename(tmp, path);
  return path.string();
}

}  // namespace dpep
