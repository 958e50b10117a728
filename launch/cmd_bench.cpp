// dpep bench: a load generator for an OpenAI-compatible server (dpep serve or any other),
// printing SGLang bench_serving's result block.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include "launch/command.h"
#include "launch/dataset_random.h"
#include "launch/run_options.h"
#include "launch/serve/bench_client.h"

namespace po = boost::program_options;

namespace dpep {
namespace {

int run_bench_cmd(int argc, char** argv) {
  BenchClientOptions o;
  RandomDatasetArgs ds;
  std::string dataset = "random", rate = "inf", result_file;
  int vocab = 0;
  po::options_description d("bench options");
  // clang-format off
  d.add_options()
      ("base-url", po::value(&o.base_url)->required(), "server, e.g. http://127.0.0.1:8000")
      ("backend", po::value(&o.backend)->default_value(o.backend),
       "openai (/v1/completions) or sglang (/generate)")
      ("model", po::value(&o.model), "model name to send (default: the first of /v1/models)")
      ("api-key", po::value(&o.api_key), "sent as Authorization: Bearer KEY")
      ("dataset", po::value(&dataset)->default_value(dataset), "random")
      ("num-prompts", po::value(&ds.num_prompts)->default_value(ds.num_prompts), "requests")
      ("random-input-len", po::value(&ds.input_len)->default_value(ds.input_len), "max input tokens")
      ("random-output-len", po::value(&ds.output_len)->default_value(ds.output_len), "max output tokens")
      ("random-range-ratio", po::value(&ds.range_ratio)->default_value(ds.range_ratio),
       "lengths uniform in [len*ratio, len]")
      ("seed", po::value(&ds.seed)->default_value(ds.seed), "dataset and arrival seed")
      ("request-rate", po::value(&rate)->default_value(rate), "requests per second (Poisson), or inf")
      ("max-concurrency", po::value(&o.max_concurrency)->default_value(0), "requests in flight at most (0: no limit)")
      ("vocab-size", po::value(&vocab)->default_value(0),
       "vocabulary to draw prompt ids from (0: ask a dpep server's /v1/models)")
      ("timeout", po::value(&o.timeout_s)->default_value(o.timeout_s), "seconds per request")
      ("result-file", po::value(&result_file), "write the result block as JSON");
  // clang-format on
  po::variables_map vm;
  if (!parse_command_line(
          argc, argv, d, vm,
          "usage: dpep bench --base-url http://127.0.0.1:8000 --dataset random --num-prompts P "
          "--random-input-len I --random-output-len O [options]"))
    return 0;
  if (dataset != "random")
    throw std::invalid_argument(fmt::format("unknown --dataset '{}' (random)", dataset));
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
  if (ds.num_prompts < 1) throw std::invalid_argument("--num-prompts must be >= 1");
  if (o.max_concurrency < 0) throw std::invalid_argument("--max-concurrency must be >= 0");
  o.seed = ds.seed;

  std::string served;
  int served_vocab = 0;
  query_models(o, served, served_vocab);
  if (o.model.empty()) o.model = served;
  if (vocab == 0) vocab = served_vocab;
  if (vocab <= 2)
    throw std::invalid_argument("the server does not tell its vocabulary size: give --vocab-size");
  // Ids 0 and 1 are BOS/EOS in dpep presets and DeepSeek-V3; keep them out of prompts.
  const auto reqs = make_random_dataset(ds, vocab, {0, 1});
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
    j["dataset_name"] = dataset;
    j["random_input_len"] = ds.input_len;
    j["random_output_len"] = ds.output_len;
    j["random_range_ratio"] = ds.range_ratio;
    j["num_prompts"] = ds.num_prompts;
    j["seed"] = ds.seed;
    f << j.dump(2) << "\n";
  }
  return failed == static_cast<int>(results.size()) ? 1 : 0;
}

RegisterCommand reg("bench",
                    "load generator for an OpenAI-compatible server (bench_serving's result block)",
                    run_bench_cmd);

}  // namespace
}  // namespace dpep
