// The pictures of a run, drawn from the ranks' run summaries (runtime/run_summary.h): the
// expert load as a heatmap (MoE layers x routed experts, rank boundaries marked) and where each
// rank's wall time went as stacked bars. Used by `dpep report LOGDIR` and at the end of
// `dpep offline`. No MPI, no model.
#pragma once
#include <string>
#include <vector>

#include "runtime/run_summary.h"

namespace dpep::report {

inline constexpr const char* kExpertLoadFile = "expert-load.svg";
inline constexpr const char* kStepTimeFile = "step-time.svg";

// Reads LOGDIR/rank-NNNN.log of every rank of the run that rank-0000.log describes (its last
// "run summary" line). Throws naming the file when a log or its summary is missing or broken.
std::vector<RankRunSummary> read_run_summaries(const std::string& log_dir);

// Throws std::invalid_argument unless `ranks` holds ranks 0..N-1 of one run, in order, with
// the same expert count and experts that tile [0, E).
void check_run_summaries(const std::vector<RankRunSummary>& ranks);

std::string expert_load_svg(const std::vector<RankRunSummary>& ranks);
std::string step_time_svg(const std::vector<RankRunSummary>& ranks);

// Checks the summaries, writes both pictures into out_dir (created if needed) and returns
// their paths. Throws naming the file on a write error.
std::vector<std::string> write_report(const std::vector<RankRunSummary>& ranks,
                                      const std::string& out_dir);

// A few lines for the terminal: per rank wall time, tokens, routed pairs; the balance.
std::string report_text(const std::vector<RankRunSummary>& ranks);

}  // namespace dpep::report
