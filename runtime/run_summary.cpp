#include "runtime/run_summary.h"

#include <fmt/format.h>

#include <istream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace dpep {

const char* const kTimeCategories[] = {
    "attention", "router",   "dispatch", "experts",       "combine", "shared", "dense",
    "head",      "schedule", "sampling", "control plane", "idle",    "other"};
const int kNumTimeCategories = sizeof(kTimeCategories) / sizeof(kTimeCategories[0]);

int64_t RankRunSummary::routed_pairs() const {
  int64_t n = 0;
  for (const auto& [layer, load] : expert_load)
    for (int64_t v : load) n += v;
  return n;
}

double RankRunSummary::time_of(const std::string& category) const {
  for (const auto& [name, s] : time_s)
    if (name == category) return s;
  return 0;
}

std::string RankRunSummary::to_json() const {
  nlohmann::ordered_json j;
  j["rank"] = rank;
  j["ranks"] = ranks;
  j["host"] = host;
  j["complete"] = complete;
  j["steps"] = steps;
  j["busy_steps"] = busy_steps;
  j["tokens"] = tokens;
  j["wall_s"] = wall_s;
  j["empty_steps"] = empty_steps;
  j["empty_step_s"] = empty_step_s;
  j["time_s"] = nlohmann::ordered_json::object();
  for (const auto& [name, s] : time_s) j["time_s"][name] = s;
  j["first_expert"] = first_expert;
  j["num_experts"] = num_experts;
  j["routed_pairs"] = routed_pairs();
  j["expert_load"] = nlohmann::ordered_json::array();
  for (const auto& [layer, load] : expert_load)
    j["expert_load"].push_back({{"layer", layer}, {"pairs", load}});
  return j.dump();
}

RankRunSummary RankRunSummary::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(fmt::format("run summary is not JSON: {}", e.what()));
  }
  RankRunSummary s;
  std::string field;
  try {
    auto get = [&](const char* name) -> const nlohmann::json& {
      field = name;
      return j.at(name);
    };
    s.rank = get("rank").get<int>();
    s.ranks = get("ranks").get<int>();
    s.host = get("host").get<std::string>();
    s.complete = get("complete").get<bool>();
    s.steps = get("steps").get<int64_t>();
    s.busy_steps = get("busy_steps").get<int64_t>();
    s.tokens = get("tokens").get<int64_t>();
    s.wall_s = get("wall_s").get<double>();
    s.empty_steps = get("empty_steps").get<int64_t>();
    s.empty_step_s = get("empty_step_s").get<double>();
    // Kept in the drawing order, whatever order the file has.
    const auto& t = get("time_s");
    for (int i = 0; i < kNumTimeCategories; ++i)
      if (t.contains(kTimeCategories[i]))
        s.time_s.emplace_back(kTimeCategories[i], t.at(kTimeCategories[i]).get<double>());
    s.first_expert = get("first_expert").get<int>();
    s.num_experts = get("num_experts").get<int>();
    for (const auto& l : get("expert_load"))
      s.expert_load.emplace_back(l.at("layer").get<int>(),
                                 l.at("pairs").get<std::vector<int64_t>>());
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(fmt::format("run summary field '{}': {}", field, e.what()));
  }
  if (s.ranks < 1 || s.rank < 0 || s.rank >= s.ranks)
    throw std::invalid_argument(fmt::format("run summary: rank {} of {}", s.rank, s.ranks));
  if (s.num_experts < 0 || s.first_expert < 0) throw std::invalid_argument("run summary: experts");
  for (const auto& [layer, load] : s.expert_load)
    if (s.first_expert + static_cast<int64_t>(load.size()) > s.num_experts)
      throw std::invalid_argument(fmt::format(
          "run summary: layer {} has experts beyond the model's {}", layer, s.num_experts));
  return s;
}

std::optional<RankRunSummary> find_run_summary(std::istream& log) {
  std::string line, last;
  while (std::getline(log, line))
    if (line.find(kRunSummaryMarker) != std::string::npos) last = line;
  if (last.empty()) return std::nullopt;
  const size_t at = last.find(kRunSummaryMarker) + std::string(kRunSummaryMarker).size() - 1;
  return RankRunSummary::from_json(last.substr(at));
}

}  // namespace dpep
