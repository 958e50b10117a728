// What one rank did over a run, in a form machines read back: the DP loop writes it to the
// rank's log as one line "run summary {json}" at the end of the run (also when it ends by an
// error), and `dpep report LOGDIR` / the end of `dpep offline` draw pictures from it.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dpep {

struct RankRunSummary {
  int rank = 0, ranks = 1;
  std::string host;
  bool complete = true;  // false: the run ended by an error on this rank
  int64_t steps = 0, busy_steps = 0, tokens = 0;
  double wall_s = 0;  // the loop's wall time
  // Busy steps without tokens of this rank (an empty forward for the others' MoE exchanges) and
  // their engine time, which time_s counts in its phases (mostly dispatch/combine waits).
  int64_t empty_steps = 0;
  double empty_step_s = 0;
  // Where the wall time went, in seconds, in kTimeCategories order ("other" = the rest).
  std::vector<std::pair<std::string, double>> time_s;
  int first_expert = 0;  // global index of this rank's first local expert
  int num_experts = 0;   // routed experts of the model (all ranks)
  // Per MoE layer: (layer index, (token, expert) pairs computed by each local expert).
  std::vector<std::pair<int, std::vector<int64_t>>> expert_load;

  int64_t routed_pairs() const;                       // sum of expert_load
  double time_of(const std::string& category) const;  // 0 if absent
  std::string to_json() const;
  // Throws std::invalid_argument naming the field on a malformed document.
  static RankRunSummary from_json(const std::string& text);
};

// The step-time categories, in drawing order.
extern const char* const kTimeCategories[];
extern const int kNumTimeCategories;

// The marker that starts the summary in a log line.
inline constexpr const char* kRunSummaryMarker = "run summary {";

// The last summary line of a rank log, if any. Throws on a malformed one.
std::optional<RankRunSummary> find_run_summary(std::istream& log);

}  // namespace dpep
