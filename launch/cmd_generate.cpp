// dpep generate: run prompts (token ids) through the model on every rank of the job.
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "launch/command.h"
#include "launch/rank_setup.h"
#include "launch/request_json.h"
#include "launch/result_writer.h"
#include "runtime/batch_source.h"

namespace po = boost::program_options;

namespace dpep {
namespace {

std::vector<int> parse_ids(const std::string& s) {
  std::vector<int> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t n = 0;
      ids.push_back(std::stoi(item, &n));
      if (n != item.size()) throw std::invalid_argument("x");
    } catch (const std::exception&) {
      throw std::invalid_argument(fmt::format("--prompt-ids: '{}' is not a token id", item));
    }
  }
  if (ids.empty()) throw std::invalid_argument("--prompt-ids is empty");
  return ids;
}

int run_generate(int argc, char** argv) {
  ModelArgs margs;
  RunArgs rargs;
  std::string prompt_ids, input_file, output_file;
  RequestDefaults defs;
  defs.sampling.max_tokens = 16;
  po::options_description d("generate options");
  d.add_options()("prompt-ids", po::value(&prompt_ids), "one prompt as comma-separated token ids")(
      "input-file", po::value(&input_file),
      "JSONL requests: {id, input_ids, max_tokens, temperature, ...}")(
      "output-file", po::value(&output_file), "JSONL results, one line per request in input order")(
      "max-tokens", po::value(&defs.sampling.max_tokens)->default_value(16), "tokens to generate")(
      "temperature", po::value(&defs.sampling.temperature)->default_value(0.0f), "0 = greedy")(
      "top-p", po::value(&defs.sampling.top_p)->default_value(1.0f), "nucleus sampling")(
      "top-k", po::value(&defs.sampling.top_k)->default_value(0), "0 = off")(
      "seed", po::value(&defs.sampling.seed)->default_value(-1),
      "sampling seed (-1: from the request)")(
      "ignore-eos", po::bool_switch(&defs.sampling.ignore_eos), "do not stop at end-of-sentence")(
      "top-logprobs", po::value(&defs.sampling.top_logprobs)->default_value(0),
      "report the K best token ids and log-probabilities per generated token");
  margs.add_to(d);
  rargs.add_to(d);
  po::variables_map vm;
  if (!parse_command_line(
          argc, argv, d, vm,
          "usage: mpirun -np N dpep generate [--model FILE.h5] (--prompt-ids 1,2,3 | "
          "--input-file in.jsonl --output-file out.jsonl) [options]"))
    return 0;
  if (prompt_ids.empty() == input_file.empty())
    throw std::invalid_argument("give exactly one of --prompt-ids and --input-file");
  if (!input_file.empty() && output_file.empty())
    throw std::invalid_argument("--input-file needs --output-file");

  // The output file must be writable before any weight is read.
  RankRuntime rt = setup_rank(&argc, &argv, margs, rargs, [&] {
    if (!output_file.empty()) check_output_writable(output_file);
  });
  defs.tokenizer = rt.tokenizer.get();
  defs.chat = rt.chat.get();
  defs.vocab_size = static_cast<int>(rt.model->config().vocab_size);
  std::unique_ptr<BatchSource> source;
  agree_or_throw(
      *rt.cp,
      [&] {
        if (!rt.is_root()) return;
        std::vector<Request> reqs;
        if (!prompt_ids.empty()) {
          nlohmann::json j{{"input_ids", parse_ids(prompt_ids)}};
          reqs.push_back(request_from_json(j, 0, defs));
        } else {
          reqs = read_requests(input_file, defs);
        }
        source = std::make_unique<BatchSource>(std::move(reqs));
      },
      "reading the requests");

  DpLoop loop(*rt.cp, *rt.engine, rt.log, loop_options(rt, BalanceStrategy::LeastTokens, rargs));
  loop.run(source.get());
  const std::string per_rank_summary = loop.summary(rt.id.host);
  if (!rt.is_root()) return 0;
  rt.log->info("summary:\n{}", per_rank_summary);
  int failed = 0;
  if (!prompt_ids.empty()) {
    const auto& r = source->results()[0];
    if (r.finish == FinishReason::Error) throw std::runtime_error(r.error);
    std::string ids;
    for (size_t i = 0; i < r.output.size(); ++i) {
      if (i) ids += ',';
      ids += std::to_string(r.output[i]);
    }
    fmt::print("output_ids: {}\nfinish_reason: {}\n", ids, finish_reason_name(r.finish));
    if (defs.sampling.top_logprobs > 0)
      fmt::print("{}\n", result_to_json(r)["top_logprobs"].dump());
  } else {
    std::ofstream out(output_file);
    if (!out) throw std::runtime_error(fmt::format("cannot write {}", output_file));
    for (const auto& r : source->results()) {
      out << result_to_json(r, rt.tokenizer.get()).dump() << "\n";
      if (r.finish == FinishReason::Error) {
        failed++;
        fmt::print(stderr, "dpep generate: request {} failed: {}\n", r.request.external_id,
                   r.error);
      }
    }
    fmt::print("dpep generate: {} requests on {} ranks, {} failed; results in {}\n",
               source->results().size(), rt.id.size, failed, output_file);
  }
  return failed ? 1 : 0;
}

RegisterCommand reg("generate", "run prompts (token ids, text or chat messages) through the model",
                    run_generate);

}  // namespace
}  // namespace dpep
