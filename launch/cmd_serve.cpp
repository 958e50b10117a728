// dpep serve: an OpenAI-compatible HTTP server over every rank of the job. Rank 0 runs the
// HTTP server (its own threads) and the proxy that assigns each request to a DP rank; every
// rank runs the lock-step DpLoop on its main thread, the only thread that calls MPI.
// SIGINT/SIGTERM/SIGUSR1 (mpirun forwards them to every rank): rank 0 stops accepting (503),
// lets what is in flight finish (--drain-timeout, then aborts it) and ends the loop; every rank
// exits 0. mpirun SIGKILLs the ranks about 2 s after a SIGTERM of its own, SIGUSR1 it only
// forwards: scripts/dpep-mpirun turns SIGTERM into SIGUSR1 for a full drain.
#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "launch/command.h"
#include "launch/rank_setup.h"
#include "launch/serve/serve_http.h"
#include "launch/serve/serve_metrics.h"
#include "launch/serve/serve_source.h"
#include "runtime/tokenizer/preset_tokenizer.h"

namespace po = boost::program_options;

namespace dpep {
namespace {

std::atomic<int> g_signal{0};
void on_stop_signal(int sig) {
  g_signal.store(sig);
}

// What a client refused during the drain is told. SIGUSR1 is how scripts/dpep-mpirun passes a
// SIGTERM or SIGINT through mpirun, which would otherwise kill the ranks after a second.
std::string stop_signal_reason(int sig) {
  if (sig == SIGUSR1)
    return fmt::format("signal {} (SIGUSR1: a stop request forwarded by dpep-mpirun)", sig);
  return fmt::format("signal {} ({})", sig, strsignal(sig));
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);  // mpirun forwards it untouched: scripts/dpep-mpirun
  std::signal(SIGPIPE, SIG_IGN);     // a client that closed its socket must not kill rank 0
}

struct ServeArgs {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string strategy = "cache_aware";
  std::string api_key;
  int max_queued_requests = 0;
  std::string served_model_name;
  std::string tokenizer;  // "" = the model file's; "preset"; or a folder
  std::string reasoning_parser;
  int http_threads = 512;
  double drain_timeout = 30;
  void add_to(po::options_description& d) {
    // clang-format off
    d.add_options()
        ("host", po::value(&host)->default_value(host), "address to listen on (rank 0)")
        ("port", po::value(&port)->default_value(port), "port to listen on (0: any free port)")
        ("strategy", po::value(&strategy)->default_value(strategy),
         "request to rank: round_robin, least_tokens, min_expected_latency, cache_aware")
        ("api-key", po::value(&api_key), "require 'Authorization: Bearer KEY' on the API routes")
        ("max-queued-requests", po::value(&max_queued_requests)->default_value(max_queued_requests),
         "answer 429 while this many requests wait for their first token (0: no limit)")
        ("served-model-name", po::value(&served_model_name), "model id in the API (default: the file's name)")
        ("tokenizer", po::value(&tokenizer),
         "tokenizer folder (tokenizer.json), or 'preset' for the built-in preset tokenizer "
         "(default: the one stored in the model file; presets without one use 'preset')")
        ("reasoning-parser", po::value(&reasoning_parser), "deepseek-r1: reasoning_content in chat responses")
        ("http-threads", po::value(&http_threads)->default_value(http_threads),
         "HTTP worker threads (each open request holds one)")
        ("drain-timeout", po::value(&drain_timeout)->default_value(drain_timeout),
         "seconds in-flight requests may run after SIGINT/SIGTERM before they are aborted");
    // clang-format on
  }
  void validate() const {
    if (port < 0 || port > 65535) throw std::invalid_argument("--port must be in [0, 65535]");
    if (max_queued_requests < 0) throw std::invalid_argument("--max-queued-requests must be >= 0");
    if (http_threads < 1) throw std::invalid_argument("--http-threads must be >= 1");
    if (drain_timeout < 0) throw std::invalid_argument("--drain-timeout must be >= 0");
    if (!reasoning_parser.empty() && reasoning_parser != "deepseek-r1")
      throw std::invalid_argument(
          fmt::format("unknown --reasoning-parser '{}' (deepseek-r1)", reasoning_parser));
    balance_strategy_from_name(strategy);
  }
};

// Rank 0's serving state: tokenizer, limits, metrics, the source and the HTTP server.
struct ServeRoot {
  std::optional<text::Tokenizer> tokenizer;
  std::optional<text::ChatTemplate> chat;
  ServeLimits limits;
  ServeMetrics metrics;
  std::unique_ptr<ServeSource> source;
  std::unique_ptr<ServeHttp> http;
};

void load_tokenizer(ServeRoot& root, const ServeArgs& a, const ModelArgs& margs,
                    const RankRuntime& rt) {
  const int vocab = static_cast<int>(rt.model->config().vocab_size);
  std::string how = a.tokenizer;
  if (how.empty() && rt.tokenizer_json.empty() && margs.model.empty()) how = "preset";
  if (how == "preset") {
    root.tokenizer = text::Tokenizer::from_json(text::build_preset_tokenizer_json(vocab),
                                                text::build_preset_tokenizer_config_json());
  } else if (!how.empty()) {
    root.tokenizer = text::Tokenizer::from_directory(how);
  } else if (!rt.tokenizer_json.empty()) {
    root.tokenizer = text::Tokenizer::from_json(rt.tokenizer_json, rt.tokenizer_config_json);
  }
  if (root.tokenizer && root.tokenizer->vocab_size() > vocab)
    throw std::invalid_argument(
        fmt::format("the tokenizer has {} tokens, more than the model's vocabulary of {}",
                    root.tokenizer->vocab_size(), vocab));
  if (root.tokenizer) root.chat = text::ChatTemplate::from_tokenizer(*root.tokenizer);
  if (!a.reasoning_parser.empty() && !root.chat)
    throw std::invalid_argument("--reasoning-parser needs a tokenizer with a chat template");
}

std::string default_model_name(const ModelArgs& margs) {
  if (margs.model.empty()) return "dpep-" + margs.preset;
  return std::filesystem::path(margs.model).stem().string();
}

// One tiny request through the loop, so the first client does not pay for first-touch costs;
// also learns every rank's KV cache size. Returns false (and prints why) on failure.
bool warm_up(ServeRoot& root, const RankRuntime& rt) {
  const auto& cfg = rt.model->config();
  Request r;
  r.external_id = "warm-up";
  for (int i = 0; i < 4; ++i)
    r.prompt.push_back(static_cast<int>((cfg.bos_token_id + i) % cfg.vocab_size));
  r.sampling.max_tokens = 2;
  r.sampling.ignore_eos = true;
  auto ch = root.source->submit(r);
  std::vector<RequestEvent> ev;
  while (!ch->finished()) ch->wait(ev, std::chrono::milliseconds(100));
  for (const auto& e : ev)
    if (e.finish == FinishReason::Error) {
      fmt::print(stderr, "dpep serve: the warm-up request failed: {}\n", e.error);
      return false;
    }
  long long kv = 0;
  for (const auto& s : root.source->rank_status()) {
    const long long t = static_cast<long long>(s.kv_total_pages) * rt.engine->blocks().page_size();
    if (t > 0 && (kv == 0 || t < kv)) kv = t;
  }
  root.limits.kv_cache_tokens = kv;
  root.metrics.reset();
  return true;
}

// /health turns 503 once a step has run past half the watchdog timeout; when the watchdog
// ends the job, every in-flight client first gets an error response or event.
void watch_engine(comm::Watchdog& wd, ServeSource& source, ServeHttpOptions& ho) {
  ho.health_problem = [&wd] {
    const auto age = wd.step_age();
    if (age * 2 <= wd.timeout()) return std::string();
    return fmt::format(
        "the engine looks stuck: a step has run for {:.1f} s (--watchdog-timeout {:g} s)",
        age.count() / 1000.0, wd.timeout().count() / 1000.0);
  };
  wd.set_on_trip([&source](const std::string& why) {
    source.begin_shutdown(why);
    source.fail_all("the server is stopping: " + why);
    std::this_thread::sleep_for(std::chrono::seconds(1));  // let the HTTP threads write them
  });
}

int run_serve(int argc, char** argv) {
  ModelArgs margs;
  RunArgs rargs;
  ServeArgs sargs;
  po::options_description d("serve options");
  sargs.add_to(d);
  margs.add_to(d);
  rargs.add_to(d);
  po::variables_map vm;
  if (!parse_command_line(
          argc, argv, d, vm,
          "usage: mpirun -np N dpep serve [--model FILE.h5] [--host 127.0.0.1] [--port 8000] "
          "[options]"))
    return 0;
  sargs.validate();
  const BalanceStrategy strat = balance_strategy_from_name(sargs.strategy);

  RankRuntime rt = setup_rank(&argc, &argv, margs, rargs);
  install_signal_handlers();
  std::unique_ptr<ServeRoot> root;
  agree_or_throw(
      *rt.cp,
      [&] {
        if (!rt.is_root()) return;
        root = std::make_unique<ServeRoot>();
        load_tokenizer(*root, sargs, margs, rt);
        const auto& cfg = rt.model->config();
        ServeLimits& lim = root->limits;
        lim.vocab_size = static_cast<int>(cfg.vocab_size);
        lim.max_model_len = static_cast<int>(cfg.max_position_embeddings);
        lim.eos_token_id = static_cast<int>(cfg.eos_token_id);
        lim.served_model_name =
            sargs.served_model_name.empty() ? default_model_name(margs) : sargs.served_model_name;
        lim.tokenizer = root->tokenizer ? &*root->tokenizer : nullptr;
        lim.chat_template = root->chat ? &*root->chat : nullptr;
        ServeSourceOptions so;
        so.max_queued_requests = sargs.max_queued_requests;
        so.drain_timeout =
            std::chrono::milliseconds(static_cast<long long>(sargs.drain_timeout * 1000));
        root->source = std::make_unique<ServeSource>(so, &root->metrics);
        ServeHttpOptions ho;
        ho.host = sargs.host;
        ho.port = sargs.port;
        ho.api_key = sargs.api_key;
        ho.threads = sargs.http_threads;
        ho.reasoning_parser = !sargs.reasoning_parser.empty();
        if (rt.watchdog->enabled()) watch_engine(*rt.watchdog, *root->source, ho);
        root->http = std::make_unique<ServeHttp>(ho, *root->source, root->metrics, root->limits);
        root->http->bind();
      },
      "starting the server");

  DpLoop loop(*rt.cp, *rt.engine, rt.log, loop_options(rt, strat, rargs));
  if (!rt.is_root()) {
    loop.run(nullptr);  // signals only set a flag here: rank 0 decides when the loop ends
    rt.log->info("serve: loop ended, exiting");
    return 0;
  }

  // Rank 0: a control thread warms up, opens the door, and waits for a stop signal; this
  // (main) thread runs the loop.
  int rc = 0;
  std::thread control([&] {
    if (warm_up(*root, rt)) {
      root->http->start();
      fmt::print("dpep serve: ready at http://{}:{}\n", sargs.host, root->http->port());
      std::fflush(stdout);
      rt.log->info("serve: ready at http://{}:{} (model '{}', {} ranks, tokenizer: {})", sargs.host,
                   root->http->port(), root->limits.served_model_name, rt.id.size,
                   root->tokenizer ? "yes" : "none");
      while (g_signal.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      fmt::print(stderr,
                 "dpep serve: signal {}: draining {} requests (up to {} s), refusing new ones\n",
                 g_signal.load(), root->source->num_in_flight(), sargs.drain_timeout);
      rt.log->info("serve: signal {}, draining {} requests", g_signal.load(),
                   root->source->num_in_flight());
      root->source->begin_shutdown(stop_signal_reason(g_signal.load()));
    } else {
      rc = 1;
      root->source->begin_shutdown("the warm-up failed");
    }
  });
  loop.run(root->source.get());
  control.join();
  root->http->stop();
  root->source->fail_all("the server stopped");
  rt.log->info("serve: stopped");
  fmt::print(stderr, "dpep serve: stopped\n");
  return rc;
}

RegisterCommand reg("serve", "OpenAI-compatible HTTP server over all ranks (rank 0 listens)",
                    run_serve);

}  // namespace
}  // namespace dpep
