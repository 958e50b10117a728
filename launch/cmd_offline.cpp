// dpep offline: a throughput run over every rank of the job (MLPerf offline scenario /
// lmdeploy's benchmark tables): all requests are submitted at once, rank 0 spreads them over
// the DP ranks, and prints bench_serving's result block.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "launch/command.h"
#include "launch/dataset_options.h"
#include "launch/progress.h"
#include "launch/rank_setup.h"
#include "launch/report/report_svg.h"
#include "launch/request_json.h"
#include "launch/result_writer.h"
#include "launch/serve/bench_report.h"
#include "model/flops.h"
#include "runtime/batch_source.h"

namespace po = boost::program_options;

namespace dpep {
namespace {

std::vector<std::string> gather_hosts(comm::ControlPlane& cp, const std::string& host) {
  auto all = cp.gather_blobs(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(host.data()), host.size()));
  std::vector<std::string> hosts;
  for (auto& b : all) hosts.emplace_back(b.begin(), b.end());
  return hosts;
}

BenchReport make_report(const BatchSource& src, double duration) {
  BenchReport rep;
  rep.duration = duration;
  for (const auto& r : src.results()) {
    RequestTiming t;
    t.success = r.finish == FinishReason::Length || r.finish == FinishReason::Stop;
    t.input_tokens = static_cast<long long>(r.request.prompt.size());
    t.output_tokens = static_cast<long long>(r.output.size());
    if (!r.token_times.empty()) {
      t.ttft = r.token_times.front();
      for (size_t i = 1; i < r.token_times.size(); ++i)
        t.itl.push_back(r.token_times[i] - r.token_times[i - 1]);
    }
    t.e2e = r.end_time;
    rep.requests.push_back(std::move(t));
  }
  return rep;
}

// The --input-file lines with their ids (the "id" field, else the 0-based line number);
// throws naming both lines if two share an id.
struct InputLines {
  std::vector<nlohmann::json> lines;
  std::vector<std::string> ids;
};
InputLines read_input_lines(const std::string& path) {
  InputLines in;
  in.lines = read_jsonl(path);
  std::map<std::string, size_t> first;
  for (size_t i = 0; i < in.lines.size(); ++i) {
    const auto& j = in.lines[i];
    std::string id = std::to_string(i);
    if (j.is_object() && j.contains("id"))
      id = j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump();
    auto [it, fresh] = first.emplace(id, i);
    if (!fresh)
      throw std::invalid_argument(fmt::format(
          "{}: requests {} and {} have the same id '{}' (ids must be unique; a request without "
          "an \"id\" gets its 0-based line number)",
          path, it->second + 1, i + 1, id));
    in.ids.push_back(std::move(id));
  }
  return in;
}

int run_offline(int argc, char** argv) {
  ModelArgs margs;
  RunArgs rargs;
  DatasetOptions ds;
  std::string input_file, output_file, result_file, strategy = "cache_aware";
  std::string output_order = "input";
  bool resume = false;
  RequestDefaults defs;
  po::options_description d("offline options");
  d.add_options()("input-file", po::value(&input_file),
                  "JSONL requests as in dpep generate (evaluation path)")(
      "output-file", po::value(&output_file),
      "JSONL results of --input-file, one line per request written as it finishes")(
      "output-order", po::value(&output_order)->default_value(output_order),
      "input: a last pass sorts the output file into input order (temporary file + rename); "
      "finish: leave it in finishing order")(
      "resume", po::bool_switch(&resume),
      "keep the results already in --output-file (a torn last line is dropped) and run only "
      "the requests without one")("result-file", po::value(&result_file),
                                  "write the result block as JSON")(
      "strategy", po::value(&strategy)->default_value(strategy),
      "request to rank: round_robin, least_tokens, min_expected_latency, cache_aware");
  ds.add_to(d);
  margs.add_to(d);
  rargs.add_to(d);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, d, vm,
                          "usage: mpirun -np N dpep offline [--model FILE.h5] [--dataset random|"
                          "generated-shared-prefix|sharegpt] [dataset flags] [options]"))
    return 0;
  const BalanceStrategy strat = balance_strategy_from_name(strategy);
  if (input_file.empty()) ds.validate();
  if (!input_file.empty() && output_file.empty())
    throw std::invalid_argument("--input-file needs --output-file");
  if (output_order != "input" && output_order != "finish")
    throw std::invalid_argument(
        fmt::format("unknown --output-order '{}' (input, finish)", output_order));
  if (resume && input_file.empty())
    throw std::invalid_argument("--resume needs --input-file and --output-file");

  // Rank 0, before any weight is read: the output file can be written, the input parses and
  // its ids are unique; with --resume, which ids are done.
  InputLines input;
  std::unique_ptr<ResultWriter> writer;
  auto before_load = [&] {
    if (!result_file.empty()) check_output_writable(result_file);
    if (output_file.empty()) return;
    check_output_writable(output_file);
    if (!input_file.empty()) input = read_input_lines(input_file);
    writer = std::make_unique<ResultWriter>(output_file, resume);
  };
  RankRuntime rt = setup_rank(&argc, &argv, margs, rargs, before_load);
  defs.tokenizer = rt.tokenizer.get();
  defs.chat = rt.chat.get();
  defs.vocab_size = static_cast<int>(rt.model->config().vocab_size);
  const auto hosts = gather_hosts(*rt.cp, rt.id.host);
  const ModelConfig& cfg = rt.model->config();
  std::unique_ptr<BatchSource> source;
  agree_or_throw(
      *rt.cp,
      [&] {
        if (!rt.is_root()) return;
        std::vector<Request> reqs;
        if (!input_file.empty()) {
          // Requests without a result yet, numbered 0..n-1; a sampled request's seed comes
          // from its id, so a resumed run samples what the interrupted one would have.
          for (size_t i = 0; i < input.lines.size(); ++i) {
            if (writer->done().count(input.ids[i])) continue;
            try {
              Request r =
                  request_from_json(input.lines[i], static_cast<int64_t>(reqs.size()), defs);
              r.external_id = input.ids[i];
              if (r.sampling.seed < 0) r.sampling.seed = seed_from_id(r.external_id);
              reqs.push_back(std::move(r));
            } catch (const std::exception& e) {
              throw std::invalid_argument(
                  fmt::format("{} request {}: {}", input_file, i + 1, e.what()));
            }
          }
          if (resume)
            fmt::print(
                stderr,
                "dpep offline: --resume: {} results kept in {}{}, {} of {} requests to run\n",
                writer->kept_lines(), output_file,
                writer->dropped_torn_line() ? " (a torn last line was dropped)" : "", reqs.size(),
                input.lines.size());
        } else {
          reqs = ds.make(static_cast<int>(cfg.vocab_size),
                         {static_cast<int>(cfg.bos_token_id), static_cast<int>(cfg.eos_token_id)},
                         rt.tokenizer.get());
          for (const auto& r : reqs) input.ids.push_back(r.external_id);
        }
        source = std::make_unique<BatchSource>(std::move(reqs));
        if (writer)
          source->on_finished = [&](const RequestResult& r) {
            writer->write(result_to_json(r, rt.tokenizer.get()));
          };
      },
      "preparing the requests");

  std::unique_ptr<Progress> progress;
  if (rt.is_root()) {
    progress = std::make_unique<Progress>("dpep offline");
    source->on_progress = [&](size_t done, size_t total) {
      long long out = 0;
      for (const auto& r : source->results()) out += r.output.size();
      progress->update(done, total, source->elapsed(), out);
    };
  }
  MPI_Barrier(MPI_COMM_WORLD);  // every rank loaded: start the clock together
  if (source) source->start_clock();
  DpLoop loop(*rt.cp, *rt.engine, rt.log, loop_options(rt, strat, rargs));
  loop.run(source.get());
  const std::string per_rank_summary = loop.summary(rt.id.host);
  const auto run_summaries = loop.gather_run_summaries();
  if (!rt.is_root()) return 0;
  rt.log->info("summary:\n{}", per_rank_summary);
  // Pictures of the run next to the logs (dpep report LOGDIR draws them again from the logs).
  try {
    for (const auto& path : report::write_report(run_summaries, rargs.log_dir))
      fmt::print(stderr, "dpep offline: picture of the run: {}\n", path);
  } catch (const std::exception& e) {
    fmt::print(stderr, "dpep offline: no pictures of the run: {}\n", e.what());
  }
  const double duration = source->elapsed();
  progress->finish();

  // Result block plus per-rank / per-node throughput, the layout and the model FLOPs.
  BenchReport rep = make_report(*source, duration);
  std::vector<long long> out_per_rank(rt.id.size, 0);
  std::map<std::string, long long> out_per_node;
  const ModelCosts costs = ModelCosts::of(cfg);
  double flops = 0;
  int failed = 0;
  for (const auto& r : source->results()) {
    if (r.rank >= 0) {
      out_per_rank[r.rank] += r.output.size();
      out_per_node[hosts[r.rank]] += r.output.size();
    }
    flops += costs.request_flops(r.request.prompt.size(), r.output.size());
    if (r.finish == FinishReason::Error) {
      failed++;
      fmt::print(stderr, "dpep offline: request {} failed: {}\n", r.request.external_id, r.error);
    }
  }
  const std::set<std::string> nodes(hosts.begin(), hosts.end());
  const int E = static_cast<int>(cfg.n_routed_experts);
  rep.extra["DP/EP layout"] =
      fmt::format("{} nodes, {} ranks: DP attention x{}, EP x{} ({} experts per rank)",
                  nodes.size(), rt.id.size, rt.id.size, rt.id.size, E / rt.id.size);
  std::string per_rank;
  for (int k = 0; k < rt.id.size; ++k)
    per_rank += fmt::format("{}{:.1f}", k ? " " : "", out_per_rank[k] / duration);
  rep.extra["Output tok/s per rank"] = per_rank;
  std::string per_node;
  for (const auto& [h, n] : out_per_node)
    per_node += fmt::format("{}{}={:.1f}", per_node.empty() ? "" : " ", h, n / duration);
  rep.extra["Output tok/s per node"] = per_node;
  rep.extra["Threads per rank"] = rt.id.threads;
  rep.extra["Model matmul GFLOP/s"] = fmt::format("{:.1f}", flops / duration / 1e9);
  rep.extra["Simulated perfect EPLB"] = margs.simulate_perfect_eplb ? "on" : "off";
  fmt::print("{}{}", rep.to_text(), per_rank_summary);
  std::fflush(stdout);
  if (!result_file.empty()) {
    std::ofstream f(result_file);
    if (!f) throw std::runtime_error(fmt::format("cannot write {}", result_file));
    nlohmann::json j = rep.to_json();
    j["model"] = rt.model_path;
    j["num_ranks"] = rt.id.size;
    j["model_flops"] = flops;
    j["active_params_per_token"] = costs.active_params_per_token;
    j["matmul_dtype"] = rt.model->matmul_dtype() == MatmulDType::BF16 ? "bf16" : "fp32";
    j["simulate_perfect_eplb"] = margs.simulate_perfect_eplb;
    if (input_file.empty()) ds.describe(j);
    j["weight_bytes_per_token"] = rt.model->weight_bytes_per_token();
    j["output_throughput_per_rank"] = out_per_rank;
    for (auto& v : j["output_throughput_per_rank"]) v = v.get<double>() / duration;
    f << j.dump(2) << "\n";
  }
  if (writer && output_order == "input") writer->finish_in_order(input.ids);
  return failed ? 1 : 0;
}

RegisterCommand reg("offline", "throughput run over all ranks (random dataset or JSONL requests)",
                    run_offline);

}  // namespace
}  // namespace dpep
