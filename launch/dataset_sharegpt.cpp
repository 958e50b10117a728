#include "launch/dataset_sharegpt.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>

namespace dpep {

std::vector<Request> make_sharegpt_dataset(const ShareGptDatasetArgs& a,
                                           const text::Tokenizer* tokenizer) {
  if (a.path.empty()) throw std::invalid_argument("--dataset sharegpt needs --dataset-path FILE");
  if (!tokenizer)
    throw std::invalid_argument(
        "--dataset sharegpt needs a tokenizer to measure prompt and output lengths (a model file "
        "with a tokenizer, or --tokenizer)");
  if (a.num_prompts < 1) throw std::invalid_argument("--num-prompts must be >= 1");
  if (a.output_len < 0) throw std::invalid_argument("--sharegpt-output-len must be >= 0");
  if (a.context_len < 0) throw std::invalid_argument("--sharegpt-context-len must be >= 0");
  std::ifstream f(a.path);
  if (!f) throw std::invalid_argument(fmt::format("cannot read --dataset-path {}", a.path));
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(fmt::format("{} is not valid JSON: {}", a.path, e.what()));
  }
  if (!doc.is_array())
    throw std::invalid_argument(
        fmt::format("{}: a ShareGPT file is a JSON array of conversations", a.path));
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& item : doc) {
    if (!item.is_object()) continue;
    const nlohmann::json* conv = nullptr;
    if (item.contains("conversations"))
      conv = &item["conversations"];
    else if (item.contains("conversation"))
      conv = &item["conversation"];
    if (!conv || !conv->is_array() || conv->size() < 2) continue;
    const auto& t0 = (*conv)[0];
    const auto& t1 = (*conv)[1];
    if (!t0.is_object() || !t1.is_object() || !t0.contains("value") || !t1.contains("value") ||
        !t0["value"].is_string() || !t1["value"].is_string())
      throw std::invalid_argument(
          fmt::format("{}: a conversation turn without a string \"value\"", a.path));
    pairs.emplace_back(t0["value"].get<std::string>(), t1["value"].get<std::string>());
  }
  std::mt19937_64 g(a.seed);
  for (size_t i = pairs.size(); i > 1; --i) std::swap(pairs[i - 1], pairs[g() % i]);
  std::vector<Request> reqs;
  for (const auto& [prompt, answer] : pairs) {
    if (static_cast<int>(reqs.size()) == a.num_prompts) break;
    Request r;
    r.prompt = tokenizer->encode(prompt, true);
    const int prompt_len = static_cast<int>(r.prompt.size());
    const int output_len =
        a.output_len > 0 ? a.output_len : static_cast<int>(tokenizer->encode(answer, true).size());
    if (prompt_len < 2 || output_len < 2) continue;
    if (a.context_len > 0 && prompt_len + output_len > a.context_len) continue;
    r.id = static_cast<int64_t>(reqs.size());
    r.external_id = std::to_string(r.id);
    r.sampling.max_tokens = output_len;
    r.sampling.ignore_eos = true;
    reqs.push_back(std::move(r));
  }
  if (reqs.empty())
    throw std::invalid_argument(
        fmt::format("{}: no conversation passed the length filter", a.path));
  return reqs;
}

}  // namespace dpep
