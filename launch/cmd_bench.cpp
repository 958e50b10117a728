// dpep bench: a load generator for an OpenAI-compatible server (dpep serve or any other),
// printing SGLang bench_serving's result block.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include "launch/command.h"
#include "launch/dataset_options.h"
#include "launch/run_options.h"
#include "launch/serve/bench_client.h"
#include "runtime/tokenizer/preset_tokenizer.h"

namespace po = boost::program_options;

namespace dpep {
namespace {

int run_bench_cmd(int argc, char** argv) {
  BenchClientOptions o;
  DatasetOptions ds;
  std::string rate = "inf", result_file, tokenizer_dir;
  int vocab = 0;
  po::options_description d("bench options");
  // clang-format off
  d.add_options()
      ("base-url", po::value(&o.base_url)->required(), "server, e.g. http://127.0.0.1:8000")
      ("backend", po::value(&o.backend)->default_value(o.backend),
       "openai (/v1/completions) or sglang (/generate)")
      ("model", po::value(&o.model), "model name to send (default: the first of /v1/models)")
      ("api-key", po::value(&o.api_key), "sent as Authorization: Bearer KEY")
      ("request-rate", po::value(&rate)->default_value(rate), "requests per second (Poisson), or inf")
      ("max-concurrency", po::value(&o.max_concurrency)->default_value(0), "requests in flight at most (0: no limit)")
      ("vocab-size", po::value(&vocab)->default_value(0),
       "vocabulary to draw prompt ids from (0: ask a dpep server's /v1/models)")
      ("timeout", po::value(&o.timeout_s)->default_value(o.timeout_s), "seconds per request")
      ("result-file", po::value(&result_file), "write the result block as JSON")
      ("tokenizer", po::value(&tokenizer_dir),
       "sharegpt: tokenizer folder (tokenizer.json), or 'preset' for dpep's preset tokenizer");
  // clang-format on
  ds.add_to(d);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, d, vm,
                          "usage: dpep bench --base-url http://127.0.0.1:8000 [--dataset random|"
                          "generated-shared-prefix|sharegpt] [dataset flags] [options]"))
    return 0;
  ds.validate();
  if (ds.name == "sharegpt" && tokenizer_dir.empty())
    throw std::invalid_argument(
        "--dataset sharegpt needs a tokenizer to measure lengths: give --tokenizer DIR (a folder "
        "with tokenizer.json) or --tokenizer preset");
  if (o.backend != "openai" && o.backend != "sglang")
    throw std::invalid_argument(fmt::format("unknown --backend '{}' (openai, sglang)", o.backend));
  if (rate != "inf") {
    try {
      o.request_rate = std::stod(rate);
    } catch (const std::exception&) {
      throw std::invalid_argument(fmt::format("--request-rate '{}' is not a number or inf", rate));
    }
    if (!(o.request_rate > 0)) throw std::invalid_argument("--request-rate must be > 0 (or inf)");
  }
  if (o.max_concurrency < 0) throw std::invalid_argument("--max-concurrency must be >= 0");
  o.seed = ds.random.seed;

  std::string served;
  int served_vocab = 0;
  query_models(o, served, served_vocab);
  if (o.model.empty()) o.model = served;
  if (vocab == 0) vocab = served_vocab;
  if (vocab <= 2)
    throw std::invalid_argument("the server does not tell its vocabulary size: give --vocab-size");
  std::unique_ptr<text::Tokenizer> tok;
  if (tokenizer_dir == "preset")
    tok = std::make_unique<text::Tokenizer>(text::Tokenizer::from_json(
        text::build_preset_tokenizer_json(vocab), text::build_preset_tokenizer_config_json()));
  else if (!tokenizer_dir.empty())
    tok = std::make_unique<text::Tokenizer>(text::Tokenizer::from_directory(tokenizer_dir));
  // Ids 0 and 1 are BOS/EOS in dpep presets and DeepSeek-V3; keep them out of prompts.
  const auto reqs = ds.make(vocab, {0, 1}, tok.get());
  fmt::print(stderr, "dpep bench: {} requests to {} (model '{}', rate {}, concurrency {})\n",
             reqs.size(), o.base_url, o.model, rate,
             o.max_concurrency > 0 ? std::to_string(o.max_concurrency) : std::string("not set"));

  double duration = 0;
  const auto results = run_bench(o, reqs, duration);
  BenchReport rep;
  rep.backend = o.backend == "sglang" ? "sglang" : "openai";
  rep.request_rate = rate;
  if (o.max_concurrency > 0) rep.max_concurrency = std::to_string(o.max_concurrency);
  rep.duration = duration;
  int failed = 0, opened = 0, stale = 0;
  for (const auto& r : results) {
    opened += r.new_connection;
    stale += r.reconnected;
    rep.requests.push_back(r.timing);
    if (!r.error.empty() && failed++ < 5)
      fmt::print(stderr, "dpep bench: request failed: {}\n", r.error);
  }
  rep.extra["Base URL"] = o.base_url;
  rep.extra["Connections opened"] = opened;  // keep-alive: about one per worker
  rep.extra["Stale keep-alive reopened"] = stale;
  fmt::print("{}", rep.to_text());
  std::fflush(stdout);
  if (!result_file.empty()) {
    std::ofstream f(result_file);
    if (!f) throw std::runtime_error(fmt::format("cannot write {}", result_file));
    nlohmann::json j = rep.to_json();
    j["model_id"] = o.model;
    ds.describe(j);
    f << j.dump(2) << "\n";
  }
  return failed == static_cast<int>(results.size()) ? 1 : 0;
}

RegisterCommand reg("bench",
                    "load generator for an OpenAI-compatible server (bench_serving's result block)",
                    run_bench_cmd);

}  // namespace
}  // namespace dpep
